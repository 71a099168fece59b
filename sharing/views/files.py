"""The file list, a file's page, download and delete."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import (
    HttpResponse,
    HttpResponseBase,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from audit.actors import actor_from_request
from securefiles.lib.auth_types import AuthenticatedHttpRequest
from sharing import names, selectors, services
from sharing.forms import LinkForm, ShareForm
from sharing.models import StoredFile
from sharing.views.access import _gone_is_404, _owned_file_or_404, _readable_file_or_404
from sharing.views.paging import (
    page_of_files,
    page_of_matches,
    page_of_shared_matches,
    page_of_shares,
)
from sharing.views.ranges import ByteRange
from sharing.views.streaming import stream_file

logger = logging.getLogger(__name__)


FILES_PER_PAGE = 50
# A search that matches many names walks the user's files newest first until it has this
# many (and one more, to say "more than"): 1,000 matches of "résumé" (one file in seven)
# walked 7,000 rows, 6 ms of its page; ten pages of 50 are as many as anyone reads.
SEARCH_COUNT_CAP = 500
SHARED_SEARCH_COUNT_CAP = 200


@never_cache
@login_required
@require_safe
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    sort = request.GET.get("sort", "-date")
    sort = sort if sort in selectors.FILE_ORDERINGS else "-date"
    query = request.GET.get("q", "").strip()[: selectors.SEARCH_MAX_CHARS]
    files = selectors.files_owned_by(user=request.user, search=query, ordering=sort)
    # One read of the usage row: the file count (the unsearched list's) and the bytes used.
    file_count, usage = selectors.storage_usage_of(user=request.user)
    capped = False
    if query:
        # A search lists its first SEARCH_COUNT_CAP matches at most (past that, "more
        # than"): their ids, in order, are read in one query, which counts them too.
        page, capped = page_of_matches(
            files,
            unsearched=selectors.files_owned_by(user=request.user, ordering=sort),
            per_page=FILES_PER_PAGE,
            cap=SEARCH_COUNT_CAP,
            number=request.GET.get("page"),
        )
    else:
        page = page_of_files(
            files,
            per_page=FILES_PER_PAGE,
            count=file_count,
            ordering=sort,
            number=request.GET.get("page"),
            after=request.GET.get("after"),
            before=request.GET.get("before"),
        )
    shared_files = selectors.shares_with_me(user=request.user, search=query)
    shared_capped = False
    if query:
        # The first SHARED_SEARCH_COUNT_CAP matches at most, their ids read in one query.
        shared, shared_capped = page_of_shared_matches(
            shared_files,
            per_page=FILES_PER_PAGE,
            cap=SHARED_SEARCH_COUNT_CAP,
            number=request.GET.get("shared_page"),
        )
    else:
        shared = page_of_shares(
            shared_files,
            per_page=FILES_PER_PAGE,
            count=shared_files.count(),
            number=request.GET.get("shared_page"),
            after=request.GET.get("shared_after"),
            before=request.GET.get("shared_before"),
        )
    context = {
        "page": page,
        "shared": shared,
        "sort": sort,
        "query": query,
        "search_capped": capped,
        "shared_search_capped": shared_capped,
        "shared_search_count_cap": SHARED_SEARCH_COUNT_CAP,
        "search_count_cap": SEARCH_COUNT_CAP,
        "max_upload_mb": settings.MAX_UPLOAD_MB,
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "usage": usage,
        # The header's usage is this one; its quota (the context processor's) is read once.
        "header_usage": usage,
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
        # A file may have a thousand of each: a page of them at a time.
        "shares": _page(selectors.shares_of(file=stored), request.GET.get("shares_page")),
        "links": _page(selectors.links_of(file=stored), request.GET.get("links_page")),
        "activity": selectors.activity_of(user=request.user, file=stored)[:50],
        "share_form": extra.pop("share_form", None) or ShareForm(),
        "link_form": extra.pop("link_form", None) or LinkForm(),
        "link_max_hours": settings.LINK_MAX_HOURS,
        "colleagues": selectors.colleagues_known_to(user=request.user),
        "groups": selectors.groups_of(user=request.user),
        "today": timezone.localdate(),
        "sha256": selectors.file_sha256(file=stored),
        **extra,
    }
    return render(request, "sharing/file_detail.html", context, status=status)


def _page(objects: QuerySet[Any], number: str | None) -> Page:
    return Paginator(objects, FILES_PER_PAGE).get_page(number)


@login_required
@require_safe
def download(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> HttpResponseBase:
    """The file's bytes for its owner or a colleague: all of them (200), or the one range
    a ``Range`` asks for (206, RFC 9110 section 14.2; 416 if unsatisfiable)."""
    stored = _readable_file_or_404(request, file_id)
    return stream_for_reader(request, stored)


def stream_for_reader(
    request: AuthenticatedHttpRequest, stored: StoredFile, *, channel: str = ""
) -> HttpResponseBase:
    """The plaintext of ``stored`` for the request's user, its owner or a colleague (the
    caller looked it up through a selector), honouring Range (streaming.stream_file);
    recorded as a file.download by ``via=[channel ]owner|colleague|group:<name>`` once its first
    segment verified. The web download and the API's content endpoint (channel "api")."""
    via = _reader_via(request, stored)
    via = f"{channel} {via}" if channel else via

    def downloaded(byte_range: ByteRange | None) -> None:
        # Only once the first segment verified: a 502 sends nothing, so it is not a download.
        services.file_download_record(
            file=stored,
            actor=actor_from_request(request),
            via=via,
            byte_range=None if byte_range is None else byte_range.content_range,
        )

    return stream_file(request, stored, via=via, on_verified=downloaded)


def _reader_via(request: AuthenticatedHttpRequest, stored: StoredFile) -> str:
    """How the requester reads the file, for the audit entry: "owner", "colleague" or
    "group:<name>" (the member is the entry's actor)."""
    if stored.owner_id == request.user.pk:
        return "owner"
    share = selectors.share_used_by(user=request.user, file=stored)
    if share is not None and share.group is not None:
        return f"group:{share.group.name}"
    return "colleague"


@login_required
@require_POST
def delete(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> HttpResponse:
    stored = _owned_file_or_404(request, file_id)
    display_name = names.attachment_name(stored.name)
    with _gone_is_404():
        services.file_delete(file=stored, actor=actor_from_request(request))
    messages.success(request, _("Deleted “%(name)s”.") % {"name": display_name})
    return redirect("sharing:home")
