"""The tamper-evident audit log: every entry is HMAC-chained to the one before it.

mac_n = HMAC-SHA-256(AUDIT_LOG_KEY, mac_{n-1} || canonical(entry_n)), with mac_0 = 64 zeros.
Someone who can write to the database but does not hold AUDIT_LOG_KEY cannot edit, insert
or delete an entry without breaking every MAC after it. This module computes the MAC;
audit.services appends (serialised on the AuditHead row), audit.selectors verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings

from audit.models import AuditEntry

GENESIS_MAC = "0" * 64


def audit_key() -> bytes:
    """The chain's HMAC key: AUDIT_LOG_KEY, else a key derived from SECRET_KEY (README)."""
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
    """The entry's MAC: HMAC-SHA-256(key, prev_mac || canonical(entry)), 64 hex characters."""
    return hmac.new(key, prev_mac.encode() + canonical(entry), hashlib.sha256).hexdigest()
