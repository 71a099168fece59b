"""The owner's pages: the request list and creation form (also on the home page),
``/requests/<id>/`` with what arrived, revoking, e-mailing the link."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.actors import actor_from_request
from filerequests import selectors, services
from filerequests.forms import EmailLinkForm, RequestForm
from filerequests.models import FileRequest
from securefiles.lib.auth_types import AuthenticatedHttpRequest


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def request_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """GET: the user's requests and the creation form. POST (fields of RequestForm):
    create one and answer 201 with its page, showing its link once; 400 with the form."""
    if request.method != "POST":
        return _render_list(request, RequestForm())
    form = RequestForm(request.POST)
    if not form.is_valid():
        return _render_list(request, form, status=400)
    data = form.cleaned_data
    file_request, token = services.request_create(
        owner=request.user,
        title=data["title"],
        message=data["message"],
        expires_in_hours=data["expires_in_hours"],
        max_files=data["max_files"],
        max_mb=data["max_mb"],
        password=data["password"],
        require_sender=data["require_sender"],
        actor=actor_from_request(request),
    )
    # Shown in this response only: the token is stored nowhere, not even in the session.
    return _render_detail(request, file_request, status=201, token=token)


def _render_list(
    request: AuthenticatedHttpRequest, form: RequestForm, status: int = 200
) -> HttpResponse:
    context = {"form": form, "file_requests": selectors.requests_of(user=request.user)[:100]}
    return render(request, "filerequests/list.html", context, status=status)


def _render_detail(
    request: AuthenticatedHttpRequest,
    file_request: FileRequest,
    *,
    status: int = 200,
    token: str = "",
) -> HttpResponse:
    services.request_note_expiry(file_request=file_request, actor=actor_from_request(request))
    url = request.build_absolute_uri(reverse("filerequests:visit", args=[token])) if token else ""
    context = {
        "file_request": file_request,
        "state": _state(file_request),
        "received": selectors.received_of(file_request=file_request),
        "token": token,
        "new_link_url": url,
        "email_form": EmailLinkForm(initial={"token": token}) if token else None,
    }
    return _no_store(render(request, "filerequests/detail.html", context, status=status))


def _state(file_request: FileRequest) -> str:
    """The request's state as its owner and the admin read it."""
    if file_request.revoked_at is not None:
        return _("Revoked")
    if not selectors.request_is_live(file_request):
        return _("Expired")
    if selectors.request_is_full(file_request):
        return _("Full")
    return _("Open")


@login_required
@require_GET
def request_detail(request: AuthenticatedHttpRequest, request_id: int) -> HttpResponse:
    """The owner's page of one request (404 for anyone else): its files and senders."""
    file_request = selectors.request_get_for_owner(user=request.user, request_id=request_id)
    return _render_detail(request, file_request)


@login_required
@require_POST
def request_revoke(request: AuthenticatedHttpRequest, request_id: int) -> HttpResponse:
    file_request = selectors.request_get_for_owner(user=request.user, request_id=request_id)
    services.request_revoke(file_request=file_request, actor=actor_from_request(request))
    messages.success(request, _("Request revoked: its link no longer works."))
    return redirect("filerequests:detail", request_id=file_request.pk)


@login_required
@require_POST
def request_email(request: AuthenticatedHttpRequest, request_id: int) -> HttpResponse:
    """E-mail a new request's link (fields ``token`` and ``email``); 400 if the token is
    not this request's or the request no longer takes files."""
    file_request = selectors.request_get_for_owner(user=request.user, request_id=request_id)
    form = EmailLinkForm(request.POST)
    try:
        sent = form.is_valid() and services.request_email_link(
            file_request=file_request,
            token=form.cleaned_data["token"],
            recipient=form.cleaned_data["email"],
        )
    except services.EmailsThrottled as throttled:
        message = _("You have e-mailed many links lately. Nothing was sent; try again later.")
        context = {"title": _("Too many e-mails"), "message": message}
        refused = render(request, "error.html", context, status=429)
        refused["Retry-After"] = str(throttled.retry_after)
        return refused
    if not sent:
        message = _("The link could not be sent: give a valid e-mail address.")
        context = {"title": _("Not sent"), "message": message}
        return render(request, "error.html", context, status=400)
    messages.success(
        request, _("The link was e-mailed to %(to)s.") % {"to": form.cleaned_data["email"]}
    )
    return redirect("filerequests:detail", request_id=file_request.pk)
