"""Reads of file requests: by token for visitors (one 404 for every kind of dead link),
scoped to the owner for everyone else."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from filerequests.models import FileRequest, ReceivedFile, RequestUpload
from securefiles.lib.auth_types import User

# secrets.token_urlsafe(32): 43 URL-safe characters (256 bits).
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def token_digest(token: str) -> str:
    """A request token as stored: its SHA-256 in hex (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def request_is_live(file_request: FileRequest) -> bool:
    """Neither revoked nor expired (it may be full)."""
    return file_request.revoked_at is None and file_request.expires_at > timezone.now()


def request_is_full(file_request: FileRequest) -> bool:
    """Nothing more fits: its file count or its bytes are used up."""
    return file_request.files_left == 0 or file_request.bytes_left == 0


def request_is_open(file_request: FileRequest) -> bool:
    """Takes files: live and not full."""
    return request_is_live(file_request) and not request_is_full(file_request)


def request_find_by_token(token: str) -> FileRequest | None:
    """The request a token names, whatever its state, or None (compared in constant time
    after the indexed lookup by digest)."""
    if not TOKEN_RE.fullmatch(token):
        return None
    digest = token_digest(token)
    found = FileRequest.objects.select_related("owner").filter(token_digest=digest).first()
    if found is None or not hmac.compare_digest(found.token_digest, digest):
        return None
    return found


def request_get_by_token(*, token: str, including_full: bool = False) -> FileRequest:
    """The open request for a token; Http404 alike for unknown, expired, revoked and
    full (``including_full`` lets a full one through: its receipt is still shown)."""
    found = request_find_by_token(token)
    if found is None or not request_is_live(found):
        raise Http404("No such request")
    if not including_full and request_is_full(found):
        raise Http404("No such request")
    return found


def requests_of(*, user: User) -> QuerySet[FileRequest]:
    """The user's requests, newest first."""
    return FileRequest.objects.filter(owner=user)


def request_get_for_owner(*, user: User, request_id: int) -> FileRequest:
    """One of the user's requests; Http404 for anyone else's or none."""
    found = FileRequest.objects.filter(pk=request_id, owner=user).first()
    if found is None:
        raise Http404("No such request")
    return found


def received_of(*, file_request: FileRequest) -> QuerySet[ReceivedFile]:
    """What arrived through a request (files the owner deleted are gone), newest first."""
    return ReceivedFile.objects.filter(request=file_request).select_related("file")


def received_in(*, file_request: FileRequest, file_ids: list[str]) -> QuerySet[ReceivedFile]:
    """The files among ``file_ids`` that arrived through ``file_request`` (a receipt)."""
    return received_of(file_request=file_request).filter(file_id__in=file_ids)


def request_upload_ids(file_request: FileRequest) -> QuerySet[RequestUpload, Any]:
    """The ids of the uploads on their way into ``file_request`` (a values_list QuerySet,
    for an ``id__in``): its visitors' unfinished uploads, capped as the request's own."""
    return RequestUpload.objects.filter(request=file_request).values_list("id", flat=True)


def visitor_upload_ids(*, owner: User) -> QuerySet[RequestUpload, Any]:
    """The ids of the uploads visitors are sending into any of ``owner``'s requests: they
    count against each request's cap of unfinished uploads, not the owner's own."""
    return RequestUpload.objects.filter(request__owner=owner).values_list("id", flat=True)


def owner_display_name(file_request: FileRequest) -> str:
    """The owner as a visitor may know them: their full name, or "" when they have none.
    Never the login name, which is half of what the login page asks for."""
    return file_request.owner.get_full_name().strip()
