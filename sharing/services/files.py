"""Files: storing uploads, deleting, transfers, integrity failures and retention."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet
from django.dispatch import Signal

from audit.actors import SYSTEM, Actor
from audit.events import Event
from audit.services import audit_record
from securefiles.lib.auth_types import User
from securefiles.lib.transactions import check_foreign_keys_now, retry_on_deadlock
from sharing import names, selectors
from sharing.crypto import VERSION, seal_sha256, wrap_key
from sharing.models import Share, StoredFile
from sharing.services.usage import usage_add
from sharing.storage import get_encrypted_storage
from sharing.storage.keyring import get_keyring
from sharing.storage.uploads import EncryptedUpload

logger = logging.getLogger(__name__)


def stored_file_from_upload(
    *, owner: User, upload: EncryptedUpload, origin: str = StoredFile.Origin.UPLOAD
) -> StoredFile:
    master = get_keyring().primary
    return StoredFile(
        id=upload.key.file_id,
        owner=owner,
        name=names.stored_name(upload.name or ""),
        content_type=names.content_type(upload.content_type),
        size=upload.blob.plaintext_size,
        digest=upload.blob.digest,
        sha256_sealed=seal_sha256(upload.key, upload.blob.sha256),
        blob=upload.blob.name,
        wrapped_key=wrap_key(upload.key, master),
        key_id=master.key_id,
        format_version=VERSION,
        origin=origin,
        scan_state=upload.scan_state,
    )


class QuotaExceeded(Exception):
    """The owner's files would exceed their storage quota."""


class UploadNotAccepted(Exception):
    """Where the upload was going no longer takes it (a file request revoked, expired or
    full meanwhile); raised by a files_recording receiver, nothing is recorded."""


# Sent by uploads_record inside its transaction, once the rows and the usage are written
# and before the audit entries (keyword arguments: owner, files, actor). A receiver may
# write rows of its own about the files (filerequests ties them to their request), or raise
# UploadNotAccepted to roll the whole upload back. Every upload path records through here.
files_recording = Signal()


class FileGone(StoredFile.DoesNotExist):
    """The file was deleted (by a parallel request, say) before this write could lock it."""


def file_lock(file_id: UUID) -> StoredFile:
    """Start a write on a file: lock its row, and check foreign keys at each statement.

    Every service that writes something hanging off a file (shares, links, the file
    itself) takes this lock first, inside its transaction, so writes on one file queue one
    behind the other instead of deadlocking: a link created while the file is deleted
    either commits first (and the cascade removes it) or finds the file gone. The audit
    head stays the last lock (securefiles.lib.transactions). Raises FileGone if the row is gone.
    """
    check_foreign_keys_now()
    locked = StoredFile.objects.select_for_update().filter(pk=file_id).first()
    if locked is None:
        raise FileGone(f"file {file_id} no longer exists")
    return locked


def _check_quota(*, owner: User, adding: int) -> None:
    """Inside the creating transaction, with the owner's row locked (PostgreSQL; SQLite
    serialises writers anyway), so two parallel uploads cannot both squeeze in."""
    quota = selectors.quota_of(user=owner)
    if quota is None:
        return
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    if selectors.usage_of(user=owner) + adding > quota:
        raise QuotaExceeded


def file_create_many(
    *,
    owner: User,
    uploads: Sequence[EncryptedUpload],
    actor: Actor | None = None,
    expires_at: datetime | None = None,
) -> list[StoredFile]:
    """Record already-stored encrypted uploads; all rows commit together or none do.

    Raises QuotaExceeded (nothing recorded) if they would exceed the owner's quota, and
    TryAgain if the database gave up on the transaction (deadlock victim) every time.
    """
    files = [stored_file_from_upload(owner=owner, upload=upload) for upload in uploads]
    actor = actor or Actor(label=owner.get_username(), user_id=owner.pk)
    uploads_record(owner=owner, files=files, actor=actor, expires_at=expires_at)
    return files


@retry_on_deadlock
def uploads_record(
    *,
    owner: User,
    files: list[StoredFile],
    actor: Actor,
    expires_at: datetime | None,
    audit_detail: str = "",
) -> None:
    with transaction.atomic():
        check_foreign_keys_now()
        _check_quota(owner=owner, adding=sum(stored.size for stored in files))
        # Every row first, every audit entry after: the chain head is the last lock, so no
        # insert (and its foreign-key check on the owner's row) may wait while it is held.
        for stored in files:
            stored.expires_at = expires_at
            stored.save(force_insert=True)
        usage_add(user_id=owner.pk, files=len(files), size=sum(stored.size for stored in files))
        files_recording.send(sender=StoredFile, owner=owner, files=files, actor=actor)
        for stored in files:
            audit_record(
                event=Event.UPLOAD,
                actor=actor,
                file_id=stored.id,
                file_name=stored.name,
                detail=f"size={stored.size}{audit_detail}",
            )


@retry_on_deadlock
def file_delete(*, file: StoredFile, actor: Actor = SYSTEM) -> None:
    """Delete a file: row, wrapped key, shares and links now; the blob once committed.

    Raises FileGone if it was deleted meanwhile (nothing is audited twice), and TryAgain
    if the database gave up on the transaction (deadlock victim) every time.
    """
    with transaction.atomic():
        locked = file_lock(file.pk)
        file_id, file_name = locked.id, locked.name  # delete() forgets the id
        locked.delete()
        usage_add(user_id=locked.owner_id, files=-1, size=-locked.size)
        # The audit entry comes last, as in every service: the chain head is the last lock
        # a transaction takes. Taken first, it would be held while the cascade waits for a
        # link row that a parallel download holds while it waits for the head: deadlock.
        audit_record(event=Event.DELETE, actor=actor, file_id=file_id, file_name=file_name)


def blob_delete(name: str) -> None:
    try:
        get_encrypted_storage().delete(name)
    except OSError:
        # The row and its wrapped key are gone, so the blob is unreadable; the storage
        # sweep (cleanup_storage) removes it later.
        logger.warning("blob of a deleted file could not be removed name=%s", name)


@retry_on_deadlock
def file_transfer(*, file: StoredFile, new_owner: User, actor: Actor) -> None:
    """Give a file to another user (offboarding); its shares with colleagues stay.

    Raises FileGone if the file was deleted meanwhile, TryAgain if the database gave up on
    the transaction (deadlock victim) every time.
    """
    with transaction.atomic():
        locked = file_lock(file.pk)
        previous = locked.owner.get_username()
        previous_id = locked.owner_id
        locked.owner = new_owner
        locked.save(update_fields=["owner"])
        _usage_move(size=locked.size, from_id=previous_id, to_id=new_owner.pk)
        Share.objects.filter(file=locked, colleague=new_owner).delete()
        audit_record(
            event=Event.TRANSFER,
            actor=actor,
            file_id=locked.id,
            file_name=locked.name,
            detail=f"from={previous} to={new_owner.get_username()}",
        )
    file.owner = new_owner


def _usage_move(*, size: int, from_id: int, to_id: int) -> None:
    """Move one file's bytes between two users' usage, locking their rows in id order so
    two opposite transfers cannot deadlock."""
    for user_id, sign in sorted(((from_id, -1), (to_id, 1))):
        usage_add(user_id=user_id, files=sign, size=sign * size)


def file_integrity_failed(*, file: StoredFile, actor: Actor, reason: str, via: str) -> None:
    """Record in the audit chain that a download of ``file`` failed verification.

    ``reason`` says what failed (e.g. "first segment failed", "size mismatch"), ``via``
    which path served it ("owner", "colleague", "link"). Commits on its own: the failure
    is on record even if the download's response is then abandoned. Never raises for a
    file deleted meanwhile (the entry names it by id and name, not by foreign key).
    """
    with transaction.atomic():
        audit_record(
            event=Event.INTEGRITY_ERROR,
            actor=actor,
            file_id=file.id,
            file_name=file.name,
            detail=f"reason={reason[:200]} via={via}",
        )


def expired_files(*, now: datetime) -> QuerySet[StoredFile]:
    """Files past their own expiry or the site-wide retention at ``now``, oldest first."""
    expired = Q(expires_at__lte=now)
    if settings.RETENTION_DAYS:
        expired |= Q(created_at__lt=now - timedelta(days=settings.RETENTION_DAYS))
    return StoredFile.objects.filter(expired).order_by("created_at", "id")


def files_purge_expired(*, now: datetime, dry_run: bool = False) -> list[StoredFile]:
    """Delete files past their own expiry or the site-wide retention; return them."""
    files = list(expired_files(now=now))
    if dry_run:
        return files
    deleted = []
    for stored in files:
        try:
            file_delete(file=stored, actor=Actor(label="retention"))
        except FileGone:
            continue  # deleted meanwhile, by its owner or another purge
        deleted.append(stored)
    return deleted


def file_access_denied(*, file: StoredFile, actor: Actor, path: str) -> None:
    """Audit a logged-in user's request, at ``path``, for a real file they may not see."""
    audit_record(
        event=Event.ACCESS_DENIED,
        actor=actor,
        file_id=file.id,
        file_name=file.name,
        detail=f"path={path[:200]}",
    )


def file_download_record(
    *, file: StoredFile, actor: Actor, via: str, byte_range: str | None = None
) -> None:
    """Audit a download by its owner or a colleague once its first segment verified: a
    refused or failed one is not a download. ``via`` is "owner", "colleague", or
    "group:<name>" for a member of a group the file is shared with (the entry's actor
    is the member).

    ``byte_range`` is the Content-Range of a ranged download (RFC 9110 section 14.4, e.g.
    "bytes 0-499/1234"), recorded in the entry's detail; None for the whole file.
    """
    detail = f"via={via}" if byte_range is None else f"via={via} range={byte_range}"
    audit_record(
        event=Event.DOWNLOAD, actor=actor, file_id=file.id, file_name=file.name, detail=detail
    )
