"""Second factor: TOTP authenticators (django-otp) and one-time recovery codes.

django-otp keeps each TOTP secret in clear in its table (otp_totp_totpdevice.key); the
README's threat model says so: whoever reads the database can mint codes, but still needs
the password, which is stored as an Argon2 hash.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from sharing.audit import Actor, Event, audit_record
from sharing.auth_types import User
from sharing.models import RecoveryCode

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off paper
RECOVERY_CODE_LENGTH = 16  # 16 characters of a 32-letter alphabet: 80 bits
_PENDING_DEVICE_KEY = "securefiles_pending_device"


def is_verified(user: User) -> bool:
    """Whether the signed-in ``user`` (a request's) passed the second factor this session.

    django_otp's OTPMiddleware gives request.user an is_verified() method at run time;
    django_otp ships no types, so nothing declares it on User.
    """
    return bool(user.is_verified())  # type: ignore[attr-defined]


def has_device(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def confirmed_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def pending_device(user: User, session: SessionBase) -> TOTPDevice:
    """The unconfirmed authenticator this session is enrolling (a fresh secret if none).

    Bound to the session: two sessions of one account never see the same secret, so a
    session that knows only the password cannot read the secret another session is about
    to confirm, and then pass its code step.
    """
    device_id = session.get(_PENDING_DEVICE_KEY)
    device = TOTPDevice.objects.filter(pk=device_id, user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
        session[_PENDING_DEVICE_KEY] = device.pk
    return device


def verify_code(*, user: User, code: str) -> bool:
    """True if ``code`` is a current code of the user's authenticator or an unused
    recovery code (which is then spent)."""
    device = confirmed_device(user)
    if device is None:
        return False
    return bool(device.verify_token(code.strip())) or use_recovery_code(user=user, code=code)


def _digest(code: str) -> str:
    normalised = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalised.encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4))


def confirm_device(*, device: TOTPDevice, token: str, actor: Actor) -> list[str] | None:
    """Confirm enrolment with a code from the app; return fresh recovery codes (shown once).

    None when the code is wrong, or when the account already has a confirmed
    authenticator (enrolled meanwhile by another session): a factor is only replaced
    after removing the current one, which takes a code from it.
    """
    if not device.verify_token(token.strip()):
        return None
    codes = [_new_code() for _ in range(settings.RECOVERY_CODES)]
    with transaction.atomic():
        # The user's row lock serialises two sessions confirming at once.
        get_user_model().objects.select_for_update().filter(pk=device.user_id).first()
        if TOTPDevice.objects.filter(user=device.user, confirmed=True).exists():
            return None
        TOTPDevice.objects.filter(user=device.user, confirmed=False).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        RecoveryCode.objects.filter(user=device.user).delete()
        RecoveryCode.objects.bulk_create(
            RecoveryCode(user=device.user, code_digest=_digest(code)) for code in codes
        )
        audit_record(event=Event.TWO_FACTOR_ENROLLED, actor=actor)
    return codes


def use_recovery_code(*, user: User, code: str) -> bool:
    """Spend one recovery code; True if it was valid and unused."""
    used = RecoveryCode.objects.filter(
        user=user, code_digest=_digest(code), used_at__isnull=True
    ).update(used_at=timezone.now())
    return used == 1


def remove_devices(*, user: User, actor: Actor) -> None:
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        audit_record(event=Event.TWO_FACTOR_REMOVED, actor=actor)


def reset_second_factor(*, user: User, actor: Actor) -> bool:
    """An administrator resets a user's second factor: every authenticator (confirmed or
    being enrolled) and every recovery code go; the user enrols again at their next login.

    Audited with the administrator as actor. False, and nothing recorded, when the user
    had neither an authenticator nor recovery codes.
    """
    with transaction.atomic():
        devices, _ = TOTPDevice.objects.filter(user=user).delete()
        codes, _ = RecoveryCode.objects.filter(user=user).delete()
        if not devices and not codes:
            return False
        audit_record(
            event=Event.TWO_FACTOR_RESET, actor=actor, detail=f"user={user.get_username()}"
        )
    return True


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()
