"""Streaming a file's plaintext, verified segment by segment, with its headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, cast

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.utils.translation import gettext as _

from audit.actors import Actor, actor_from_request
from securefiles.lib import metrics
from securefiles.lib.streams import StreamCut
from sharing import names, selectors, services
from sharing.crypto import BlobIntegrityError, DecryptingReader, KeyProblem
from sharing.crypto.ahead import READ_AHEAD_SEGMENTS, read_ahead
from sharing.models import StoredFile
from sharing.views.ranges import ByteRange, Unsatisfiable, if_range_allows, parse_range

logger = logging.getLogger(__name__)


def _download_headers(
    response: HttpResponseBase, stored: StoredFile, validators: Validators
) -> HttpResponseBase:
    response["Content-Length"] = str(stored.size)
    # An ASCII filename= beside filename* for non-ASCII names (RFC 6266 section 4.3).
    response["Content-Disposition"] = names.content_disposition(stored.name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    # Belt and braces: even if a browser ignored "attachment", nothing in it may run.
    # frame-ancestors does not fall back to default-src, so it is spelled out: no site
    # may frame a download, as no site may frame a page.
    response["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'; sandbox"
    return _range_headers(response, validators)


def _range_headers(response: HttpResponseBase, validators: Validators) -> HttpResponseBase:
    # RFC 9110 section 14.3: on every download, so clients know they may resume.
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = validators.etag
    response["Last-Modified"] = http_date(validators.last_modified)
    return response


@dataclass(frozen=True)
class Validators:
    """A file's strong ETag (RFC 9110 section 8.8.3) and Last-Modified (seconds since the
    epoch, section 8.8.2): content never changes in place, so its creation time is it."""

    etag: str
    last_modified: int


def validators_of(stored: StoredFile) -> Validators:
    """The file's validators; reads the row only (no blob)."""
    return Validators(selectors.file_etag(file=stored), int(stored.created_at.timestamp()))


def requested_range(
    request: HttpRequest, stored: StoredFile, validators: Validators
) -> ByteRange | Unsatisfiable | None:
    """The range a GET or POST asks for (RFC 9110 section 14.2): None for the whole file
    (no Range, a HEAD, invalid syntax, or an If-Range that no longer matches), else the
    one ByteRange to send, or UNSATISFIABLE (416). Never raises."""
    header = request.headers.get("Range")
    if header is None or request.method not in ("GET", "POST"):
        return None
    wanted = parse_range(header, stored.size)
    if wanted is None:
        return None
    if not if_range_allows(request, etag=validators.etag, last_modified=validators.last_modified):
        return None
    return wanted


def preconditions_refused(request: HttpRequest, validators: Validators) -> HttpResponse | None:
    """The answer when a request's preconditions fail (RFC 9110 section 13.2.2, evaluated
    by Django's get_conditional_response): 412 for a failed If-Match or
    If-Unmodified-Since, or an If-None-Match that matches on a POST; 304 for a matching
    If-None-Match or a passed If-Modified-Since on a GET or HEAD, with the validators.
    None when the download may go on (If-Range is requested_range's)."""
    described = HttpResponse()
    _range_headers(described, validators)
    described["Cache-Control"] = "private, no-store"
    answer = get_conditional_response(
        request,
        etag=validators.etag,
        last_modified=validators.last_modified,
        response=described,
    )
    if answer is None or answer is described:
        return None
    answer["Cache-Control"] = "private, no-store"
    return answer


def _unsatisfiable(stored: StoredFile, validators: Validators) -> HttpResponse:
    response = HttpResponse(status=416, content_type="text/plain")
    response["Content-Range"] = f"bytes */{stored.size}"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    _range_headers(response, validators)
    return response


def _integrity_failure(
    request: HttpRequest, stored: StoredFile, reason: str, *, actor: Actor, via: str
) -> HttpResponse:
    _record_integrity_failure(stored, reason, actor=actor, via=via)
    message = _(
        "The stored copy of this file could not be verified, so nothing was sent. "
        "The failure has been logged for the administrator."
    )
    context = {"title": _("File unavailable"), "message": message}
    return render(request, "error.html", context, status=502)


def _record_integrity_failure(stored: StoredFile, reason: str, *, actor: Actor, via: str) -> None:
    """Server log, metrics and audit chain. Also runs mid-stream, headers sent: never raises."""
    metrics.integrity_failure_observed()
    logger.error("integrity error file=%s reason=%s", stored.id, reason)
    try:
        services.file_integrity_failed(file=stored, actor=actor, reason=reason, via=via)
    except Exception:  # the audit is down too: the log line above must do
        logger.exception("integrity error not audited file=%s", stored.id)


def _read_ahead(chunks: Iterator[bytes], depth: int = READ_AHEAD_SEGMENTS) -> Iterator[bytes]:
    """Yield what ``chunks`` yields, decrypted ahead by a thread (see sharing.crypto.ahead):
    while the request thread's sendall copies one segment into the socket, the next ones
    are read and authenticated."""
    return read_ahead(chunks, depth, name="download-read-ahead")


def _stream_rest(
    chunks: Iterator[bytes],
    reader: DecryptingReader,
    first: bytes,
    on_failure: Callable[[str], None],
) -> Iterator[bytes]:
    try:
        yield first
        del first
        yield from _read_ahead(chunks)
    except BlobIntegrityError:
        # Headers are gone: the only honest signal left is to break the connection before
        # the promised Content-Length, so no client takes this for a complete file.
        on_failure("later segment failed")
        raise
    finally:
        reader.close()


def stream_file(
    request: HttpRequest,
    stored: StoredFile,
    *,
    via: str,
    actor: Actor | None = None,
    on_verified: Callable[[ByteRange | None], None] | None = None,
    byte_range: ByteRange | Unsatisfiable | None | Literal["request"] = "request",
    meter: Meter | None = None,
) -> HttpResponseBase:
    """Answer with the plaintext of a file the caller may read, verified segment by segment.

    ``byte_range`` "request" honours the request's own ``Range`` / ``If-Range`` (RFC 9110
    section 14.2): 206 with Content-Range and the range's Content-Length (section 15.3.7),
    416 with ``Content-Range: bytes */size`` when unsatisfiable (section 15.5.17), 200
    with the whole file otherwise; a caller that already looked (share links) passes what
    ``requested_range`` found. Only the segments the range needs are read.

    ``via`` ("owner", "colleague", "link ...") and ``actor`` (default: the request's user)
    go into the audit entry of an integrity failure. ``on_verified`` gets the range (None
    for the whole file) once the first segment released verified, before any header is
    sent (a GET or POST, not a HEAD). A first segment that fails answers 502, nothing sent.

    ``meter`` (a share link's claim) is asked before each piece whether the bytes up to
    its end may go (``allow``), and told the body bytes handed to the server exactly once
    (``finished``): at once with 0 for an answer without the file (HEAD, 416, 502, 304,
    412), else when the response is closed (the last byte, an integrity failure, a
    client that left, or a refusal of ``allow``, which cuts the stream: StreamCut).
    """
    response = _stream_file(
        request, stored, via=via, actor=actor, on_verified=on_verified, byte_range=byte_range
    )
    if meter is None:
        return response
    if isinstance(response, StreamingHttpResponse):
        # Ours are never async: _stream_file gives a plain iterator.
        chunks = cast(Iterator[bytes], response.streaming_content)
        response.streaming_content = SentCounter(chunks, meter)
    else:
        meter.finished(0)
    return response


class Meter(Protocol):
    """What counts a response's bytes against a budget (sharing.views.links)."""

    def allow(self, through: int) -> bool:
        """Whether the body's bytes up to ``through`` (from its first byte) may be sent."""
        ...

    def finished(self, sent: int) -> None:
        """The response closed having handed ``sent`` body bytes to the server."""
        ...


class SentCounter:
    """An iterator over ``chunks`` (bytes) that yields them in pieces of at most
    PIECE_BYTES, each only once ``meter.allow`` lets it go (else StreamCut), and when
    closed (WSGI servers close every response, PEP 3333, even one whose client left
    before the first byte) tells ``meter.finished(bytes yielded)`` once. A piece counts
    once yielded, written or not, so a client that leaves costs at most one piece beyond
    what reached its socket; hence the small pieces (a segment is 1 MiB). A class, not a
    generator: a generator closed before its first ``next`` never runs its ``finally``."""

    PIECE_BYTES = 256 * 1024

    def __init__(self, chunks: Iterator[bytes], meter: Meter) -> None:
        self._chunks = chunks
        self._meter: Meter | None = meter
        self._chunk = b""
        self._at = 0
        self.sent = 0

    def __iter__(self) -> SentCounter:
        return self

    def __next__(self) -> bytes:
        if self._at >= len(self._chunk):
            self._chunk, self._at = next(self._chunks), 0
        piece = self._chunk
        if self._at or len(piece) > self.PIECE_BYTES:
            piece = self._chunk[self._at : self._at + self.PIECE_BYTES]
        if self._meter is not None and not self._meter.allow(self.sent + len(piece)):
            raise StreamCut("the share link's byte budget ran out")
        self._at += len(piece)
        self.sent += len(piece)
        return piece

    def close(self) -> None:
        meter, self._meter = self._meter, None
        if meter is None:
            return
        self._chunk = b""
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            meter.finished(self.sent)


def _stream_file(
    request: HttpRequest,
    stored: StoredFile,
    *,
    via: str,
    actor: Actor | None,
    on_verified: Callable[[ByteRange | None], None] | None,
    byte_range: ByteRange | Unsatisfiable | None | Literal["request"],
) -> HttpResponseBase:
    started = time.monotonic()
    validators = validators_of(stored)
    refused = preconditions_refused(request, validators)
    if refused is not None:
        return refused
    if request.method == "HEAD":
        # Range is defined for GET only (section 14.2): a HEAD describes the whole file.
        head = HttpResponse(content_type=stored.content_type)
        return _download_headers(head, stored, validators)
    if byte_range == "request":
        byte_range = requested_range(request, stored, validators)
    if isinstance(byte_range, Unsatisfiable):
        return _unsatisfiable(stored, validators)
    who = actor or actor_from_request(request)

    def failed(reason: str) -> None:
        _record_integrity_failure(stored, reason, actor=who, via=via)

    start, stop = (0, stored.size) if byte_range is None else (byte_range.start, byte_range.stop)
    try:
        # Also checks the blob's length against the row's size (the Content-Length).
        reader = selectors.file_open_plaintext(file=stored)
    except (BlobIntegrityError, KeyProblem, OSError) as exc:
        return _integrity_failure(request, stored, _reason(exc), actor=who, via=via)
    chunks = reader.plaintext_range(start, stop)
    try:
        first = next(chunks)  # verified before any header is sent
    except (BlobIntegrityError, OSError) as exc:
        reader.close()
        reason = "first segment failed" if isinstance(exc, BlobIntegrityError) else _reason(exc)
        return _integrity_failure(request, stored, reason, actor=who, via=via)
    if on_verified is not None:
        on_verified(byte_range)
    response = StreamingHttpResponse(
        metrics.download_counted(_stream_rest(chunks, reader, first, failed), started),
        content_type=stored.content_type,
        status=200 if byte_range is None else 206,
    )
    _download_headers(response, stored, validators)
    if byte_range is not None:
        response["Content-Range"] = byte_range.content_range
        response["Content-Length"] = str(byte_range.length)
    return response


def _reason(exc: Exception) -> str:
    """What failed, for the log and the audit entry: the error's type and its fixed text."""
    if isinstance(exc, BlobIntegrityError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__  # an OSError's text may hold a path
