"""Thin views: authenticate, look up through a selector, call a service, answer."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.hashers import check_password
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
    multipartparser,
)
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from audit.actors import Actor, actor_from_request
from audit.events import Event
from audit.services import audit_record
from securefiles.lib.auth_types import AuthenticatedHttpRequest
from securefiles.lib.negotiation import prefers_json
from securefiles.lib.transactions import RETRY_AFTER_SECONDS, TryAgain
from sharing import display, names, selectors, services
from sharing.crypto import BlobIntegrityError, DecryptingReader, KeyProblem
from sharing.forms import LinkForm, LinkPasswordForm, ShareForm, UploadOptionsForm
from sharing.models import ShareLink, StoredFile
from sharing.storage import get_encrypted_storage
from sharing.templatetags.sharing_extras import duration, file_kind
from sharing.uploads import EncryptedUpload, EncryptingUploadHandler
from throttle import counters

logger = logging.getLogger(__name__)
# Django 5.2.19 defines it; django-stubs 5.2.9 does not declare it yet.
MAX_TOTAL_HEADER_SIZE: int = multipartparser.MAX_TOTAL_HEADER_SIZE  # type: ignore[attr-defined]
FILES_PER_PAGE = 50


@never_cache
@login_required
@require_safe
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    sort = request.GET.get("sort", "-date")
    sort = sort if sort in selectors.FILE_ORDERINGS else "-date"
    query = request.GET.get("q", "").strip()[:200]
    files = selectors.files_owned_by(user=request.user, search=query, ordering=sort)
    page = Paginator(files, FILES_PER_PAGE).get_page(request.GET.get("page"))
    shared_files = selectors.files_shared_with(user=request.user, search=query)
    shared = Paginator(shared_files, FILES_PER_PAGE).get_page(request.GET.get("shared_page"))
    context = {
        "page": page,
        "shared": shared,
        "sort": sort,
        "query": query,
        "max_upload_mb": settings.MAX_UPLOAD_MB,
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "usage": selectors.usage_of(user=request.user),
        "quota": selectors.quota_of(user=request.user),
        "max_days": settings.FILE_MAX_DAYS,
        "default_days": settings.FILE_DEFAULT_DAYS or settings.FILE_MAX_DAYS,
    }
    return render(request, "sharing/home.html", context)


@never_cache
@login_required
@require_safe
def file_detail(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> HttpResponse:
    """The owner's full page of a file; a read-only page for a colleague it is shared
    with; for anyone else the 404 of a missing file (and a denial in the audit log)."""
    stored = _readable_file_or_404(request, file_id)
    if stored.owner_id == request.user.pk:
        return _render_detail(request, stored)
    context = {"file": stored, "sha256": selectors.file_sha256(file=stored)}
    return render(request, "sharing/file_shared.html", context)


def _render_detail(
    request: AuthenticatedHttpRequest, stored: StoredFile, *, status: int = 200, **extra: object
) -> HttpResponse:
    context = {
        "file": stored,
        "shares": selectors.shares_of(file=stored),
        "links": selectors.links_of(file=stored),
        "activity": selectors.activity_of(user=request.user, file=stored)[:50],
        "share_form": extra.pop("share_form", None) or ShareForm(),
        "link_form": extra.pop("link_form", None) or LinkForm(),
        "link_max_hours": settings.LINK_MAX_HOURS,
        "colleagues": selectors.colleagues_known_to(user=request.user),
        "sha256": selectors.file_sha256(file=stored),
        **extra,
    }
    return render(request, "sharing/file_detail.html", context, status=status)


def _deny(request: HttpRequest, file_id: uuid.UUID) -> Http404:
    """Audit a logged-in user's request for a real file they may not see; return the 404."""
    existing = selectors.file_exists(file_id=file_id)
    if existing is not None:
        audit_record(
            event=Event.ACCESS_DENIED,
            actor=actor_from_request(request),
            file_id=existing.id,
            file_name=existing.name,
            detail=f"path={request.path[:200]}",
        )
    return Http404("No such file")


def _owned_file_or_404(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> StoredFile:
    try:
        return selectors.file_get_for_owner(user=request.user, file_id=file_id)
    except Http404:
        raise _deny(request, file_id) from None


@contextmanager
def _gone_is_404() -> Iterator[None]:
    """Around a service call: a file deleted by a parallel request after this one looked
    it up answers the same 404 as any missing file."""
    try:
        yield
    except services.FileGone:
        raise Http404("No such file") from None


def _readable_file_or_404(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> StoredFile:
    try:
        return selectors.file_get_for_reader(user=request.user, file_id=file_id)
    except Http404:
        raise _deny(request, file_id) from None


# -- upload


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
        "kind": file_kind(stored.content_type),
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
    )
    request.upload_handlers = [handler]
    adopted: set[str] = set()
    try:
        return _upload_checked(request, handler, adopted)
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
    request: AuthenticatedHttpRequest, handler: EncryptingUploadHandler, adopted: set[str]
) -> HttpResponse:
    uploads = [f for f in request.FILES.getlist("file") if isinstance(f, EncryptedUpload)]
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
    return _uploaded(request, created)


# -- download


@login_required
@require_safe
def download(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> HttpResponseBase:
    stored = _readable_file_or_404(request, file_id)
    via = "owner" if stored.owner_id == request.user.pk else "colleague"

    def downloaded() -> None:
        # Only once the first segment verified: a 502 sends nothing, so it is not a download.
        audit_record(
            event=Event.DOWNLOAD,
            actor=actor_from_request(request),
            file_id=stored.id,
            file_name=stored.name,
            detail=f"via={via}",
        )

    return stream_file(request, stored, via=via, on_verified=downloaded)


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


# -- delete


@login_required
@require_POST
def delete(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> HttpResponse:
    stored = _owned_file_or_404(request, file_id)
    display_name = names.attachment_name(stored.name)
    with _gone_is_404():
        services.file_delete(file=stored, actor=actor_from_request(request))
    messages.success(request, _("Deleted “%(name)s”.") % {"name": display_name})
    return redirect("sharing:home")


# -- sharing with colleagues


@login_required
@require_POST
def share_create(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> HttpResponse:
    stored = _owned_file_or_404(request, file_id)
    form = ShareForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, stored, status=400, share_form=form)
    try:
        with _gone_is_404():
            share = services.share_grant(
                file=stored, query=form.cleaned_data["username"], actor=actor_from_request(request)
            )
    except services.ShareError as exc:
        form.add_error("username", str(exc))
        return _render_detail(request, stored, status=400, share_form=form)
    except services.ShareLookupThrottled as exc:
        form.add_error("username", _share_lookup_throttled_message(exc))
        response = _render_detail(request, stored, status=429, share_form=form)
        response["Retry-After"] = str(exc.retry_after)
        return response
    messages.success(request, _("Shared with %(user)s.") % {"user": share.colleague.get_username()})
    return redirect("sharing:file_detail", file_id=stored.id)


def _share_lookup_throttled_message(exc: services.ShareLookupThrottled) -> str:
    return _(
        "You have entered %(limit)d names or addresses that match no account within "
        "%(window)s, the limit. To keep accounts from being guessed, sharing by name is "
        "paused for you: try again in %(wait)s."
    ) % {
        "limit": exc.limit,
        "window": duration(exc.window_seconds),
        "wait": duration(exc.retry_after),
    }


@login_required
@require_POST
def share_revoke(
    request: AuthenticatedHttpRequest, file_id: uuid.UUID, share_id: int
) -> HttpResponse:
    stored = _owned_file_or_404(request, file_id)
    share = selectors.share_get_for_owner(user=request.user, file=stored, share_id=share_id)
    with _gone_is_404():
        revoked = services.share_revoke(share=share, actor=actor_from_request(request))
    if not revoked:
        raise Http404("No such share")  # revoked meanwhile, by a parallel request
    messages.success(request, _("Access removed."))
    return redirect("sharing:file_detail", file_id=stored.id)


# -- share links


@login_required
@require_POST
def link_create(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> HttpResponse:
    stored = _owned_file_or_404(request, file_id)
    form = LinkForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, stored, status=400, link_form=form)
    with _gone_is_404():
        link, token = services.link_create(
            file=stored,
            actor=actor_from_request(request),
            created_by=request.user,
            expires_in_hours=form.cleaned_data["expires_in_hours"],
            max_downloads=form.cleaned_data["max_downloads"],
            password=form.cleaned_data["password"],
            label=form.cleaned_data["label"],
        )
    # Shown once, in this response only: the token is stored nowhere, not even in the
    # session, so it cannot be shown again.
    url = request.build_absolute_uri(reverse("sharing:link", kwargs={"token": token}))
    response = _render_detail(request, stored, status=201, new_link=link, new_link_url=url)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def link_revoke(
    request: AuthenticatedHttpRequest, file_id: uuid.UUID, link_id: int
) -> HttpResponse:
    stored = _owned_file_or_404(request, file_id)
    link = selectors.link_get_for_owner(user=request.user, file=stored, link_id=link_id)
    with _gone_is_404():
        services.link_revoke(link=link, actor=actor_from_request(request))
    messages.success(request, _("Link revoked."))
    return redirect("sharing:file_detail", file_id=stored.id)


def _no_referrer(response: HttpResponseBase) -> HttpResponseBase:
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


def _link_not_found(request: HttpRequest) -> HttpResponse:
    # One page for unknown, expired, revoked and used-up links: no oracle for which.
    return render(request, "404.html", status=404)


# No CSRF check on share links, on purpose. The landing page sends
# `Referrer-Policy: no-referrer` so the token never leaks in a Referer header, and under
# that policy browsers post its form with `Origin: null`, which Django's CSRF check
# rejects. CSRF defends a session's authority; a link POST carries little: it changes no
# account and needs the 256-bit token (and the password, throttled per link), which an
# attacker who could forge the request could use directly. The one thing a session adds,
# a password already given for this link, is never sent cross-site (SameSite=Lax cookie)
# and would only download the file into the victim's own browser.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def link(request: HttpRequest, token: str) -> HttpResponseBase:
    """A share link: GET shows the landing page, POST (from its form) downloads."""
    try:
        found = selectors.link_get_by_token(token=token)
    except Http404:
        return _no_referrer(_link_not_found(request))
    if request.method == "POST":
        return _no_referrer(_link_download(request, found))
    return _no_referrer(_render_link(request, found))


# Links whose password this browser session has given, so its landing page may show the
# file (and download it again) without asking anew. Capped: a session is no store.
UNLOCKED_LINKS_KEY = "links_unlocked"
UNLOCKED_LINKS_KEPT = 20


def _link_unlocked(request: HttpRequest, found: ShareLink) -> bool:
    """Whether this request may see the file behind the link: always for a link without
    a password, else only in a session that has given the right password."""
    return not found.has_password or found.pk in request.session.get(UNLOCKED_LINKS_KEY, [])


def _remember_unlocked(request: HttpRequest, found: ShareLink) -> None:
    unlocked = [pk for pk in request.session.get(UNLOCKED_LINKS_KEY, []) if pk != found.pk]
    request.session[UNLOCKED_LINKS_KEY] = [*unlocked, found.pk][-UNLOCKED_LINKS_KEPT:]


def _render_link(
    request: HttpRequest, found: ShareLink, *, status: int = 200, password_error: str = ""
) -> HttpResponse:
    """The landing page. Behind a password it names nothing (no file name, size, sharer,
    expiry or count, not even in <title>) until this session has given the password:
    for legal and medical files the name alone is what the password protects."""
    unlocked = _link_unlocked(request, found)
    context = {
        "link": found,
        "file": found.file if unlocked else None,
        "unlocked": unlocked,
        "password_error": password_error,
    }
    return render(request, "sharing/link.html", context, status=status)


def _link_download(request: HttpRequest, found: ShareLink) -> HttpResponseBase:
    actor = actor_from_request(request, label=f"link {found.pk}")
    if not _link_unlocked(request, found):
        refused = _link_password_refused(request, found, actor)
        if refused is not None:
            return refused
        _remember_unlocked(request, found)
    if not services.link_claim_download(link=found, actor=actor):
        return _link_not_found(request)
    return stream_file(
        request,
        found.file,
        via=f"link {found.pk}",
        actor=actor,
        on_incomplete=lambda: _give_back(found, actor),
    )


def _give_back(found: ShareLink, actor: Actor) -> None:
    # Runs as the transfer ends, headers long sent: nothing may be raised from here.
    try:
        services.link_release_download(link=found, actor=actor)
    except TryAgain:
        logger.warning("aborted download not given back link=%s", found.pk)


def _link_password_refused(
    request: HttpRequest, found: ShareLink, actor: Actor
) -> HttpResponse | None:
    """None when the right password came with the request; else the 403 or 429 answer."""
    limit, window = settings.LINK_PASSWORD_ATTEMPTS, settings.LINK_PASSWORD_WINDOW_SECONDS
    if counters.is_throttled(f"link-password:{found.pk}", limit, window):
        return _link_throttled(request, found, actor)
    # Counted before the slow Argon2 check, in one atomic step: a burst of parallel guesses
    # cannot all pass the check above before the first of them is counted.
    attempts = services.link_password_attempt(link=found)
    form = LinkPasswordForm(request.POST)
    password = form.cleaned_data["password"] if form.is_valid() else ""
    if attempts > limit or check_password(password, found.password_hash):
        services.link_password_attempt_undone(link=found)  # not a wrong password
        return _link_throttled(request, found, actor) if attempts > limit else None
    services.link_password_failed(link=found, actor=actor, failures=attempts)
    if attempts >= limit:
        return _link_throttled(request, found, actor)
    return _render_link(request, found, status=403, password_error=_("Wrong password."))


def _link_throttled(request: HttpRequest, found: ShareLink, actor: Actor) -> HttpResponse:
    audit_record(
        event=Event.LINK_THROTTLED,
        actor=actor,
        file_id=found.file_id,
        file_name=found.file.name,
        link_id=found.pk,
    )
    message = _("Too many wrong passwords for this link. Try again later.")
    context = {"title": _("Too many attempts"), "message": message}
    response = render(request, "error.html", context, status=429)
    response["Retry-After"] = str(settings.LINK_PASSWORD_WINDOW_SECONDS)
    return response
