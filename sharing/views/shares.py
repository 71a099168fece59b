"""Sharing a file with a colleague or a group, and taking it back."""

from __future__ import annotations

import logging
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpResponse,
)
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from audit.actors import Actor, actor_from_request
from securefiles.lib.auth_types import AuthenticatedHttpRequest
from sharing import display, selectors, services
from sharing.forms import ShareForm
from sharing.models import Share, StoredFile
from sharing.views.access import _gone_is_404, _owned_file_or_404
from sharing.views.files import _render_detail

logger = logging.getLogger(__name__)


@login_required
@require_POST
def share_create(request: AuthenticatedHttpRequest, file_id: uuid.UUID) -> HttpResponse:
    stored = _owned_file_or_404(request, file_id)
    form = ShareForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, stored, status=400, share_form=form)
    try:
        with _gone_is_404():
            share = _grant(stored, form.cleaned_data, actor_from_request(request))
    except services.ShareError as exc:
        form.add_error("group" if form.cleaned_data["group"] else "username", str(exc))
        return _render_detail(request, stored, status=400, share_form=form)
    except services.ShareLookupThrottled as exc:
        form.add_error("username", _share_lookup_throttled_message(exc))
        response = _render_detail(request, stored, status=429, share_form=form)
        response["Retry-After"] = str(exc.retry_after)
        return response
    messages.success(request, _("Shared with %(user)s.") % {"user": share.recipient})
    return redirect("sharing:file_detail", file_id=stored.id)


def _grant(stored: StoredFile, data: dict, actor: Actor) -> Share:
    """The share the form asks for: with the colleague or with the group it names."""
    if data["group"]:
        return services.share_grant_group(
            file=stored, group_name=data["group"], actor=actor, expires_on=data["expires_on"]
        )
    return services.share_grant(
        file=stored, query=data["username"], actor=actor, expires_on=data["expires_on"]
    )


def _share_lookup_throttled_message(exc: services.ShareLookupThrottled) -> str:
    return _(
        "You have entered %(limit)d names or addresses that match no account within "
        "%(window)s, the limit. To keep accounts from being guessed, sharing by name is "
        "paused for you: try again in %(wait)s."
    ) % {
        "limit": exc.limit,
        "window": display.duration(exc.window_seconds),
        "wait": display.duration(exc.retry_after),
    }


@login_required
@require_POST
def share_revoke(
    request: AuthenticatedHttpRequest, file_id: uuid.UUID, share_id: int
) -> HttpResponse:
    stored = _owned_file_or_404(request, file_id)
    share = selectors.share_get_for_owner(user=request.user, file=stored, share_id=share_id)
    with _gone_is_404():
        revoked = services.share_revoke(share=share, actor=actor_from_request(request))
    if not revoked:
        raise Http404("No such share")  # revoked meanwhile, by a parallel request
    messages.success(request, _("Access removed."))
    return redirect("sharing:file_detail", file_id=stored.id)
