"""Looking files up for a request: 404 for anyone without access, one way in."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.http import (
    Http404,
    HttpRequest,
)

from audit.actors import actor_from_request
from securefiles.lib.auth_types import AuthenticatedHttpRequest
from sharing import selectors, services
from sharing.models import StoredFile

logger = logging.getLogger(__name__)


def _deny(request: HttpRequest, file_id: uuid.UUID) -> Http404:
    """Audit a logged-in user's request for a real file they may not see; return the 404."""
    existing = selectors.file_exists(file_id=file_id)
    if existing is not None:
        services.file_access_denied(
            file=existing, actor=actor_from_request(request), path=request.path
        )
    return Http404("No such file")


def _owned_file_or_404(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> StoredFile:
    try:
        return selectors.file_get_for_owner(user=request.user, file_id=file_id)
    except Http404:
        raise _deny(request, file_id) from None


@contextmanager
def _gone_is_404() -> Iterator[None]:
    """Around a service call: a file deleted by a parallel request after this one looked
    it up answers the same 404 as any missing file."""
    try:
        yield
    except services.FileGone:
        raise Http404("No such file") from None


def _readable_file_or_404(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> StoredFile:
    try:
        return selectors.file_get_for_reader(user=request.user, file_id=file_id)
    except Http404:
        raise _deny(request, file_id) from None
