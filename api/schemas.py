"""What the API reads and answers (pydantic models through django-ninja; they are the
OpenAPI document's schemas)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from annotated_types import Interval
from django.conf import settings
from ninja import Field, Schema
from pydantic import BeforeValidator, model_validator


class TokenOut(Schema):
    """The token a request came with (public prefix only; the secret is never shown)."""

    prefix: str = Field(description="sf_ and the token's first 8 characters")
    name: str
    scopes: list[str]
    expires_at: datetime


class MeOut(Schema):
    username: str
    email: str
    usage: int = Field(description="bytes your files take (plaintext)")
    quota: int | None = Field(description="your quota in bytes; null: none")
    token: TokenOut | None = Field(description="the token of this request; null: a session")


class FileOut(Schema):
    id: uuid.UUID
    name: str
    size: int = Field(description="plaintext bytes")
    sha256: str | None = Field(
        description="hex SHA-256 of the content; null when not recorded or unverifiable"
    )
    content_type: str
    created_at: datetime
    expires_at: datetime | None
    owner: str = Field(description="the owner's username")


class FilePage(Schema):
    count: int = Field(description="files matching, on all pages")
    page: int
    per_page: int
    pages: int
    items: list[FileOut]


FileSort = Literal["name", "-name", "size", "-size", "date", "-date"]
MAX_PER_PAGE = 200
# No text the portal stores or searches may hold NUL (PostgreSQL refuses it; the web forms
# reject it too): the schema says so, so a client learns it from the document.
NO_NUL = r"^[^\x00]*$"


class FileListQuery(Schema):
    """The query of GET /files/."""

    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(50, ge=1, le=MAX_PER_PAGE)
    q: str = Field("", max_length=200, pattern=NO_NUL, description="part of the name")
    sort: FileSort = "-date"
    shared: bool = Field(False, description="files shared with you instead of yours")


def _json_integer(value: object) -> object:
    """JSON Schema's integer: a number without a fraction (4 or 4.0), never true or "4"
    (which pydantic would otherwise read as 1 and 4)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


# Integers read as JSON Schema reads them (_json_integer), bounds first: then the OpenAPI
# document says minimum and maximum. Link lifetimes as the portal was started with (the
# form checks the setting again).
LinkHours = Annotated[
    int, Interval(ge=1, le=settings.LINK_MAX_HOURS), BeforeValidator(_json_integer)
]
DownloadLimit = Annotated[int, Interval(ge=1, le=1_000_000), BeforeValidator(_json_integer)]


class JsonObject(Schema):
    """A request body, which must be a JSON object (django-ninja's Schema would otherwise
    read an array's missing attributes as every field left at its default)."""

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: object) -> object:
        # Schema's own validator has wrapped the parsed JSON in a DjangoGetter by now.
        if not isinstance(getattr(data, "_obj", data), dict):
            raise ValueError("the body must be a JSON object")
        return data


class ShareIn(JsonObject):
    """Exactly one of ``username`` (a colleague, by username or e-mail) and ``group`` (one
    of your groups, by name); ``expires_on`` the last day of access (ISO date, optional)."""

    username: str | None = Field(
        None, min_length=1, max_length=254, pattern=NO_NUL, description="username or e-mail"
    )
    group: str | None = Field(
        None, min_length=1, max_length=150, pattern=NO_NUL, description="one of your groups"
    )
    expires_on: date | None = Field(None, description="last day of access, today or later")


class ShareOut(Schema):
    id: int
    colleague: str | None = Field(description="the colleague's username; null for a group")
    group: str | None = Field(description="the group's name; null for a colleague")
    expires_on: date | None
    created_at: datetime


class LinkIn(JsonObject):
    expires_in_hours: LinkHours | None = Field(
        None, description="default LINK_DEFAULT_HOURS, at most LINK_MAX_HOURS"
    )
    max_downloads: DownloadLimit | None = None
    password: str = Field("", max_length=128, pattern=NO_NUL)
    label: str = Field("", max_length=100, pattern=NO_NUL, description="who the link is for")


class LinkOut(Schema):
    id: int
    label: str
    created_at: datetime
    expires_at: datetime
    max_downloads: int | None
    download_count: int
    has_password: bool
    revoked_at: datetime | None


class LinkCreated(LinkOut):
    url: str = Field(description="the link, token included: shown this once only")
    token: str = Field(description="the link's token: shown this once only")


class ProblemOut(Schema):
    """An RFC 9457 problem document (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
