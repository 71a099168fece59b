"""The upload view: the encrypting handler, CSRF after it, refusals that name their limit."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    multipartparser,
)
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from audit.actors import actor_from_request
from securefiles.lib import metrics
from securefiles.lib.auth_types import AuthenticatedHttpRequest
from securefiles.lib.negotiation import prefers_json
from securefiles.lib.transactions import RETRY_AFTER_SECONDS, TryAgain
from sharing import display, names, selectors, services
from sharing.forms import UploadOptionsForm
from sharing.models import StoredFile
from sharing.storage import BlobWriteFailed, get_encrypted_storage
from sharing.storage.uploads import EncryptedUpload, EncryptingUploadHandler

logger = logging.getLogger(__name__)


# Django 5.2.19 defines it; django-stubs 5.2.9 does not declare it yet.
MAX_TOTAL_HEADER_SIZE: int = multipartparser.MAX_TOTAL_HEADER_SIZE  # type: ignore[attr-defined]


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _usage_json(request: AuthenticatedHttpRequest) -> dict:
    """The user's storage as the page shows it: {"bytes", "quota" (bytes or None), "text",
    "short"} ("short" is the header's "X of Y", "" without a quota)."""
    used = selectors.usage_of(user=request.user)
    quota = selectors.quota_of(user=request.user)
    short = ""
    if quota:
        sizes = {"used": display.human_size(used), "total": display.human_size(quota)}
        text = _("Using %(used)s of %(total)s.") % sizes
        short = _("%(used)s of %(total)s") % sizes
    else:
        text = _("Using %(used)s.") % {"used": display.human_size(used)}
    return {"bytes": used, "quota": quota, "text": text, "short": short}


def _upload_refused(
    request: AuthenticatedHttpRequest, status: int, title: str, message: str
) -> HttpResponse:
    """A refused upload, as JSON ``{"error", "usage"}`` for the page's script, else a page.

    The usage rides along so that the page shows the server's state after every answer.
    """
    if prefers_json(request):
        return JsonResponse({"error": message, "usage": _usage_json(request)}, status=status)
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def write_failed_answer(failed: BlobWriteFailed) -> tuple[int, str, str]:
    """(status, title, message) for an upload whose blob the disk refused: 507
    Insufficient Storage (RFC 4918 section 11.5) when it is out of space, else 503 (send
    Retry-After with it). Nothing of the upload was stored either way."""
    if failed.full:
        message = _("The server has no room to store this upload now. Nothing was stored.")
        return 507, _("No room on the server"), message
    message = _("The server could not store this upload. Nothing was stored; try again later.")
    return 503, _("Try again"), message


def _write_failed(request: AuthenticatedHttpRequest, failed: BlobWriteFailed) -> HttpResponse:
    logger.error("upload refused: %s", failed)
    status, title, message = write_failed_answer(failed)
    refused = _upload_refused(request, status, title, message)
    if status == 503:
        refused["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return refused


def _too_large(request: AuthenticatedHttpRequest) -> HttpResponse:
    message = _("The upload is larger than the limit of %(mb)d MiB. Nothing was stored.") % {
        "mb": settings.MAX_UPLOAD_MB
    }
    return _upload_refused(request, 413, _("Upload too large"), message)


def _too_large_for_format(request: AuthenticatedHttpRequest, limit: int) -> HttpResponse:
    message = _(
        "The file is too large for this segment size: one file can hold at most "
        "%(limit)d bytes (%(size)s). Nothing was stored."
    ) % {"limit": limit, "size": display.human_size(limit)}
    return _upload_refused(request, 413, _("Upload too large"), message)


def _over_quota(request: AuthenticatedHttpRequest) -> HttpResponse:
    quota = selectors.quota_of(user=request.user) or 0
    message = _(
        "This upload would exceed your storage quota of %(quota)s (%(used)s used). Delete "
        "files you no longer need, or ask an administrator for more space. Nothing was stored."
    ) % {
        "quota": display.human_size(quota),
        "used": display.human_size(selectors.usage_of(user=request.user)),
    }
    return _upload_refused(request, 413, _("Quota exceeded"), message)


def _unparseable(request: AuthenticatedHttpRequest, exc: Exception) -> HttpResponse:
    """The answer to a body Django's parser refused, naming the limit it hit."""
    if isinstance(exc, TooManyFilesSent):
        message = _("An upload may hold at most %(n)d files. Nothing was stored.") % {
            "n": settings.DATA_UPLOAD_MAX_NUMBER_FILES
        }
        return _upload_refused(request, 400, _("Too many files"), message)
    if isinstance(exc, TooManyFieldsSent):
        message = _("An upload may hold at most %(n)d form fields. Nothing was stored.") % {
            "n": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        }
        return _upload_refused(request, 400, _("Too many fields"), message)
    if isinstance(exc, RequestDataTooBig):
        message = _(
            "The form fields of an upload (everything but its files) may take at most "
            "%(n)d bytes. Nothing was stored."
        ) % {"n": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
        return _upload_refused(request, 413, _("Upload too large"), message)
    if "header size" in str(exc):
        # Django's parser gives each part (one file) MAX_TOTAL_HEADER_SIZE bytes of
        # headers, its name included; it says so only in its exception's text.
        message = _(
            "The headers of a file in this upload, its name included, take more than the "
            "%(n)d bytes allowed (a name of about %(chars)d characters in Latin letters, "
            "fewer in other scripts). Rename the file to something shorter and upload it "
            "again. Nothing was stored."
        ) % {"n": MAX_TOTAL_HEADER_SIZE, "chars": MAX_TOTAL_HEADER_SIZE - 124}
        return _upload_refused(request, 400, _("File name too long"), message)
    message = _(
        "The upload could not be read as a multipart/form-data body (with a file field "
        "“file”, at most %(mb)d MiB in all). Nothing was stored."
    ) % {"mb": settings.MAX_UPLOAD_MB}
    return _upload_refused(request, 400, _("Bad upload"), message)


def _uploaded(request: AuthenticatedHttpRequest, created: list[StoredFile]) -> HttpResponse:
    """201 with ``{"files": [...], "usage": {...}}`` for the script, else back to the list."""
    if prefers_json(request):
        body = {"files": [_file_json(stored) for stored in created], "usage": _usage_json(request)}
        return JsonResponse(body, status=201)
    for stored in created:
        messages.success(
            request, _("Uploaded “%(name)s”.") % {"name": names.attachment_name(stored.name)}
        )
    return redirect("sharing:home")


def _file_json(stored: StoredFile) -> dict:
    return {
        "id": str(stored.id),
        "name": names.display_name(stored.name),
        "size": stored.size,
        "size_display": display.human_size(stored.size),
        "content_type": stored.content_type,
        "kind": display.file_kind(stored.content_type),
        "created_at": stored.created_at.isoformat(),
        "expires_at": stored.expires_at.isoformat() if stored.expires_at else None,
        "expires_display": _expiry_text(stored),
        "download_url": reverse("sharing:download", args=[stored.id]),
        "detail_url": reverse("sharing:file_detail", args=[stored.id]),
    }


def _expiry_text(stored: StoredFile) -> str:
    """What the file's page says under "Deleted automatically", as one sentence."""
    if stored.expires_at is None:
        return _("Deleted automatically: never.")
    return _("Deleted automatically: %(when)s.") % {"when": display.when(stored.expires_at)}


@csrf_exempt  # CSRF is checked by _upload_checked, once our handler is in place
@login_required
@require_POST
def upload(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    started = time.monotonic()
    # Refuse an over-size body, or any body from a user with no space left, before one
    # byte of it is read.
    if _content_length(request) > settings.MAX_UPLOAD_BYTES:
        return _too_large(request)
    quota_left = selectors.quota_left(user=request.user)
    if quota_left is not None and quota_left <= 0 and _content_length(request) > 0:
        return _over_quota(request)
    handler = EncryptingUploadHandler(
        request,
        storage=get_encrypted_storage(),
        max_bytes=settings.MAX_UPLOAD_BYTES,
        quota_left=quota_left,
        scan_start=services.scan_start,
    )
    request.upload_handlers = [handler]
    adopted: set[str] = set()
    try:
        return _upload_checked(request, handler, adopted, started)
    except (MultiPartParserError, TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig) as exc:
        # Raised while the body is parsed (by the CSRF check reading its token, or by
        # request.FILES): answered here, in the format asked for and naming the limit,
        # rather than by Django's generic 400 page.
        return _unparseable(request, exc)
    finally:
        # Whatever happened (CSRF failure, refused size, broken body, database error),
        # blobs that no committed row points to are gone before the response leaves.
        handler.discard_unadopted(adopted)


@csrf_protect
def _upload_checked(
    request: AuthenticatedHttpRequest,
    handler: EncryptingUploadHandler,
    adopted: set[str],
    started: float,
) -> HttpResponse:
    uploads = [f for f in request.FILES.getlist("file") if isinstance(f, EncryptedUpload)]
    if handler.write_failed is not None:
        return _write_failed(request, handler.write_failed)
    if handler.too_large:
        return _too_large(request)
    if handler.format_limit is not None:
        return _too_large_for_format(request, handler.format_limit)
    if handler.over_quota:
        return _over_quota(request)
    if handler.interrupted:
        message = _("The upload ended before its last file was complete; nothing was stored.")
        return _upload_refused(request, 400, _("Upload incomplete"), message)
    if not uploads:
        message = _("Choose at least one file to upload.")
        return _upload_refused(request, 400, _("No file"), message)
    form = UploadOptionsForm(request.POST)
    if not form.is_valid():
        message = " ".join(str(error) for error in form.errors.get("expires_in_days", []))
        return _upload_refused(request, 400, _("Invalid expiry"), message)
    try:
        services.scan_check_uploads(
            uploads, visitor=False, owner=request.user, actor=actor_from_request(request)
        )
    except services.ScanRefused as exc:
        refused = _upload_refused(request, exc.status, _("File refused"), exc.message)
        if exc.status == 503:  # the scanner is down: nothing wrong with the file
            refused["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return refused
    try:
        created = services.file_create_many(
            owner=request.user,
            uploads=uploads,
            actor=actor_from_request(request),
            expires_at=form.expires_at(),
        )
    except services.QuotaExceeded:
        return _over_quota(request)
    except TryAgain:
        message = _("The server is busy; nothing was stored. Please upload again.")
        response = _upload_refused(request, 503, _("Try again"), message)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    adopted.update(stored.blob.name for stored in created)
    metrics.upload_observed(kind="form", size=sum(f.size for f in created), started=started)
    return _uploaded(request, created)
