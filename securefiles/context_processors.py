from django.conf import settings
from django.http import HttpRequest

from sharing import selectors


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
        quota = selectors.quota_of(user=user)
        if quota is not None:
            context["header_quota"] = quota
            context["header_usage"] = selectors.usage_of(user=user)
    return context
