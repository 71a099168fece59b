"""Project-wide middleware: NUL and body-size refusals, security headers, no-store for
logged-in users, the browser's time zone, deadlock victims answered 503. (The second
factor per session is accounts.middleware.)"""

import functools
import re
import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _

from securefiles.lib.transactions import RETRY_AFTER_SECONDS, TryAgain


class RejectNulQueryMiddleware:
    """Answer 400 to a query string holding a NUL character.

    PostgreSQL refuses NUL in any text parameter (a DataError, so a 500 wherever a query
    value reaches a filter: search boxes, admin filters). No legitimate value holds one.
    Form bodies are covered by Django's own ProhibitNullCharactersValidator.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.META.get("QUERY_STRING", "") or _has_nul(request):
            return render(request, "400.html", status=400)
        return self.get_response(request)


def _has_nul(request: HttpRequest) -> bool:
    return any("\x00" in key or "\x00" in value for key, value in request.GET.items())


class DropNulCookiesMiddleware:
    """Ignore a cookie whose value holds a NUL character, as if it had not been sent.

    Django unquotes cookie values, so `sessionid="\\000…"` (plain ASCII, which gunicorn
    lets through) arrives as NUL characters; the session lookup then made PostgreSQL fail
    (a 500 on every page, for anyone). No cookie the portal sets holds one; the client
    simply gets a fresh session. Must come before SessionMiddleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for name, value in list(request.COOKIES.items()):
            if "\x00" in name or "\x00" in value:
                del request.COOKIES[name]
        return self.get_response(request)


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # what Django reads then, too: no body at all


# A file request's plain form (/r/<token>/, through the same encrypting handler) and its
# tus uploads (/r/<token>/uploads/...): filerequests.urls.
_FILE_REQUEST_UPLOAD = re.compile(r"/r/[^/]+/(uploads/.*)?")


class RequestBodyLimitMiddleware:
    """Answer 413, before a byte is read, to a body over DATA_UPLOAD_MAX_MEMORY_SIZE sent
    anywhere but the upload view.

    Django limits the form fields of a body to that size, not a multipart body as a whole,
    and with FILE_UPLOAD_HANDLERS empty its parser reads in pieces of up to 2 GiB: a big
    multipart POST was read into memory whole while CsrfViewMiddleware looked for its
    token, from anyone holding a CSRF cookie (any visitor of the login page). Only the
    upload view, which streams through its encrypting handler and enforces MAX_UPLOAD_MB
    itself, and the resumable (tus) uploads, whose PATCH bodies are sealed as they stream
    and never go past Upload-Length, take big bodies.
    A body without Content-Length is never read by Django.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if (
            limit is not None
            and _content_length(request) > limit
            and request.path_info != reverse("sharing:upload")
            and not request.path_info.startswith(reverse("sharing:tus_uploads"))
            and not _FILE_REQUEST_UPLOAD.fullmatch(request.path_info)
        ):
            context = {
                "title": _("Request too large"),
                "message": _("The request is larger than this page accepts. Nothing was changed."),
            }
            return render(request, "error.html", context, status=413)
        return self.get_response(request)


class TryAgainMiddleware:
    """Answer 503 with Retry-After when a service gave up on a write that the database
    kept choosing as a deadlock victim (securefiles.lib.transactions.TryAgain): nothing was
    changed, and repeating the request is safe. A clean page, never a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, TryAgain):
            return None
        context = {
            "title": _("Try again"),
            "message": _("The server is busy and nothing was changed. Please try again."),
        }
        response = render(request, "error.html", context, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


class PermissionsPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


class NoStoreForUsersMiddleware:
    """``Cache-Control: no-store`` on every response to a logged-in user.

    Their pages list confidential file names: no browser or shared cache may keep them
    (the back button after logout, a shared computer). Responses that set their own
    Cache-Control (downloads: private, no-store already) keep it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and "Cache-Control" not in response:
            add_never_cache_headers(response)
        return response


# The cookie static/js/tz.js sets from Intl.DateTimeFormat().resolvedOptions().timeZone.
TIMEZONE_COOKIE = "tz"
# IANA names are at most a few dozen characters; anything longer is not one.
_MAX_ZONE_NAME = 64


def zone_from_cookie(value: str | None) -> zoneinfo.ZoneInfo | None:
    """The IANA zone a ``tz`` cookie names ("Europe/Berlin"), or None if it names none.

    Only names in the system's zone database are accepted (``zoneinfo.available_timezones``),
    so a forged cookie (a path, "../../etc/passwd", a NUL, 10 kB) is ignored, never an error.
    """
    if not value or len(value) > _MAX_ZONE_NAME or value not in _zone_names():
        return None
    try:
        return zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class BrowserTimezoneMiddleware:
    """Show times in the browser's own zone, named (``tz`` cookie), else in UTC.

    Activates the zone for the request, so templates, filters and the admin convert times
    to it; a missing or unknown cookie leaves settings.TIME_ZONE (UTC).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = zone_from_cookie(request.COOKIES.get(TIMEZONE_COOKIE))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
