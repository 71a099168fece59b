"""The home page's "File requests" panel: the user's requests and the creation form."""

from __future__ import annotations

from django import template

from filerequests import selectors
from filerequests.forms import RequestForm

register = template.Library()

PANEL_ROWS = 10


@register.inclusion_tag("filerequests/_panel.html", takes_context=True)
def file_requests_panel(context: template.Context) -> dict:
    """The panel for the page's logged-in user: newest PANEL_ROWS requests and the form."""
    user = context["request"].user
    return {
        "file_requests": selectors.requests_of(user=user)[:PANEL_ROWS],
        "form": RequestForm(),
        "csrf_token": context.get("csrf_token"),
    }
