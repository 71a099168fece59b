"""Share links: creating and revoking them, and the landing page and download at /s/<token>/."""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from audit.actors import Actor, actor_from_request
from securefiles.lib.auth_types import AuthenticatedHttpRequest
from securefiles.lib.transactions import TryAgain
from sharing import selectors, services
from sharing.forms import LinkForm, LinkPasswordForm
from sharing.models import ShareLink, StoredFile
from sharing.views.access import _gone_is_404, _owned_file_or_404
from sharing.views.files import _render_detail
from sharing.views.ranges import ByteRange, Unsatisfiable
from sharing.views.streaming import requested_range, stream_file, validators_of

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
    if not selectors.link_is_usable(found):
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


# Download grants: a claim (one download of a link's max_downloads) lets the browser
# session that made it resume that download with Range requests (GET, as browsers resume,
# or POST, as `curl -C -` repeats the form) for LINK_RESUME_MINUTES, without claiming
# again. Kept in the server-side session, which the visitor cannot forge; a request
# without a Range never rides on a grant. {str(link pk): {"claim": n, "until": epoch s}}
GRANTS_KEY = "link_grants"


GRANTS_KEPT = 20


def _grant_claim(request: HttpRequest, found: ShareLink) -> int | None:
    """The claim number this session may resume on this link, or None."""
    grant = request.session.get(GRANTS_KEY, {}).get(str(found.pk))
    if not isinstance(grant, dict) or grant.get("until", 0) <= time.time():
        return None
    claim = grant.get("claim")
    return claim if isinstance(claim, int) else None


def _set_grant(request: HttpRequest, found: ShareLink, claim: int | None) -> None:
    grants = {
        pk: grant
        for pk, grant in request.session.get(GRANTS_KEY, {}).items()
        if pk != str(found.pk) and grant.get("until", 0) > time.time()
    }
    if claim is not None:
        until = time.time() + settings.LINK_RESUME_MINUTES * 60
        grants[str(found.pk)] = {"claim": claim, "until": until}
    request.session[GRANTS_KEY] = dict(list(grants.items())[-GRANTS_KEPT:])


def _link_resume(request: HttpRequest, found: ShareLink) -> HttpResponseBase | None:
    """A ranged GET or POST under this session's grant for the link: the range (206) or
    416, taking no download. None when the request is not one (no grant, no Range, or a
    Range the whole file answers: invalid, or an If-Range that no longer matches)."""
    if request.method not in ("GET", "POST") or "Range" not in request.headers:
        return None
    claim = _grant_claim(request, found)
    if claim is None:
        return None
    stored = found.file
    wanted = requested_range(request, stored, validators_of(stored))
    if wanted is None:
        return None  # a whole copy: only a new claim gives one
    actor = actor_from_request(request, label=f"link {found.pk}")

    def resumed(byte_range: ByteRange | None) -> None:
        if byte_range is not None:
            services.link_resume_record(
                link=found, actor=actor, claim=claim, byte_range=byte_range.content_range
            )

    return stream_file(
        request, stored, via=f"link {found.pk}", actor=actor, on_verified=resumed, byte_range=wanted
    )


def _link_download(request: HttpRequest, found: ShareLink) -> HttpResponseBase:
    actor = actor_from_request(request, label=f"link {found.pk}")
    if not _link_unlocked(request, found):
        refused = _link_password_refused(request, found, actor)
        if refused is not None:
            return refused
        _remember_unlocked(request, found)
    stored = found.file
    wanted = requested_range(request, stored, validators_of(stored))
    if isinstance(wanted, Unsatisfiable):
        return stream_file(request, stored, via=f"link {found.pk}", byte_range=wanted)
    claim = services.link_claim_download(link=found, actor=actor)
    if claim is None:
        return _link_not_found(request)
    response = stream_file(request, stored, via=f"link {found.pk}", actor=actor, byte_range=wanted)
    if response.status_code == 502:
        # Nothing was sent: the claim is given back, and there is nothing to resume.
        _give_back(found, actor)
        claim = None
    _set_grant(request, found, claim)
    return response


def _give_back(found: ShareLink, actor: Actor) -> None:
    try:
        services.link_release_download(link=found, actor=actor)
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
