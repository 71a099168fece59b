"""Resumable uploads (tus 1.0.0, https://tus.io/protocols/resumable-upload): the writes.

State lives in the ResumableUpload row and its blob, never in one process. Creation
(tus "creation" extension) writes the blob's header; each PATCH (tus core, "PATCH") seals
every complete segment as it streams in and appends it, and in batches fsyncs, then moves
the row's offset (ACKNOWLEDGE_BYTES, the lease's renewal, the body's end or break):
a trailing partial segment that is not the file's end is not kept, so Upload-Offset only
ever names sealed, stored bytes and the client resends the rest. The last byte turns the
upload into a StoredFile through the form upload's path (quota re-checked, audited as
file.upload). Plaintext is held in memory, one segment at a time; it never reaches a disk.
The row's digests: a PATCH that carries the whole file from byte 0 hashes the plaintext
as it seals it (as the form upload does); any other completion reads the blob back.

On S3 the blob is a multipart upload started at creation (its UploadId in the row). A
PATCH seals segments into one part's buffer in memory (resumable_part_segments of them,
the header ahead of part 1's) and uploads each full part (PartNumber = part index + 1),
recording its ETag in the row in the update that moves the offset: progress is
acknowledged in whole parts, a trailing partial part that is not the file's end is
dropped. The last part completes the multipart upload; termination and expiry abort it.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Min, QuerySet
from django.dispatch import Signal
from django.utils import timezone

from audit.actors import SYSTEM, Actor
from audit.events import Event
from audit.services import audit_record
from securefiles.lib.auth_types import User
from sharing import selectors
from sharing.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    FileKey,
    PlaintextDigests,
    SegmentSealer,
    max_plaintext_size,
    measure_all,
    new_header,
    unwrap_key,
    wrap_key,
)
from sharing.models import ResumableUpload, StoredFile
from sharing.services import scanning
from sharing.services.files import (
    QuotaExceeded,
    UploadNotAccepted,
    blob_delete,
    stored_file_from_upload,
    uploads_record,
)
from sharing.storage import StoredBlob, get_encrypted_storage
from sharing.storage.encrypted import BlobWriteFailed, LocalAppender, resumable_part_segments
from sharing.storage.keyring import get_keyring
from sharing.storage.uploads import EncryptedUpload

UNNAMED = "upload"

logger = logging.getLogger(__name__)


class ResumableRefused(Exception):
    """A tus request this server refuses; nothing was changed by it."""


class UploadTooLarge(ResumableRefused):
    """Upload-Length over MAX_UPLOAD_MB (or what one blob holds), or a body that would go
    past Upload-Length (tus 1.0.0 "Tus-Max-Size"; 413)."""


class TooManyUnfinished(ResumableRefused):
    """The user already has TUS_MAX_UNFINISHED unfinished, unexpired uploads (429).

    ``retry_after``: seconds (at least 1) until the first of them expires and frees a
    place, unless one is finished or cancelled sooner (RFC 6585 section 4's Retry-After).
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class UploadBusy(ResumableRefused):
    """Another PATCH holds this upload's lease (423); or this PATCH lost it."""


class UploadExpired(ResumableRefused):
    """The upload is past its Upload-Expires (tus "expiration" extension; 410)."""


class UploadGone(ResumableRefused):
    """No such upload, or not this user's (404)."""


class OffsetMismatch(ResumableRefused):
    """Upload-Offset is not the upload's offset (tus 1.0.0 section "PATCH"; 409)."""


class PatchTooSmall(ResumableRefused):
    """A PATCH must carry a whole segment (1 MiB; on S3 a whole part, 8 MiB) or the rest.

    Anything shorter could never be acknowledged (the first line is the 400's message)."""


class UploadClosed(ResumableRefused):
    """The file request this upload was going into is revoked, expired or full (404)."""


class ResumableUnsupported(ResumableRefused):
    """The configured storage cannot hold resumable uploads (501)."""


class StorageFull(ResumableRefused):
    """The server has no room to store this upload now; what was acknowledged is kept.

    507 Insufficient Storage (RFC 4918 section 11.5): the disk is out of space."""


class StorageFailed(ResumableRefused):
    """The server could not store this PATCH; what was acknowledged is kept (503).

    The disk refused a write (an I/O error); the client resumes from Upload-Offset."""


@dataclass(frozen=True)
class Progress:
    """After a PATCH: the acknowledged offset in bytes, and the file once complete."""

    offset: int
    stored: StoredFile | None = None


# Receivers (filerequests) return a QuerySet of the ids of ``owner``'s unfinished uploads
# that others started into the owner's space (a file request's visitors): those count
# against their own cap (an UnfinishedScope), never against the owner's TUS_MAX_UNFINISHED.
counting_unfinished = Signal()


@dataclass(frozen=True)
class UnfinishedScope:
    """A creation made for someone other than the owner (a file request's visitor):
    ``ids()`` is the QuerySet of upload ids in the scope, which TUS_MAX_UNFINISHED caps
    instead of the owner's own uploads; ``tie(upload)`` puts a new upload in the scope,
    inside the creating transaction (so parallel creations cannot pass the cap)."""

    ids: Callable[[], QuerySet[Any]]
    tie: Callable[[ResumableUpload], None]


def _live(*, owner: User, now: datetime) -> QuerySet[ResumableUpload]:
    """The owner's unfinished, unexpired uploads (their own and others' into their space)."""
    return ResumableUpload.objects.filter(owner=owner, expires_at__gt=now)


def _owners_own(live: QuerySet[ResumableUpload], owner: User) -> QuerySet[ResumableUpload]:
    """Those of ``live`` the owner started: without the ones others started into the
    owner's space (counting_unfinished's receivers: a file request's visitors)."""
    for _receiver, foreign in counting_unfinished.send(sender=ResumableUpload, owner=owner):
        live = live.exclude(id__in=foreign)
    return live


def _unfinished_counted(
    live: QuerySet[ResumableUpload], owner: User, scope: UnfinishedScope | None
) -> QuerySet[ResumableUpload]:
    """Those of ``live`` that count against the cap this creation is under."""
    if scope is not None:
        return live.filter(id__in=scope.ids())
    return _owners_own(live, owner)


def _too_many(counted: QuerySet[ResumableUpload], now: datetime) -> TooManyUnfinished:
    """The refusal, saying when the first of ``counted`` expires (seconds from ``now``)."""
    soonest = counted.aggregate(soonest=Min("expires_at"))["soonest"]
    left = (soonest - now).total_seconds() if soonest is not None else 0
    return TooManyUnfinished(retry_after=max(1, math.ceil(left)))


def _reserved_bytes(
    live: QuerySet[ResumableUpload], owner: User, scope: UnfinishedScope | None
) -> int:
    """The Upload-Length bytes of ``live`` this creation must leave room for under the
    quota: for the owner's own creation only the owner's own unfinished uploads (a
    stranger's unfinished uploads into a file request cannot block the owner; whoever
    completes first gets the room, as the quota is checked again at completion), for
    anyone else's all of them (others together cannot promise past the quota)."""
    counted = live if scope is not None else _owners_own(live, owner)
    return sum(counted.values_list("length", flat=True))


def resumable_create(
    *,
    owner: User,
    length: int,
    name: str,
    content_type: str,
    expires_in_days: int | None,
    actor: Actor,
    scope: UnfinishedScope | None = None,
) -> ResumableUpload | StoredFile:
    """Start a resumable upload of ``length`` plaintext bytes (tus "creation" extension).

    Writes the blob's header (random salt and nonce prefix) and the row. A zero-length
    upload is complete at once: the StoredFile is returned instead of the row. Raises
    UploadTooLarge (over MAX_UPLOAD_MB or the format's limit), QuotaExceeded (the owner's
    files plus their unfinished uploads plus ``length`` over the quota), TooManyUnfinished
    (TUS_MAX_UNFINISHED of the owner's own, or of ``scope``'s for a visitor's creation),
    ResumableUnsupported (a storage that is neither local nor S3); any refusal leaves no
    blob, no multipart upload and no row. On S3 a multipart upload is started for the
    blob and its UploadId kept in the row.
    """
    storage = get_encrypted_storage()
    segment_size = storage.segment_size
    name = name.replace("\x00", "")
    if os.path.basename(name) in ("", ".", ".."):
        name = UNNAMED  # what an upload whose client sent no usable filename is called
    if length > settings.MAX_UPLOAD_BYTES or length > max_plaintext_size(segment_size):
        raise UploadTooLarge
    if not storage.supports_resumable:
        raise ResumableUnsupported
    now = timezone.now()
    key = FileKey.generate()
    master = get_keyring().primary
    header = new_header(segment_size)
    initial = header
    if length == 0 and not storage.resumable_in_parts:
        # An empty file's blob is whole at once: its one (empty, last) segment is written
        # and synced with the header, before any row, so a full disk leaves nothing.
        initial += SegmentSealer(key, header).seal(0, b"", last=True)
    try:
        blob, s3_upload_id = storage.resumable_create(initial)
    except BlobWriteFailed as failed:
        raise _refusal_of(failed) from None
    try:
        with transaction.atomic():
            # The owner's row is locked, as for the quota of a form upload: two parallel
            # creations cannot both squeeze under the cap or the quota.
            get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
            live = _live(owner=owner, now=now)
            counted = _unfinished_counted(live, owner, scope)
            if counted.count() >= settings.TUS_MAX_UNFINISHED:
                raise _too_many(counted, now)
            quota = selectors.quota_of(user=owner)
            if quota is not None:
                reserved = _reserved_bytes(live, owner, scope)
                if selectors.usage_of(user=owner) + reserved + length > quota:
                    raise QuotaExceeded
            upload = ResumableUpload.objects.create(
                id=key.file_id,
                owner=owner,
                name=name,
                content_type=content_type,
                expires_in_days=expires_in_days or None,
                length=length,
                segment_size=segment_size,
                header=header,
                wrapped_key=wrap_key(key, master),
                key_id=master.key_id,
                blob=blob,
                s3_upload_id=s3_upload_id,
                expires_at=now + timedelta(hours=settings.TUS_UPLOAD_EXPIRY_HOURS),
            )
            _audit(Event.UPLOAD_STARTED, upload, actor)
            if scope is not None:
                scope.tie(upload)
    except BaseException:
        _discard(blob, s3_upload_id)
        raise
    if length == 0 and s3_upload_id:  # part 1 is the header and the empty last segment
        part = header + SegmentSealer(key, header).seal(0, b"", last=True)
        etag = storage.resumable_part_put(blob, s3_upload_id, 1, part)
        upload.s3_parts = [{"PartNumber": 1, "ETag": etag}]
        ResumableUpload.objects.filter(pk=upload.pk).update(s3_parts=upload.s3_parts)
        storage.resumable_part_complete(blob, s3_upload_id, upload.s3_parts)
        return _complete(upload=upload, key=key, actor=actor)
    if length == 0:  # the blob was written whole by resumable_create
        return _complete(upload=upload, key=key, actor=actor)
    return upload


def resumable_lease_take(
    *, upload_id: uuid.UUID, owner: User, offset: int
) -> tuple[ResumableUpload, str]:
    """Hold the upload for one PATCH: returns (row, lease token).

    Raises UploadGone (no such upload of this owner), UploadExpired, UploadBusy (another
    PATCH holds it: PATCHes on one upload never interleave) and OffsetMismatch (``offset``,
    the request's Upload-Offset in bytes, is not the row's; tus 1.0.0 section "PATCH").
    """
    now = timezone.now()
    token = secrets.token_hex(16)
    with transaction.atomic():
        row = ResumableUpload.objects.select_for_update().filter(pk=upload_id, owner=owner).first()
        if row is None:
            raise UploadGone
        if row.expires_at <= now:
            raise UploadExpired
        if row.patching_until is not None and row.patching_until > now:
            raise UploadBusy
        if row.offset != offset:
            raise OffsetMismatch
        row.patching_until = now + timedelta(seconds=settings.TUS_PATCH_LEASE_SECONDS)
        row.lease_token = token
        row.save(update_fields=["patching_until", "lease_token"])
    return row, token


def _acknowledge(
    *,
    upload: ResumableUpload,
    token: str,
    offset: int,
    s3_parts: list[dict] | None = None,
    release: bool = False,
) -> None:
    """Move the row's offset to ``offset`` bytes (its segments are synced, or on S3 its
    parts uploaded: ``s3_parts`` is then the whole part list, stored in the same update)
    and renew the lease, or with ``release`` give it up in the same update (one commit
    less per PATCH). Raises UploadBusy if this PATCH no longer holds the lease (or the
    row is gone)."""
    changes: dict[str, object] = {"offset": offset}
    if release:
        changes.update(patching_until=None, lease_token="")
    else:
        changes["patching_until"] = timezone.now() + timedelta(
            seconds=settings.TUS_PATCH_LEASE_SECONDS
        )
    if s3_parts is not None:
        changes["s3_parts"] = s3_parts
    with transaction.atomic():
        moved = ResumableUpload.objects.filter(pk=upload.pk, lease_token=token).update(**changes)
    if not moved:
        raise UploadBusy
    upload.offset = offset
    if s3_parts is not None:
        upload.s3_parts = s3_parts


def _renew_every() -> float:
    """Seconds between a long PATCH's acknowledgements: well inside its lease, so another
    request never takes over a PATCH that is still streaming."""
    return settings.TUS_PATCH_LEASE_SECONDS / 4


# A PATCH acknowledges (fsync, then one row update) what it has sealed at most this many
# bytes apart, at its end, and when its lease needs renewing: a server killed mid-PATCH
# loses at most this much, which the client resends from the offset HEAD reports. Per
# segment, the fsyncs and commits cost more than the AES-GCM (bench/README.md).
ACKNOWLEDGE_BYTES = 32 * 1024 * 1024


@dataclass
class _Patch:
    """One PATCH under its lease: what it has stored but not yet acknowledged."""

    upload: ResumableUpload
    token: str
    renewed_at: float = 0.0
    released: bool = False
    # The digests of what this PATCH seals, kept only when it starts at byte 0: if it
    # also seals the last byte, they cover the whole plaintext and completion needs no
    # read-back. A hash object cannot move to the process of another PATCH.
    digests: PlaintextDigests | None = None

    def __post_init__(self) -> None:
        self.renewed_at = time.monotonic()
        if self.upload.offset == 0:
            self.digests = PlaintextDigests()

    def sealed(self, plaintext: memoryview) -> None:
        """Note the plaintext of the segment just sealed (in file order)."""
        if self.digests is not None:
            self.digests.update(plaintext)

    def whole_file_digests(self) -> PlaintextDigests | None:
        """The digests of the whole plaintext, if this PATCH sealed all of it, else None."""
        digests = self.digests
        if digests is None or digests.size != self.upload.length:
            return None
        return digests

    def due(self, stored_to: int) -> bool:
        """Whether to acknowledge now, with the blob stored up to byte ``stored_to``."""
        unacknowledged = stored_to - self.upload.offset
        late = time.monotonic() - self.renewed_at >= _renew_every()
        return unacknowledged >= ACKNOWLEDGE_BYTES or late

    def acknowledge(
        self, offset: int, s3_parts: list[dict] | None = None, *, last: bool = False
    ) -> None:
        """_acknowledge ``offset``; with ``last`` (the PATCH's end) the lease goes too,
        unless the upload is now complete: completion still needs it."""
        release = last and offset < self.upload.length
        _acknowledge(
            upload=self.upload, token=self.token, offset=offset, s3_parts=s3_parts, release=release
        )
        self.released = release
        self.renewed_at = time.monotonic()


def _lease_release(*, upload: ResumableUpload, token: str) -> None:
    with transaction.atomic():
        ResumableUpload.objects.filter(pk=upload.pk, lease_token=token).update(
            patching_until=None, lease_token=""
        )


def _key_of(upload: ResumableUpload) -> FileKey:
    return unwrap_key(bytes(upload.wrapped_key), upload.id, get_keyring().get(upload.key_id))


def resumable_append(
    *,
    upload: ResumableUpload,
    token: str,
    read: Callable[[int], bytes],
    body_length: int,
    actor: Actor,
) -> Progress:
    """Take a PATCH body of ``body_length`` bytes (tus 1.0.0 section "PATCH") under the
    lease ``token``: seal each complete segment (index = byte position // segment size;
    the one holding the last byte with the last-segment flag) and append it; fsync, then
    acknowledge in the row. ``read(n)`` returns up to ``n`` bytes of the body, b"" at its
    end; an error from it (the client gone) ends the PATCH with what is stored.

    A trailing partial segment that is not the file's end is dropped, unacknowledged.
    On S3 the same holds for parts (see _stream_parts): the offset moves part by part.
    Acknowledgements are batched (ACKNOWLEDGE_BYTES, the lease's renewal, the body's end
    or break: see _Patch), each after an fsync. On the last byte the upload completes
    (see _complete). The lease is released at the end. Raises UploadTooLarge (before
    reading) for a body past Upload-Length, UploadBusy if the lease was lost, UploadGone
    if its multipart upload is gone (S3: the row is then deleted), QuotaExceeded at
    completion (the upload is then deleted), and PatchTooSmall (before reading) for a
    body too short to complete a segment (a part on S3) that does not end the file.
    """
    patch = _Patch(upload, token)
    try:
        if upload.offset + body_length > upload.length:
            raise UploadTooLarge
        if 0 < body_length < _smallest_useful_body(upload):
            # Acknowledged in whole segments (parts on S3), such a PATCH could never move
            # the offset, and a client that resends from the offset would send it again
            # for ever.
            raise PatchTooSmall
        key = _key_of(upload)
        sealer = SegmentSealer(key, bytes(upload.header))
        storage = get_encrypted_storage()
        if upload.s3_upload_id:
            try:
                _stream_parts(patch, read, body_length, sealer)
                if upload.offset == upload.length:
                    storage.resumable_part_complete(
                        upload.blob, upload.s3_upload_id, list(upload.s3_parts)
                    )
            except FileNotFoundError:
                # The multipart upload was aborted (terminated or expired meanwhile, or a
                # bucket lifecycle rule): the parts are gone, so is the upload.
                with transaction.atomic():
                    ResumableUpload.objects.filter(pk=upload.pk).delete()
                _discard(upload.blob, upload.s3_upload_id)
                raise UploadGone from None
        elif upload.offset < upload.length:  # at the end already: only completion is left
            seg = upload.segment_size
            appender = storage.resumable_appender(
                upload.blob, HEADER_SIZE + (upload.offset // seg) * (seg + TAG_SIZE)
            )
            try:
                _stream_segments(patch, read, body_length, sealer, appender)
            except BlobWriteFailed as failed:
                # The offset stays at the last fsynced batch; the next PATCH cuts the
                # blob back to it (LocalAppender), so nothing half-written is ever used.
                raise _refusal_of(failed) from None
            finally:
                appender.close()
        if upload.offset == upload.length:
            stored = _complete(
                upload=upload, key=key, actor=actor, digests=patch.whole_file_digests()
            )
            return Progress(upload.offset, stored)
    finally:
        if not patch.released:
            _lease_release(upload=upload, token=token)
    return Progress(upload.offset)


def _smallest_useful_body(upload: ResumableUpload) -> int:
    """The fewest body bytes a PATCH at the row's offset needs to move it, in bytes: the
    rest of the current segment (local storage) or part (S3), which always starts at the
    offset, or the rest of the file."""
    unit = upload.segment_size
    if upload.s3_upload_id:
        unit *= resumable_part_segments(upload.segment_size)
    return min(unit, upload.length - upload.offset)


def resumable_finish(*, upload_id: uuid.UUID, owner: User, actor: Actor) -> StoredFile:
    """Complete an upload whose every byte is acknowledged (offset == length) but whose
    completion did not happen (the server died after acknowledging the last bytes, before
    the StoredFile row): on S3 the multipart upload is completed from the recorded parts,
    then the file is recorded as at the end of a PATCH. Called by HEAD, so completion does
    not wait for one more PATCH. Raises what resumable_lease_take and resumable_append
    raise (UploadBusy while another request holds the upload, e.g. completing it).
    """
    row = ResumableUpload.objects.filter(pk=upload_id, owner=owner).first()
    if row is None:
        raise UploadGone
    leased, token = resumable_lease_take(upload_id=upload_id, owner=owner, offset=row.length)
    progress = resumable_append(
        upload=leased, token=token, read=lambda _n: b"", body_length=0, actor=actor
    )
    assert progress.stored is not None  # offset == length: resumable_append completed it
    return progress.stored


def _refusal_of(failed: BlobWriteFailed) -> ResumableRefused:
    """The tus refusal for a write the disk refused (logged: an operator must know)."""
    logger.error("resumable upload: %s", failed)
    return StorageFull() if failed.full else StorageFailed()


def _incoming_segments(
    *, read: Callable[[int], bytes], body_length: int, start: int, length: int, view: memoryview
) -> Iterator[tuple[int, memoryview, bool]]:
    """Fill ``view`` (one segment, in memory) from a PATCH body of ``body_length`` bytes
    that begins at plaintext byte ``start`` of a ``length``-byte file; yield (position,
    plaintext, last) for each complete segment. A trailing partial segment is never
    yielded (it is not acknowledged: the client resends it), and a read error or early end
    of the body just ends the segments (the client went away)."""
    seg = len(view)
    filled, remaining, position = 0, body_length, start
    while position < length:
        need = min(seg, length - position)
        if filled == need:
            yield position, view[:need], position + need == length
            position, filled = position + need, 0
            continue
        if remaining <= 0:
            break
        try:
            # As much as the segment still lacks (a MiB at a time), not smaller pieces:
            # gunicorn's body reader receives up to a MiB ahead and re-copies what it
            # holds past each read. Measured (bench/README.md): 64 KiB reads, 930 minor
            # faults per MiB and 1.4 server CPU-s per 256 MiB; 256 KiB, 810 and 1.1;
            # whole segments, 50 and 0.85.
            data = read(min(need - filled, remaining))
        except OSError:
            break
        if not data:
            break
        view[filled : filled + len(data)] = data
        filled += len(data)
        remaining -= len(data)


def _stream_segments(
    patch: _Patch,
    read: Callable[[int], bytes],
    body_length: int,
    sealer: SegmentSealer,
    appender: LocalAppender,
) -> None:
    """Local storage: seal each complete segment into one reused buffer and append it;
    fsync and acknowledge in batches (_Patch.due), and once more at the body's end or
    break, so the row's offset never names a byte that is not sealed and on the disk."""
    upload = patch.upload
    seg = upload.segment_size
    plain, sealed = bytearray(seg), bytearray(seg + TAG_SIZE)
    stored_to = upload.offset
    with memoryview(plain) as view, memoryview(sealed) as out:
        segments = _incoming_segments(
            read=read, body_length=body_length, start=upload.offset, length=upload.length, view=view
        )
        try:
            for position, plaintext, last in segments:
                sealed_length = sealer.seal_into(position // seg, plaintext, out, last=last)
                appender.write(out[:sealed_length])
                patch.sealed(plaintext)
                stored_to = position + len(plaintext)
                if patch.due(stored_to):
                    appender.sync()
                    patch.acknowledge(stored_to)
        finally:
            view[:] = bytes(len(view))  # drop the plaintext, also when a write failed
    if stored_to > upload.offset:
        appender.sync()
    patch.acknowledge(stored_to, last=True)


def _stream_parts(
    patch: _Patch,
    read: Callable[[int], bytes],
    body_length: int,
    sealer: SegmentSealer,
) -> None:
    """S3: seal segments into the current part's buffer (ciphertext; part 1 begins with
    the header) and upload each full part, or the file's last, then acknowledge it with
    the part list. The row's offset is always a whole number of parts (or the length), so
    the part index is offset // (segments per part × segment size). At most one part and
    one plaintext segment are held in memory; an unfinished part is dropped. Between
    parts the lease is renewed when due (_Patch.due); the PATCH's end releases it."""
    upload = patch.upload
    seg = upload.segment_size
    per_part = resumable_part_segments(seg) * seg  # plaintext bytes in a full part
    buffer = bytearray(seg)
    part = bytearray()
    with memoryview(buffer) as view:
        segments = _incoming_segments(
            read=read, body_length=body_length, start=upload.offset, length=upload.length, view=view
        )
        try:
            for position, plaintext, last in segments:
                index = position // per_part
                if position == 0:
                    part += upload.header
                part += sealer.seal(position // seg, plaintext, last=last)
                patch.sealed(plaintext)
                end = position + len(plaintext)
                if last or end % per_part == 0:
                    etag = get_encrypted_storage().resumable_part_put(
                        upload.blob, upload.s3_upload_id, index + 1, part
                    )
                    done = {"PartNumber": index + 1, "ETag": etag}
                    patch.acknowledge(end, [*list(upload.s3_parts)[:index], done])
                    part = bytearray()
                elif patch.due(upload.offset):  # renew the lease (and stop if it is lost)
                    patch.acknowledge(upload.offset)
        finally:
            view[:] = bytes(len(view))  # drop the plaintext, also when a part failed
    if upload.offset < upload.length:
        patch.acknowledge(upload.offset, last=True)


def _complete(
    *,
    upload: ResumableUpload,
    key: FileKey,
    actor: Actor,
    digests: PlaintextDigests | None = None,
) -> StoredFile:
    """Turn a complete upload into a StoredFile as a form upload would be.

    ``digests``: those of the whole plaintext, hashed as it was sealed, when one PATCH
    carried the upload from byte 0 to its end (as the form upload hashes it). Otherwise
    (resumed, or several PATCHes) the blob is read back through the verifying reader to
    count its bytes and compute the keyed digest and the SHA-256. Either way the row's
    digests cover exactly the plaintext sealed. The row is created by uploads_record
    (quota re-checked, audited as file.upload) in the transaction that deletes the
    upload's row. Raises BlobIntegrityError if a read-back does not verify,
    QuotaExceeded or UploadClosed (a file request no longer taking it; either way the
    upload and its blob are then deleted), UploadGone if the upload was deleted meanwhile.
    """
    scan = scanning.scan_start()
    if digests is not None and scan is None:
        blob = StoredBlob(upload.blob, digests.size, digests.keyed(key), digests.sha256())
    else:
        storage = get_encrypted_storage()
        reader = storage.open_plaintext(upload.blob, key, expected_size=upload.length)
        size, digest, sha256 = measure_all(reader, key, also=scan.feed if scan else None)
        blob = StoredBlob(upload.blob, size, digest, sha256)
    owner = upload.owner
    encrypted = EncryptedUpload(
        key=key, blob=blob, name=upload.name, content_type=upload.content_type
    )
    if scan is not None:
        encrypted.scan_state = _scan_checked(upload, scan.finish(), actor)
    stored = stored_file_from_upload(owner=owner, upload=encrypted)
    days = upload.expires_in_days
    expires_at = timezone.now() + timedelta(days=days) if days else None
    try:
        with transaction.atomic():
            deleted, _ = ResumableUpload.objects.filter(pk=upload.pk).delete()
            if not deleted:
                raise UploadGone
            uploads_record(owner=owner, files=[stored], actor=actor, expires_at=expires_at)
    except QuotaExceeded:
        resumable_terminate(upload_id=upload.pk, owner=owner, actor=actor, reason="quota")
        raise
    except UploadNotAccepted:
        resumable_terminate(upload_id=upload.pk, owner=owner, actor=actor, reason="closed")
        raise UploadClosed from None
    return stored


def _scan_checked(upload: ResumableUpload, outcome: scanning.ScanOutcome, actor: Actor) -> str:
    """The scan state to store for a complete upload, by the policy for logged-in users,
    or for file-request visitors when the actor completing it is no user (a visitor, as
    filerequests' views name them: the stricter policy for anyone without an account).
    Malware, or a file past clamd's limit that is refused: the upload is deleted (row,
    blob, multipart upload) and the refusal raised. clamd unavailable (fail-closed): the
    upload is kept, complete, for HEAD or PATCH to finish once clamd is back (until it
    expires), and ScannerUnavailable raised."""
    try:
        return scanning.scan_check(
            outcome,
            visitor=actor.user_id is None,
            owner=upload.owner,
            file_id=upload.id,
            file_name=upload.name,
            size=upload.length,
            actor=actor,
        )
    except (scanning.MalwareFound, scanning.TooLargeToScan):
        reason = "malware" if outcome.signature else "too large to scan"
        resumable_terminate(upload_id=upload.pk, owner=upload.owner, actor=actor, reason=reason)
        raise


def _audit(event: str, upload: ResumableUpload, actor: Actor, reason: str = "") -> None:
    """An upload.* entry: file_id the upload's id, detail its Upload-Length. Last in the
    caller's transaction (the chain head is the last lock taken)."""
    detail = f"size={upload.length}" + (f" reason={reason}" if reason else "")
    audit_record(event=event, actor=actor, file_id=upload.id, file_name=upload.name, detail=detail)


def resumable_terminate(
    *, upload_id: uuid.UUID, owner: User, actor: Actor = SYSTEM, reason: str = ""
) -> None:
    """Delete an unfinished upload, row then blob (tus "termination" extension); on S3
    its multipart upload is aborted, its parts deleted. Audited as upload.cancelled
    (``reason``, e.g. "quota" when completion found the quota full, in its detail).

    A PATCH still streaming into it loses its lease at its next acknowledgement (see
    _Patch; on S3 its next part or renewal). Raises
    UploadGone if there is no such upload of this owner.
    """
    with transaction.atomic():
        row = ResumableUpload.objects.select_for_update().filter(pk=upload_id, owner=owner).first()
        if row is None:
            raise UploadGone
        blob, s3_upload_id = row.blob, row.s3_upload_id
        ResumableUpload.objects.filter(pk=row.pk).delete()  # row keeps its pk for the entry
        _audit(Event.UPLOAD_CANCELLED, row, actor, reason)
    _discard(blob, s3_upload_id)


def resumable_purge_expired(*, now: datetime, dry_run: bool = False) -> list[ResumableUpload]:
    """Delete unfinished uploads past their Upload-Expires, rows then blobs; return them
    (tus "expiration" extension: the server may remove them). Each is audited as
    upload.expired."""
    expired = list(ResumableUpload.objects.filter(expires_at__lte=now).order_by("expires_at"))
    if dry_run:
        return expired
    purged = []
    for upload in expired:
        with transaction.atomic():
            deleted, _ = ResumableUpload.objects.filter(pk=upload.pk, expires_at__lte=now).delete()
            if deleted:
                _audit(Event.UPLOAD_EXPIRED, upload, SYSTEM)
        if deleted:
            _discard(upload.blob, upload.s3_upload_id)
            purged.append(upload)
    return purged


def _discard(blob: str, s3_upload_id: str) -> None:
    """Remove an unfinished upload's blob (and abort its S3 multipart upload). On an
    error the row is gone already; cleanup_storage sweeps what is left later."""
    if not s3_upload_id:
        blob_delete(blob)
        return
    try:
        get_encrypted_storage().resumable_discard(blob, s3_upload_id)
    except Exception:
        logger.warning("multipart upload of a deleted resumable upload left name=%s", blob)
