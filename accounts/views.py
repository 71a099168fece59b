"""Log-in with an optional second step, second-factor enrolment, invitations, optional
sign-up, and personal access tokens."""

from __future__ import annotations

import base64
import time
from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm
from django.contrib.auth.views import LoginView, LogoutView, PasswordResetView
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login

from accounts import login_policy
from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.enrolment import ENROL_REASONS, enrol_url  # noqa: F401  (views' names)
from accounts.forms import (
    CodeForm,
    PortalAuthenticationForm,
    QueuedPasswordResetForm,
    RemoveTwoFactorForm,
    SignUpForm,
    TokenForm,
)
from audit.actors import actor_from_request, client_ip
from securefiles.lib.auth_types import AuthenticatedHttpRequest, User
from securefiles.lib.negotiation import prefers_json
from securefiles.lib.site import site_url
from throttle import counters, keys

PENDING_KEY = "securefiles_pending_2fa"
PENDING_SECONDS = 300
LOGGED_OUT_FLAG = "logged_out"  # on the login page after logging out: it says so
OTP_FAILURES = 10


class PortalLoginView(LoginView):
    """Password first; users with an authenticator then give a code before any session."""

    authentication_form = PortalAuthenticationForm
    redirect_authenticated_user = False
    # Django's form views treat PUT as POST; the login form is GET and POST only (405).
    http_method_names = ["get", "post", "head", "options"]

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        # The account-wide and address-wide limits (accounts.login_policy) refuse before the
        # password is checked, so a refused guess learns nothing about the password.
        username = str(request.POST.get("username", ""))[:150]
        reason = login_policy.refusal(request, username)
        if reason is not None:
            account_services.login_lockout_record(
                actor=actor_from_request(request, label="anonymous"),
                username=username,
                limit=reason,
            )
            return render(request, "registration/locked_out.html", status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        user = form.get_user()
        if not account_selectors.has_second_factor(user):
            response = super().form_valid(form)
            login_policy.success_record(self.request, user, response)
            return response
        # Not logged in yet: remember who passed the password step, briefly.
        self.request.session[PENDING_KEY] = {
            "user_id": user.pk,
            "at": time.time(),
            "next": self.get_success_url(),
        }
        return redirect("login_otp")


class PortalPasswordResetView(PasswordResetView):
    """Django's reset view, with links from SITE_URL and requests throttled.

    The link's scheme and host come from securefiles.lib.site.site_url(), never from the
    request's Host header. Requests are counted per client address (over the limit: 429)
    and per e-mail address typed (over the limit: the usual "done" page, no e-mail), see
    account_services.password_reset_admit.
    """

    form_class = QueuedPasswordResetForm
    http_method_names = ["get", "post", "head", "options"]

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        try:
            send = account_services.password_reset_admit(
                ip=client_ip(self.request), email=form.cleaned_data["email"]
            )
        except account_services.PasswordResetThrottled as exc:
            context = {"retry_after": exc.retry_after}
            response = render(
                self.request, "registration/password_reset_throttled.html", context, status=429
            )
            response["Retry-After"] = str(exc.retry_after)
            return response
        if send:
            scheme, _sep, domain = site_url().partition("://")
            form.save(
                domain_override=domain,  # host[:port], as the template's {{ domain }}
                use_https=scheme == "https",
                token_generator=self.token_generator,
                from_email=self.from_email,
                email_template_name=self.email_template_name,
                subject_template_name=self.subject_template_name,
                request=self.request,
                html_email_template_name=self.html_email_template_name,
                extra_email_context=self.extra_email_context,
            )
        return HttpResponseRedirect(self.get_success_url())


class PortalLogoutView(LogoutView):
    """Django's logout (POST only; the session is flushed), then the login page saying
    "You have been logged out." (302 to ``/accounts/login/?logged_out=1``).

    A query flag, not a message in the session: logging out leaves no session behind,
    not even an anonymous one holding a message. A same-site ``next`` still wins.
    """

    def get_default_redirect_url(self) -> str:
        return f"{reverse('login')}?{LOGGED_OUT_FLAG}=1"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Log out, and have the browser clear this site's storage (W3C Clear Site Data,
        type "storage": localStorage and the like, not cookies): the upload page keeps
        unfinished uploads' file names there for resuming, and the names of confidential
        files must not outlive the session on a shared computer. Cookies stay, so the
        known-device cookie of the login policy does too. static/js/site.js also clears
        them where a browser ignores the header (it needs a secure origin)."""
        response = super().post(request, *args, **kwargs)
        response["Clear-Site-Data"] = '"storage"'
        return response


def _pending_user(request: HttpRequest) -> tuple[User | None, str | None]:
    """Who is at the code step, and where to go next: (user, next) or (None, None).

    Either someone who just passed the password step (not logged in yet), or a session
    logged in without the second factor (before the account had one, or by an
    administrator's tools) that must now pass it to go on (SecondFactorMiddleware).
    """
    user = request.user
    if (
        user.is_authenticated
        and not account_selectors.second_factor_passed(request)
        and account_selectors.has_second_factor(user)
    ):
        return user, request.GET.get("next") or request.POST.get("next")
    pending = request.session.get(PENDING_KEY)
    if not pending or time.time() - pending["at"] > PENDING_SECONDS:
        return None, None
    passed = get_user_model().objects.filter(pk=pending["user_id"], is_active=True).first()
    return passed, pending.get("next")


@never_cache
@require_http_methods(["GET", "POST"])
def login_otp(request: HttpRequest) -> HttpResponseBase:
    """The second step of logging in: a TOTP code or a one-time recovery code."""
    user, next_url = _pending_user(request)
    if user is None:
        request.session.pop(PENDING_KEY, None)
        if request.user.is_authenticated:
            return redirect(settings.LOGIN_REDIRECT_URL)  # verified already, or no factor
        return redirect("login")
    throttle_key = keys.second_factor_key(user.pk)
    window = int(settings.AXES_COOLOFF_TIME.total_seconds())
    if counters.is_throttled(throttle_key, OTP_FAILURES, window):
        request.session.pop(PENDING_KEY, None)
        return _locked(request, user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Counted before it is checked, atomically: parallel guesses cannot slip past the
        # limit between a check and its count. A right code gives its attempt back.
        if counters.add_failure(throttle_key, window) > OTP_FAILURES:
            request.session.pop(PENDING_KEY, None)
            return _locked(request, user)
        device = account_selectors.confirmed_device(user)
        code = form.cleaned_data["code"]
        if device and (device.verify_token(code.strip()) or _recovery(user, code)):
            counters.remove_failure(throttle_key)
            request.session.pop(PENDING_KEY, None)
            if request.user.is_authenticated:
                request.session.cycle_key()  # a new privilege level: a new session key
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            otp_login(request, device)
            response = redirect(_safe_next(request, next_url))
            login_policy.success_record(request, user, response)
            return response
        account_services.login_failure_record(
            actor=actor_from_request(request, label="anonymous"),
            username=user.get_username(),
            step="second-factor",
        )
        form.add_error("code", _("That code is not valid."))
    context = {
        "form": form,
        "has_totp": account_selectors.has_device(user),
        "has_passkey": bool(account_selectors.passkeys_of(user)),
    }
    return render(request, "registration/login_otp.html", context)


def _recovery(user, code: str) -> bool:  # type: ignore[no-untyped-def]
    return account_services.recovery_code_use(user=user, code=code)


def _locked(request: HttpRequest, user) -> HttpResponse:  # type: ignore[no-untyped-def]
    account_services.login_lockout_record(
        actor=actor_from_request(request, label="anonymous"),
        username=user.get_username(),
        step="second-factor",
    )
    return render(request, "registration/locked_out.html", status=429)


def _safe_next(request: HttpRequest, next_url: str | None) -> str:
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return settings.LOGIN_REDIRECT_URL


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def two_factor(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Enrol an authenticator (QR code made here, no outside service), or show its state.

    The page shows the secret as RFC 4648 Base32 for typing by hand (what authenticator
    apps take), the ``otpauth://`` URI (QR code and link) with the issuer
    OTP_TOTP_ISSUER and the label ``issuer:username``, and why the user was sent here
    (query flag ``reason``, see ENROL_REASONS).
    """
    if account_selectors.has_device(request.user):
        status = {"codes_left": account_selectors.recovery_codes_left(request.user)}
        return render(request, "accounts/two_factor_status.html", status)
    device = account_services.device_pending(user=request.user, session=request.session)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = account_services.device_confirm(
            device=device, token=form.cleaned_data["code"], actor=actor_from_request(request)
        )
        if codes is not None:
            otp_login(request, device)
            return render(request, "accounts/recovery_codes.html", {"codes": codes})
        form.add_error("code", _("That code is not valid. Check the time on your phone."))
    qr = segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2)
    context = {
        "form": form,
        "qr": qr,
        "secret": base32_for_reading(device.bin_key),
        "config_url": device.config_url,
        "reason": _enrol_reason(request),
    }
    return render(request, "accounts/two_factor_enrol.html", context)


def base32_for_reading(key: bytes) -> str:
    """``key`` as RFC 4648 Base32 without padding, in groups of four letters (``ABCD EFGH``).

    Authenticator apps take Base32 and ignore the spaces; a 20-byte key is 32 letters.
    """
    letters = base64.b32encode(key).decode("ascii").rstrip("=")
    return " ".join(letters[i : i + 4] for i in range(0, len(letters), 4))


def _enrol_reason(request: HttpRequest) -> str | None:
    # Only staff are ever sent here with a reason; anyone else crafting the flag sees none.
    reason = ENROL_REASONS.get(str(request.GET.get("reason", "")))
    return str(reason) if reason is not None and request.user.is_staff else None


@never_cache
@login_required
@require_http_methods(["POST"])
def two_factor_remove(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Turn the second factor off: the password *and* a current or recovery code.

    A password alone is never enough: a session that stole or guessed it must not be
    able to strip the factor that guards the account. Code guesses share the code step's
    throttle. An account without a usable password (single sign-on) has none to give:
    the code alone, still required, is then the proof.
    """
    form = RemoveTwoFactorForm(request.POST)
    throttle_key = keys.second_factor_key(request.user.pk)
    window = int(settings.AXES_COOLOFF_TIME.total_seconds())
    if counters.add_failure(throttle_key, window) > OTP_FAILURES:
        messages.error(request, _("Too many wrong codes: try again later."))
        return redirect("two_factor")
    if not (
        form.is_valid()
        and _password_matches_if_any(request.user, form.cleaned_data["password"])
        and account_services.second_factor_check(user=request.user, code=form.cleaned_data["code"])
    ):
        messages.error(request, _("Wrong password or code: the authenticator was kept."))
        return redirect("two_factor")
    counters.remove_failure(throttle_key)
    account_services.devices_remove(user=request.user, actor=actor_from_request(request))
    messages.success(request, _("Two-factor authentication is off."))
    return redirect("two_factor")


def _password_matches_if_any(user: User, password: str) -> bool:
    """Whether ``password`` is the user's, or the user has no usable password to give."""
    return user.check_password(password) if user.has_usable_password() else True


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if not settings.SIGNUP_ENABLED:
        raise Http404("Sign-up is disabled")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        account_services.user_sign_up(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            actor=actor_from_request(request),
        )
        messages.success(request, _("Account created. You can log in now."))
        return redirect("login")
    return render(request, "registration/signup.html", {"form": form})


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """The site's own answer to a missing or wrong CSRF token (status 403): a page, or
    ``{"error": message}`` for a script that asked for JSON (the upload page's)."""
    if prefers_json(request):
        message = _(
            "The form was sent without a valid security token (it may be old, or cookies "
            "are blocked). Nothing was changed; reload the page and try again."
        )
        return JsonResponse({"error": message}, status=403)
    return render(request, "403_csrf.html", status=403)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: AuthenticatedHttpRequest) -> HttpResponse:
    """/accounts/tokens/: the user's personal access tokens; POST makes one (fields name,
    scopes repeatable, expires_in_days; ``code`` too when the account has a second
    factor, so a session alone cannot mint a lasting credential). The new token is shown
    in the 201 answer only, never stored."""
    needs_code = account_selectors.has_device(request.user)
    # Without TOTP, a passkey is the account's second factor: it must be fresh instead.
    needs_passkey = not needs_code and account_selectors.has_second_factor(request.user)
    form = TokenForm(request.POST or None, needs_code=needs_code)
    context: dict[str, object] = {"form": form, "needs_passkey": needs_passkey}
    status = 200
    if request.method == "POST":
        status = 400
        if (
            form.is_valid()
            and _token_code_ok(request, form, needs_code)
            and _token_passkey_ok(request, form, needs_passkey)
        ):
            token, raw = account_services.token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_in_days=form.cleaned_data["expires_in_days"],
                actor=actor_from_request(request),
            )
            context.update(new_token=token, raw_token=raw, form=TokenForm(needs_code=needs_code))
            status = 201
    context["tokens"] = [
        (token, account_selectors.token_is_live(token))
        for token in account_selectors.tokens_of(request.user)
    ]
    response = render(request, "accounts/tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _token_code_ok(request: AuthenticatedHttpRequest, form: TokenForm, needs_code: bool) -> bool:
    """The second factor, when the account has one: a current or recovery code, whose
    wrong guesses share the code step's throttle."""
    if not needs_code:
        return True
    throttle_key = keys.second_factor_key(request.user.pk)
    window = int(settings.AXES_COOLOFF_TIME.total_seconds())
    if counters.add_failure(throttle_key, window) > OTP_FAILURES:
        form.add_error("code", _("Too many wrong codes: try again later."))
        return False
    if not account_services.second_factor_check(user=request.user, code=form.cleaned_data["code"]):
        form.add_error("code", _("That code is not valid."))
        return False
    counters.remove_failure(throttle_key)
    return True


def _token_passkey_ok(request: HttpRequest, form: TokenForm, needs_passkey: bool) -> bool:
    """For an account whose second factor is a passkey: one proved in the last five
    minutes (the page's "Confirm with your passkey"), as for removing the last factor."""
    if not needs_passkey or account_selectors.passkey_proved_recently(request):
        return True
    form.add_error(None, _("Confirm with your passkey first, then create the token."))
    return False


@never_cache
@login_required
@require_http_methods(["POST"])
def token_revoke(request: AuthenticatedHttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the user's own tokens (anyone else's: 404)."""
    token = account_selectors.token_get_for_user(user=request.user, token_id=token_id)
    if account_services.token_revoke(token=token, actor=actor_from_request(request)):
        messages.success(request, _("Token “%(name)s” revoked.") % {"name": token.name})
    return redirect("tokens")


# -- invitations: a new user's one-time link to choose a password


@never_cache
@require_http_methods(["GET", "HEAD"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The link in an invitation e-mail: keep its token in the session and redirect to a
    URL without it (as Django's password reset does), so the token never reaches a
    Referer header or an access log through the form's page. An unusable link answers
    404 with a page that says so."""
    if account_selectors.invitation_get_by_token(token=token) is None:
        return _invitation_invalid(request)
    request.session[account_services.INVITATION_SESSION_KEY] = token
    return redirect("invitation_accept")


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest) -> HttpResponse:
    """The invitee chooses a password (Django's validators apply), is logged in, and goes
    on to the portal: staff are then sent to enrol a second factor when STAFF_REQUIRE_2FA
    says so (SecondFactorMiddleware). The link is spent on success."""
    token = str(request.session.get(account_services.INVITATION_SESSION_KEY, ""))
    found = account_selectors.invitation_get_by_token(token=token)
    if found is None:
        return _invitation_invalid(request)
    form = SetPasswordForm(found.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = account_services.invitation_accept(
                invitation=found,
                password=form.cleaned_data["new_password1"],
                actor=actor_from_request(request),
            )
        except account_services.InvitationInvalid:
            return _invitation_invalid(request)
        request.session.pop(account_services.INVITATION_SESSION_KEY, None)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("Your password is set. Welcome."))
        return redirect(settings.LOGIN_REDIRECT_URL)
    context = {"form": form, "invitee": found.user, "sso": settings.OIDC_ENABLED}
    return render(request, "registration/invitation.html", context)


def _invitation_invalid(request: HttpRequest) -> HttpResponse:
    request.session.pop(account_services.INVITATION_SESSION_KEY, None)
    return render(request, "registration/invitation_invalid.html", status=404)
