"""The second factor, required of every session of an account that has one."""

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts import selectors
from accounts.enrolment import ENROL_REASON_STAFF, enrol_url


def _exempt_paths(*names: str) -> tuple[str, ...]:
    """The paths of the named URLs, and the static files, as prefixes."""
    static = "/" + settings.STATIC_URL.lstrip("/")
    return (*(reverse(name) for name in names), static)


class SecondFactorMiddleware:
    """Every session of an account with a confirmed second factor must have passed it.

    - A session that logged in without the factor (before the account enrolled one, in
      another session) is sent to the code step for everything but logging out: the
      factor is a property of the account, so a session opened with the password alone
      cannot go on using it once a factor exists.
    - With STAFF_REQUIRE_2FA, staff without a second factor (a confirmed authenticator
      or a passkey) must enrol first (sent to /accounts/2fa/?reason=staff, whose page
      tells them why, and links to /accounts/passkeys/).
    - A single sign-on whose MFA the settings accept (OIDC_MFA_SATISFIES_2FA) counts as
      the second factor for both rules.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        # The API answers its own problem document (accounts.tokens checks the factor).
        if not user.is_authenticated or request.path_info.startswith("/" + settings.API_PATH):
            return self.get_response(request)
        path = request.path
        if selectors.has_second_factor(user):
            if not selectors.second_factor_passed(request) and not path.startswith(
                _exempt_paths("login_otp", "logout", "passkey_auth_options", "passkey_auth")
            ):
                return redirect_to_login(request.get_full_path(), reverse("login_otp"))
        elif (
            settings.STAFF_REQUIRE_2FA
            and user.is_staff
            and not selectors.second_factor_passed(request)  # the provider's MFA, if allowed
            and not path.startswith(_exempt_paths("two_factor", "logout", "passkeys"))
        ):
            # The enrolment page says why they were sent there.
            return redirect(enrol_url(ENROL_REASON_STAFF))
        return self.get_response(request)
