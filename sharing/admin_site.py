"""The admin site, reachable only by active staff who passed a second factor."""

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
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
