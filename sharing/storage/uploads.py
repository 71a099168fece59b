"""The encrypting upload handler: request body -> AES-GCM segments -> storage.

Installed by the upload view only, after the user is authenticated. Django's default
handlers would spool big uploads to a plaintext temp file; this one encrypts each chunk
as it arrives, so memory stays about one segment and no plaintext reaches a disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest

from sharing import names
from sharing.crypto import FileKey, FileTooLarge
from sharing.storage.encrypted import BlobWriteFailed, BlobWriter, EncryptedStorage, StoredBlob


class ContentScan(Protocol):
    """A malware scan fed the plaintext as it arrives (sharing.services.scanning.Scan)."""

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> Any: ...

    def abandon(self) -> None: ...


class EncryptedUpload(UploadedFile):
    """An uploaded file as it appears in request.FILES: already encrypted and stored.

    It holds no plaintext; ``key`` and ``blob`` are what the row needs; ``scan_outcome``
    what its malware scan ended with (None while scanning is off), ``scan_state`` the
    StoredFile.ScanState the caller decided to store.
    """

    scan_outcome: Any = None
    scan_state: str = "off"

    def __init__(
        self, *, key: FileKey, blob: StoredBlob, name: str, content_type: str | None
    ) -> None:
        super().__init__(file=None, name=name, content_type=content_type, size=blob.plaintext_size)
        self.key = key
        self.blob = blob

    def open(self, mode: str | None = None, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValueError("an encrypted upload has no plaintext to open")

    def close(self) -> None:
        # There is no file object to close (File.close would fail on None). Django closes
        # every uploaded file when a request ends and when parsing fails midway (too many
        # files, bad base64); an AttributeError there would turn a 400 into a 500.
        pass


class EncryptingUploadHandler(FileUploadHandler):
    """Encrypt every file part of one request straight into the storage.

    Remembers every blob it opened, so the view can delete those it did not adopt.
    """

    def __init__(
        self,
        request: HttpRequest,
        *,
        storage: EncryptedStorage,
        max_bytes: int,
        quota_left: int | None = None,
        scan_start: Callable[[], ContentScan | None] | None = None,
    ) -> None:
        super().__init__(request)
        self._scan_start = scan_start
        self._scan: ContentScan | None = None
        self.chunk_size = settings.UPLOAD_CHUNK_SIZE
        self._storage = storage
        self._max_bytes = max_bytes
        self._quota_left = quota_left
        self.over_quota = False
        self._received = 0
        self._writers: list[BlobWriter] = []
        self._current: BlobWriter | None = None
        self._key: FileKey | None = None
        self.too_large = False
        # Set (to the limit, in bytes) when a file outgrew what one blob can hold.
        self.format_limit: int | None = None
        self.interrupted = False
        # Set when the disk refused a blob (full, I/O error): the request stores nothing.
        self.write_failed: BlobWriteFailed | None = None

    def new_file(self, *args: object, **kwargs: object) -> None:
        super().new_file(*args, **kwargs)  # type: ignore[arg-type]
        if self.write_failed is not None:
            # An earlier file's blob was refused: nothing of this request is stored, so no
            # blob and no scanner connection is opened for the rest of the body.
            self._current, self._key = None, None
            return
        self._key = FileKey.generate()
        try:
            self._current = self._storage.open_writer(self._key)
        except BlobWriteFailed as failed:
            self.write_failed, self._current = failed, None
            return  # refused at this file's first chunk (StopUpload works only there)
        self._writers.append(self._current)
        # One clamd connection at a time: each file's verdict is taken at its end.
        self._scan = self._scan_start() if self._scan_start is not None else None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self.write_failed is not None:
            raise StopUpload(connection_reset=True)
        assert self._current is not None
        self._received += len(raw_data)
        if self._received > self._max_bytes:
            # A body without Content-Length (chunked) can still be too big: stop reading
            # it here. StopUpload is handled by the parser only in this hook.
            self.too_large = True
            self._current.abort()
            raise StopUpload(connection_reset=True)
        if self._quota_left is not None and self._received > self._quota_left:
            self.over_quota = True  # refused while streaming: the rest is never stored
            self._current.abort()
            raise StopUpload(connection_reset=True)
        try:
            self._current.write(raw_data)
        except FileTooLarge as exc:
            self.format_limit = exc.limit
            self._current.abort()
            raise StopUpload(connection_reset=True) from None
        except BlobWriteFailed as failed:
            self.write_failed = failed
            self._current.abort()
            raise StopUpload(connection_reset=True) from None
        if self._scan is not None:
            self._scan.feed(raw_data)

    def file_complete(self, file_size: int) -> EncryptedUpload | None:
        if self._current is None or self._key is None:
            return None
        try:
            blob = self._current.close()
        except BlobWriteFailed as failed:  # the last writes or the fsync: not stored
            self.write_failed = failed
            self._current.abort()
            if self._scan is not None:
                self._scan.abandon()
            self._current, self._key, self._scan = None, None, None
            return None
        # Browsers escape '"', CR and LF in the name they send (WHATWG HTML): store the
        # name the user sees on their disk, not "my%22file.txt".
        name = names.multipart_file_name(self.file_name or "")
        upload = EncryptedUpload(
            key=self._key, blob=blob, name=name, content_type=self.content_type
        )
        if self._scan is not None:
            upload.scan_outcome = self._scan.finish()
        self._current, self._key, self._scan = None, None, None
        return upload

    def upload_interrupted(self) -> None:
        # The body ended inside a file part (a client gone, a proxy cutting it short):
        # the request is incomplete, so the view stores none of its files.
        self.interrupted = True
        if self._scan is not None:
            self._scan.abandon()
            self._scan = None
        if self._current is not None:
            self._current.abort()
            self._current = None

    def discard_unadopted(self, adopted: set[str]) -> None:
        """Delete every blob of this request that no committed row points to."""
        if self._scan is not None:  # a file cut short by a refusal (size, quota)
            self._scan.abandon()
            self._scan = None
        for writer in self._writers:
            if writer.name in adopted:
                continue
            if writer.closed:
                self._delete_quietly(writer.name)
            writer.abort()

    def _delete_quietly(self, name: str) -> None:
        try:
            self._storage.delete(name)
        except OSError:
            pass  # left for cleanup_storage; it holds only ciphertext under a lost key
