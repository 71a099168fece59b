"""Streaming ciphertext to and from an S3-compatible bucket through django-storages' client.

django-storages' own S3File buffers a whole object (in memory or a temp file) before
upload; here an upload is a multipart upload whose buffer is one part, and a download
reads boto's streaming body, so memory stays bounded whatever the file size.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any, BinaryIO

from storages.backends.s3 import S3Storage
from storages.utils import clean_name

# S3 needs every part but the last to be at least 5 MiB; one part is the write buffer.
PART_SIZE = 8 * 1024 * 1024


def is_s3(storage: object) -> bool:
    """Whether ``storage`` is django-storages' S3 backend (or a subclass)."""
    return isinstance(storage, S3Storage)


def _client(storage: S3Storage) -> Any:
    return storage.connection.meta.client


def _key(storage: S3Storage, name: str) -> str:
    return storage._normalize_name(clean_name(name))


class S3MultipartSink:
    """Write ciphertext as a multipart upload; nothing is visible until commit()."""

    def __init__(self, storage: S3Storage, name: str) -> None:
        self._client = _client(storage)
        self._bucket = storage.bucket_name
        self._key = _key(storage, name)
        upload = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
        self._upload_id: str | None = upload["UploadId"]
        self._parts: list[dict] = []
        self._buffer = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        self._buffer += data  # a copy: the encryptor reuses the view it passes
        if len(self._buffer) >= PART_SIZE:
            self._flush()

    def commit(self) -> None:
        if self._buffer or not self._parts:
            self._flush()  # the last part may be small (or empty, for an empty blob)
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None

    def abort(self) -> None:
        if self._upload_id is not None:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )
            self._upload_id = None
        self._buffer = bytearray()

    def _flush(self) -> None:
        number = len(self._parts) + 1
        result = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": result["ETag"]})
        self._buffer = bytearray()


def multipart_start(storage: S3Storage, name: str) -> str:
    """Start a multipart upload of the object ``name``; return its UploadId."""
    client = _client(storage)
    upload = client.create_multipart_upload(Bucket=storage.bucket_name, Key=_key(storage, name))
    return str(upload["UploadId"])


def _no_such_upload(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") in {"NoSuchUpload", "404", "NotFound"}


def _upload_gone(storage: S3Storage, name: str, upload_id: str, exc: Exception) -> bool:
    """Whether a failed call failed because the multipart upload is gone (aborted or
    completed). S3 says NoSuchUpload; some servers answer a 500 instead, so ListParts,
    which names it, is asked then."""
    if _no_such_upload(exc):
        return True
    client = _client(storage)
    try:
        client.list_parts(
            Bucket=storage.bucket_name, Key=_key(storage, name), UploadId=upload_id, MaxParts=1
        )
    except client.exceptions.ClientError as probe:
        return _no_such_upload(probe)
    return False


def multipart_put(
    storage: S3Storage, name: str, upload_id: str, number: int, body: bytes | bytearray
) -> str:
    """Upload part ``number`` (1-based; an earlier part of that number is replaced); return
    its ETag. Raises FileNotFoundError if the multipart upload is gone (aborted)."""
    client = _client(storage)
    try:
        result = client.upload_part(
            Bucket=storage.bucket_name,
            Key=_key(storage, name),
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
    except client.exceptions.ClientError as exc:
        if _upload_gone(storage, name, upload_id, exc):
            raise FileNotFoundError(name) from None
        raise
    return str(result["ETag"])


def multipart_complete(storage: S3Storage, name: str, upload_id: str, parts: list[dict]) -> None:
    """Complete the multipart upload from ``parts`` ([{"PartNumber", "ETag"}, ...]): the
    object appears whole; parts not listed are discarded. Idempotent: if the upload is
    already gone and the object exists (an earlier call completed it), nothing is done.
    Raises FileNotFoundError if neither the upload nor the object exists."""
    client = _client(storage)
    try:
        client.complete_multipart_upload(
            Bucket=storage.bucket_name,
            Key=_key(storage, name),
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
    except client.exceptions.ClientError as exc:
        if not _upload_gone(storage, name, upload_id, exc):
            raise
        object_size(storage, name)  # completed before: the object is there, or not found


def multipart_abort(storage: S3Storage, name: str, upload_id: str) -> None:
    """Abort the multipart upload (its parts are deleted); an upload already gone is fine."""
    client = _client(storage)
    try:
        client.abort_multipart_upload(
            Bucket=storage.bucket_name, Key=_key(storage, name), UploadId=upload_id
        )
    except client.exceptions.ClientError as exc:
        if not _no_such_upload(exc):
            raise


def open_body(storage: S3Storage, name: str) -> BinaryIO:
    """The object's streaming body: read(n) pulls from the socket, nothing is buffered whole."""
    try:
        response = _client(storage).get_object(Bucket=storage.bucket_name, Key=_key(storage, name))
    except _client(storage).exceptions.NoSuchKey:
        raise FileNotFoundError(name) from None
    return response["Body"]


def open_span(storage: S3Storage, name: str, start: int, stop: int) -> BinaryIO:
    """The streaming body of bytes ``start`` to ``stop`` (exclusive) of the object, from
    one ranged GET (RFC 9110 section 14.1.2): only those bytes cross the network.

    Raises FileNotFoundError when the object does not exist.
    """
    client = _client(storage)
    try:
        response = client.get_object(
            Bucket=storage.bucket_name, Key=_key(storage, name), Range=f"bytes={start}-{stop - 1}"
        )
    except client.exceptions.NoSuchKey:
        raise FileNotFoundError(name) from None
    return response["Body"]


def object_size(storage: S3Storage, name: str) -> int:
    """The object's length in bytes, from a HEAD request (no byte of it is read).

    Raises FileNotFoundError when the object does not exist.
    """
    client = _client(storage)
    try:
        response = client.head_object(Bucket=storage.bucket_name, Key=_key(storage, name))
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            raise FileNotFoundError(name) from None
        raise
    return int(response["ContentLength"])


def abort_stale_uploads(
    storage: S3Storage,
    older_than: datetime,
    *,
    dry_run: bool,
    keep: Collection[str] = (),
) -> int:
    """Abort multipart uploads started before ``older_than`` (left by a killed server),
    except those whose UploadId is in ``keep`` (unfinished resumable uploads' rows)."""
    client = _client(storage)
    paginator = client.get_paginator("list_multipart_uploads")
    aborted = 0
    for page in paginator.paginate(Bucket=storage.bucket_name):
        for upload in page.get("Uploads", ()):
            if upload["Initiated"] < older_than and upload["UploadId"] not in keep:
                if not dry_run:
                    client.abort_multipart_upload(
                        Bucket=storage.bucket_name, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                aborted += 1
    return aborted


def list_objects(storage: S3Storage, prefix: str) -> Iterator[tuple[str, datetime]]:
    """(name, last modified) of every object under ``prefix``, a page of 1,000 at a time.

    Names are the storage's own (without AWS_LOCATION), as the rows record them.
    """
    location = _key(storage, prefix)
    strip = len(location) - len(prefix)
    paginator = _client(storage).get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=location):
        for item in page.get("Contents", ()):
            yield item["Key"][strip:], item["LastModified"]
