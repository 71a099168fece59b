"""Share links: creating and revoking them, and the landing page and download at /s/<token>/."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.actors import Actor, actor_from_request
from securefiles.lib.auth_types import AuthenticatedHttpRequest
from securefiles.lib.transactions import TryAgain
from sharing import selectors, services
from sharing.forms import LinkForm, LinkPasswordForm
from sharing.models import ShareLink, StoredFile
from sharing.views.access import _gone_is_404, _owned_file_or_404
from sharing.views.files import _render_detail
from sharing.views.ranges import ByteRange, Unsatisfiable
from sharing.views.streaming import (
    preconditions_refused,
    requested_range,
    stream_file,
    validators_of,
)

logger = logging.getLogger(__name__)


@login_required
@require_POST
def link_create(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> HttpResponse:
    stored = _owned_file_or_404(request, file_id)
    form = LinkForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, stored, status=400, link_form=form)
    link, _token, url = link_from_form(request, stored, form)
    # Shown once, in this response only: the token is stored nowhere, not even in the
    # session, so it cannot be shown again.
    response = _render_detail(request, stored, status=201, new_link=link, new_link_url=url)
    response["Cache-Control"] = "no-store"
    return response


def link_from_form(
    request: AuthenticatedHttpRequest, stored: StoredFile, form: LinkForm
) -> tuple[ShareLink, str, str]:
    """Create a link to ``stored`` (the request's user owns it) from a valid LinkForm;
    return it, its token and its absolute URL (token and URL exist only in this return
    value). Http404 if the file was deleted meanwhile. The web page and the API alike."""
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
    url = request.build_absolute_uri(reverse("sharing:link", kwargs={"token": token}))
    return link, token, url


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
    """A share link: GET shows the landing page, POST (from its form) downloads, taking
    one of the link's downloads (honouring a Range, RFC 9110 section 14.2). A GET or POST
    with a Range from the browser session that claimed a download resumes it (206 or 416)
    for LINK_RESUME_MINUTES without taking another; unknown, expired, revoked and used-up
    links answer one 404."""
    try:
        found = selectors.link_get_by_token(token=token, including_used_up=True)
    except Http404:
        return _no_referrer(_link_not_found(request))
    resumed = _link_resume(request, found)
    if resumed is not None:
        return _no_referrer(resumed)
    repeated = _repeated_click(request, found) if request.method == "POST" else None
    if repeated == "unstarted":
        # A double click, or a download the browser dropped before its first byte: the
        # claim this session took is used again rather than taking another.
        return _no_referrer(_to_download_url(request))
    if repeated == "started":
        # A second click while the first download is under way: 204 No Content leaves
        # the browser on the page, its download going on (and resumable) under the claim.
        return _no_referrer(HttpResponse(status=204))
    if not selectors.link_is_usable(found):
        if request.method == "GET" and _holds_unstarted_claim(request, found):
            # This session's own download, taken but not begun (the browser did not follow
            # the 303, or went back): the page with its button, which uses that claim.
            return _no_referrer(_render_link(request, found))
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
        "resume_minutes": settings.LINK_RESUME_MINUTES,
    }
    return render(request, "sharing/link.html", context, status=status)


# Download grants: a claim (one download of a link's max_downloads) lets the browser
# session that made it resume that download with Range requests (GET, as browsers resume,
# or POST, as `curl -C -` repeats the form) for LINK_RESUME_MINUTES, without claiming
# again, as long as the claim's byte budget lasts (sharing.models.LinkClaim). Kept in the
# server-side session, which the visitor cannot forge; a request without a Range never
# rides on a grant. {str(link pk): {"claim": n, "id": LinkClaim pk or None, "until": s}}
GRANTS_KEY = "link_grants"


GRANTS_KEPT = 20


@dataclass(frozen=True)
class _Grant:
    number: int  # the claim's number (the link's download count it took)
    claim_id: int | None  # its LinkClaim; None only for a link without a download limit


def _grant_of(request: HttpRequest, found: ShareLink) -> _Grant | None:
    """The claim this session may resume on this link, or None."""
    grant = request.session.get(GRANTS_KEY, {}).get(str(found.pk))
    if not isinstance(grant, dict) or grant.get("until", 0) <= time.time():
        return None
    number, claim_id = grant.get("claim"), grant.get("id", "missing")
    if not isinstance(number, int) or not (claim_id is None or isinstance(claim_id, int)):
        return None  # also a grant from before claims counted their bytes
    if claim_id is None and found.max_downloads is not None:
        return None  # the link got a limit since: only a counted claim resumes
    return _Grant(number, claim_id)


def _set_grant(
    request: HttpRequest, found: ShareLink, claimed: services.LinkClaimed | None
) -> None:
    grants = {
        pk: grant
        for pk, grant in request.session.get(GRANTS_KEY, {}).items()
        if pk != str(found.pk) and grant.get("until", 0) > time.time()
    }
    if claimed is not None:
        until = time.time() + settings.LINK_RESUME_MINUTES * 60
        grants[str(found.pk)] = {"claim": claimed.number, "id": claimed.claim_id, "until": until}
    request.session[GRANTS_KEY] = dict(list(grants.items())[-GRANTS_KEPT:])


# Bytes a response under a claim counts ahead of what it sent: a connection that died
# unnoticed holds at most this much (plus a piece) until it closes and gives it back.
METER_WINDOW_BYTES = 8 * 1024 * 1024


class _ClaimMeter:
    """Counts one response's body against a claim (streaming.Meter), METER_WINDOW_BYTES
    at a time as the body advances: ``length`` bytes in all, ``reserved`` of them already
    counted (by the claim itself), of a file of ``size`` bytes."""

    def __init__(self, claim_id: int, *, size: int, length: int, reserved: int = 0) -> None:
        self.claim_id, self.size, self.length, self.reserved = claim_id, size, length, reserved

    def allow(self, through: int) -> bool:
        if through <= self.reserved:
            return True
        # A window if it fits, else only what this piece needs: near the end of the
        # budget the stream goes on piece by piece as far as it may.
        needed = through - self.reserved
        window = min(METER_WINDOW_BYTES, self.length - self.reserved)
        for more in (window, needed) if window > needed else (needed,):
            if self._reserve(more):
                self.reserved += more
                return True
        return False

    def _reserve(self, length: int) -> bool:
        try:
            return services.link_claim_reserve(
                claim_id=self.claim_id, length=length, size=self.size
            )
        except TryAgain:
            return False

    def finished(self, sent: int) -> None:
        services.link_claim_settle(
            claim_id=self.claim_id, unsent=self.reserved - sent, size=self.size
        )


def _link_resume(request: HttpRequest, found: ShareLink) -> HttpResponseBase | None:
    """A ranged GET or POST to the link under this session's grant: the range (206) or
    416, taking no download. None when the request is not one (no grant, no Range, a
    Range the whole file answers: invalid, or an If-Range that no longer matches) or
    when the range does not fit in the claim's byte budget now (the grant stays: see
    _under_grant)."""
    if request.method not in ("GET", "POST") or "Range" not in request.headers:
        return None
    grant = _grant_of(request, found)
    if grant is None:
        return None
    stored = found.file
    wanted = requested_range(request, stored, validators_of(stored))
    if wanted is None:
        return None  # a whole copy: only a new claim (or the download URL's grant) gives one
    return _under_grant(request, found, grant, wanted)


def _under_grant(
    request: HttpRequest, found: ShareLink, grant: _Grant, wanted: ByteRange | Unsatisfiable | None
) -> HttpResponseBase | None:
    """Send ``wanted`` (None: the whole file) under ``grant``, counting its bytes against
    the claim: 200, 206, 416, or 304/412 for failed preconditions (nothing counted).
    None when it does not fit in the claim's budget now. The grant stays: a response still
    open under the claim (a connection that died without the server noticing yet, until
    CLIENT_IDLE_TIMEOUT_SECONDS) holds the bytes it counted until it closes and gives back
    what it did not send, so the same resume fits a moment later; a spent budget refuses
    every later range as well, so keeping the grant gives nothing more."""
    stored = found.file
    refused = preconditions_refused(request, validators_of(stored))
    if refused is not None:
        return refused
    if isinstance(wanted, Unsatisfiable):
        return stream_file(request, stored, via=f"link {found.pk}", byte_range=wanted)
    length = stored.size if wanted is None else wanted.length
    meter = None
    if grant.claim_id is not None:
        meter = _ClaimMeter(grant.claim_id, size=stored.size, length=length)
        if not meter.allow(min(length, METER_WINDOW_BYTES)):
            return None
    actor = actor_from_request(request, label=f"link {found.pk}")

    def resumed(byte_range: ByteRange | None) -> None:
        if byte_range is not None:
            services.link_resume_record(
                link=found, actor=actor, claim=grant.number, byte_range=byte_range.content_range
            )

    response = stream_file(
        request,
        stored,
        via=f"link {found.pk}",
        actor=actor,
        on_verified=resumed,
        byte_range=wanted,
        meter=meter,
    )
    return _unbuffered(response)


@require_GET
def link_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """The GET download URL of a share link (/s/<token>/download/), where the landing
    page's form sends a browser (303) once its POST took a download: served under this
    session's grant, the whole file or a Range, so that the browser can resume a broken
    download by itself (browsers resume GET downloads only, with Range and If-Range).
    Without a grant: back to the landing page (303); once the grant's bytes are spent:
    the landing page for a plain GET, the one 404 for a Range."""
    try:
        found = selectors.link_get_by_token(token=token, including_used_up=True)
    except Http404:
        return _no_referrer(_link_not_found(request))
    grant = _grant_of(request, found)
    landing = reverse("sharing:link", kwargs={"token": token})
    if grant is None:
        return _no_referrer(_see_other(landing))
    stored = found.file
    wanted = requested_range(request, stored, validators_of(stored))
    served = _under_grant(request, found, grant, wanted)
    if served is not None:
        return _no_referrer(served)
    if "Range" in request.headers:
        return _no_referrer(_link_not_found(request))
    return _no_referrer(_see_other(landing))


def _is_navigation(request: HttpRequest) -> bool:
    """Whether a browser sent this as a page navigation (the landing page's form, Fetch
    Metadata's Sec-Fetch-Mode), not a script or curl, which get the file in the answer."""
    return request.headers.get("Sec-Fetch-Mode") == "navigate"


def _link_download(request: HttpRequest, found: ShareLink) -> HttpResponseBase:
    actor = actor_from_request(request, label=f"link {found.pk}")
    if not _link_unlocked(request, found):
        refused = _link_password_refused(request, found, actor)
        if refused is not None:
            return refused
        _remember_unlocked(request, found)
    stored = found.file
    validators = validators_of(stored)
    refused = preconditions_refused(request, validators)
    if refused is not None:
        return refused  # 412 (or 304): evaluated before a download is taken
    wanted = requested_range(request, stored, validators)
    if wanted is None and _is_navigation(request) and stored.size:
        return _claim_and_redirect(request, found, actor)
    if isinstance(wanted, Unsatisfiable):
        return stream_file(request, stored, via=f"link {found.pk}", byte_range=wanted)
    length = stored.size if wanted is None else wanted.length
    sending = min(length, METER_WINDOW_BYTES)  # the first window, counted with the claim
    claimed = services.link_claim_download(link=found, actor=actor, sending=sending)
    if claimed is None:
        return _link_not_found(request)
    meter = None
    if claimed.claim_id is not None:
        meter = _ClaimMeter(claimed.claim_id, size=stored.size, length=length, reserved=sending)
    response = stream_file(
        request, stored, via=f"link {found.pk}", actor=actor, byte_range=wanted, meter=meter
    )
    if response.status_code == 502:
        # Nothing was sent: the claim is given back, and there is nothing to resume.
        _give_back(found, actor, claimed.claim_id)
        claimed = None
    # An empty file has nothing to resume: no grant, so nothing to fetch again uncounted.
    _set_grant(request, found, claimed if stored.size else None)
    return _unbuffered(response)


def _claim_and_redirect(request: HttpRequest, found: ShareLink, actor: Actor) -> HttpResponse:
    """A browser's download: take a download (nothing counted yet) and send the browser
    on to the GET download URL (303), which serves it under the grant."""
    claimed = services.link_claim_download(link=found, actor=actor, sending=0)
    if claimed is None:
        return _link_not_found(request)
    _set_grant(request, found, claimed)
    return _to_download_url(request)


# A browser's download click this soon after the claim of this session it repeats is the
# same click (a double click: systems' double-click time is 500 ms by default) and takes
# no other download. A click after that, on the page link.js refreshed a second after
# the first, is another download.
REPEATED_CLICK_SECONDS = 0.5


def _repeated_click(request: HttpRequest, found: ShareLink) -> str | None:
    """For a browser's download (a navigation without a Range) from a session holding a
    claim of the link: "unstarted" if the claim has sent nothing yet, "started" if it has
    but was taken less than REPEATED_CLICK_SECONDS ago; else None (a new download)."""
    if not _is_navigation(request) or "Range" in request.headers:
        return None
    grant = _grant_of(request, found)
    if grant is None or grant.claim_id is None:
        return None
    progress = selectors.link_claim_progress(claim_id=grant.claim_id)
    if progress is None:
        return None
    sent, taken_at = progress
    if sent == 0:
        return "unstarted"
    if timezone.now() - taken_at < timedelta(seconds=REPEATED_CLICK_SECONDS):
        return "started"
    return None


def _holds_unstarted_claim(request: HttpRequest, found: ShareLink) -> bool:
    """Whether this session holds a claim of the link that has sent nothing yet."""
    grant = _grant_of(request, found)
    if grant is None or grant.claim_id is None:
        return False
    progress = selectors.link_claim_progress(claim_id=grant.claim_id)
    return progress is not None and progress[0] == 0


def _to_download_url(request: HttpRequest) -> HttpResponse:
    return _see_other(request.path.rstrip("/") + "/download/")


def _see_other(url: str) -> HttpResponse:
    """303 See Other (RFC 9110 section 15.4.4): the browser follows with a GET."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _unbuffered(response: HttpResponseBase) -> HttpResponseBase:
    # A claim counts the bytes handed to the server as sent; a proxy that read the file
    # far ahead of a slow client (nginx buffers up to 1 GiB by default) would make a
    # broken download's resume pay for bytes the client never got. nginx honours this.
    response["X-Accel-Buffering"] = "no"
    return response


def _give_back(found: ShareLink, actor: Actor, claim_id: int | None) -> None:
    try:
        services.link_release_download(link=found, actor=actor, claim_id=claim_id)
    except TryAgain:
        logger.warning("failed download not given back link=%s", found.pk)


def _link_password_refused(
    request: HttpRequest, found: ShareLink, actor: Actor
) -> HttpResponse | None:
    """None when the right password came with the request; else the 403 or 429 answer."""
    form = LinkPasswordForm(request.POST)
    password = form.cleaned_data["password"] if form.is_valid() else ""
    outcome = services.link_password_check(link=found, password=password, actor=actor)
    if outcome is services.LinkPasswordOutcome.RIGHT:
        return None
    if outcome is services.LinkPasswordOutcome.THROTTLED:
        return _link_throttled(request)
    return _render_link(request, found, status=403, password_error=_("Wrong password."))


def _link_throttled(request: HttpRequest) -> HttpResponse:
    message = _("Too many wrong passwords for this link. Try again later.")
    context = {"title": _("Too many attempts"), "message": message}
    response = render(request, "error.html", context, status=429)
    response["Retry-After"] = str(settings.LINK_PASSWORD_WINDOW_SECONDS)
    return response
