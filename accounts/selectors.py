"""Reads of the accounts app: second factors, access tokens, and groups as administrators
change them."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AccessToken, Invitation, OIDCIdentity, Passkey, RecoveryCode
from securefiles.lib.auth_types import User

# A personal access token: "sf_", 8 characters of public id, 43 of secret (base64url).
TOKEN_RE = re.compile(r"sf_(?P<prefix>[A-Za-z0-9_-]{8})[A-Za-z0-9_-]{43}", re.ASCII)


def is_verified(user: User) -> bool:
    """Whether the signed-in ``user`` (a request's) passed the second factor this session.

    django_otp's OTPMiddleware gives request.user an is_verified() method at run time;
    django_otp ships no types, so nothing declares it on User.
    """
    return bool(user.is_verified())  # type: ignore[attr-defined]


# Set in a session at single sign-on when the provider's MFA counts as the second factor
# (OIDC_MFA_SATISFIES_2FA; accounts.oidc). Django flushes the session at logout.
SSO_MFA_SESSION_KEY = "securefiles_sso_mfa"


# The time (time.time()) this session last proved a passkey, and that passkey's id
# (accounts.passkeys).
PASSKEY_VERIFIED_AT_KEY = "securefiles_passkey_at"
PASSKEY_VERIFIED_ID_KEY = "securefiles_passkey_id"


def second_factor_passed(request: HttpRequest) -> bool:
    """Whether this session passed a second factor: a TOTP or recovery code (django-otp's
    verification), a passkey, or the provider's MFA at single sign-on where the settings
    accept it."""
    session = request.session
    return (
        is_verified(request.user)  # type: ignore[arg-type]
        or bool(session.get(SSO_MFA_SESSION_KEY))
        or _passkey_proof_holds(request)
    )


def second_factor_outstanding(request: HttpRequest) -> bool:
    """Whether this logged-in session still owes a second factor: the account has one
    (TOTP or a passkey) that the session has not passed, or it is staff without one while
    STAFF_REQUIRE_2FA holds (a provider's accepted MFA passes both). The rule
    SecondFactorMiddleware enforces on pages, for callers that answer it themselves (the
    API and tus, accounts.tokens)."""
    if second_factor_passed(request):
        return False
    return has_second_factor(request.user) or (  # type: ignore[arg-type]
        settings.STAFF_REQUIRE_2FA and request.user.is_staff
    )


def _passkey_proof_holds(request: HttpRequest) -> bool:
    """Whether the passkey this session proved is still the user's: like django-otp's
    verification, which names a device that must still exist, a proof ends once its
    passkey is removed (by the user, or a second-factor reset by staff)."""
    passkey_id = request.session.get(PASSKEY_VERIFIED_ID_KEY)
    if not isinstance(passkey_id, int):
        return False
    user = request.user
    return user.is_authenticated and Passkey.objects.filter(pk=passkey_id, user=user).exists()


# How recently a passkey must have been proved for an act that needs a fresh second
# factor (removing the last one; creating an access token without a TOTP code).
RECENT_PASSKEY_SECONDS = 300


def passkey_proved_recently(request: HttpRequest) -> bool:
    """Whether this session proved one of the user's passkeys in the last
    RECENT_PASSKEY_SECONDS (300 seconds), and that passkey still exists."""
    proved = request.session.get(PASSKEY_VERIFIED_AT_KEY)
    if not isinstance(proved, (int, float)):
        return False
    return time.time() - proved <= RECENT_PASSKEY_SECONDS and _passkey_proof_holds(request)


def has_second_factor(user: User) -> bool:
    """Whether ``user`` has a second factor: a confirmed TOTP authenticator or a passkey.
    One query (the middleware asks on every request)."""
    totp = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
    passkey = Passkey.objects.filter(user=OuterRef("pk"))
    either = Q(Exists(totp)) | Q(Exists(passkey))
    return get_user_model().objects.filter(either, pk=user.pk).exists()


def passkeys_of(user: User) -> list[Passkey]:
    """The user's passkeys, oldest first."""
    return list(Passkey.objects.filter(user=user).order_by("created_at", "id"))


def passkey_get_for_owner(*, user: User, passkey_id: int) -> Passkey:
    """One of the user's passkeys; Http404 for anyone else's or an unknown id."""
    found = Passkey.objects.filter(pk=passkey_id, user=user).first()
    if found is None:
        raise Http404("No such passkey")
    return found


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


@dataclass(frozen=True)
class GroupState:
    """What an administrator can change about a group, as plain comparable values:
    its name, its permissions ("app_label.codename") and its members' usernames, sorted."""

    name: str
    permissions: tuple[str, ...]
    members: tuple[str, ...]


def group_state(*, group_id: int) -> GroupState:
    """Read a group's administrable state from the database."""
    group = Group.objects.get(pk=group_id)
    permissions = group.permissions.values_list("content_type__app_label", "codename")
    return GroupState(
        name=group.name,
        permissions=tuple(sorted(f"{app}.{codename}" for app, codename in permissions)),
        members=tuple(sorted(group.user_set.values_list("username", flat=True))),
    )


# What secrets.token_urlsafe(32) produces: 43 characters of the URL-safe alphabet.
INVITATION_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def invitation_token_digest(token: str) -> str:
    """An invitation token as stored: its SHA-256 in hex (64 characters)."""
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_get_by_token(*, token: str) -> Invitation | None:
    """The invitation a link's token opens, or None for a token that is malformed,
    unknown, replaced by a newer invitation, already used, expired, or whose user was
    deactivated (one answer for all: the page says the link is not valid)."""
    if not INVITATION_TOKEN_RE.fullmatch(token):
        return None
    digest = invitation_token_digest(token)
    invitation = Invitation.objects.select_related("user").filter(token_digest=digest).first()
    # Found by an index on the digest; compared again in constant time.
    if (
        invitation is None
        or not hmac.compare_digest(invitation.token_digest, digest)
        or invitation.expires_at <= timezone.now()
        or not invitation.user.is_active
    ):
        return None
    return invitation


def user_for_oidc(*, issuer: str, subject: str) -> User | None:
    """The user linked to the provider's ``iss`` and ``sub``, active or not; None if none."""
    identity = OIDCIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject)
    found = identity.first()
    return None if found is None else found.user


def has_oidc_identity(user: User) -> bool:
    """Whether ``user`` signs in through the OpenID provider (is linked to an identity)."""
    return OIDCIdentity.objects.filter(user=user).exists()
