"""tus 1.0.0 resumable uploads (https://tus.io/protocols/resumable-upload): core (HEAD,
PATCH, OPTIONS) and the creation, termination and expiration extensions.

Logged-in users by session (the CSRF token as the X-CSRFToken header), or a personal
access token with the write scope (``Authorization: Bearer sf_...``, no CSRF); anonymous
requests get 403 (401 would need a WWW-Authenticate scheme the session has not); or a
file-request visitor, whom filerequests' views vouch for with a Visitor (uploads into the
request's owner's space, and only their own). Who may touch an upload is decided in one
place, _uploader. An unfinished upload is its owner's alone: anyone else gets 404. The
writes are the resumable_* services.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from accounts import tokens
from audit.actors import Actor, actor_from_request
from securefiles.lib import metrics
from securefiles.lib.auth_types import User
from securefiles.lib.transactions import RETRY_AFTER_SECONDS, TryAgain
from sharing import selectors, services
from sharing.crypto import BlobIntegrityError
from sharing.forms import UploadOptionsForm
from sharing.models import ResumableUpload

logger = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
PATCH_CONTENT_TYPE = "application/offset+octet-stream"

_STATUS_OF: dict[type[Exception], int] = {
    services.UploadTooLarge: 413,
    services.QuotaExceeded: 413,
    services.TooManyUnfinished: 429,
    services.UploadBusy: 423,
    services.UploadExpired: 410,
    services.UploadGone: 404,
    services.UploadClosed: 404,
    services.OffsetMismatch: 409,
    services.ResumableUnsupported: 501,
    services.PatchTooSmall: 400,
    services.StorageFull: 507,
    services.StorageFailed: 503,
}


def _answer(status: int, message: str = "", **headers: str) -> HttpResponse:
    """A tus answer: Tus-Resumable on every one (tus 1.0.0 "Tus-Resumable"), a short
    plain-text reason for the errors, never cached."""
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Tus-Resumable"] = TUS_VERSION
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _refused(exc: Exception) -> HttpResponse:
    if isinstance(exc, services.ScanRefused):
        # 422 naming the signature (the upload is deleted), 413 past the scanner's limit
        # (deleted), or 503 with the scanner down: the complete upload is kept, and a
        # client's retry (HEAD, then PATCH) finishes it once clamd answers.
        retry = {"Retry_After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else {}
        return _answer(exc.status, exc.message, **retry)
    status = next(code for kind, code in _STATUS_OF.items() if isinstance(exc, kind))
    retry = {"Retry_After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}
    if isinstance(exc, services.TooManyUnfinished):
        retry = {"Retry_After": str(exc.retry_after)}
    return _answer(status, (exc.__doc__ or "").split("\n")[0].strip(), **retry)


# Why a request may not upload, as tus answers carry it (accounts.tokens reason codes).
_REFUSED_AS = {
    tokens.UNAUTHENTICATED: (403, "Log in to upload."),
    tokens.INVALID_TOKEN: (401, "The access token is unknown, revoked or expired."),
    tokens.SECOND_FACTOR: (403, "Log in to upload."),
    tokens.CSRF: (403, "CSRF check failed: send the X-CSRFToken header."),
    tokens.SCOPE: (403, "The access token lacks the write scope."),
    tokens.THROTTLED: (429, "Too many requests with this token."),
}


@dataclass(frozen=True)
class Visitor:
    """A file-request visitor as filerequests' views vouch for one (the request is live
    and its password, if any, given in this session): uploads land in ``owner``'s space,
    audited as ``actor``; ``may_touch(upload_id)`` says whether an upload is theirs,
    ``scope`` ties a new one to the request (whose own cap of unfinished uploads it
    counts against, not the owner's), ``created(upload)`` remembers it for the visitor,
    ``url(upload_id)`` is its tus URL."""

    owner: User
    actor: Actor
    may_touch: Callable[[uuid.UUID], bool]
    scope: services.UnfinishedScope
    created: Callable[[ResumableUpload], None]
    url: Callable[[uuid.UUID], str]


def _uploader(request: HttpRequest, visitor: Visitor | None = None) -> User | HttpResponse:
    """Who may create and continue resumable uploads for this request, or the answer
    refusing it: a logged-in session (with its CSRF token, checked here since the views
    are csrf_exempt) or an ``Authorization: Bearer`` access token with the write scope
    (no CSRF; accounts.tokens.authenticate, as the HTTP API decides); or a file-request
    ``visitor`` (with the CSRF token of their session), for the request's owner."""
    if visitor is not None:
        if tokens.csrf_refused(request):
            return _answer(*_REFUSED_AS[tokens.CSRF])
        return visitor.owner
    caller = tokens.authenticate(
        request, scope="write", count_sessions=False, count_tokens=request.method != "PATCH"
    )
    if caller.user is not None:
        return caller.user
    status, message = _REFUSED_AS[caller.refused]
    headers = {}
    if status == 401:
        headers["WWW_Authenticate"] = 'Bearer realm="securefiles", error="invalid_token"'
    if status == 429:
        headers["Retry_After"] = str(caller.retry_after)
    return _answer(status, message, **headers)


def _digits(value: str | None) -> int | None:
    """A non-negative integer header (ASCII digits only), or None if absent or malformed."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    return int(value)


def _metadata(header: str) -> dict[str, str] | None:
    """Upload-Metadata (tus "creation"): comma-separated "key base64(value)" pairs, the
    value optional. None if malformed (bad base64, not UTF-8, a key twice)."""
    pairs: dict[str, str] = {}
    for item in header.split(","):
        parts = item.strip().split(" ")
        if not parts[0] or len(parts) > 2 or parts[0] in pairs:
            return None
        try:
            value = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
            pairs[parts[0]] = value.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    return pairs


def _expires_header(upload: ResumableUpload) -> str:
    return http_date(upload.expires_at.timestamp())


def _options() -> HttpResponse:
    return _answer(
        204,
        Tus_Version=TUS_VERSION,
        Tus_Extension=TUS_EXTENSIONS,
        Tus_Max_Size=str(settings.MAX_UPLOAD_BYTES),
    )


def _version_refused(request: HttpRequest) -> HttpResponse | None:
    """412 with Tus-Version unless the request speaks tus 1.0.0 (tus "Tus-Resumable")."""
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        return _answer(412, "Tus-Resumable 1.0.0 is required.", Tus_Version=TUS_VERSION)
    return None


def _actor(request: HttpRequest, visitor: Visitor | None) -> Actor:
    return visitor.actor if visitor is not None else actor_from_request(request)


@csrf_exempt  # a bearer token needs no CSRF token; _uploader checks a session's
def uploads(request: HttpRequest, visitor: Visitor | None = None) -> HttpResponse:
    """/files/uploads/: OPTIONS (tus "OPTIONS") and POST (tus "creation"); also a file
    request's, for its ``visitor`` (filerequests.views)."""
    if request.method == "OPTIONS":
        return _options()
    if request.method != "POST":
        return _answer(405, "Allowed: OPTIONS, POST.", Allow="OPTIONS, POST")
    user = _uploader(request, visitor)
    if isinstance(user, HttpResponse):
        return user
    refused = _version_refused(request)
    if refused is not None:
        return refused
    if "Upload-Defer-Length" in request.headers:
        return _answer(400, "Upload-Defer-Length is not supported; send Upload-Length.")
    length = _digits(request.headers.get("Upload-Length"))
    if length is None:
        return _answer(400, "Upload-Length (a number of bytes) is required.")
    metadata = (
        _metadata(request.headers.get("Upload-Metadata") or "")
        if (request.headers.get("Upload-Metadata"))
        else {}
    )
    if metadata is None:
        return _answer(400, "Upload-Metadata is malformed.")
    # A visitor does not choose how long the owner keeps a file.
    days = "" if visitor is not None else metadata.get("expires_in_days", "")
    form = UploadOptionsForm({"expires_in_days": days})
    if not form.is_valid():
        return _answer(400, " ".join(str(e) for e in form.errors.get("expires_in_days", [])))
    try:
        created = services.resumable_create(
            owner=user,
            length=length,
            name=metadata.get("filename", ""),
            content_type=metadata.get("filetype", ""),
            expires_in_days=form.cleaned_data["expires_in_days"],
            actor=_actor(request, visitor),
            scope=visitor.scope if visitor is not None else None,
        )
    except (services.ResumableRefused, services.QuotaExceeded, services.ScanRefused) as exc:
        return _refused(exc)
    except TryAgain:
        return _answer(503, "The server is busy; try again.", Retry_After=str(RETRY_AFTER_SECONDS))
    path = visitor.url(created.pk) if visitor else reverse("sharing:tus_upload", args=[created.pk])
    location = request.build_absolute_uri(path)
    if isinstance(created, ResumableUpload):
        if visitor is not None:
            visitor.created(created)
        return _answer(201, Location=location, Upload_Expires=_expires_header(created))
    return _answer(201, Location=location, Upload_Offset="0")  # empty: complete already


@csrf_exempt  # a bearer token needs no CSRF token; _uploader checks a session's
def upload(
    request: HttpRequest, upload_id: uuid.UUID, visitor: Visitor | None = None
) -> HttpResponse:
    """/files/uploads/<id>/: HEAD and PATCH (tus core), DELETE (tus "termination"),
    OPTIONS. Unknown or someone else's upload: 404; past Upload-Expires: 410. A file
    request's ``visitor`` reaches only the uploads they started (others: 404)."""
    if request.method == "OPTIONS":
        return _options()
    if request.method not in ("HEAD", "PATCH", "DELETE"):
        allowed = "HEAD, PATCH, DELETE, OPTIONS"
        return _answer(405, f"Allowed: {allowed}.", Allow=allowed)
    user = _uploader(request, visitor)
    if isinstance(user, HttpResponse):
        return user
    refused = _version_refused(request)
    if refused is not None:
        return refused
    if visitor is not None and not visitor.may_touch(upload_id):
        return _answer(404, "No such upload.")
    actor = _actor(request, visitor)
    if request.method == "DELETE":
        try:
            services.resumable_terminate(upload_id=upload_id, owner=user, actor=actor)
        except services.ResumableRefused as exc:
            return _refused(exc)
        return _answer(204)
    try:
        found = selectors.resumable_get_for_owner(user=user, upload_id=upload_id)
    except Http404:
        found = None
    if found is None and visitor is not None:
        # A file request's visitor learns nothing of a file once it is sent (the owner's).
        response = _answer(404, "No such upload.")
    elif found is None:
        response = _completed(request, user, upload_id)
    elif request.method == "HEAD":
        response = _head(actor, user, found)
    else:
        return _patch(request, actor, user, found)
    if request.method == "HEAD":
        response.content = b""  # a HEAD answer has no body (RFC 9110 section 9.3.2)
    return response


def _completed(request: HttpRequest, user: User, upload_id: uuid.UUID) -> HttpResponse:
    """An upload with no unfinished row: if it became this user's file (an upload's id is
    its file's id), it is answered as complete, Upload-Offset = Upload-Length = the
    file's size, as tus servers keep answering finished uploads (tusd does). A client
    whose completing PATCH lost its answer (the server was killed after the commit) then
    learns from HEAD that it is done, instead of a 404 that tus clients take for "start
    again" (a second copy of the file). A PATCH gets 409 (its offset is not the end), or
    204 when it is the end with an empty body. No such file of this user's: 404."""
    try:
        stored = selectors.file_get_for_owner(user=user, file_id=upload_id)
    except Http404:
        return _answer(404, "No such upload.")
    size = str(stored.size)
    if request.method == "HEAD":
        return _answer(200, Upload_Offset=size, Upload_Length=size)
    at_end = request.headers.get("Upload-Offset") == size
    if at_end and (request.META.get("CONTENT_LENGTH") or "0") == "0":
        return _answer(204, Upload_Offset=size)
    return _answer(409, "The upload is complete.", Upload_Offset=size)


def _head(actor: Actor, user: User, found: ResumableUpload) -> HttpResponse:
    """tus 1.0.0 "HEAD": the offset and length. An upload with every byte acknowledged
    but not completed (the server died in between) is completed here first, and answered
    as complete (Upload-Offset = Upload-Length), without waiting for another PATCH.

    Upload-Offset = Upload-Length is only ever answered once the file exists: a client
    takes it for "done". While another request holds the upload (a PATCH completing it,
    or the lease of one that died, until TUS_PATCH_LEASE_SECONDS) the answer is 423 with
    Retry-After, as for a PATCH; tus-js-client and the page retry it."""
    if found.expires_at <= timezone.now():
        return _answer(410)
    if found.offset == found.length:
        try:
            services.resumable_finish(upload_id=found.pk, owner=user, actor=actor)
        except services.UploadBusy:
            return _answer(423, Retry_After=str(_busy_retry_after(found)))
        except (services.ResumableRefused, services.QuotaExceeded, services.ScanRefused) as exc:
            return _refused(exc)
        except BlobIntegrityError:
            logger.error("resumable upload failed verification at completion id=%s", found.pk)
            return _answer(502)
        return _answer(200, Upload_Offset=str(found.length), Upload_Length=str(found.length))
    return _answer(
        200,
        Upload_Offset=str(found.offset),
        Upload_Length=str(found.length),
        Upload_Expires=_expires_header(found),
    )


def _busy(exc: services.UploadBusy, user: User, found: ResumableUpload) -> HttpResponse:
    """423 for a PATCH that found another one holding the upload, with Retry-After: the
    seconds left on that lease, read anew (the lease was taken after ``found`` was read)."""
    answer = _refused(exc)
    try:
        found = selectors.resumable_get_for_owner(user=user, upload_id=found.pk)
    except Http404:
        pass  # gone meanwhile: the next try learns it
    answer["Retry-After"] = str(_busy_retry_after(found))
    return answer


def _busy_retry_after(found: ResumableUpload) -> int:
    """Seconds until the lease on ``found`` runs out (at least 1): when a HEAD or PATCH
    may find it free (RFC 9110 section 10.2.3)."""
    until = found.patching_until
    left = (until - timezone.now()).total_seconds() if until is not None else 0
    return max(1, math.ceil(left))


def _patch(request: HttpRequest, actor: Actor, user: User, found: ResumableUpload) -> HttpResponse:
    """tus 1.0.0 "PATCH": 415 without application/offset+octet-stream, 411 for a chunked
    body without Content-Length, 409 at another offset, 413 for a body past Upload-Length,
    423 while another PATCH runs; 204 with the offset now stored otherwise."""
    if request.content_type != PATCH_CONTENT_TYPE:
        return _answer(415, f"Content-Type must be {PATCH_CONTENT_TYPE}.")
    offset = _digits(request.headers.get("Upload-Offset"))
    if offset is None:
        return _answer(400, "Upload-Offset (a number of bytes) is required.")
    # A body without Content-Length (chunked) is never read by a WSGI application: refuse
    # it rather than answer 204 with no progress (a client would loop for ever).
    if request.headers.get("Transfer-Encoding") and not request.META.get("CONTENT_LENGTH"):
        return _answer(411, "Content-Length is required (send the chunk with its length).")
    body_length = _digits(request.META.get("CONTENT_LENGTH") or "0")
    if body_length is None:
        return _answer(400, "Content-Length is malformed.")
    # A wrong offset is a 409 (checked again under the lease), even one past the end.
    if offset == found.offset and offset + body_length > found.length:
        return _answer(413, "The body goes past Upload-Length.")
    started = time.monotonic()
    try:
        leased, token = services.resumable_lease_take(upload_id=found.pk, owner=user, offset=offset)
        progress = services.resumable_append(
            upload=leased,
            token=token,
            read=_body_reader(request),
            body_length=body_length,
            actor=actor,
        )
    except services.UploadBusy as exc:
        return _busy(exc, user, found)
    except (services.ResumableRefused, services.QuotaExceeded, services.ScanRefused) as exc:
        return _refused(exc)
    except BlobIntegrityError:
        logger.error("resumable upload failed verification at completion id=%s", found.pk)
        return _answer(502, "The stored upload did not verify.")
    metrics.upload_observed(kind="tus", size=progress.offset - offset, started=started)
    headers = {"Upload_Offset": str(progress.offset)}
    if progress.stored is None:
        headers["Upload_Expires"] = _expires_header(leased)
    return _answer(204, **headers)


def _body_reader(request: HttpRequest):  # type: ignore[no-untyped-def]
    """read(n) over the request body; a client gone (or idle) reads as the body's end."""

    def read(size: int) -> bytes:
        try:
            return request.read(size)
        except Exception:  # the connection broke or idled out: keep what is stored
            logger.info("resumable upload body ended early")
            return b""

    return read
