"""The API's authentication: accounts.tokens.authenticate, which the tus endpoint uses
too, wrapped for django-ninja; every refusal is a problem document."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security import HttpBearer

from accounts import tokens
from api.problems import Problem

_REFUSALS = {
    tokens.UNAUTHENTICATED: ("unauthenticated", 'Bearer realm="securefiles"'),
    tokens.INVALID_TOKEN: ("invalid-token", 'Bearer realm="securefiles", error="invalid_token"'),
    tokens.SECOND_FACTOR: ("second-factor-required", ""),
    tokens.CSRF: ("csrf-failed", ""),
    tokens.SCOPE: ("insufficient-scope", ""),
    tokens.THROTTLED: ("too-many-requests", ""),
}


class TokenAuth(HttpBearer):
    """``Authorization: Bearer sf_...`` with ``scope``, or a logged-in browser session
    (second factor passed, CSRF token on unsafe methods). The OpenAPI document names the
    bearer scheme. Raises Problem: 401 unauthenticated or invalid-token (with
    WWW-Authenticate, RFC 6750 section 3), 403 insufficient-scope, second-factor-required
    or csrf-failed, 429 too-many-requests (with Retry-After)."""

    openapi_bearerFormat = "sf_ token"  # noqa: N815 (django-ninja's attribute name)

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__()

    def __call__(self, request: HttpRequest) -> tokens.Caller:
        caller = tokens.authenticate(request, scope=self.scope)
        if not caller.refused:
            return caller
        slug, challenge = _REFUSALS[caller.refused]
        headers = {"WWW-Authenticate": challenge} if challenge else {}
        if caller.refused == tokens.SCOPE:
            headers["WWW-Authenticate"] = (
                f'Bearer realm="securefiles", error="insufficient_scope", scope="{self.scope}"'
            )
            raise Problem(
                slug,
                f"This needs a token with the {self.scope} scope.",
                headers=headers,
                scope=self.scope,
            )
        if caller.refused == tokens.THROTTLED:
            headers["Retry-After"] = str(caller.retry_after)
        raise Problem(slug, headers=headers)

    def authenticate(self, request: HttpRequest, token: str) -> None:
        """Unused: __call__ decides (HttpBearer requires the method)."""
        return None


READ, WRITE, SHARE = TokenAuth("read"), TokenAuth("write"), TokenAuth("share")
