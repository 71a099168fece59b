"""Authenticating a request by personal access token (``Authorization: Bearer sf_...``),
for the HTTP API and the tus endpoint: one function, so both decide alike.

A bearer request needs no CSRF token (no browser sends the header by itself); a session
request to the same endpoints still does, checked here with Django's own CSRF check.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from accounts import selectors, services
from accounts.models import AccessToken
from audit.actors import CREDENTIAL_ATTRIBUTE, client_ip
from securefiles.lib.auth_types import User
from throttle import counters, keys

# Why a request was refused: no or a dead credential (401), a session without its
# second factor or a token without the scope (403), CSRF (403), too many requests (429).
UNAUTHENTICATED = "unauthenticated"
INVALID_TOKEN = "invalid_token"  # noqa: S105 (a reason code, not a secret)
SECOND_FACTOR = "second_factor"
CSRF = "csrf"
SCOPE = "scope"
THROTTLED = "throttled"


@dataclass(frozen=True)
class Caller:
    """Who a request acts for: ``user``, and ``token`` when it came with one (else None,
    a browser session). ``refused`` is one of the reason codes above (then ``user`` is
    None), with ``retry_after`` seconds for THROTTLED."""

    user: User | None = None
    token: AccessToken | None = None
    refused: str = ""
    retry_after: int = 0


def bearer_of(request: HttpRequest) -> str | None:
    """The credential of an ``Authorization: Bearer`` header (RFC 6750 section 2.1), or
    None when the request has no such header. The scheme is case-insensitive."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip()


def authenticate(
    request: HttpRequest, *, scope: str, count_sessions: bool = True, count_tokens: bool = True
) -> Caller:
    """Who ``request`` acts for, needing ``scope`` (one of services.TOKEN_SCOPES).

    With an ``Authorization: Bearer`` header only the token counts (a session cookie sent
    beside it is ignored): unknown, malformed, revoked, expired and deactivated-user
    tokens are all INVALID_TOKEN. A token gets request.user set to its user and the
    audit credential "token sf_<prefix>" (audit.actors), and its last use recorded.
    Without the header, a logged-in session that passed its second factor (when the
    account has one) and Django's CSRF check for unsafe methods. Every accepted request
    with a token is counted against API_RATE_LIMIT per token when ``count_tokens``, and
    with a session per user when ``count_sessions`` (the API counts both; the tus endpoint
    counts no session, and no token's PATCH, each of which carries up to a chunk of a
    file: a multi-GiB upload must not run into a limit meant for calls).
    """
    raw = bearer_of(request)
    if raw is not None:
        return _by_token(request, raw, scope, count=count_tokens)
    return _by_session(request, count=count_sessions)


def _by_token(request: HttpRequest, raw: str, scope: str, *, count: bool) -> Caller:
    token = selectors.token_find(raw)
    if token is None:
        return Caller(refused=INVALID_TOKEN)
    throttled = _throttled(keys.api_token_key(token.prefix)) if count else 0
    if throttled:
        return Caller(refused=THROTTLED, retry_after=throttled)
    if scope not in token.scope_list:
        return Caller(refused=SCOPE)
    services.token_used(token=token, ip=client_ip(request))
    request.user = token.user
    setattr(request, CREDENTIAL_ATTRIBUTE, f"token sf_{token.prefix}")
    return Caller(user=token.user, token=token)


def _by_session(request: HttpRequest, *, count: bool) -> Caller:
    user = request.user
    if not user.is_authenticated:
        return Caller(refused=UNAUTHENTICATED)
    if selectors.second_factor_outstanding(request):
        return Caller(refused=SECOND_FACTOR)  # as SecondFactorMiddleware demands elsewhere
    if csrf_refused(request):
        return Caller(refused=CSRF)
    throttled = _throttled(keys.api_session_key(user.pk)) if count else 0
    if throttled:
        return Caller(refused=THROTTLED, retry_after=throttled)
    return Caller(user=user)


def csrf_refused(request: HttpRequest) -> bool:
    """Django's CSRF check (Origin/Referer and token) as CsrfViewMiddleware runs it on a
    view that is not exempt; safe methods pass."""
    check = CsrfViewMiddleware(_protected)
    return check.process_view(request, _protected, (), {}) is not None


def _protected(request: HttpRequest) -> HttpResponse:
    """A stand-in view with no csrf_exempt mark, for csrf_refused; never called."""
    raise NotImplementedError


def _throttled(key: str) -> int:
    """Count one request under ``key``; 0 if within API_RATE_LIMIT, else the seconds
    until the window ends (at least 1)."""
    window = settings.API_RATE_WINDOW_SECONDS
    if counters.add_failure(key, window) <= settings.API_RATE_LIMIT:
        return 0
    return max(counters.seconds_left(key, window), 1)
