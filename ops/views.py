"""/healthz, /readyz and /metrics: answered by ops.middleware.ProbeMiddleware before any
other middleware, so no host check, HTTPS redirect, session, CSRF or login step is in the
way of a load balancer's probe or a scraper (README "Health and metrics")."""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from ops import registry
from securefiles.lib import metrics as portal_metrics

# Prometheus text exposition format, version 0.0.4.
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _answer(body: bytes, *, status: int = 200, content_type: str) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type=content_type)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    """200 "ok": this process answers requests (liveness). Touches no dependency."""
    return _answer(b"ok\n", content_type="text/plain; charset=utf-8")


def readyz(request: HttpRequest) -> HttpResponse:
    """200 when every readiness check passes, else 503; the JSON body names each check
    with "ok" or "failing" and nothing else: no versions, hosts or error text.

    ``{"status": "ready", "checks": {"database": "ok", ...}}``
    """
    results = registry.run_checks()
    ready = all(results.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: "ok" if passed else "failing" for name, passed in results.items()},
    }
    response = _answer(
        json.dumps(body).encode(), status=200 if ready else 503, content_type="application/json"
    )
    # Each failing check was logged as a warning (ops.registry); without this, Django's
    # request logger adds an ERROR ("Service Unavailable: /readyz") at every probe, every
    # few seconds while a dependency is down, and mails ADMINS where that is configured.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus metrics, for a scraper that sends ``Authorization: Bearer <token>``
    whose SHA-256 is METRICS_TOKEN_SHA256. 404 (as if there were nothing here) while that
    setting is empty, and to any request without the token."""
    if not _scraper_allowed(request):
        return _answer(b"Not Found\n", status=404, content_type="text/plain; charset=utf-8")
    body = portal_metrics.exposition() + registry.gauges_exposition()
    return _answer(body, content_type=EXPOSITION_CONTENT_TYPE)


def _scraper_allowed(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN_SHA256
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not token.strip():
        return False
    presented = hashlib.sha256(token.strip().encode()).hexdigest()
    return hmac.compare_digest(presented, expected)
