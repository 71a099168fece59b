"""The OpenAPI 3 document (/api/v1/openapi.json) as the API really answers: every error
is application/problem+json, file content is application/octet-stream."""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI

from api.schemas import ProblemOut

DESCRIPTION = (
    "The securefiles HTTP API. Authenticate with a personal access token made at "
    "/accounts/tokens/ (`Authorization: Bearer sf_...`); a logged-in browser session "
    "works too, with its CSRF token on writes. Every error is an RFC 9457 problem "
    "document (application/problem+json) whose `type` is stable; GET on a type "
    "(/api/v1/problems/<slug>) describes it. Uploads go through the tus endpoint "
    "/files/uploads/ with the same token (write scope)."
)
# Every operation can answer these: bad input, no or a dead token, a missing scope or
# second factor, a body over DATA_UPLOAD_MAX_MEMORY_SIZE (refused before any view runs,
# a GET's too), and the rate limit.
COMMON_ERRORS = (400, 401, 403, 413, 429)
# Writes can also meet a database that kept choosing them as a deadlock victim (503,
# nothing changed, Retry-After).
WRITE_ERRORS = (503,)

CONTENT_EXTRA: dict[str, Any] = {
    "parameters": [
        {
            "in": "header",
            "name": "Range",
            "required": False,
            "schema": {"type": "string"},
            "description": "one byte range, e.g. bytes=0-499 (RFC 9110 section 14.2)",
        },
        {
            "in": "header",
            "name": "If-Range",
            "required": False,
            "schema": {"type": "string"},
            "description": "apply Range only while this ETag or date still matches",
        },
    ],
}
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


def with_errors(responses: dict[int, Any], *more: int) -> dict[int, Any]:
    """An operation's ``response=``: its own answers, COMMON_ERRORS and ``more`` (each a
    problem document)."""
    errors = {status: ProblemOut for status in (*COMMON_ERRORS, *more)}
    return {**errors, **responses}


class ProblemNinjaAPI(NinjaAPI):
    """NinjaAPI whose OpenAPI document names the media types really sent."""

    def get_openapi_schema(self, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(**kwargs)
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                _fix_responses(operation["responses"], content=path.endswith("/content/"))
        return schema


def _fix_responses(responses: dict[str, Any], *, content: bool) -> None:
    for status, response in responses.items():
        media = response.get("content", {})
        json_body = media.get("application/json")
        if json_body is not None and json_body["schema"].get("$ref", "").endswith("/ProblemOut"):
            response["content"] = {"application/problem+json": json_body}
        elif content and status in ("200", "206"):
            response["content"] = _BINARY
