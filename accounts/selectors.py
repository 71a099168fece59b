"""Reads of the accounts app: second factors and access tokens."""

from __future__ import annotations

import hashlib
import hmac
import re

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AccessToken, RecoveryCode
from securefiles.lib.auth_types import User

# A personal access token: "sf_", 8 characters of public id, 43 of secret (base64url).
TOKEN_RE = re.compile(r"sf_(?P<prefix>[A-Za-z0-9_-]{8})[A-Za-z0-9_-]{43}", re.ASCII)


def is_verified(user: User) -> bool:
    """Whether the signed-in ``user`` (a request's) passed the second factor this session.

    django_otp's OTPMiddleware gives request.user an is_verified() method at run time;
    django_otp ships no types, so nothing declares it on User.
    """
    return bool(user.is_verified())  # type: ignore[attr-defined]


def has_device(user: User) -> bool:
    """Whether ``user`` has a confirmed TOTP authenticator."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def confirmed_device(user: User) -> TOTPDevice | None:
    """The user's confirmed TOTP authenticator, or None."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def recovery_codes_left(user: User) -> int:
    """How many of the user's recovery codes are still unused."""
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def tokens_of(user: User) -> QuerySet[AccessToken]:
    """The user's access tokens, newest first, revoked and expired ones included."""
    return AccessToken.objects.filter(user=user).order_by("-created_at", "-id")


def token_find(raw: str) -> AccessToken | None:
    """The live token ``raw`` is, or None.

    ``raw`` must look like ``sf_`` + 51 base64url characters; its public prefix finds the
    row, and the SHA-256 of the whole token is compared in constant time. Revoked and
    expired tokens, and tokens of deactivated users, are not live: all answer None, so a
    caller cannot tell them apart from an unknown token.
    """
    match = TOKEN_RE.fullmatch(raw)
    if match is None:
        return None
    token = (
        AccessToken.objects.select_related("user")
        .filter(
            prefix=match["prefix"],
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
            user__is_active=True,
        )
        .first()
    )
    if token is None or not hmac.compare_digest(token.digest, token_digest(raw)):
        return None
    return token


def token_digest(raw: str) -> str:
    """A token as stored: SHA-256 of the whole token, hex (64 characters)."""
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


def token_is_live(token: AccessToken) -> bool:
    """Neither revoked nor expired (for the account page's listing)."""
    return token.revoked_at is None and token.expires_at > timezone.now()


def token_get_for_user(*, user: User, token_id: int) -> AccessToken:
    """One of the user's tokens; Http404 for anyone else's or an unknown id."""
    try:
        return AccessToken.objects.get(pk=token_id, user=user)
    except AccessToken.DoesNotExist:
        raise Http404("No such token") from None
