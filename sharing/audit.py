"""The tamper-evident audit log: every entry is HMAC-chained to the one before it.

mac_n = HMAC-SHA-256(AUDIT_LOG_KEY, mac_{n-1} || canonical(entry_n)), with mac_0 = 64 zeros.
Someone who can write to the database but does not hold AUDIT_LOG_KEY cannot edit, insert
or delete an entry without breaking every MAC after it; `verify_audit_log` walks the chain.
Writers are serialised on the single AuditHead row, so parallel requests never fork it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from sharing.models import AuditEntry, AuditHead
from sharing.transactions import check_foreign_keys_now

GENESIS_MAC = "0" * 64


class Event:
    """Event names as stored; stable, since the MAC covers them."""

    LOGIN = "login.success"
    LOGIN_FAILED = "login.failure"
    LOGIN_LOCKED_OUT = "login.locked_out"
    TWO_FACTOR_ENROLLED = "2fa.enrolled"
    TWO_FACTOR_REMOVED = "2fa.removed"
    SIGNED_UP = "user.signed_up"
    UPLOAD = "file.upload"
    DOWNLOAD = "file.download"
    DELETE = "file.delete"
    ACCESS_DENIED = "file.access_denied"
    TRANSFER = "file.transfer"
    SHARE_GRANTED = "share.granted"
    SHARE_REVOKED = "share.revoked"
    LINK_CREATED = "link.created"
    LINK_REVOKED = "link.revoked"
    LINK_USED_UP = "link.used_up"
    LINK_PASSWORD_DENIED = "link.password_denied"  # noqa: S105 (an event name)
    LINK_THROTTLED = "link.throttled"
    INTEGRITY_ERROR = "file.integrity_error"
    USER_DEACTIVATED = "user.deactivated"
    KEYS_ROTATED = "keys.rotated"
    CONTENT_REENCRYPTED = "keys.reencrypted"
    # What administrators do to users (the acting administrator is the entry's actor).
    TWO_FACTOR_RESET = "2fa.reset"
    USER_CREATED = "user.created"
    USER_CHANGED = "user.changed"
    USER_DELETED = "user.deleted"
    USER_PASSWORD_RESET_SENT = "user.password_reset_sent"  # noqa: S105 (an event name)
    SHARE_LOOKUP_THROTTLED = "share.lookup_throttled"


# What people read for each event code, wherever events are shown to users. The admin and
# the CSV export keep the codes: they are what the MAC covers and what scripts match on.
EVENT_LABELS: dict[str, str | Promise] = {  # the lazy labels are Promises
    Event.LOGIN: _("Logged in"),
    Event.LOGIN_FAILED: _("Failed login"),
    Event.LOGIN_LOCKED_OUT: _("Login locked out"),
    Event.TWO_FACTOR_ENROLLED: _("Second factor enrolled"),
    Event.TWO_FACTOR_REMOVED: _("Second factor removed"),
    Event.SIGNED_UP: _("Signed up"),
    Event.UPLOAD: _("Uploaded"),
    Event.DOWNLOAD: _("Downloaded"),
    Event.DELETE: _("Deleted"),
    Event.ACCESS_DENIED: _("Access refused"),
    Event.TRANSFER: _("Ownership transferred"),
    Event.SHARE_GRANTED: _("Shared with a colleague"),
    Event.SHARE_REVOKED: _("Colleague's access removed"),
    Event.LINK_CREATED: _("Share link created"),
    Event.LINK_REVOKED: _("Share link revoked"),
    Event.LINK_USED_UP: _("Share link used up"),
    Event.LINK_PASSWORD_DENIED: _("Wrong share link password"),
    Event.LINK_THROTTLED: _("Share link locked after wrong passwords"),
    Event.INTEGRITY_ERROR: _("Stored copy failed verification"),
    Event.USER_DEACTIVATED: _("Account disabled"),
    Event.KEYS_ROTATED: _("Encryption key rotated"),
    Event.CONTENT_REENCRYPTED: _("Content re-encrypted"),
    Event.TWO_FACTOR_RESET: _("Second factor reset by an administrator"),
    Event.USER_CREATED: _("Account created"),
    Event.USER_CHANGED: _("Account changed"),
    Event.USER_DELETED: _("Account deleted"),
    Event.USER_PASSWORD_RESET_SENT: _("Password reset e-mail sent"),
    Event.SHARE_LOOKUP_THROTTLED: _("Sharing by name paused after unknown names"),
}


def event_label(code: str) -> str:
    """The human label of an event code (e.g. "link.password_denied" -> "Wrong share link
    password"); an unknown code is returned as it is, so nothing is ever hidden."""
    return str(EVENT_LABELS.get(code, code))


@dataclass(frozen=True)
class Actor:
    """Who did something, from where: captured from the request once."""

    label: str
    user_id: int | None = None
    ip: str = ""
    user_agent: str = ""


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, unless it is a trusted proxy: then the nearest untrusted X-Forwarded-For hop."""
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = set(settings.TRUSTED_PROXIES)
    if remote not in trusted:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed(hops):
        if hop and hop not in trusted and _is_ip(hop):
            return hop
    return remote


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def actor_from_request(
    request: HttpRequest, *, label: str | None = None, user: Any = None
) -> Actor:
    """The actor of a request: its user (or ``user``), or ``label`` for link visitors."""
    user = user or getattr(request, "user", None)
    authenticated = bool(user and user.is_authenticated)
    if label is None:
        label = user.get_username() if authenticated else "anonymous"
        user_id = user.pk if authenticated else None
    else:
        user_id = None
    return Actor(
        label=label,
        user_id=user_id,
        ip=client_ip(request),
        # No database text holds NUL (PostgreSQL refuses it): a client must not be able to
        # turn its own audit entry, and so its request, into an error.
        user_agent=request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:300],
    )


SYSTEM = Actor(label="system")


def audit_key() -> bytes:
    configured = settings.AUDIT_LOG_KEY
    if configured:
        return configured.encode()
    # Derived from SECRET_KEY so a fresh install has a chain at once; production sets its
    # own, so that rotating SECRET_KEY does not invalidate the log (README).
    return hmac.new(settings.SECRET_KEY.encode(), b"securefiles audit log key", "sha256").digest()


def canonical(entry: AuditEntry) -> bytes:
    """The entry's content as the MAC sees it: plain text values in a fixed order."""
    values = [
        entry.seq,
        entry.created_at.isoformat(),
        entry.actor,
        entry.actor_user_id,
        entry.ip,
        entry.user_agent,
        entry.event,
        str(entry.file_id) if entry.file_id else None,
        entry.file_name,
        entry.link_id,
        entry.detail,
    ]
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()


def compute_mac(key: bytes, prev_mac: str, entry: AuditEntry) -> str:
    return hmac.new(key, prev_mac.encode() + canonical(entry), hashlib.sha256).hexdigest()


def audit_record(
    *,
    event: str,
    actor: Actor,
    file_id: uuid.UUID | None = None,
    file_name: str = "",
    link_id: int | None = None,
    detail: str = "",
) -> AuditEntry:
    """Append one entry to the chain (joins the caller's transaction if there is one).

    The head is the last lock a transaction takes: foreign-key checks still pending from
    the caller's statements run before it is locked, never at COMMIT while it is held
    (sharing.transactions). So a caller must write nothing after its audit entries.
    """
    with transaction.atomic():
        check_foreign_keys_now()
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        entry = AuditEntry(
            seq=head.seq + 1,
            created_at=timezone.now(),
            actor=actor.label[:200],
            actor_user_id=actor.user_id,
            ip=actor.ip[:45],
            user_agent=actor.user_agent[:300],
            event=event,
            file_id=file_id,
            file_name=file_name,
            link_id=link_id,
            detail=detail,
            prev_mac=head.mac or GENESIS_MAC,
        )
        entry.mac = compute_mac(audit_key(), entry.prev_mac, entry)
        entry.save(force_insert=True)
        head.seq, head.mac = entry.seq, entry.mac
        head.save(update_fields=["seq", "mac"])
    return entry


@dataclass(frozen=True)
class ChainReport:
    checked: int
    head_seq: int
    head_mac: str
    broken_at: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


MAC_MISMATCH = "content does not match its MAC (entry edited)"


def _walk(entries: Iterable[AuditEntry], key: bytes) -> Iterator[tuple[AuditEntry, str]]:
    """Yield each entry with what is wrong with it ('' when it verifies)."""
    expected_seq, prev_mac = 1, GENESIS_MAC
    for entry in entries:
        if entry.seq != expected_seq:
            yield (
                entry,
                f"expected entry #{expected_seq}, found #{entry.seq} (entry missing or inserted)",
            )
        elif not _same(entry.prev_mac, prev_mac):
            yield entry, "does not follow the previous entry (entry missing, inserted or reordered)"
        elif not _same(entry.mac, compute_mac(key, prev_mac, entry)):
            yield entry, MAC_MISMATCH
        else:
            yield entry, ""
        expected_seq, prev_mac = entry.seq + 1, entry.mac


def _same(stored: str, expected: str) -> bool:
    # As bytes: compare_digest raises TypeError on a str with non-ASCII characters, and a
    # forged row may hold anything; it must be reported, not crash the verifier.
    return hmac.compare_digest(stored.encode(), expected.encode())


KEY_PROBLEM = (
    "the audit key is not the one the log was written with (AUDIT_LOG_KEY / SECRET_KEY "
    "changed?): no entry verifies under it, while every entry still follows the one before it"
)


def verify_chain(expect_head: tuple[int, str] | None = None) -> ChainReport:
    """Walk the whole chain in order; report the first broken entry, if any.

    A MAC failure at entry #1, in a chain whose links (sequence numbers, prev_mac, head)
    all hold, is told apart from an edit where it can be (see _wrong_key_problem).
    """
    key = audit_key()
    checked, last_seq, last_mac = 0, 0, GENESIS_MAC
    entries = AuditEntry.objects.order_by("seq").iterator(chunk_size=2000)
    for entry, problem in _walk(entries, key):
        if problem:
            if entry.seq == 1 and problem == MAC_MISMATCH:
                problem = _wrong_key_problem(key) or problem
            return ChainReport(checked, last_seq, last_mac, entry.seq, problem)
        checked, last_seq, last_mac = checked + 1, entry.seq, entry.mac
    head = AuditHead.objects.filter(pk=1).first()
    if head and (head.seq, head.mac) != (last_seq, last_mac):
        return ChainReport(checked, last_seq, last_mac, last_seq + 1, "entries cut off the end")
    if expect_head and (last_seq < expect_head[0] or _mac_at(expect_head[0]) != expect_head[1]):
        return ChainReport(
            checked, last_seq, last_mac, expect_head[0], "recorded head is missing or differs"
        )
    return ChainReport(checked, last_seq, last_mac)


def _wrong_key_problem(key: bytes) -> str | None:
    """Say so when entry #1's MAC failure looks like a wrong key rather than an edit.

    Writing with one key and verifying with another keeps every link (seq 1, 2, ...;
    each prev_mac the MAC stored before it; the head on the last entry) and fails every
    MAC from #1 on: that is a key problem. If only entries #1..#k fail and the rest
    verify, the key changed after #k or those entries were edited; both are said. None
    (an edit) when a link is broken or a failure follows entries that verify.
    """
    expected_seq, prev_mac, failing = 1, GENESIS_MAC, 0
    for entry in AuditEntry.objects.order_by("seq").iterator(chunk_size=2000):
        if entry.seq != expected_seq or not _same(entry.prev_mac, prev_mac):
            return None
        if not _same(entry.mac, compute_mac(key, entry.prev_mac, entry)):
            if failing != entry.seq - 1:
                return None  # a failure after entries that verify: an edit there
            failing += 1
        expected_seq, prev_mac = entry.seq + 1, entry.mac
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq, head.mac) != (expected_seq - 1, prev_mac):
        return None
    if failing == expected_seq - 1:
        return KEY_PROBLEM
    return (
        f"entries #1 to #{failing} do not verify under the current audit key while every "
        "later one does and all links hold: the key was changed after entry "
        f"#{failing} (AUDIT_LOG_KEY / SECRET_KEY changed?), or those entries were edited"
    )


def _mac_at(seq: int) -> str | None:
    if seq == 0:
        return GENESIS_MAC  # the head an empty log prints
    return AuditEntry.objects.filter(seq=seq).values_list("mac", flat=True).first()
