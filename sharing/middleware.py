"""Small middlewares: a Permissions-Policy header, and second-factor enrolment for staff."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from sharing import twofactor


class RejectNulQueryMiddleware:
    """Answer 400 to a query string holding a NUL character.

    PostgreSQL refuses NUL in any text parameter (a DataError, so a 500 wherever a query
    value reaches a filter: search boxes, admin filters). No legitimate value holds one.
    Form bodies are covered by Django's own ProhibitNullCharactersValidator.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.META.get("QUERY_STRING", "") or _has_nul(request):
            return render(request, "400.html", status=400)
        return self.get_response(request)


def _has_nul(request: HttpRequest) -> bool:
    return any("\x00" in key or "\x00" in value for key, value in request.GET.items())


class PermissionsPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


# Pages a staff member without a second factor may still reach: enrolment and logout.
_ENROLMENT_PATHS = ("/accounts/2fa/", "/accounts/logout/", "/static/")


class StaffTwoFactorMiddleware:
    """With STAFF_REQUIRE_2FA, staff without a confirmed authenticator must enrol first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            settings.STAFF_REQUIRE_2FA
            and user.is_authenticated
            and user.is_staff
            and not request.path.startswith(_ENROLMENT_PATHS)
            and not twofactor.has_device(user)
        ):
            return redirect("two_factor")
        return self.get_response(request)
