"""The HTTP API, /api/v1/ (README "HTTP API"): thin endpoints over the same selectors and
services as the web views, so one permission model answers both: a file you cannot
reach is the same 404 here as there (and its denial audited the same way)."""

from __future__ import annotations

import math
import uuid
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from ninja import Query, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError

from accounts.tokens import Caller
from api import openapi
from api.auth import READ, SHARE, WRITE
from api.problems import (
    PROBLEM_TYPES,
    Problem,
    from_exception,
    problem_for_status,
    problem_response,
)
from api.schemas import (
    FileListQuery,
    FileOut,
    FilePage,
    LinkCreated,
    LinkIn,
    LinkOut,
    MeOut,
    ShareIn,
    ShareOut,
    TokenOut,
)
from audit.actors import actor_from_request
from securefiles.lib.auth_types import AuthenticatedHttpRequest
from securefiles.lib.transactions import RETRY_AFTER_SECONDS, TryAgain
from sharing import selectors, services
from sharing.forms import LinkForm
from sharing.models import Share, ShareLink, StoredFile
from sharing.views.access import _gone_is_404, _owned_file_or_404, _readable_file_or_404
from sharing.views.files import stream_for_reader
from sharing.views.links import link_from_form
from sharing.views.paging import CountedPaginator

api = openapi.ProblemNinjaAPI(
    title="securefiles API",
    version="1",
    description=openapi.DESCRIPTION,
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


# -- errors: every one a problem document


@api.exception_handler(Problem)
def _problem(request: HttpRequest, exc: Problem) -> HttpResponse:
    return from_exception(request, exc)


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
        for error in exc.errors
    ]
    return problem_response(PROBLEM_TYPES["bad-request"], instance=request.path, errors=errors)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response(PROBLEM_TYPES["not-found"], instance=request.path)


@api.exception_handler(services.FileGone)
def _gone(request: HttpRequest, exc: services.FileGone) -> HttpResponse:
    return problem_response(PROBLEM_TYPES["not-found"], instance=request.path)


@api.exception_handler(TryAgain)
def _try_again(request: HttpRequest, exc: TryAgain) -> HttpResponse:
    response = problem_response(PROBLEM_TYPES["unavailable"], instance=request.path)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    kind = problem_for_status(exc.status_code)
    response = problem_response(kind, instance=request.path, status=exc.status_code)
    if isinstance(exc, AuthenticationError):
        response["WWW-Authenticate"] = 'Bearer realm="securefiles"'
    return response


def _caller(request: HttpRequest) -> Caller:
    caller: Caller = request.auth  # type: ignore[attr-defined]  # set by TokenAuth
    return caller


def _user_request(request: HttpRequest) -> AuthenticatedHttpRequest:
    """The request, whose user TokenAuth has set (a token's user, or the session's)."""
    return request  # type: ignore[return-value]


# -- me


@api.get("/me/", response=openapi.with_errors({200: MeOut}), auth=READ, tags=["me"])
def me(request: HttpRequest) -> dict[str, Any]:
    """Who you are, how many bytes your files take and your quota."""
    caller = _caller(request)
    user = _user_request(request).user
    token = None
    if caller.token is not None:
        token = TokenOut(
            prefix=f"sf_{caller.token.prefix}",
            name=caller.token.name,
            scopes=caller.token.scope_list,
            expires_at=caller.token.expires_at,
        )
    return {
        "username": user.get_username(),
        "email": user.email,
        "usage": selectors.usage_of(user=user),
        "quota": selectors.quota_of(user=user),
        "token": token,
    }


# -- files


def _file_out(stored: StoredFile) -> dict[str, Any]:
    sealed = selectors.file_sha256(file=stored)
    return {
        "id": stored.id,
        "name": stored.name,
        "size": stored.size,
        "sha256": sealed.hex or None,
        "content_type": stored.content_type,
        "created_at": stored.created_at,
        "expires_at": stored.expires_at,
        "owner": stored.owner.get_username(),
    }


def _listed(user: Any, *, q: str, sort: str, shared: bool) -> QuerySet[StoredFile]:
    if shared:
        files = selectors.files_shared_with(user=user, search=q)
    else:
        files = selectors.files_owned_by(user=user, search=q, ordering=sort)
    # Every column (the SHA-256 opens from the row) and the owner, one query per page.
    return files.defer(None).select_related("owner").order_by(*selectors.FILE_ORDERINGS[sort])


@api.get("/files/", response=openapi.with_errors({200: FilePage}), auth=READ, tags=["files"])
def files_list(request: HttpRequest, query: Query[FileListQuery]) -> dict[str, Any]:
    """Your files (or, with shared=true, the files colleagues shared with you), a page at a
    time, searched by name and sorted. A page past the last is empty."""
    user = _user_request(request).user
    page, per_page = query.page, query.per_page
    q = query.q.strip()
    files = _listed(user, q=q, sort=query.sort, shared=query.shared)
    if query.shared or q:
        paginator = Paginator(files, per_page)
    else:  # the user's own files: counted by the services, no COUNT(*) over them
        paginator = CountedPaginator(files, per_page, count=selectors.file_count_of(user=user))
    count = paginator.count
    items = paginator.page(page).object_list if page <= paginator.num_pages else []
    return {
        "count": count,
        "page": page,
        "per_page": per_page,
        "pages": math.ceil(count / per_page),
        "items": [_file_out(stored) for stored in items],
    }


@api.get(
    "/files/{uuid:file_id}/",
    response=openapi.with_errors({200: FileOut}, 404),
    auth=READ,
    tags=["files"],
)
def file_get(request: HttpRequest, file_id: uuid.UUID) -> dict[str, Any]:
    """A file's metadata, for its owner and the colleagues it is shared with."""
    return _file_out(_readable_file_or_404(_user_request(request), file_id))


@api.delete(
    "/files/{uuid:file_id}/",
    response=openapi.with_errors({204: None}, 404, *openapi.WRITE_ERRORS),
    auth=WRITE,
    tags=["files"],
)
def file_delete(request: HttpRequest, file_id: uuid.UUID) -> Status[None]:
    """Delete a file you own: row, key and ciphertext (its shares and links with it)."""
    user_request = _user_request(request)
    stored = _owned_file_or_404(user_request, file_id)
    with _gone_is_404():
        services.file_delete(file=stored, actor=actor_from_request(request))
    return Status(204, None)


@api.get(
    "/files/{uuid:file_id}/content/",
    response=openapi.with_errors({200: None, 206: None}, 404, 416, 502),
    auth=READ,
    tags=["files"],
    openapi_extra=openapi.CONTENT_EXTRA,
)
def file_content(request: HttpRequest, file_id: uuid.UUID) -> HttpResponseBase:
    """The file's bytes, verified as they stream: all (200), or the one range a ``Range``
    asks for (206; 416 when it starts past the end; If-Range honoured), as the web
    download does (RFC 9110 section 14)."""
    stored = _readable_file_or_404(_user_request(request), file_id)
    response = stream_for_reader(_user_request(request), stored, channel="api")
    if response.status_code in (200, 206):
        # The stored type is in the metadata; the API's bytes are always just bytes.
        response["Content-Type"] = "application/octet-stream"
    return response


# -- shares


def _share_out(share: Share) -> dict[str, Any]:
    return {
        "id": share.pk,
        "colleague": None if share.colleague is None else share.colleague.get_username(),
        "group": None if share.group is None else share.group.name,
        "expires_on": share.expires_on,
        "created_at": share.created_at,
    }


@api.get(
    "/files/{uuid:file_id}/shares/",
    response=openapi.with_errors({200: list[ShareOut]}, 404),
    auth=READ,
    tags=["shares"],
)
def shares_list(request: HttpRequest, file_id: uuid.UUID) -> list[dict[str, Any]]:
    """The colleagues and groups a file you own is shared with."""
    stored = _owned_file_or_404(_user_request(request), file_id)
    return [_share_out(share) for share in selectors.shares_of(file=stored)]


@api.post(
    "/files/{uuid:file_id}/shares/",
    response=openapi.with_errors({201: ShareOut}, 404, 422, *openapi.WRITE_ERRORS),
    auth=SHARE,
    tags=["shares"],
)
def share_create(request: HttpRequest, file_id: uuid.UUID, body: ShareIn) -> Status[dict]:
    """Share a file you own with a colleague (``username``: username or e-mail; they are
    told by e-mail) or with one of your groups (``group``), until ``expires_on`` if given.
    Lookups that match no account are limited per user (429 past the limit)."""
    stored = _owned_file_or_404(_user_request(request), file_id)
    if (body.username is None) == (body.group is None):
        raise Problem("share-refused", "Give either a username or a group, not both.")
    actor = actor_from_request(request)
    try:
        with _gone_is_404():
            if body.group is not None:
                share = services.share_grant_group(
                    file=stored, group_name=body.group, actor=actor, expires_on=body.expires_on
                )
            else:
                share = services.share_grant(
                    file=stored, query=body.username or "", actor=actor, expires_on=body.expires_on
                )
    except services.ShareError as exc:
        raise Problem("share-refused", str(exc)) from None
    except services.ShareLookupThrottled as exc:
        raise Problem(
            "too-many-requests",
            "Too many names that match no account: sharing by name is paused.",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    return Status(201, _share_out(share))


@api.delete(
    "/files/{uuid:file_id}/shares/{int:share_id}/",
    response=openapi.with_errors({204: None}, 404, *openapi.WRITE_ERRORS),
    auth=SHARE,
    tags=["shares"],
)
def share_revoke(request: HttpRequest, file_id: uuid.UUID, share_id: int) -> Status[None]:
    """Take a colleague's access away."""
    user_request = _user_request(request)
    stored = _owned_file_or_404(user_request, file_id)
    share = selectors.share_get_for_owner(user=user_request.user, file=stored, share_id=share_id)
    with _gone_is_404():
        if not services.share_revoke(share=share, actor=actor_from_request(request)):
            raise Http404("No such share")
    return Status(204, None)


# -- links


def _link_out(link: ShareLink) -> dict[str, Any]:
    return {
        "id": link.pk,
        "label": link.label,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "max_downloads": link.max_downloads,
        "download_count": link.download_count,
        "has_password": link.has_password,
        "revoked_at": link.revoked_at,
    }


@api.get(
    "/files/{uuid:file_id}/links/",
    response=openapi.with_errors({200: list[LinkOut]}, 404),
    auth=READ,
    tags=["links"],
)
def links_list(request: HttpRequest, file_id: uuid.UUID) -> list[dict[str, Any]]:
    """A file's share links (never their tokens), newest first."""
    stored = _owned_file_or_404(_user_request(request), file_id)
    return [_link_out(link) for link in selectors.links_of(file=stored)]


@api.post(
    "/files/{uuid:file_id}/links/",
    response=openapi.with_errors({201: LinkCreated}, 404, *openapi.WRITE_ERRORS),
    auth=SHARE,
    tags=["links"],
)
def link_create(request: HttpRequest, file_id: uuid.UUID, body: LinkIn) -> Status[dict]:
    """Make a share link to a file you own. The answer holds its URL and token, shown this
    once: only the token's SHA-256 is stored."""
    user_request = _user_request(request)
    stored = _owned_file_or_404(user_request, file_id)
    form = LinkForm(body.dict())  # the web form's rules (LINK_MAX_HOURS) for both
    if not form.is_valid():
        errors = [
            {"loc": ["body", field], "msg": str(message)}
            for field, messages in form.errors.items()
            for message in messages
        ]
        raise Problem("bad-request", errors=errors)
    link, token, url = link_from_form(user_request, stored, form)
    return Status(201, {**_link_out(link), "url": url, "token": token})


@api.delete(
    "/files/{uuid:file_id}/links/{int:link_id}/",
    response=openapi.with_errors({204: None}, 404, *openapi.WRITE_ERRORS),
    auth=SHARE,
    tags=["links"],
)
def link_revoke(request: HttpRequest, file_id: uuid.UUID, link_id: int) -> Status[None]:
    """Revoke a share link: it answers 404 from then on."""
    user_request = _user_request(request)
    stored = _owned_file_or_404(user_request, file_id)
    link = selectors.link_get_for_owner(user=user_request.user, file=stored, link_id=link_id)
    with _gone_is_404():
        services.link_revoke(link=link, actor=actor_from_request(request))
    return Status(204, None)
