"""The visitor's side of a file request, for people without an account.

``/r/<token>/``: GET shows the title, message and limits and the upload area; POST is the
plain form (multipart ``file``, repeatable, with ``name``, ``email``, ``password`` when
asked), which also works without JavaScript. ``/r/<token>/uploads/`` is tus (the page's
script), through sharing's tus views with a Visitor. ``/r/<token>/receipt/`` lists what
this browser session sent. Unknown, expired, revoked and full requests answer one 404.

The visitor's capability is their server-side session (which they cannot forge): it
records, per request, that its password was given (if it has one) and the sender's
declared details, the batch, and the uploads they started, which are the only ones they
may continue, cancel or see in the receipt.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from audit.actors import Actor, actor_from_request, client_ip
from filerequests import selectors, services
from filerequests.forms import SenderForm
from filerequests.models import FileRequest
from securefiles.lib.negotiation import prefers_json
from securefiles.lib.transactions import RETRY_AFTER_SECONDS, TryAgain
from sharing import display
from sharing import selectors as file_selectors
from sharing.services import (
    LinkPasswordOutcome,
    QuotaExceeded,
    ScanRefused,
    UnfinishedScope,
    UploadNotAccepted,
    scan_check_uploads,
    scan_start,
)
from sharing.storage import get_encrypted_storage
from sharing.storage.uploads import EncryptedUpload, EncryptingUploadHandler
from sharing.views import resumable
from sharing.views.uploads import write_failed_answer

logger = logging.getLogger(__name__)

SESSION_KEY = "file_requests"
KEPT_REQUESTS = 20  # a session is no store: the most recent requests only
KEPT_UPLOADS = 200
# The largest body read from a browser that has not given the request's password: the
# password form (name, e-mail, password, CSRF token) with room to spare, and no files.
LOCKED_BODY_MAX_BYTES = 64 * 1024


# -- the session's capability


def _state(request: HttpRequest, file_request: FileRequest) -> dict[str, Any]:
    """This session's state for the request: {"ok", "name", "email", "batch", "uploads"}."""
    state = request.session.get(SESSION_KEY, {}).get(str(file_request.pk))
    if not isinstance(state, dict):
        state = {"ok": False, "name": "", "email": "", "batch": str(uuid.uuid4()), "uploads": []}
    return state


def _save_state(request: HttpRequest, file_request: FileRequest, state: dict[str, Any]) -> None:
    kept = dict(request.session.get(SESSION_KEY, {}))
    kept.pop(str(file_request.pk), None)
    state["uploads"] = state["uploads"][-KEPT_UPLOADS:]
    kept[str(file_request.pk)] = state
    request.session[SESSION_KEY] = dict(list(kept.items())[-KEPT_REQUESTS:])


def _locked(request: HttpRequest, file_request: FileRequest) -> bool:
    """Whether the request has a password this session has not given yet."""
    return file_request.has_password and not _state(request, file_request)["ok"]


def _needs_details(file_request: FileRequest) -> bool:
    return file_request.require_sender or file_request.has_password


def _actor(request: HttpRequest, file_request: FileRequest) -> Actor:
    return actor_from_request(request, label=f"request {file_request.pk} visitor")


def _sender(state: dict[str, Any]) -> services.Sender:
    return services.Sender(name=state["name"], email=state["email"])


# -- answers


def _secret_page(response: HttpResponseBase) -> HttpResponseBase:
    """The token is in the URL: never cached, never indexed."""
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


def _not_found(request: HttpRequest) -> HttpResponseBase:
    # One page for unknown, expired, revoked and full requests: no oracle for which.
    return _secret_page(render(request, "404.html", status=404))


def _open_or_none(
    request: HttpRequest, token: str, *, including_full: bool = False
) -> FileRequest | None:
    """The open request (or None), noting an expiry in the audit log when first seen.
    ``including_full`` lets a full one through only for a session that sent into it (its
    receipt, its uploads): to anyone else it is the same 404 as a dead one."""
    found = selectors.request_find_by_token(token)
    if found is None:
        return None
    services.request_note_expiry(file_request=found, actor=_actor(request, found))
    if not selectors.request_is_live(found):
        return None
    if selectors.request_is_full(found):
        if not including_full or not _state(request, found)["uploads"]:
            return None
    return found


def _refused(request: HttpRequest, status: int, title: str, message: str) -> HttpResponseBase:
    if prefers_json(request):
        return _secret_page(JsonResponse({"error": message}, status=status))
    context = {"title": title, "message": message}
    return _secret_page(render(request, "filerequests/refused.html", context, status=status))


def _render_visit(
    request: HttpRequest,
    file_request: FileRequest,
    *,
    form: SenderForm | None = None,
    status: int = 200,
) -> HttpResponseBase:
    state = _state(request, file_request)
    # Behind a password the page says nothing of the request (its title and message may
    # name a client or a patient) until the password was given.
    locked = _locked(request, file_request)
    context = {
        "file_request": file_request,
        "locked": locked,
        "owner_name": "" if locked else selectors.owner_display_name(file_request),
        "ready": state["ok"],
        "form": form or SenderForm(require_sender=file_request.require_sender),
        "max_upload_bytes": _bytes_allowed(file_request),
        "sent": len(state["uploads"]),
    }
    return _secret_page(render(request, "filerequests/visit.html", context, status=status))


def _bytes_allowed(file_request: FileRequest) -> int:
    """The most one upload through the request may carry, in bytes."""
    left = file_request.bytes_left
    return settings.MAX_UPLOAD_BYTES if left is None else min(left, settings.MAX_UPLOAD_BYTES)


# -- the page and the plain form


@csrf_exempt  # checked by _visit_post once the encrypting handler is in place
@require_http_methods(["GET", "HEAD", "POST"])
def visit(request: HttpRequest, token: str) -> HttpResponseBase:
    """``/r/<token>/``: the visitor's page (GET) and the plain upload form (POST)."""
    found = _open_or_none(request, token)
    if found is None:
        return _not_found(request)
    if request.method == "POST":
        return _visit_post(request, found, token)
    state = _state(request, found)
    if not state["ok"] and not _needs_details(found):
        state["ok"] = True  # the link alone is the capability
        _save_state(request, found, state)
    return _render_visit(request, found)


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _visit_post(request: HttpRequest, found: FileRequest, token: str) -> HttpResponseBase:
    """Encrypt the body's files as it streams in (sharing's EncryptingUploadHandler, the
    same as the portal's own upload form), then check CSRF, details and limits.

    Behind a password not yet given, only a body the size of the password form is read:
    files from someone without the password are refused before a byte is encrypted."""
    locked = _locked(request, found)
    if locked and _content_length(request) > LOCKED_BODY_MAX_BYTES:
        return _password_first(request)
    if _content_length(request) > _bytes_allowed(found) + settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return _too_large(request, found)
    handler = EncryptingUploadHandler(
        request,
        storage=get_encrypted_storage(),
        # Locked: not one file byte (a chunked body has no Content-Length to refuse).
        max_bytes=0 if locked else _bytes_allowed(found),
        quota_left=file_selectors.quota_left(user=found.owner),
        scan_start=scan_start,
    )
    request.upload_handlers = [handler]
    adopted: set[str] = set()
    try:
        return _visit_post_checked(request, found, token, handler, adopted, locked)
    except (MultiPartParserError, TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig):
        message = _("The upload could not be read as a form with files. Nothing was stored.")
        return _refused(request, 400, _("Bad upload"), message)
    finally:
        handler.discard_unadopted(adopted)  # nothing unrecorded stays on the disk


def _password_first(request: HttpRequest) -> HttpResponseBase:
    """403 for files sent by a browser that had not given the request's password."""
    message = _("Enter the password first, then choose the files. Nothing was stored.")
    return _refused(request, 403, _("Password needed"), message)


def _too_large(request: HttpRequest, found: FileRequest) -> HttpResponseBase:
    if _locked(request, found):
        # Refused before the password was checked: the room left is the request's secret.
        message = _("The upload is larger than this request takes. Nothing was stored.")
        return _refused(request, 413, _("Upload too large"), message)
    message = _(
        "The upload is larger than this request still takes (%(size)s). Nothing was stored."
    ) % {"size": display.human_size(_bytes_allowed(found))}
    return _refused(request, 413, _("Upload too large"), message)


@csrf_protect
def _visit_post_checked(
    request: HttpRequest,
    found: FileRequest,
    token: str,
    handler: EncryptingUploadHandler,
    adopted: set[str],
    locked: bool,
) -> HttpResponseBase:
    uploads = [f for f in request.FILES.getlist("file") if isinstance(f, EncryptedUpload)]
    state = _state(request, found)
    if not state["ok"]:
        refused = _take_details(request, found, state)
        if refused is not None:
            return refused
    if locked and handler.too_large:  # files sent with the password: none was kept
        return _password_first(request)
    if handler.write_failed is not None:
        logger.error("file request upload refused: %s", handler.write_failed)
        status, title, message = write_failed_answer(handler.write_failed)
        refused = _refused(request, status, title, message)
        if status == 503:
            refused["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return refused
    if handler.too_large or handler.format_limit is not None:
        return _too_large(request, found)
    if handler.over_quota:
        message = _("The recipient has no room for this upload. Nothing was stored.")
        return _refused(request, 413, _("No room"), message)
    if handler.interrupted:
        message = _("The upload ended before its last file was complete; nothing was stored.")
        return _refused(request, 400, _("Upload incomplete"), message)
    if not uploads:
        return _secret_page(redirect("filerequests:visit", token=token))
    left = found.files_left
    if left is not None and len(uploads) > left:
        message = _("This request takes at most %(n)d more file(s). Nothing was stored.") % {
            "n": left
        }
        return _refused(request, 413, _("Too many files"), message)
    retry_after = services.request_upload_throttled(ip=client_ip(request), files=len(uploads))
    if retry_after:
        return _rate_limited(request, retry_after)
    try:
        scan_check_uploads(
            uploads,
            visitor=True,
            owner=found.owner,
            actor=_actor(request, found),
            source=found.title,
        )
    except ScanRefused as exc:
        refused = _refused(request, exc.status, _("File refused"), exc.message)
        if exc.status == 503:  # the scanner is down: nothing wrong with the file
            refused["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return refused
    return _record(request, found, token, state, uploads, adopted)


def _take_details(
    request: HttpRequest, found: FileRequest, state: dict[str, Any]
) -> HttpResponseBase | None:
    """Check the sender's details and the password from the form; None when accepted
    (remembered in the session), else the answer: 400 for missing details, 403 for a
    wrong password, 429 when the request's password is locked for a while."""
    form = SenderForm(request.POST, require_sender=found.require_sender)
    if not form.is_valid():
        return _render_visit(request, found, form=form, status=400)
    if found.has_password:
        outcome = services.request_password_check(
            file_request=found, password=form.cleaned_data["password"], actor=_actor(request, found)
        )
        if outcome is LinkPasswordOutcome.THROTTLED:
            response = _refused(
                request,
                429,
                _("Too many attempts"),
                _("Too many wrong passwords for this request. Try again later."),
            )
            response["Retry-After"] = str(settings.LINK_PASSWORD_WINDOW_SECONDS)
            return response
        if outcome is not LinkPasswordOutcome.RIGHT:
            form.add_error("password", _("Wrong password."))
            return _render_visit(request, found, form=form, status=403)
    state["ok"] = True
    state["name"], state["email"] = form.cleaned_data["name"], form.cleaned_data["email"]
    _save_state(request, found, state)
    return None


def _rate_limited(request: HttpRequest, retry_after: int) -> HttpResponseBase:
    message = _("Too many uploads from your address. Try again later. Nothing was stored.")
    response = _refused(request, 429, _("Too many uploads"), message)
    response["Retry-After"] = str(retry_after)
    return response


def _record(
    request: HttpRequest,
    found: FileRequest,
    token: str,
    state: dict[str, Any],
    uploads: list[EncryptedUpload],
    adopted: set[str],
) -> HttpResponseBase:
    try:
        stored = services.request_receive_form(
            file_request=found,
            uploads=uploads,
            sender=_sender(state),
            batch=uuid.UUID(state["batch"]),
            actor=_actor(request, found),
        )
    except UploadNotAccepted:
        return _not_found(request)  # revoked, expired or filled meanwhile
    except QuotaExceeded:
        message = _("The recipient has no room for this upload. Nothing was stored.")
        return _refused(request, 413, _("No room"), message)
    except TryAgain:
        message = _("The server is busy; nothing was stored. Please upload again.")
        return _refused(request, 503, _("Try again"), message)
    adopted.update(upload.blob.name for upload in stored)
    state["uploads"] += [str(upload.id) for upload in stored]
    state["batch"] = str(uuid.uuid4())  # the form's files were one batch, told already
    _save_state(request, found, state)
    receipt = reverse("filerequests:receipt", args=[token])
    if prefers_json(request):
        # What the page's script shows for each file (upload.js); no expiry to tell.
        files = [{"name": s.name, "size": s.size, "expires_display": ""} for s in stored]
        return _secret_page(JsonResponse({"files": files, "receipt": receipt}, status=201))
    return _secret_page(redirect(receipt))


# -- the receipt


@require_http_methods(["GET", "HEAD", "POST"])
def receipt(request: HttpRequest, token: str) -> HttpResponseBase:
    """``/r/<token>/receipt/``: names, sizes and SHA-256 of what this session sent (also
    once the request is full). POST ("Done") closes the session's batch: the owner gets
    one e-mail for its files."""
    found = _open_or_none(request, token, including_full=True)
    if found is None:
        return _not_found(request)
    state = _state(request, found)
    if found.has_password and not state["ok"]:
        # The receipt names the request: behind a password, only for a session that gave it.
        return _secret_page(redirect("filerequests:visit", token=token))
    if request.method == "POST":
        services.request_batch_close(request_id=found.pk, batch=uuid.UUID(state["batch"]))
        state["batch"] = str(uuid.uuid4())
        _save_state(request, found, state)
        return _secret_page(redirect("filerequests:receipt", token=token))
    rows = [
        {"file": row.file, "sha256": file_selectors.file_sha256(file=row.file).hex}
        for row in selectors.received_in(file_request=found, file_ids=state["uploads"])
    ]
    context = {"file_request": found, "rows": rows}
    return _secret_page(render(request, "filerequests/receipt.html", context))


# -- tus, through sharing's views


def _visitor(request: HttpRequest, found: FileRequest, token: str) -> resumable.Visitor:
    state = _state(request, found)

    def tie(upload: Any) -> None:
        services.request_upload_tie(
            file_request=found,
            upload_id=upload.pk,
            sender=_sender(state),
            batch=uuid.UUID(state["batch"]),
        )

    def created(upload: Any) -> None:
        state["uploads"].append(str(upload.pk))
        _save_state(request, found, state)

    return resumable.Visitor(
        owner=found.owner,
        actor=_actor(request, found),
        may_touch=lambda upload_id: str(upload_id) in state["uploads"],
        scope=UnfinishedScope(ids=lambda: selectors.request_upload_ids(found), tie=tie),
        created=created,
        url=lambda upload_id: reverse("filerequests:tus_upload", args=[token, upload_id]),
    )


def _tus_refused(status: int, message: str, **headers: str) -> HttpResponse:
    response = resumable._answer(status, message, **headers)
    response["Cache-Control"] = "no-store"
    return response


def _tus_gate(request: HttpRequest, token: str, *, including_full: bool) -> Any:
    """The request and this session's Visitor, or the tus answer refusing them: 404 for a
    request that is not open, 403 for a session that has not passed its page yet."""
    found = _open_or_none(request, token, including_full=including_full)
    if found is None:
        return _tus_refused(404, "No such request.")
    if not _state(request, found)["ok"]:
        return _tus_refused(403, "Open the request's page (and give its password) first.")
    return found


@csrf_exempt  # sharing's _uploader checks the session's CSRF token
def tus_uploads(request: HttpRequest, token: str) -> HttpResponse:
    """``/r/<token>/uploads/``: tus "creation" into the request (and OPTIONS)."""
    if request.method != "POST":
        return resumable.uploads(request)  # OPTIONS, or 405
    found = _tus_gate(request, token, including_full=False)
    if isinstance(found, HttpResponse):
        return found
    length = resumable._digits(request.headers.get("Upload-Length"))
    if length == 0:
        return _tus_refused(400, "An empty file cannot be sent this way; use the form.")
    if length is not None and length > _bytes_allowed(found):
        return _tus_refused(413, "The file is larger than this request still takes.")
    retry_after = services.request_upload_throttled(ip=client_ip(request))
    if retry_after:
        return _tus_refused(
            429, "Too many uploads from your address.", Retry_After=str(retry_after)
        )
    return resumable.uploads(request, visitor=_visitor(request, found, token))


@csrf_exempt  # sharing's _uploader checks the session's CSRF token
def tus_upload(request: HttpRequest, token: str, upload_id: uuid.UUID) -> HttpResponse:
    """``/r/<token>/uploads/<id>/``: HEAD, PATCH and DELETE of the visitor's own upload."""
    if request.method not in ("HEAD", "PATCH", "DELETE"):
        return resumable.upload(request, upload_id)  # OPTIONS, or 405
    found = _tus_gate(request, token, including_full=True)
    if isinstance(found, HttpResponse):
        return found
    return resumable.upload(request, upload_id, visitor=_visitor(request, found, token))
