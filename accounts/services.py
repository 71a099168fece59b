"""Writes of the accounts app: second factors (TOTP devices and recovery codes),
invitations, password resets, sign-up, personal access tokens and the audit entries of
logging in.

django-otp keeps each TOTP secret in clear in its table (otp_totp_totpdevice.key); the
README's threat model says so: whoever reads the database can mint codes, but still needs
the password, which is stored as an Argon2 hash.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AccessToken, Invitation, OIDCIdentity, Passkey, RecoveryCode
from accounts.selectors import (
    GroupState,
    confirmed_device,
    invitation_get_by_token,
    invitation_token_digest,
    token_digest,
)
from audit.actors import Actor
from audit.changes import state_changes
from audit.events import Event
from audit.models import AuditEntry
from audit.services import audit_record
from securefiles.lib.auth_types import User
from securefiles.lib.mail import send_later
from securefiles.lib.site import site_url
from throttle import counters, keys

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off paper
RECOVERY_CODE_LENGTH = 16  # 16 characters of a 32-letter alphabet: 80 bits
logger = logging.getLogger(__name__)
_PENDING_DEVICE_KEY = "securefiles_pending_device"


def device_pending(*, user: User, session: SessionBase) -> TOTPDevice:
    """The unconfirmed authenticator this session is enrolling (a fresh secret if none).

    Bound to the session: two sessions of one account never see the same secret, so a
    session that knows only the password cannot read the secret another session is about
    to confirm, and then pass its code step.
    """
    device_id = session.get(_PENDING_DEVICE_KEY)
    device = TOTPDevice.objects.filter(pk=device_id, user=user, confirmed=False).first()
    if device is None:
        with transaction.atomic():
            device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
        session[_PENDING_DEVICE_KEY] = device.pk
    return device


def second_factor_check(*, user: User, code: str) -> bool:
    """True if ``code`` is a current code of the user's authenticator or an unused
    recovery code (which is then spent)."""
    device = confirmed_device(user)
    if device is None:
        return False
    return bool(device.verify_token(code.strip())) or recovery_code_use(user=user, code=code)


def _digest(code: str) -> str:
    normalised = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalised.encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4))


def device_confirm(*, device: TOTPDevice, token: str, actor: Actor) -> list[str] | None:
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


def recovery_code_use(*, user: User, code: str) -> bool:
    """Spend one recovery code; True if it was valid and unused."""
    used = RecoveryCode.objects.filter(
        user=user, code_digest=_digest(code), used_at__isnull=True
    ).update(used_at=timezone.now())
    return used == 1


def devices_remove(*, user: User, actor: Actor) -> None:
    """Remove the user's authenticators and recovery codes (the user's own act, audited)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        audit_record(event=Event.TWO_FACTOR_REMOVED, actor=actor)


def second_factor_reset(*, user: User, actor: Actor) -> bool:
    """An administrator resets a user's second factor: every authenticator (confirmed or
    being enrolled), every recovery code and every passkey go; the user enrols again at
    their next login.

    Audited with the administrator as actor. False, and nothing recorded, when the user
    had none of them.
    """
    with transaction.atomic():
        devices, _ = TOTPDevice.objects.filter(user=user).delete()
        codes, _ = RecoveryCode.objects.filter(user=user).delete()
        passkeys, _ = Passkey.objects.filter(user=user).delete()
        if not devices and not codes and not passkeys:
            return False
        audit_record(
            event=Event.TWO_FACTOR_RESET, actor=actor, detail=f"user={user.get_username()}"
        )
    return True


class PasswordResetThrottled(Exception):
    """Too many reset requests from one client address; ``retry_after`` in seconds."""

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(f"password resets throttled for {retry_after} s")
        self.retry_after = retry_after


def password_reset_admit(*, ip: str, email: str) -> bool:
    """Count a password reset request (a well-formed address); may its e-mail be sent?

    Each request counts once for the client address ``ip`` and once for the typed
    ``email`` (any case), in shared fixed windows of PASSWORD_RESET_WINDOW_SECONDS.
    Raises PasswordResetThrottled past PASSWORD_RESET_LIMIT_PER_ADDRESS requests from
    ``ip`` (the account is then not counted). Returns False past
    PASSWORD_RESET_LIMIT_PER_ACCOUNT requests for ``email``: the caller answers as usual
    and sends nothing, so the answer never tells whether the address has an account.
    """
    window = settings.PASSWORD_RESET_WINDOW_SECONDS
    address_key = keys.password_reset_address_key(ip)
    if counters.add_failure(address_key, window) > settings.PASSWORD_RESET_LIMIT_PER_ADDRESS:
        raise PasswordResetThrottled(retry_after=counters.seconds_left(address_key, window))
    account_key = keys.password_reset_account_key(email)
    sent = counters.add_failure(account_key, window)
    if sent > settings.PASSWORD_RESET_LIMIT_PER_ACCOUNT:
        logger.info("password reset e-mail withheld: per-account limit reached")
        return False
    return True


def user_invite(*, user: User, actor: Actor) -> None:
    """Create a user without a usable password and send them an invitation (sent once
    committed) to choose one. Nobody else, administrators included, ever chooses or knows
    their password. Audited as ``user.created`` and ``user.invitation_sent``."""
    with transaction.atomic():
        user.set_unusable_password()
        user.save(force_insert=True)
        audit_record(
            event=Event.USER_CREATED,
            actor=actor,
            detail=f"user={user.get_username()} email={user.email}",
        )
        invitation_send(user=user, actor=actor)


# The session key that holds an opened invitation's token (accounts.views.invitation), so
# that choosing a password, or signing in through the provider, can use it.
INVITATION_SESSION_KEY = "securefiles_invitation_token"


class InvitationInvalid(Exception):
    """The invitation was used, replaced or expired meanwhile; nothing was changed."""


def invitation_send(*, user: User, actor: Actor) -> bool:
    """E-mail ``user`` a one-time link to choose their password, valid INVITATION_DAYS.

    The token is 256 random bits (secrets.token_urlsafe(32)); only its SHA-256 is kept,
    in the user's one Invitation row, which a new sending replaces: the previous link
    stops working. Sent once committed; audited as ``user.invitation_sent``. False, and
    nothing recorded, for a user who is inactive, has no e-mail address or already has a
    password (they use the password reset instead).
    """
    if not user.is_active or not user.email or user.has_usable_password():
        return False
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    expires_at = now + timedelta(days=settings.INVITATION_DAYS)
    with transaction.atomic():
        Invitation.objects.update_or_create(
            user=user,
            defaults={
                "token_digest": invitation_token_digest(token),
                "created_at": now,
                "expires_at": expires_at,
            },
        )
        audit_record(
            event=Event.INVITATION_SENT,
            actor=actor,
            detail=f"user={user.get_username()} expires_at={expires_at.isoformat()}",
        )
        user_id = user.pk
        transaction.on_commit(lambda: _send_invitation(user_id=user_id, token=token))
    return True


def _send_invitation(*, user_id: int, token: str) -> None:
    """Queue the invitation e-mail (send_later: the worker sends it, retrying a failing
    mail server); its link is built from site_url(), never a request's Host."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email:
        return
    context = {
        "user": user,
        "email": user.email,
        "days": settings.INVITATION_DAYS,
        "url": site_url() + reverse("invitation", args=[token]),
    }
    subject = render_to_string("registration/password_set_subject.txt", context).strip()
    body = render_to_string("registration/password_set_email.html", context)
    send_later(subject=subject, body=body, to=[user.email], reason="invitation")


def invitation_accept(*, invitation: Invitation, password: str, actor: Actor) -> User:
    """Set the invitee's password (validated by the caller's form) and use the invitation
    up: its row is deleted, so the link never works again. Audited as
    ``user.invitation_accepted`` with the invitee as actor.

    Raises InvitationInvalid, and changes nothing, when the invitation was accepted,
    replaced or expired since it was looked up (a second tab, a resend meanwhile).
    """
    with transaction.atomic():
        deleted, _ = Invitation.objects.filter(
            pk=invitation.pk,
            token_digest=invitation.token_digest,
            expires_at__gt=timezone.now(),
        ).delete()
        if not deleted:
            raise InvitationInvalid
        user = invitation.user
        user.set_password(password)
        user.save(update_fields=["password"])
        _invitation_accepted_record(user=user, actor=actor)
    return user


def _invitation_accepted_record(*, user: User, actor: Actor, via: str = "") -> None:
    """Audit an accepted invitation with the invitee as actor (from the request ``actor``'s
    address and browser): they are who acts, though not logged in yet."""
    invitee = Actor(
        label=user.get_username(), user_id=user.pk, ip=actor.ip, user_agent=actor.user_agent
    )
    detail = f"user={user.get_username()}" + (f" via={via}" if via else "")
    audit_record(event=Event.INVITATION_ACCEPTED, actor=invitee, detail=detail)


def user_password_reset_send(*, user: User, actor: Actor) -> bool:
    """E-mail a user a link to choose a new password (sent once committed); audited.

    False, and nothing recorded, when the user is inactive or has no e-mail address.
    """
    if not user.email or not user.is_active:
        return False
    with transaction.atomic():
        audit_record(
            event=Event.USER_PASSWORD_RESET_SENT,
            actor=actor,
            detail=f"user={user.get_username()}",
        )
        user_id = user.pk
        transaction.on_commit(lambda: _send_password_link(user_id=user_id))
    return True


def _send_password_link(*, user_id: int) -> None:
    """Send Django's password-reset e-mail with a one-time link.

    The token is made at sending time, from the committed row: it stops working once the
    password is set. The link is built from site_url(), never from a request's Host.
    """
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email:
        return
    site = urlsplit(site_url())
    context = {
        "email": user.email,
        "domain": site.netloc,
        "site_name": "securefiles",
        "uid": urlsafe_base64_encode(force_bytes(user.pk)),
        "user": user,
        "token": default_token_generator.make_token(user),
        "protocol": site.scheme or "https",
    }
    password_reset_mail_send(
        subject_template="registration/password_reset_subject.txt",
        body_template="registration/password_reset_email.html",
        context=context,
        to=user.email,
    )


def password_reset_mail_send(
    *, subject_template: str, body_template: str, context: dict, to: str
) -> None:
    """Render Django's password-reset e-mail (subject on one line) and queue it
    (send_later): the worker sends it, never the request."""
    subject = "".join(render_to_string(subject_template, context).splitlines())
    body = render_to_string(body_template, context)
    send_later(subject=subject, body=body, to=[to], reason="password-reset")


# -- the audit entries of logging in (from the views and the login signals)


def login_record(*, actor: Actor) -> None:
    """Audit a completed login (password, and the second factor where there is one)."""
    audit_record(event=Event.LOGIN, actor=actor)


def login_failure_record(*, actor: Actor, username: str, step: str = "") -> None:
    """Audit a failed login: a wrong password, or a wrong code at ``step`` "second-factor"."""
    detail = f"username={username[:150]}" + (f" step={step}" if step else "")
    audit_record(event=Event.LOGIN_FAILED, actor=actor, detail=detail)


def login_lockout_record(*, actor: Actor, username: str, limit: str = "", step: str = "") -> None:
    """Audit a login refused for too many failures: by django-axes, by the lockout policy's
    ``limit`` ("account" or "address"), or at ``step`` "second-factor"."""
    detail = f"username={username[:150]}" + (f" limit={limit}" if limit else "")
    detail += f" step={step}" if step else ""
    audit_record(event=Event.LOGIN_LOCKED_OUT, actor=actor, detail=detail)


def user_sign_up(*, username: str, email: str, password: str, actor: Actor) -> User:
    """Create an account from the sign-up form (SIGNUP_ENABLED) and audit it; the actor's
    user is filled in with the new account. Raises IntegrityError if the name is taken."""
    with transaction.atomic():
        user = User.objects.create_user(username, email=email, password=password)
        signed_up = Actor(
            label=user.get_username(), user_id=user.pk, ip=actor.ip, user_agent=actor.user_agent
        )
        audit_record(event=Event.SIGNED_UP, actor=signed_up)
    return user


# -- personal access tokens (the HTTP API)

# What a token may do: read files and their metadata; upload and delete; share with
# colleagues and make links. Order is the order shown.
TOKEN_SCOPES = ("read", "write", "share")
_PREFIX_BYTES, _SECRET_BYTES = 6, 32  # 8 and 43 base64url characters


def _new_token() -> tuple[str, str]:
    """A fresh token and its public prefix: ``sf_`` + prefix + secret (256 random bits)."""
    prefix = secrets.token_urlsafe(_PREFIX_BYTES)
    return f"sf_{prefix}{secrets.token_urlsafe(_SECRET_BYTES)}", prefix


def token_create(
    *, user: User, name: str, scopes: list[str], expires_in_days: int, actor: Actor
) -> tuple[AccessToken, str]:
    """Create a personal access token; return its row and the token, which is shown once
    and stored nowhere (only its SHA-256 is).

    ``scopes`` is a non-empty subset of TOKEN_SCOPES, ``expires_in_days`` between 1 and
    API_TOKEN_MAX_DAYS (the caller's form checks both; ValueError otherwise). Audited
    as token.created with the prefix, name and scopes, never the token.
    """
    if not scopes or not set(scopes) <= set(TOKEN_SCOPES):
        raise ValueError("unknown scope")
    if not 1 <= expires_in_days <= settings.API_TOKEN_MAX_DAYS:
        raise ValueError("expiry out of range")
    ordered = ",".join(scope for scope in TOKEN_SCOPES if scope in scopes)
    expires_at = timezone.now() + timedelta(days=expires_in_days)
    with transaction.atomic():
        raw, prefix = _new_token()
        while AccessToken.objects.filter(prefix=prefix).exists():  # 48 bits: next to never
            raw, prefix = _new_token()
        token = AccessToken.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            digest=token_digest(raw),
            scopes=ordered,
            expires_at=expires_at,
        )
        audit_record(
            event=Event.TOKEN_CREATED,
            actor=actor,
            detail=f"token=sf_{prefix} name={name[:100]} scopes={ordered} "
            f"expires={expires_at:%Y-%m-%d}",
        )
    return token, raw


def token_revoke(*, token: AccessToken, actor: Actor) -> bool:
    """Revoke a token (by its user on the account page, or by staff in the admin); False
    if it was revoked already. Audited as token.revoked, naming its owner."""
    with transaction.atomic():
        revoked = AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not revoked:
            return False
        audit_record(
            event=Event.TOKEN_REVOKED,
            actor=actor,
            detail=f"token=sf_{token.prefix} name={token.name[:100]} "
            f"user={token.user.get_username()}",
        )
    return True


def token_used(*, token: AccessToken, ip: str) -> None:
    """Record that a token was just used, from client address ``ip`` (one UPDATE)."""
    AccessToken.objects.filter(pk=token.pk).update(
        last_used_at=timezone.now(), last_used_ip=ip[:45]
    )


# -- groups (teams), as administrators change them


def group_update(*, group: Group) -> None:
    """Save an administrator's edit of a group's own fields (its name); what changed is
    recorded by group_change_record once its permissions and members are saved too."""
    with transaction.atomic():
        group.save()


def group_members_set(*, group: Group, members: list[User]) -> None:
    """Make ``members`` the group's members; whoever is left out loses, at their next
    request, access to every file shared with the group."""
    with transaction.atomic():
        group.user_set.set(members)


def group_change_record(
    *, before: GroupState | None, after: GroupState, actor: Actor
) -> AuditEntry | None:
    """Record a group created (``before`` None: ``group.created`` with its permissions
    and members) or changed (``group.changed``, every field ``old -> new``, the members
    added and removed among them). None, and no entry, when nothing changed."""
    if before is None:
        event = Event.GROUP_CREATED
        changes = state_changes(before=GroupState(name="", permissions=(), members=()), after=after)
        changes = [change for change in changes if not change.startswith("name:")]
    else:
        event = Event.GROUP_CHANGED
        changes = state_changes(before=before, after=after)
        if not changes:
            return None
    detail = "; ".join([f"group={after.name}", *changes])
    with transaction.atomic():
        return audit_record(event=event, actor=actor, detail=detail)


def group_delete(*, group: Group, state: GroupState, actor: Actor) -> None:
    """Delete a group: its members lose, at their next request, every file shared with it
    (the shares go with the group). Audited with the members it had."""
    with transaction.atomic():
        group.delete()
        members = "[" + ", ".join(repr(name) for name in state.members) + "]"
        audit_record(
            event=Event.GROUP_DELETED,
            actor=actor,
            detail=f"group={state.name}; members: {members}",
        )


# -- single sign-on (accounts.oidc): users linked to the provider's iss and sub


def oidc_link_invited(*, token: str, issuer: str, subject: str, actor: Actor) -> User | None:
    """Link the account an invitation (its token, from the session) was sent for to the
    provider's ``iss``/``sub``, and use the invitation up; the invitee then never needs a
    local password. None, and nothing changed, when the token opens no invitation.
    Audited as ``user.invitation_accepted`` (detail ``via=sso``)."""
    invitation = invitation_get_by_token(token=token) if token else None
    if invitation is None:
        return None
    user = invitation.user
    with transaction.atomic():
        deleted, _ = Invitation.objects.filter(
            pk=invitation.pk, token_digest=invitation.token_digest
        ).delete()
        if not deleted:
            return None
        OIDCIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        _invitation_accepted_record(user=user, actor=actor, via="sso")
    return user


def oidc_identity_unlink(*, identity: OIDCIdentity, actor: Actor) -> None:
    """An administrator unlinks an account from its provider identity: that ``sub`` signs
    in to nothing until linked again (by an invitation, or OIDC_CREATE_USERS). Audited."""
    with transaction.atomic():
        OIDCIdentity.objects.filter(pk=identity.pk).delete()
        audit_record(
            event=Event.SSO_UNLINKED,
            actor=actor,
            detail=f"user={identity.user.get_username()} issuer={identity.issuer} "
            f"sub={identity.subject}",
        )


def _free_username(claims: dict) -> str:
    """A username for a new account: the provider's preferred_username (or the e-mail's
    local part, or "user"), with a number added while it is taken."""
    email = str(claims.get("email") or "")
    base = str(claims.get("preferred_username") or email.split("@")[0] or "user")[:140]
    taken = set(User.objects.filter(username__startswith=base).values_list("username", flat=True))
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}{n}"
    return candidate


def oidc_user_create(*, claims: dict, actor: Actor) -> User:
    """Create an account at a first sign-in (OIDC_CREATE_USERS), without a usable
    password, linked to the token's ``iss``/``sub``. Audited as ``user.created``."""
    with transaction.atomic():
        user = User(username=_free_username(claims), email=str(claims.get("email") or "")[:254])
        user.set_unusable_password()
        user.save()
        OIDCIdentity.objects.create(user=user, issuer=claims["iss"], subject=claims["sub"])
        audit_record(
            event=Event.USER_CREATED,
            actor=actor,
            detail=f"user={user.get_username()} email={user.email} via=sso",
        )
    return user


def oidc_groups_sync(*, user: User, names: list[str], actor: Actor) -> None:
    """Make the user's groups exactly those the provider's claim names (creating a group
    that does not exist yet); whoever leaves a group loses, at their next request, the
    files shared with it. Audited as ``user.changed`` when the groups changed."""
    with transaction.atomic():
        before = tuple(sorted(user.groups.values_list("name", flat=True)))
        if before == tuple(names):
            return
        groups = [Group.objects.get_or_create(name=name)[0] for name in names]
        user.groups.set(groups)
        changes = state_changes(before=_Groups(before), after=_Groups(tuple(names)))
        audit_record(
            event=Event.USER_CHANGED,
            actor=actor,
            detail=f"user={user.get_username()}; " + "; ".join(changes) + " (from the provider)",
        )


@dataclass(frozen=True)
class _Groups:
    groups: tuple[str, ...]


# -- privileges changed outside the admin (createsuperuser, a shell, a script)

# The flags that make or unmake an account's privileges, as a User row holds them.
PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "is_active")
# Set (True) on a User instance by a path that records its own audit entry for the save
# it is about to make (the admin's user form, user_deactivate): the receivers then skip it.
PRIVILEGES_AUDITED = "_securefiles_privileges_audited"
# What a new account starts with (Django's defaults): only a departure from it is news.
_NEW_ACCOUNT = {"is_staff": False, "is_superuser": False, "is_active": True}


def privileges_of(*, user_id: int | None) -> dict[str, bool] | None:
    """A saved user's PRIVILEGE_FIELDS as the database holds them now (None for a user
    not saved yet); read by the pre_save receiver before a save changes them."""
    if user_id is None:
        return None
    found = get_user_model().objects.filter(pk=user_id).values(*PRIVILEGE_FIELDS).first()
    return None if found is None else dict(found)


def privilege_change_record(
    *, user: User, before: dict[str, bool] | None, actor: Actor
) -> AuditEntry | None:
    """Record a change of ``user``'s staff, superuser or active flag made outside the admin
    (``before`` None: a new account, compared with Django's defaults) as ``user.changed``
    with ``field: old -> new``; None, and no entry, when no flag changed. The admin's own
    paths record their changes themselves (PRIVILEGES_AUDITED)."""
    old = before if before is not None else _NEW_ACCOUNT
    changes = [
        f"{field}: {old[field]} -> {getattr(user, field)}"
        for field in PRIVILEGE_FIELDS
        if old[field] != getattr(user, field)
    ]
    if not changes:
        return None
    created = "created; " if before is None else ""
    with transaction.atomic():
        return audit_record(
            event=Event.USER_CHANGED,
            actor=actor,
            detail=f"user={user.get_username()}; {created}" + "; ".join(changes),
        )
