"""Thin views: authenticate, look up through a selector, call a service, answer."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST, require_safe

from sharing import names, selectors, services
from sharing.crypto import BlobIntegrityError, DecryptingReader, KeyProblem
from sharing.models import StoredFile
from sharing.storage import get_encrypted_storage
from sharing.uploads import EncryptedUpload, EncryptingUploadHandler

logger = logging.getLogger(__name__)
FILES_PER_PAGE = 50


@never_cache
@login_required
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(selectors.files_owned_by(user=request.user), FILES_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    return render(
        request, "sharing/home.html", {"page": page, "max_upload_mb": settings.MAX_UPLOAD_MB}
    )


@never_cache
@login_required
@require_safe
def file_detail(request: HttpRequest, file_id: uuid.UUID) -> HttpResponse:
    stored = selectors.file_get_for_owner(user=request.user, file_id=file_id)
    return render(request, "sharing/file_detail.html", {"file": stored})


# -- upload


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _too_large(request: HttpRequest) -> HttpResponse:
    message = _("The upload is larger than the limit of %(mb)d MB.") % {
        "mb": settings.MAX_UPLOAD_MB
    }
    return render(
        request, "error.html", {"title": _("Upload too large"), "message": message}, status=413
    )


@csrf_exempt  # CSRF is checked by _upload_checked, once our handler is in place
@login_required
@require_POST
def upload(request: HttpRequest) -> HttpResponseBase:
    # Refuse an over-size body before one byte of it is read.
    if _content_length(request) > settings.MAX_UPLOAD_BYTES:
        return _too_large(request)
    handler = EncryptingUploadHandler(
        request, storage=get_encrypted_storage(), max_bytes=settings.MAX_UPLOAD_BYTES
    )
    request.upload_handlers = [handler]
    adopted: set[str] = set()
    try:
        return _upload_checked(request, handler, adopted)
    finally:
        # Whatever happened (CSRF failure, refused size, broken body, database error),
        # blobs that no committed row points to are gone before the response leaves.
        handler.discard_unadopted(adopted)


@csrf_protect
def _upload_checked(
    request: HttpRequest, handler: EncryptingUploadHandler, adopted: set[str]
) -> HttpResponse:
    uploads = [f for f in request.FILES.getlist("file") if isinstance(f, EncryptedUpload)]
    if handler.too_large:
        return _too_large(request)
    if not uploads:
        message = _("Choose at least one file to upload.")
        return render(
            request, "error.html", {"title": _("No file"), "message": message}, status=400
        )
    created = services.file_create_many(owner=request.user, uploads=uploads)
    adopted.update(stored.blob.name for stored in created)
    for stored in created:
        messages.success(
            request, _("Uploaded “%(name)s”.") % {"name": names.attachment_name(stored.name)}
        )
    return redirect("sharing:home")


# -- download


@login_required
@require_safe
def download(request: HttpRequest, file_id: uuid.UUID) -> HttpResponseBase:
    stored = selectors.file_get_for_reader(user=request.user, file_id=file_id)
    return stream_file(request, stored)


def _download_headers(response: HttpResponseBase, stored: StoredFile) -> HttpResponseBase:
    response["Content-Length"] = str(stored.size)
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=names.attachment_name(stored.name)
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    # Belt and braces: even if a browser ignored "attachment", nothing in it may run.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _integrity_failure(request: HttpRequest, stored: StoredFile, reason: str) -> HttpResponse:
    logger.error("integrity error file=%s reason=%s", stored.id, reason)
    message = _(
        "The stored copy of this file could not be verified, so nothing was sent. "
        "The failure has been logged for the administrator."
    )
    context = {"title": _("File unavailable"), "message": message}
    return render(request, "error.html", context, status=502)


def _stream_rest(reader: DecryptingReader, stored: StoredFile, first: bytes) -> Iterator[bytes]:
    try:
        yield first
        yield from reader.segments()
    except BlobIntegrityError:
        # Headers are gone: the only honest signal left is to break the connection before
        # the promised Content-Length, so no client takes this for a complete file.
        logger.error("integrity error file=%s reason=later segment failed", stored.id)
        raise
    finally:
        reader.close()


def stream_file(request: HttpRequest, stored: StoredFile) -> HttpResponseBase:
    """Answer with the plaintext of a file the caller may read, verified segment by segment."""
    if request.method == "HEAD":
        return _download_headers(HttpResponse(content_type=stored.content_type), stored)
    try:
        reader = selectors.file_open_plaintext(file=stored)
    except (BlobIntegrityError, KeyProblem, OSError) as exc:
        return _integrity_failure(request, stored, type(exc).__name__)
    segments = reader.segments()
    try:
        first = next(segments)  # verified before any header is sent
    except BlobIntegrityError:
        reader.close()
        return _integrity_failure(request, stored, "first segment failed")
    response = StreamingHttpResponse(
        _stream_rest(reader, stored, first), content_type=stored.content_type
    )
    return _download_headers(response, stored)


# -- delete


@login_required
@require_POST
def delete(request: HttpRequest, file_id: uuid.UUID) -> HttpResponse:
    stored = selectors.file_get_for_owner(user=request.user, file_id=file_id)
    display_name = names.attachment_name(stored.name)
    services.file_delete(file=stored)
    messages.success(request, _("Deleted “%(name)s”.") % {"name": display_name})
    return redirect("sharing:home")
