"""The home page's "File requests" panel: the user's requests and the creation form."""

from __future__ import annotations

from functools import lru_cache

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.utils.translation import get_language, override

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
        "blank_fields": blank_form_fields(get_language() or ""),
        "csrf_token": context.get("csrf_token"),
    }


@lru_cache(maxsize=16)
def blank_form_fields(language: str) -> SafeString:
    """The labels and inputs of an empty RequestForm in ``language``, rendered once per
    process: every home page shows them, and Django renders each of the seven inputs
    through a template of its own (2 ms of the page). Nothing in them varies by request
    or user (the CSRF token and the errors are outside, in _form.html)."""
    with override(language or None):
        html = render_to_string("filerequests/_form_fields.html", {"form": RequestForm()})
    if not isinstance(html, SafeString):  # what the engine returns, its values escaped
        raise TypeError("the template engine returned unescaped text")
    return html
