"""Maintenance of stored content: imports, key rotation and re-encryption."""

from __future__ import annotations

import hmac
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from audit.events import Event
from audit.services import audit_record
from jobs.services import batch_handler
from securefiles.lib.auth_types import User
from sharing import selectors
from sharing.crypto import (
    VERSION,
    BlobIntegrityError,
    FileKey,
    InvalidTag,
    KeyProblem,
    keyed_digest,
    open_sha256,
    seal_sha256,
    unwrap_key,
    wrap_key,
)
from sharing.crypto.stream import measure, measure_all
from sharing.models import ResumableUpload, StoredFile
from sharing.services.files import (
    FileGone,
    blob_delete,
    expired_files,
    file_delete,
    stored_file_from_upload,
    uploads_record,
)
from sharing.storage import BlobWriteFailed, EncryptedStorage, StoredBlob, get_encrypted_storage
from sharing.storage.keyring import get_keyring
from sharing.storage.uploads import EncryptedUpload

logger = logging.getLogger(__name__)


def file_create_imported(
    *,
    owner: User,
    name: str,
    content_type: str,
    key: FileKey,
    blob: StoredBlob,
    actor: Actor | None = None,
    legacy: bool = False,
    manifest_checked: bool = False,
) -> StoredFile:
    """Record a file whose content was encrypted and stored outside an upload (imports).

    Exactly like an upload: the data key is wrapped under the primary master key. With
    ``legacy``, the content came from the prototype's unauthenticated CBC format: the row
    is marked (origin "legacy", shown on the file list and page) and the upload's audit
    entry says ``imported=legacy-cbc`` and whether a SHA-256 manifest confirmed the
    content (``manifest_checked=yes|no``). Raises QuotaExceeded like file_create_many.
    """
    upload = EncryptedUpload(key=key, blob=blob, name=name, content_type=content_type)
    origin = StoredFile.Origin.LEGACY if legacy else StoredFile.Origin.UPLOAD
    stored = stored_file_from_upload(owner=owner, upload=upload, origin=origin)
    detail = f" imported=legacy-cbc manifest_checked={'yes' if manifest_checked else 'no'}"
    uploads_record(
        owner=owner,
        files=[stored],
        actor=actor or Actor(label=owner.get_username(), user_id=owner.pk),
        expires_at=None,
        audit_detail=detail if legacy else "",
    )
    return stored


def file_rewrap_key(*, file: StoredFile) -> bool:
    """Re-wrap a file's data key under the primary master key; False if it already was.

    The row is re-read locked and committed on its own, so a crash leaves each row on its
    old key or on the primary, never in between. Content is never touched. Raises
    KeyUnwrapError if the row's master key is not configured or its wrapped key does not
    open, and StoredFile.DoesNotExist if the file was deleted meanwhile.
    """
    return _rewrap_key(file)


def upload_rewrap_key(*, upload: ResumableUpload) -> bool:
    """Re-wrap an unfinished resumable upload's data key under the primary master key, as
    file_rewrap_key does for a file (same guarantees and errors; ResumableUpload.DoesNotExist
    if it finished, expired or was terminated meanwhile). A PATCH in progress holds the key
    it unwrapped already and writes other columns only, so it is not disturbed."""
    return _rewrap_key(upload)


def _rewrap_key(row: StoredFile | ResumableUpload) -> bool:
    keyring = get_keyring()
    with transaction.atomic():
        locked = type(row).objects.select_for_update().get(pk=row.pk)
        if locked.key_id == keyring.primary.key_id:
            return False
        key = unwrap_key(bytes(locked.wrapped_key), locked.id, keyring.get(locked.key_id))
        locked.wrapped_key = wrap_key(key, keyring.primary)
        locked.key_id = keyring.primary.key_id
        locked.save(update_fields=["wrapped_key", "key_id"])
    row.wrapped_key, row.key_id = locked.wrapped_key, locked.key_id
    return True


def file_replace_content(
    *, file: StoredFile, old_blob: str, key: FileKey, blob: StoredBlob
) -> bool:
    """Point a file at a re-encrypted copy of its content; remove the old blob once committed.

    The caller has checked that ``blob`` decrypts under ``key`` to the file's plaintext.
    Returns False, changing nothing, if the file was deleted or its blob replaced meanwhile.
    """
    if key.file_id != file.id or blob.plaintext_size != file.size:
        raise ValueError("the new blob is not this file's content")
    master = get_keyring().primary
    with transaction.atomic():
        locked = StoredFile.objects.select_for_update().filter(pk=file.pk, blob=old_blob).first()
        if locked is None:
            return False
        locked.blob, locked.digest, locked.format_version = blob.name, blob.digest, VERSION
        locked.sha256_sealed = seal_sha256(key, blob.sha256)
        locked.wrapped_key, locked.key_id = wrap_key(key, master), master.key_id
        locked.save(
            update_fields=[
                "blob",
                "digest",
                "sha256_sealed",
                "format_version",
                "wrapped_key",
                "key_id",
            ]
        )
        transaction.on_commit(lambda: blob_delete(old_blob))
    return True


def keys_rotated_record(*, summary: str) -> None:
    """Audit a rotate_keys run that changed something (its summary line as the detail)."""
    audit_record(event=Event.KEYS_ROTATED, actor=Actor(label="rotate_keys"), detail=summary)


def content_reencrypted_record(*, summary: str) -> None:
    """Audit a reencrypt_files run that changed something (its summary line as the detail)."""
    audit_record(
        event=Event.CONTENT_REENCRYPTED, actor=Actor(label="reencrypt_files"), detail=summary
    )


class ContentMismatch(Exception):
    """A blob's plaintext is not what its row (or the copy just written) says."""


def file_content_copy(
    *, storage: EncryptedStorage, file: StoredFile, old: FileKey, new: FileKey
) -> StoredBlob:
    """Stream a file's plaintext into a new blob under the data key ``new`` (reencrypt_files).

    The old plaintext must match the row (size and keyed digest), and the new blob must
    read back to the same size and digest; otherwise nothing new is kept.
    """
    writer = storage.open_writer(new)
    try:
        with storage.open_plaintext(file.blob.name, old) as reader:
            for segment in reader.segments():
                writer.write(segment)
        blob = writer.close()
    except BaseException:
        writer.abort()
        raise
    try:
        # The writer hashed the plaintext on its way through: it must be the row's file.
        if blob.plaintext_size != file.size or not hmac.compare_digest(
            keyed_digest(old, blob.sha256), bytes(file.digest)
        ):
            raise ContentMismatch("old blob's plaintext does not match the row's size and digest")
        size, digest = measure(storage.open_plaintext(blob.name, new), new)
        if size != blob.plaintext_size or not hmac.compare_digest(digest, blob.digest):
            raise ContentMismatch("new blob does not read back to the same content")
    except BaseException:
        storage.delete(blob.name)
        raise
    return blob


# -- verify_files and purge_expired, one batch of file ids at a time (jobs.services runs
#    the batches in the command's process or in workers, with checkpoints and a lock)


@dataclass(frozen=True)
class Verdict:
    """What verify_files found for one file: ``outcome`` is "ok", "missing", "corrupt",
    "mismatched" or "key error"; ``detail`` says what is wrong (no plaintext, no key)."""

    outcome: str
    detail: str = ""


def file_verify(stored: StoredFile) -> Verdict:
    """Decrypt a file end to end and check it against its row (verify_files' check).

    Only hashes plaintext, never keeps or writes it. Never raises for a bad blob or key:
    the verdict says what is wrong.
    """
    storage = get_encrypted_storage()
    try:
        key = selectors.file_data_key(file=stored)
        if not storage.exists(stored.blob.name):
            return Verdict("missing", "blob not in storage")
        size, digest, sha256 = measure_all(storage.open_plaintext(stored.blob.name, key), key)
    except KeyProblem as exc:
        return Verdict("key error", str(exc))
    except FileNotFoundError:
        return Verdict("missing", "blob not in storage")
    except OSError as exc:
        return Verdict("missing", f"blob unreadable: {exc.strerror or exc}")
    except BlobIntegrityError:
        return Verdict("corrupt", "blob failed authentication")
    if size != stored.size:
        return Verdict("mismatched", f"plaintext is {size} bytes, the row says {stored.size}")
    if not hmac.compare_digest(digest, bytes(stored.digest)):
        return Verdict("mismatched", "plaintext digest differs from the row")
    problem = _seal_problem(stored, key, sha256)
    return Verdict("mismatched", problem) if problem else Verdict("ok")


def _seal_problem(stored: StoredFile, key: FileKey, measured: bytes) -> str | None:
    """What is wrong with the row's sealed SHA-256 (the one its page shows), if anything.

    A row from before the column has no seal, which is not a problem.
    """
    if not stored.sha256_sealed:
        return None
    try:
        sealed = open_sha256(key, bytes(stored.sha256_sealed))
    except InvalidTag:
        return "sealed SHA-256 does not open (damaged or altered)"
    if not hmac.compare_digest(sealed, measured):
        return "sealed SHA-256 differs from the plaintext's"
    return None


@batch_handler
def files_verify_batch(ids: list[str], params: dict) -> dict[str, int]:
    """verify_files' work on one batch in a worker: outcome counts; each problem logged
    with the file's id and blob (never its name or content). A file deleted since the run
    was planned counts as "gone"."""
    counts: Counter[str] = Counter()
    files = {str(f.pk): f for f in selectors.files_for_maintenance().filter(pk__in=ids)}
    for file_id in ids:
        stored = files.get(file_id)
        if stored is None:
            counts["gone"] += 1
            continue
        verdict = file_verify(stored)
        if verdict.outcome != "ok":
            logger.error(
                "verify_files %s: file %s blob %s: %s",
                verdict.outcome,
                stored.pk,
                stored.blob.name,
                verdict.detail,
            )
        counts[verdict.outcome] += 1
    return dict(counts)


@batch_handler
def files_purge_batch(
    ids: list[str], params: dict, *, on_deleted: Callable[[str], None] | None = None
) -> dict[str, int]:
    """purge_expired's work on one batch: delete each file that is still expired now
    (files_purge_expired's rule), each in its own transaction with its ``file.delete``
    entry. A file deleted meanwhile (by its owner, or an earlier attempt at this batch
    that was killed after its commit) counts as "gone" and is never audited twice."""
    counts: Counter[str] = Counter()
    for stored in expired_files(now=timezone.now()).filter(pk__in=ids):
        try:
            file_delete(file=stored, actor=Actor(label="retention"))
        except FileGone:
            counts["gone"] += 1
            continue
        counts["deleted"] += 1
        if on_deleted is not None:
            on_deleted(str(stored.pk))
    counts["gone"] += len(ids) - sum(counts.values())
    return dict(counts)


# -- reencrypt_files, one batch at a time. A planned id is "<file id> <blob name>": the blob
#    the file had when the run was planned, so a retried batch can tell a file it already
#    re-encrypted (its row now names another blob) and never does it twice.


def reencrypt_plan_id(file_id: str, blob: str) -> str:
    """The planned id of one file of a reencrypt_files run (see reencrypt_plan_parse)."""
    return f"{file_id} {blob}"


def reencrypt_plan_parse(planned: str) -> tuple[str, str]:
    """(file id, blob name when planned) of a planned id; the blob is "" for an id planned
    by a version that recorded none (such a file is re-encrypted whatever its blob)."""
    file_id, _sep, blob = planned.partition(" ")
    return file_id, blob


def file_reencrypt(planned: str) -> Verdict:
    """Re-encrypt one planned file's content under a fresh data key (reencrypt_files).

    ``planned`` is "<file id> <blob when planned>". The row is first read under its row lock:
    gone → "gone"; naming another blob than planned → "already" (an earlier attempt at this
    batch re-encrypted it, and committed, before it was killed). Otherwise the content is
    copied (file_content_copy) and the row switched only if it still names the planned blob
    (file_replace_content), so a file is re-encrypted at most once per run even when two
    attempts race. Outcomes: "reencrypted", "already", "gone", "failed" (detail says why:
    key, authentication, content or storage error; never a name or plaintext).
    """
    file_id, planned_blob = reencrypt_plan_parse(planned)
    with transaction.atomic():
        stored = StoredFile.objects.select_for_update().filter(pk=file_id).first()
    if stored is None:
        return Verdict("gone", "deleted meanwhile")
    if planned_blob and stored.blob.name != planned_blob:
        return Verdict("already", "re-encrypted by an earlier attempt")
    storage = get_encrypted_storage()
    try:
        new_key = FileKey.generate(file_id=stored.id)
        blob = file_content_copy(
            storage=storage, file=stored, old=selectors.file_data_key(file=stored), new=new_key
        )
    except KeyProblem as exc:
        return Verdict("failed", str(exc))
    except BlobIntegrityError:
        return Verdict("failed", "old blob failed authentication")
    except ContentMismatch as exc:
        return Verdict("failed", str(exc))
    except OSError as exc:
        return Verdict("failed", f"storage error: {exc.strerror or exc}")
    except BlobWriteFailed as exc:  # the disk refused the new blob (full, EIO): removed
        return Verdict("failed", f"storage error: {exc}")
    # On an unexpected error the new blob is left for cleanup_storage: the commit may
    # already have happened, and then it is the file's only copy.
    if not file_replace_content(file=stored, old_blob=stored.blob.name, key=new_key, blob=blob):
        storage.delete(blob.name)
        return Verdict("gone", "deleted or changed meanwhile")
    return Verdict("reencrypted")


@batch_handler
def files_reencrypt_batch(ids: list[str], params: dict) -> dict[str, int]:
    """reencrypt_files' work on one batch in a worker: outcome counts (file_reencrypt's);
    each failure logged with the file's id (never its name or content)."""
    counts: Counter[str] = Counter()
    for planned in ids:
        verdict = file_reencrypt(planned)
        if verdict.outcome == "failed":
            logger.error(
                "reencrypt_files failed: file %s blob %s: %s",
                *reencrypt_plan_parse(planned),
                verdict.detail,
            )
        counts[verdict.outcome] += 1
    return dict(counts)


# -- cleanup_storage's sweep, one folder of blobs/ (of 256) per batch: a killed sweep
#    resumes at the first folder it had not finished.

SWEEP_QUERY = 500  # blob names looked up in the database per query


def blobs_sweep(
    blobs: Iterable[tuple[str, datetime]],
    *,
    cutoff: datetime,
    dry_run: bool,
    on_blob: Callable[[str, str, datetime], None] | None = None,
) -> Counter[str]:
    """Delete the orphans among ``blobs`` ((name, modified) pairs): a blob no file row and
    no unfinished resumable upload points at, last modified before ``cutoff``.

    Counts "referenced", "young" (no row but modified at or after the cutoff: an upload
    may still be writing it), "deleted" (or would be, ``dry_run``) and "failed" (storage
    refused; logged). ``on_blob(outcome, name, modified)`` hears about each blob.
    """
    counts: Counter[str] = Counter()
    chunk: list[tuple[str, datetime]] = []
    for blob in blobs:
        chunk.append(blob)
        if len(chunk) >= SWEEP_QUERY:
            counts.update(_sweep_chunk(chunk, cutoff, dry_run, on_blob))
            chunk = []
    counts.update(_sweep_chunk(chunk, cutoff, dry_run, on_blob))
    return counts


def _sweep_chunk(
    blobs: list[tuple[str, datetime]],
    cutoff: datetime,
    dry_run: bool,
    on_blob: Callable[[str, str, datetime], None] | None,
) -> Counter[str]:
    counts: Counter[str] = Counter()
    if not blobs:
        return counts
    # Asked after listing: a row committed since the listing still protects its blob.
    known = selectors.blob_names_referenced(names=[name for name, _ in blobs])
    for name, modified in blobs:
        if name in known:
            outcome = "referenced"
        elif modified >= cutoff:
            outcome = "young"
        else:
            outcome = "deleted" if dry_run else _orphan_delete(name)
        counts[outcome] += 1
        if on_blob is not None:
            on_blob(outcome, name, modified)
    return counts


def _orphan_delete(name: str) -> str:
    try:
        get_encrypted_storage().delete(name)
    except OSError as exc:
        logger.error("cleanup_storage failed: orphan blob %s: %s", name, exc.strerror or exc)
        return "failed"
    return "deleted"


@batch_handler
def blobs_sweep_batch(
    ids: list[str],
    params: dict,
    *,
    on_blob: Callable[[str, str, datetime], None] | None = None,
) -> dict[str, int]:
    """cleanup_storage's work on one batch: ``ids`` are folders of ``blobs/`` ("00".."ff"),
    ``params["grace_hours"]`` the grace period (hours, counted back from now, when the batch
    runs). Outcome counts as blobs_sweep's; each deleted orphan logged by name (a random
    name, never a file's)."""
    cutoff = timezone.now() - timedelta(hours=int(params["grace_hours"]))
    storage = get_encrypted_storage()
    counts: Counter[str] = Counter()
    for folder in ids:
        counts.update(
            blobs_sweep(
                storage.list_blobs(folder),
                cutoff=cutoff,
                dry_run=False,
                on_blob=on_blob or _log_deleted,
            )
        )
    return dict(counts)


def _log_deleted(outcome: str, name: str, _modified: datetime) -> None:
    if outcome == "deleted":
        logger.info("cleanup_storage deleted: orphan blob %s", name)
