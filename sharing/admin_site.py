"""The admin site, reachable only by active staff who passed a second factor."""

from collections.abc import Callable
from functools import wraps

from django.contrib import admin
from django.contrib.admin.views.main import ERROR_FLAG
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse


class SecureAdminSite(admin.AdminSite):
    site_header = "securefiles administration"
    site_title = "securefiles admin"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        verified = getattr(user, "is_verified", lambda: False)()
        return super().has_permission(request) and verified

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # One login page for the whole portal, with its lockout and second-factor steps.
        next_url = request.GET.get("next") or reverse("admin:index")
        if request.user.is_authenticated and request.user.is_staff:
            return redirect_to_login(next_url, reverse("two_factor"))
        return redirect_to_login(next_url, reverse("login"))

    def admin_view(self, view: Callable, cacheable: bool = False) -> Callable:
        """Every admin view; a change list given filter values the database cannot take
        answers as for any other bad filter (Django's ``?e=1`` page), never a 500.

        Django turns a bad lookup into IncorrectLookupParameters only where it builds the
        filter; ``created_at__year=99999`` passes that and fails when the query is
        compiled (ValueError: year out of range), on list pages without a date hierarchy.
        """
        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
            try:
                return inner(request, *args, **kwargs)
            except (ValueError, OverflowError):
                match = request.resolver_match
                if not (request.GET and match and match.url_name.endswith("_changelist")):
                    raise
                return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")

        return guarded
