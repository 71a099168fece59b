"""Reads of the accounts app: second factors."""

from __future__ import annotations

from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import RecoveryCode
from securefiles.lib.auth_types import User


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
