"""The admin site, reachable only by active staff who passed a second factor."""

from collections.abc import Callable
from functools import wraps
from typing import TypeVar, cast

from django.contrib import admin
from django.contrib.admin.views.main import ERROR_FLAG
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from accounts import selectors as account_selectors
from accounts.enrolment import ENROL_REASON_ADMIN, enrol_url

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


class SecureAdminSite(admin.AdminSite):
    """The admin: only active staff who passed their second factor in this session; everyone
    else is sent where they belong (login, the code step, enrolment) or told it is for staff."""

    site_header = "securefiles administration"
    site_title = "securefiles admin"

    def has_permission(self, request: HttpRequest) -> bool:
        if not request.user.is_authenticated:
            return False
        return super().has_permission(request) and account_selectors.second_factor_passed(request)

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """Never Django's admin login form: one login page for the whole portal, with its
        lockout and second-factor steps.

        Anonymous: 302 to the portal's login page (``next`` kept). Logged in: see
        ``refusal`` (403 page, or 302 to the code step or enrolment); verified staff: 302
        to ``next`` (same site only) or the admin index.
        """
        next_url = self._next(request)
        if not request.user.is_authenticated:
            return redirect_to_login(next_url, reverse("login"))
        if self.has_permission(request):
            return HttpResponseRedirect(next_url)
        return self.refusal(request, next_url)

    def refusal(self, request: HttpRequest, next_url: str) -> HttpResponse:
        """Why a logged-in user without admin access cannot go on, and where to go.

        - not staff (or inactive): 403, a page saying the administration is for staff,
          with a link to their files (never a login form under a header that says they
          are logged in);
        - staff with an authenticator, not passed in this session: 302 to the code step;
        - staff without one: 302 to enrolment, whose page says the admin requires it.
        """
        user = request.user
        if not (user.is_active and user.is_staff):
            context = {
                "title": _("The administration is for staff"),
                "message": _(
                    "The administration is for staff, and %(username)s is not a staff "
                    "account. Ask an administrator if you need access."
                )
                % {"username": user.get_username()},
            }
            return render(request, "error.html", context, status=403)
        if account_selectors.has_second_factor(user):
            return redirect_to_login(next_url, reverse("login_otp"))
        return redirect_to_login(next_url, enrol_url(ENROL_REASON_ADMIN))

    def _next(self, request: HttpRequest) -> str:
        next_url = request.GET.get("next") or ""
        if next_url and url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return next_url
        return reverse("admin:index")

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        """Every admin view; a logged-in user without access gets ``refusal`` (a 403 page
        or the second-factor step) at the address they asked for, not a redirect to a
        login form; a change list given filter values the database cannot take
        answers as for any other bad filter (Django's ``?e=1`` page), never a 500.

        Django turns a bad lookup into IncorrectLookupParameters only where it builds the
        filter; ``created_at__year=99999`` passes that and fails when the query is
        compiled (ValueError: year out of range), on list pages without a date hierarchy.
        """
        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
            if request.user.is_authenticated and not self.has_permission(request):
                return self.refusal(request, request.get_full_path())
            try:
                return inner(request, *args, **kwargs)
            except (ValueError, OverflowError):
                match = request.resolver_match
                name = (match.url_name or "") if match else ""
                if not (request.GET and name.endswith("_changelist")):
                    raise
                return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")

        # wraps(view) copied view's metadata; guarded takes any arguments view takes.
        return cast(_View, guarded)
