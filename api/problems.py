"""RFC 9457 problem documents: every error the API answers, with a stable ``type``.

Types are URI references relative to the portal, ``/api/v1/problems/<slug>``; each
answers GET with its own description (api.urls), so a client that follows one learns
what it means. They are stable: clients match on them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "/api/v1/problems/"


@dataclass(frozen=True)
class ProblemType:
    """One kind of problem: its slug (the end of its type URI), status and title."""

    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        return TYPE_BASE + self.slug


_TYPES = [
    ProblemType(
        "bad-request",
        400,
        "Invalid request",
        "A parameter or the body is malformed "
        "or out of range; `errors` lists each problem with its location.",
    ),
    ProblemType(
        "share-refused",
        422,
        "Cannot share",
        "The share cannot be granted (no active "
        "user of that name, already shared, your own file); `detail` says why.",
    ),
    ProblemType(
        "unauthenticated",
        401,
        "Authentication required",
        "Send a personal access token as `Authorization: Bearer sf_...`.",
    ),
    ProblemType(
        "invalid-token",
        401,
        "Invalid token",
        "The token is unknown, malformed, revoked or expired, or its user is deactivated.",
    ),
    ProblemType("forbidden", 403, "Forbidden", "The request is not allowed."),
    ProblemType(
        "insufficient-scope",
        403,
        "Insufficient scope",
        "The token lacks the scope this operation needs (read, write or share).",
    ),
    ProblemType(
        "second-factor-required",
        403,
        "Second factor required",
        "This browser session has not passed the account's second factor.",
    ),
    ProblemType(
        "csrf-failed",
        403,
        "CSRF check failed",
        "A session request that changes "
        "something needs the CSRF token (X-CSRFToken); token requests do not.",
    ),
    ProblemType(
        "not-found",
        404,
        "Not found",
        "No such resource, or none you may see: the same answer either way.",
    ),
    ProblemType("method-not-allowed", 405, "Method not allowed", "See the Allow header."),
    ProblemType("not-acceptable", 406, "Not acceptable", "No representation matches Accept."),
    ProblemType("conflict", 409, "Conflict", "The resource changed meanwhile."),
    ProblemType("payload-too-large", 413, "Request too large", "The body is over the limit."),
    ProblemType("unsupported-media-type", 415, "Unsupported media type", "Send JSON."),
    ProblemType(
        "range-not-satisfiable",
        416,
        "Range not satisfiable",
        "The range starts at or past the end; Content-Range gives the size.",
    ),
    ProblemType(
        "too-many-requests",
        429,
        "Too many requests",
        "Over the rate limit; retry after the seconds in Retry-After.",
    ),
    ProblemType("server-error", 500, "Server error", "Something failed on the server."),
    ProblemType(
        "integrity-error",
        502,
        "Stored copy failed verification",
        "Nothing was sent; the failure is logged for the administrator.",
    ),
    ProblemType(
        "unavailable",
        503,
        "Try again",
        "The server is busy; nothing was changed. Retry after the seconds in Retry-After.",
    ),
]
PROBLEM_TYPES: dict[str, ProblemType] = {kind.slug: kind for kind in _TYPES}
# The type a bare status is answered with, where no more precise one was chosen.
_BY_STATUS: dict[int, ProblemType] = {}
for _kind in _TYPES:
    _BY_STATUS.setdefault(_kind.status, _kind)


def problem_for_status(status: int) -> ProblemType:
    """The generic problem type of an HTTP status (a 4xx without one: bad-request; a 5xx:
    server-error)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return PROBLEM_TYPES["server-error" if status >= 500 else "bad-request"]


class Problem(Exception):
    """Raised anywhere under the API: answered as the problem document of ``slug``, with
    ``detail``, extension members ``extra`` and response ``headers``."""

    def __init__(
        self,
        slug: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or slug)
        self.kind = PROBLEM_TYPES[slug]
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    kind: ProblemType,
    *,
    detail: str = "",
    instance: str = "",
    status: int | None = None,
    **extra: Any,
) -> HttpResponse:
    """A problem document (RFC 9457 section 3): type, title, status (``kind``'s unless
    ``status`` is given), detail, instance and any extension members, as
    ``application/problem+json``, never cached."""
    status = status or kind.status
    body: dict[str, Any] = {"type": kind.uri, "title": kind.title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    response = HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response


def from_exception(request: HttpRequest, exc: Problem) -> HttpResponse:
    """The answer to a raised Problem."""
    response = problem_response(exc.kind, detail=exc.detail, instance=request.path, **exc.extra)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def describe(request: HttpRequest, slug: str) -> HttpResponse:
    """GET /api/v1/problems/<slug>: what a problem type means (JSON), or not-found."""
    kind = PROBLEM_TYPES.get(slug)
    if kind is None:
        return problem_response(PROBLEM_TYPES["not-found"], instance=request.path)
    return JsonResponse(
        {
            "type": kind.uri,
            "title": kind.title,
            "status": kind.status,
            "description": kind.description,
        }
    )


def api_prefix() -> str:
    """The path every API URL starts with, "/api/"."""
    return "/" + settings.API_PATH


# Headers an error keeps when its body becomes a problem document.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Content-Range")


class ProblemMiddleware:
    """Every error answered under /api/ is a problem document, never an HTML page.

    Errors the API's own handlers answer are problem documents already. What Django or
    another middleware answers by itself (404 for an unknown route, 405 from a route that
    lacks the method, 400 for a NUL in the query, 413 for a big body, a 500 page, 503
    for a deadlock victim) is replaced here by the generic problem of its status,
    keeping the headers that carry meaning (Allow, Retry-After, ...). Must sit outside
    every middleware that answers errors itself.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path_info.startswith(api_prefix())
            or response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
        ):
            return response
        status = response.status_code
        problem = problem_response(problem_for_status(status), instance=request.path, status=status)
        for name in _KEPT_HEADERS:
            if name in response:
                problem[name] = response[name]
        if response.status_code == 401 and "WWW-Authenticate" not in problem:
            problem["WWW-Authenticate"] = 'Bearer realm="securefiles"'
        # The replaced response is not closed here: close() sends request_finished, which
        # the server sends once, for the response it is given (this one).
        return problem
