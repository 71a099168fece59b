"""Encrypted blob storage: a Django storage that only ever holds ciphertext.

It wraps an inner storage (FileSystemStorage over MEDIA_ROOT by default) and works with an
explicit key context (sharing.crypto.FileKey): the caller brings the file's UUID and data
key, the storage never queries the database. Opening a blob by name alone (``open()``)
is refused, so no code path yields plaintext without the row's key.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol, cast

from django.core.files.base import File
from django.core.files.storage import Storage, storages
from django.utils.deconstruct import deconstructible
from django.utils.functional import cached_property

from sharing.crypto import (
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    DecryptingReader,
    FileKey,
    StreamEncryptor,
)
from sharing.storage import s3 as storage_s3
from sharing.storage.write_behind import WriteBehind

BLOB_PREFIX = "blobs"


def resumable_part_segments(segment_size: int) -> int:
    """How many sealed segments make one part of a resumable upload on S3: enough for
    storage_s3.PART_SIZE plaintext bytes (8 segments of 1 MiB), so every part but the
    last is over S3's 5 MiB minimum whatever the segment size."""
    return max(1, -(-storage_s3.PART_SIZE // segment_size))


class PlaintextAccessRefused(Exception):
    """Raised when code tries to read or write a blob without a key context."""


class BlobWriteFailed(Exception):
    """The local disk refused ciphertext (full, over a quota or a file size limit, an I/O
    error): the blob is incomplete and must not be adopted. ``full`` is True for lack of
    space (ENOSPC, EDQUOT, EFBIG: answered 507 Insufficient Storage, RFC 4918 section
    11.5), False for other errors (answered 503)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(f"the blob could not be written: {error.strerror or error}")
        self.full = error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@dataclass(frozen=True)
class StoredBlob:
    """What a finished write produced: where it is, and facts about its plaintext."""

    name: str
    plaintext_size: int
    digest: bytes
    sha256: bytes = b""


class BlobSink(Protocol):
    """Where ciphertext goes while an upload streams in."""

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class LocalFileSink:
    """Write ciphertext to a new file that nothing else can have claimed (O_EXCL, 0600).

    The writes happen behind the caller (WriteBehind: the kernel's copy into the page
    cache overlaps the sealing); ``commit`` waits for them and fsyncs. Raises
    BlobWriteFailed (a full disk, EIO) from ``write`` or ``commit``.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        folder = os.path.dirname(path)
        # A folder made now must be made durable in its parent too (at commit).
        self._new_folder = not os.path.isdir(folder)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise  # a name collision is the caller's bug, not the disk's
        except OSError as error:
            raise BlobWriteFailed(error) from error
        self._behind: WriteBehind | None = WriteBehind(self._fd, name="blob-writer")

    def write(self, data: bytes | memoryview) -> None:
        if self._behind is None:
            raise ValueError("sink is closed")
        try:
            self._behind.write(data)
        except OSError as error:
            raise BlobWriteFailed(error) from error

    def commit(self) -> None:
        # Every write landed, then fsync, before the row that points here is committed:
        # a row without its blob after a power cut is a lost file.
        if self._behind is None or self._fd is None:
            raise ValueError("sink is closed")
        try:
            self._behind.flush()
            os.fsync(self._fd)
            # The file's name is an entry of its folder: without this fsync a power cut
            # can keep the file's bytes and lose its name (POSIX fsync covers the file).
            folder = os.path.dirname(self._path)
            _fsync_folder(folder)
            if self._new_folder:
                _fsync_folder(os.path.dirname(folder))
        except OSError as error:
            raise BlobWriteFailed(error) from error
        finally:
            self._close()

    def abort(self) -> None:
        self._close()
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass

    def _close(self) -> None:
        if self._behind is not None:
            self._behind.close()
            self._behind = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fsync_folder(path: str) -> None:
    """fsync a folder, making the names in it durable. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalAppender:
    """Append sealed segments to a resumable upload's blob on the local disk.

    Opening cuts the blob back to ``acknowledged`` bytes (a crashed PATCH may have written
    more than the row acknowledged) and positions there. Writes happen behind the caller
    (WriteBehind); ``sync`` waits for them and fsyncs, and must return before the row's
    offset moves past what was written. Nothing but ciphertext is written. Raises
    FileNotFoundError if the blob is gone, and BlobWriteFailed from ``write`` or
    ``sync``.
    """

    def __init__(self, path: str, acknowledged: int) -> None:
        self._behind: WriteBehind | None = None
        self._fd: int | None = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(self._fd, acknowledged)
            os.lseek(self._fd, acknowledged, os.SEEK_SET)
        except BaseException:
            self.close()
            raise
        self._behind = WriteBehind(self._fd, name="blob-appender")

    def write(self, data: bytes | memoryview) -> None:
        """Queue all of ``data`` (ciphertext) to be written at the current end."""
        if self._behind is None:
            raise ValueError("appender is closed")
        try:
            self._behind.write(data)
        except OSError as error:
            raise BlobWriteFailed(error) from error

    def sync(self) -> None:
        """Make everything written so far durable (written, then fsync)."""
        if self._behind is None or self._fd is None:
            raise ValueError("appender is closed")
        try:
            self._behind.flush()
            os.fsync(self._fd)
        except OSError as error:
            raise BlobWriteFailed(error) from error

    def close(self) -> None:
        """Stop writing (what was not synced may be lost) and close the file."""
        if self._behind is not None:
            self._behind.close()
            self._behind = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class BlobWriter:
    """Encrypt plaintext pushed in pieces and pass the ciphertext to a sink."""

    def __init__(self, name: str, sink: BlobSink, key: FileKey, segment_size: int) -> None:
        self.name = name
        self._sink = sink
        self._encryptor = StreamEncryptor(key, segment_size)
        self._sink.write(self._encryptor.header)
        self.closed = False

    @property
    def plaintext_size(self) -> int:
        return self._encryptor.plaintext_size

    def write(self, data: bytes) -> None:
        # Each sealed segment goes straight to the sink from the encryptor's own buffer.
        self._encryptor.update_into(data, self._sink.write)

    def close(self) -> StoredBlob:
        """Seal the last segment and make the blob durable."""
        self._encryptor.finalize_into(self._sink.write)
        self._sink.commit()
        self.closed = True
        encryptor = self._encryptor
        return StoredBlob(
            self.name, encryptor.plaintext_size, encryptor.digest(), encryptor.sha256()
        )

    def abort(self) -> None:
        """Remove whatever was written; safe to call more than once."""
        if not self.closed:
            self.closed = True
            self._sink.abort()


@deconstructible(path="sharing.storage.EncryptedStorage")
class EncryptedStorage(Storage):
    """Ciphertext-only storage over an inner storage named in settings.STORAGES."""

    def __init__(self, inner: str = "ciphertext", segment_size: int = DEFAULT_SEGMENT_SIZE):
        self.inner_alias = inner
        self.segment_size = segment_size

    @cached_property
    def inner(self) -> Storage:
        return storages[self.inner_alias]

    # -- the key-aware API used by the app

    def new_name(self) -> str:
        """A random name (128 bits) that says nothing about the file."""
        token = secrets.token_hex(16)
        return f"{BLOB_PREFIX}/{token[:2]}/{token}"

    def open_writer(self, key: FileKey) -> BlobWriter:
        name = self.new_name()
        return BlobWriter(name, self._open_sink(name), key, self.segment_size)

    def save_plaintext(self, chunks: Iterable[bytes], key: FileKey) -> StoredBlob:
        """Encrypt an iterable of plaintext chunks into a new blob (imports, tests)."""
        writer = self.open_writer(key)
        try:
            for chunk in chunks:
                writer.write(chunk)
            return writer.close()
        except BaseException:
            writer.abort()
            raise

    def open_plaintext(
        self, name: str, key: FileKey, *, expected_size: int | None = None
    ) -> DecryptingReader:
        """A reader that authenticates each segment before releasing it.

        With ``expected_size`` (the row's plaintext size, in bytes) the blob's length is
        checked against it before anything is read past the header, and the reader yields
        exactly that many bytes or raises. Raises BlobIntegrityError (bad header, size
        mismatch) or OSError / FileNotFoundError (blob missing or unreadable).
        """
        length = self.blob_length(name) if expected_size is not None else None
        source = self.open_ciphertext(name)
        try:
            return DecryptingReader(
                source, key, expected_size=expected_size, ciphertext_length=length
            )
        except BaseException:
            source.close()
            raise

    def open_plaintext_ranged(
        self, name: str, key: FileKey, *, expected_size: int
    ) -> DecryptingReader:
        """A reader for ``plaintext_range``: only the header and the segments a byte range
        needs are ever read from the storage.

        ``expected_size`` is the row's plaintext size in bytes; the blob's length is
        checked against it first. Locally the blob is opened once and seeked; on S3 the
        header and the segments each come from one ranged GET (RFC 9110 section 14.2),
        so a range at the end of a 2 GiB blob fetches no more than one at its start.
        Raises BlobIntegrityError (bad header, size mismatch) or OSError /
        FileNotFoundError (blob missing or unreadable).
        """
        length = self.blob_length(name)
        if storage_s3.is_s3(self.inner):
            inner = self.inner
            source = storage_s3.open_span(inner, name, 0, HEADER_SIZE)

            def open_span(start: int, stop: int) -> BinaryIO:
                return storage_s3.open_span(inner, name, start, stop)
        else:
            source = self.open_ciphertext(name)

            def open_span(start: int, stop: int) -> BinaryIO:
                source.seek(start)
                return source

        try:
            return DecryptingReader(
                source,
                key,
                expected_size=expected_size,
                ciphertext_length=length,
                open_span=open_span,
            )
        except BaseException:
            source.close()
            raise

    # -- resumable uploads (tus): a blob written by several requests

    @property
    def supports_resumable(self) -> bool:
        """Whether resumable uploads can be stored here (local disk or S3)."""
        return self.resumable_in_parts or getattr(self.inner, "path", None) is not None

    @property
    def resumable_in_parts(self) -> bool:
        """Whether a resumable upload is written as an S3 multipart upload, in parts of
        resumable_part_segments() segments (not appended segment by segment)."""
        return storage_s3.is_s3(self.inner)

    def resumable_create(self, header: bytes) -> tuple[str, str]:
        """Start a resumable upload's blob; return (name, S3 UploadId or "").

        Locally: a new blob holding only ``header`` (49 bytes; for an empty file the
        caller passes its one sealed segment after it), synced. On S3: a multipart
        upload of a new object, with nothing in it yet (``header`` goes into part 1).
        Raises NotImplementedError where supports_resumable is False, BlobWriteFailed
        from the disk, botocore errors from S3.
        """
        if not self.supports_resumable:
            raise NotImplementedError("resumable uploads need local or S3 storage")
        name = self.new_name()
        if self.resumable_in_parts:
            return name, storage_s3.multipart_start(self.inner, name)
        sink = LocalFileSink(self.inner.path(name))
        try:
            sink.write(header)
            sink.commit()
        except BaseException:
            sink.abort()
            raise
        return name, ""

    def resumable_appender(self, name: str, acknowledged: int) -> LocalAppender:
        """An appender positioned at byte ``acknowledged`` of the blob (cut back to it).

        Raises NotImplementedError on S3 (or where supports_resumable is False),
        FileNotFoundError if the blob is gone.
        """
        if not self.supports_resumable or self.resumable_in_parts:
            raise NotImplementedError("appending needs local storage")
        return LocalAppender(self.inner.path(name), acknowledged)

    def resumable_part_put(
        self, name: str, upload_id: str, number: int, ciphertext: bytes | bytearray
    ) -> str:
        """S3: upload part ``number`` (1-based) of the blob; return its ETag. A part of the
        same number uploaded before is replaced. Raises FileNotFoundError if the multipart
        upload was aborted (the upload terminated or expired)."""
        return storage_s3.multipart_put(self.inner, name, upload_id, number, ciphertext)

    def resumable_part_complete(self, name: str, upload_id: str, parts: list[dict]) -> None:
        """S3: complete the multipart upload from the recorded ``parts`` (the object
        appears); safe to repeat once done. Raises FileNotFoundError if it is gone."""
        storage_s3.multipart_complete(self.inner, name, upload_id, parts)

    def resumable_discard(self, name: str, upload_id: str) -> None:
        """Remove an unfinished upload's blob: abort its S3 multipart upload (its parts
        go) if ``upload_id``, and delete the object or file if there is one.
        Raises OSError (or a botocore error) if the storage refuses."""
        if upload_id:
            storage_s3.multipart_abort(self.inner, name, upload_id)
        self.inner.delete(name)

    def blob_length(self, name: str) -> int:
        """The blob's length in bytes, without reading it (a stat, or an S3 HEAD request).

        Raises FileNotFoundError when there is no such blob.
        """
        if storage_s3.is_s3(self.inner):
            return storage_s3.object_size(self.inner, name)
        return self.inner.size(name)

    def open_ciphertext(self, name: str) -> BinaryIO:
        if storage_s3.is_s3(self.inner):
            return storage_s3.open_body(self.inner, name)  # not S3File: it buffers it all
        # A django File opened "rb": it proxies the read/seek/close of the binary file.
        return cast(BinaryIO, self.inner.open(name, "rb"))

    def _open_sink(self, name: str) -> BlobSink:
        if storage_s3.is_s3(self.inner):
            return storage_s3.S3MultipartSink(self.inner, name)
        path_of = getattr(self.inner, "path", None)
        if path_of is None:
            raise NotImplementedError(f"no streaming writer for {type(self.inner).__name__}")
        return LocalFileSink(path_of(name))

    # -- Django's Storage API: metadata passes through; plaintext access is refused

    def _open(self, name: str, mode: str = "rb") -> File:
        raise PlaintextAccessRefused("blobs are opened with open_plaintext(name, key)")

    def _save(self, name: str, content: File) -> str:
        raise PlaintextAccessRefused("blobs are written with open_writer(key)")

    def url(self, name: str | None) -> str:
        raise PlaintextAccessRefused("ciphertext is never served by URL")

    def path(self, name: str) -> str:
        raise NotImplementedError("blobs have no plaintext path")

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        return self.inner.listdir(path)

    def get_modified_time(self, name: str):  # type: ignore[no-untyped-def]
        return self.inner.get_modified_time(name)

    def list_blobs(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Every blob name under ``blobs/`` (or, with ``prefix`` such as "ab", under
        ``blobs/ab/``: one of the 256 folders new_name spreads blobs over) with its
        modified time (maintenance commands).

        Walks the inner storage folder by folder, so memory stays one folder's listing.
        A blob deleted while the walk runs is skipped. On S3 the listing pages carry the
        times, so no object is asked about one by one.
        """
        top = f"{BLOB_PREFIX}/{prefix}" if prefix else BLOB_PREFIX
        if storage_s3.is_s3(self.inner):
            yield from storage_s3.list_objects(self.inner, top + "/")
            return
        pending = [top]
        while pending:
            folder = pending.pop()
            try:
                folders, files = self.inner.listdir(folder)
            except FileNotFoundError:
                continue
            pending.extend(f"{folder}/{sub}" for sub in sorted(folders, reverse=True))
            for name in sorted(files):
                try:
                    yield f"{folder}/{name}", self.inner.get_modified_time(f"{folder}/{name}")
                except FileNotFoundError:
                    continue


BLOB_FOLDERS = tuple(f"{n:02x}" for n in range(256))
"""The folders under ``blobs/`` that new_name spreads blobs over (secrets.token_hex's
first two characters): cleanup_storage's batches."""


def get_encrypted_storage() -> EncryptedStorage:
    """Callable for FileField(storage=...): migrations record the callable, not keys."""
    return storages["encrypted"]  # type: ignore[return-value]
