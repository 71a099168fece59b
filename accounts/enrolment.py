"""Why someone is sent to enrol a second factor: the reason flag of /accounts/2fa/, shared
by the enrolment view, the second-factor middleware and the admin site."""

from django.urls import reverse
from django.utils.translation import gettext_lazy

# Why someone was sent to enrol (the ``reason`` query flag of /accounts/2fa/): the page
# says so. Both apply to staff only; the flag is shown only when it is true of the user.
ENROL_REASON_STAFF = "staff"  # SecondFactorMiddleware, STAFF_REQUIRE_2FA
ENROL_REASON_ADMIN = "admin"  # the admin site (STAFF_REQUIRE_2FA off)
ENROL_REASONS = {
    ENROL_REASON_STAFF: gettext_lazy(
        "Your administrator requires staff to use two-factor authentication before "
        "using the portal. Set it up here to go on."
    ),
    ENROL_REASON_ADMIN: gettext_lazy(
        "The administration is open only to staff who log in with two-factor "
        "authentication. Set it up here to go on."
    ),
}


def enrol_url(reason: str) -> str:
    """The enrolment page's path with ``reason`` (a key of ENROL_REASONS) as its flag."""
    return f"{reverse('two_factor')}?reason={reason}"
