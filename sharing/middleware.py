"""Small middlewares: a Permissions-Policy header, and second-factor enrolment for staff."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from sharing import twofactor


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
