"""Passkeys (WebAuthn Level 3) on py_webauthn: the registration and authentication
ceremonies, and the writes that follow them (README "Passkeys").

The relying party is the portal's public address (SITE_URL): its host is the RP ID and
its origin the only origin accepted. Each ceremony's challenge (32 random bytes) lives in
the session for CHALLENGE_SECONDS and is used at most once. A credential whose signature
counter does not grow is refused, as the library prescribes for a possibly cloned
authenticator (WebAuthn section 6.1.1), and the refusal is audited.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import urlsplit

from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts.models import Passkey
from accounts.selectors import PASSKEY_VERIFIED_AT_KEY, PASSKEY_VERIFIED_ID_KEY
from audit.actors import Actor
from audit.events import Event
from audit.services import audit_record
from securefiles.lib.auth_types import User
from securefiles.lib.site import site_url

CHALLENGE_KEY = "securefiles_webauthn_challenge"
CHALLENGE_SECONDS = 300


class PasskeyError(Exception):
    """A ceremony that failed; the message is safe to show."""


class PasskeyCloned(PasskeyError):
    """The credential's signature counter went backwards: possibly a cloned authenticator."""


def _relying_party() -> tuple[str, str]:
    """(RP ID, origin): the host of SITE_URL, and SITE_URL itself."""
    origin = site_url()
    return urlsplit(origin).hostname or "localhost", origin


def _new_challenge(session: SessionBase, purpose: str) -> bytes:
    challenge = secrets.token_bytes(32)
    session[CHALLENGE_KEY] = {
        "purpose": purpose,
        "challenge": bytes_to_base64url(challenge),
        "at": time.time(),
    }
    return challenge


def _take_challenge(session: SessionBase, purpose: str) -> bytes:
    """The session's challenge for ``purpose``, removed (used once). Raises PasskeyError
    when there is none, it is for another ceremony, or it is older than CHALLENGE_SECONDS."""
    stored = session.pop(CHALLENGE_KEY, None)
    if (
        not isinstance(stored, dict)
        or stored.get("purpose") != purpose
        or time.time() - float(stored.get("at", 0)) > CHALLENGE_SECONDS
    ):
        raise PasskeyError(_("This passkey request has expired: try again."))
    return base64url_to_bytes(stored["challenge"])


def _descriptors(user: User) -> list[PublicKeyCredentialDescriptor]:
    ids = Passkey.objects.filter(user=user).values_list("credential_id", flat=True)
    return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(cid)) for cid in ids]


def registration_options(*, user: User, session: SessionBase) -> str:
    """PublicKeyCredentialCreationOptions as JSON for navigator.credentials.create():
    a discoverable credential (so it can sign in without a username), user verification
    preferred, none of the user's existing credentials again."""
    rp_id, _origin = _relying_party()
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name="securefiles",
        user_name=user.get_username(),
        user_id=str(user.pk).encode(),
        challenge=_new_challenge(session, "register"),
        exclude_credentials=_descriptors(user),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return options_to_json(options)


def passkey_register(
    *, user: User, session: SessionBase, credential: str, name: str, actor: Actor
) -> Passkey:
    """Verify navigator.credentials.create()'s answer (JSON) and keep the passkey.

    The session then counts as having passed a second factor (the user just proved the
    authenticator). Audited as ``passkey.added``. Raises PasskeyError on any failure.
    """
    rp_id, origin = _relying_party()
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=_take_challenge(session, "register"),
            expected_rp_id=rp_id,
            expected_origin=origin,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(_("The passkey could not be verified.")) from exc
    credential_id = bytes_to_base64url(verified.credential_id)
    with transaction.atomic():
        if Passkey.objects.filter(credential_id=credential_id).exists():
            raise PasskeyError(_("This passkey is already registered."))
        passkey = Passkey.objects.create(
            user=user,
            name=(name.strip() or "passkey")[:100],
            credential_id=credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
        )
        audit_record(
            event=Event.PASSKEY_ADDED,
            actor=actor,
            detail=f"user={user.get_username()} passkey={passkey.name!r}",
        )
    _proved(session, passkey)
    return passkey


def authentication_options(*, session: SessionBase, user: User | None) -> str:
    """PublicKeyCredentialRequestOptions as JSON for navigator.credentials.get(): the
    known user's credentials, or none listed (a discoverable passkey, passwordless) when
    ``user`` is None, in which case user verification is required."""
    rp_id, _origin = _relying_party()
    options = generate_authentication_options(
        rp_id=rp_id,
        challenge=_new_challenge(session, "authenticate"),
        allow_credentials=_descriptors(user) if user is not None else [],
        user_verification=(
            UserVerificationRequirement.PREFERRED
            if user is not None
            else UserVerificationRequirement.REQUIRED
        ),
    )
    return options_to_json(options)


def _credential_id(credential: str) -> str:
    try:
        raw = json.loads(credential)["rawId"]
        return bytes_to_base64url(base64url_to_bytes(str(raw)))
    except (ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(_("The passkey's answer is malformed.")) from exc


def passkey_authenticate(
    *, session: SessionBase, credential: str, user: User | None, actor: Actor
) -> Passkey:
    """Verify navigator.credentials.get()'s answer (JSON): a passkey of ``user`` (the
    second factor), or of whoever it belongs to when ``user`` is None (passwordless; then
    the authenticator must have verified the user). Stores the new signature counter.

    Raises PasskeyCloned (audited as ``passkey.counter_regression``) when the counter did
    not grow, PasskeyError for anything else (unknown credential, another user's, wrong
    challenge, origin or signature, an inactive account).
    """
    rp_id, origin = _relying_party()
    challenge = _take_challenge(session, "authenticate")
    passkey = (
        Passkey.objects.select_related("user")
        .filter(credential_id=_credential_id(credential))
        .first()
    )
    if (
        passkey is None
        or (user is not None and passkey.user_id != user.pk)
        or not passkey.user.is_active
    ):
        raise PasskeyError(_("This passkey is not registered for this account."))
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=user is None,
        )
    except InvalidAuthenticationResponse as exc:
        if "sign count" in str(exc):  # the library's words for a counter that did not grow
            _record_counter_regression(passkey, actor)
            raise PasskeyCloned(
                _(
                    "This passkey's counter went backwards, which a copied authenticator does: "
                    "it was refused. Remove it and register your authenticator again."
                )
            ) from exc
        raise PasskeyError(_("The passkey could not be verified.")) from exc
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:  # malformed parts
        raise PasskeyError(_("The passkey could not be verified.")) from exc
    with transaction.atomic():
        Passkey.objects.filter(pk=passkey.pk).update(
            sign_count=verified.new_sign_count, last_used_at=timezone.now()
        )
    _proved(session, passkey)
    return passkey


def _proved(session: SessionBase, passkey: Passkey) -> None:
    """Record in the session that it proved ``passkey`` now: its second factor holds
    while that passkey exists (accounts.selectors.second_factor_passed)."""
    session[PASSKEY_VERIFIED_AT_KEY] = time.time()
    session[PASSKEY_VERIFIED_ID_KEY] = passkey.pk


def _record_counter_regression(passkey: Passkey, actor: Actor) -> None:
    with transaction.atomic():
        audit_record(
            event=Event.PASSKEY_COUNTER_REGRESSION,
            actor=actor,
            detail=f"user={passkey.user.get_username()} passkey={passkey.name!r}",
        )


def passkey_rename(*, passkey: Passkey, name: str, actor: Actor) -> None:
    """Give a passkey a new name (1 to 100 characters)."""
    with transaction.atomic():
        Passkey.objects.filter(pk=passkey.pk).update(name=name.strip()[:100] or F("name"))


def passkey_remove(*, passkey: Passkey, actor: Actor) -> None:
    """Remove a passkey (the caller checked the removal rules). Audited."""
    with transaction.atomic():
        Passkey.objects.filter(pk=passkey.pk).delete()
        audit_record(
            event=Event.PASSKEY_REMOVED,
            actor=actor,
            detail=f"user={passkey.user.get_username()} passkey={passkey.name!r}",
        )
