"""Streaming a file's plaintext, verified segment by segment, with its headers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.utils.translation import gettext as _

from audit.actors import Actor, actor_from_request
from sharing import names, selectors, services
from sharing.crypto import BlobIntegrityError, DecryptingReader, KeyProblem
from sharing.models import StoredFile

logger = logging.getLogger(__name__)


def _download_headers(response: HttpResponseBase, stored: StoredFile) -> HttpResponseBase:
    response["Content-Length"] = str(stored.size)
    # An ASCII filename= beside filename* for non-ASCII names (RFC 6266 section 4.3).
    response["Content-Disposition"] = names.content_disposition(stored.name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    # Belt and braces: even if a browser ignored "attachment", nothing in it may run.
    # frame-ancestors does not fall back to default-src, so it is spelled out: no site
    # may frame a download, as no site may frame a page.
    response["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'; sandbox"
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
    """Server log and audit chain. Also runs mid-stream, headers sent: never raises."""
    logger.error("integrity error file=%s reason=%s", stored.id, reason)
    try:
        services.file_integrity_failed(file=stored, actor=actor, reason=reason, via=via)
    except Exception:  # the audit is down too: the log line above must do
        logger.exception("integrity error not audited file=%s", stored.id)


def _stream_rest(
    reader: DecryptingReader,
    stored: StoredFile,
    first: bytes,
    on_failure: Callable[[str], None],
    on_incomplete: Callable[[], None] | None,
) -> Iterator[bytes]:
    complete = False
    try:
        yield first
        yield from reader.segments()
        complete = True
    except BlobIntegrityError:
        # Headers are gone: the only honest signal left is to break the connection before
        # the promised Content-Length, so no client takes this for a complete file.
        on_failure("later segment failed")
        raise
    finally:
        reader.close()
        if not complete and on_incomplete is not None:
            on_incomplete()


def stream_file(
    request: HttpRequest,
    stored: StoredFile,
    *,
    via: str,
    actor: Actor | None = None,
    on_incomplete: Callable[[], None] | None = None,
    on_verified: Callable[[], None] | None = None,
) -> HttpResponseBase:
    """Answer with the plaintext of a file the caller may read, verified segment by segment.

    ``via`` ("owner", "colleague", "link") and ``actor`` (default: the request's user) go
    into the audit entry of an integrity failure. ``on_verified`` runs once the first
    segment verified, before any header is sent (a GET, not a HEAD); ``on_incomplete``
    runs if the transfer stops before its last byte (a link gives its download back).
    """
    if request.method == "HEAD":
        return _download_headers(HttpResponse(content_type=stored.content_type), stored)
    who = actor or actor_from_request(request)

    def failed(reason: str) -> None:
        _record_integrity_failure(stored, reason, actor=who, via=via)

    try:
        # Also checks the blob's length against the row's size (the Content-Length).
        reader = selectors.file_open_plaintext(file=stored)
    except (BlobIntegrityError, KeyProblem, OSError) as exc:
        _run(on_incomplete)
        return _integrity_failure(request, stored, _reason(exc), actor=who, via=via)
    segments = reader.segments()
    try:
        first = next(segments)  # verified before any header is sent
    except BlobIntegrityError:
        reader.close()
        _run(on_incomplete)
        return _integrity_failure(request, stored, "first segment failed", actor=who, via=via)
    _run(on_verified)
    response = StreamingHttpResponse(
        _stream_rest(reader, stored, first, failed, on_incomplete),
        content_type=stored.content_type,
    )
    return _download_headers(response, stored)


def _reason(exc: Exception) -> str:
    """What failed, for the log and the audit entry: the error's type and its fixed text."""
    if isinstance(exc, BlobIntegrityError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__  # an OSError's text may hold a path


def _run(callback: Callable[[], None] | None) -> None:
    if callback is not None:
        callback()
