"""The probes, and the request counter of /metrics."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBase

from ops import views
from securefiles.lib import metrics

# Exact paths; their contract is in the README ("Health and metrics").
PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": views.healthz,
    "/readyz": views.readyz,
    "/metrics": views.metrics,
}


class ProbeMiddleware:
    """Answer /healthz, /readyz and /metrics (GET or HEAD) before any other middleware.

    First in MIDDLEWARE on purpose: a probe sent to a pod's address (``Host: 10.0.3.7``)
    never reaches ALLOWED_HOSTS' check (Django reads the host only when something asks
    for it), an http:// probe is not redirected to HTTPS by SecurityMiddleware, and no
    session, CSRF or second-factor step runs. Probes are not counted in the request metrics.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        probe = PROBES.get(request.path_info)
        if probe is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = HttpResponse(status=405)
            response["Allow"] = "GET, HEAD"
            return response
        return probe(request)


class RequestMetricsMiddleware:
    """Count every answered request by route name, method and status
    (securefiles_http_requests_total), and every 429 as a throttle refusal.

    Just inside ProbeMiddleware, so the answers of every other middleware (HTTPS
    redirects, 400s, lockouts) are counted too. The label is the resolved route's name,
    never the path: a path holds file ids and share-link tokens.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None and match.view_name else "none"
        metrics.request_observed(
            view=view, method=request.method or "", status=response.status_code
        )
        return response
