import functools
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.http import HttpRequest

from sharing import selectors

T = TypeVar("T")


def site(request: HttpRequest) -> dict:
    """Sign-up and single sign-on switches for the login page; usage against quota for
    the header."""
    context: dict = {
        "signup_enabled": settings.SIGNUP_ENABLED,
        "sso_enabled": settings.OIDC_ENABLED,
        "sso_label": settings.OIDC_LOGIN_LABEL,
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # Read when the template first shows them (a template calls a callable), at most
        # once: a page that reads them itself passes its own values (the file list passes
        # header_usage), which a view's context puts before these.
        context["header_quota"] = _once(lambda: selectors.quota_of(user=user))
        context["header_usage"] = _once(lambda: selectors.usage_of(user=user))
    return context


def _once(read: Callable[[], T]) -> Callable[[], T]:
    """``read``, called the first time only; later calls return what it returned."""
    return functools.cache(read)
