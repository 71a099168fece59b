"""Recording: the one way an entry joins the chain."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from audit.chain import GENESIS_MAC, audit_key, compute_mac
from audit.models import AuditEntry, AuditHead
from securefiles.lib.transactions import check_foreign_keys_now


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
    (securefiles.lib.transactions). So a caller must write nothing after its audit entries.
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
