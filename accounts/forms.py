"""Forms of logging in, the second factor and sign-up."""

from __future__ import annotations

from typing import cast

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, UserCreationForm
from django.core.validators import MaxValueValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import services as account_services
from accounts.selectors import has_oidc_identity
from securefiles.lib.auth_types import User


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Code from your authenticator app, or a recovery code"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text"}),
    )


class PortalAuthenticationForm(AuthenticationForm):
    """Django's login form, refusing an over-long username before authentication.

    AuthenticationForm sets the username's max_length after the field is built, so no
    validator enforces it: a 10,000-character username reached authenticate(), and
    django-axes then stored it in its 255-character column (a 500 on PostgreSQL). No user
    has such a name; the answer is the same as for any wrong password.
    """

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        # A CharField (UsernameField) whose max_length AuthenticationForm.__init__ always
        # sets to an int; the stubs type fields[] as Field and max_length as int | None.
        username_field = cast(forms.CharField, self.fields["username"])
        if len(username) > cast(int, username_field.max_length):
            raise self.get_invalid_login_error()
        return super().clean()

    def confirm_login_allowed(self, user: User) -> None:
        """Django's check (active), and: users linked to the OpenID provider sign in only
        through it when OIDC_DISABLE_PASSWORD_LOGIN is on."""
        super().confirm_login_allowed(user)
        if (
            settings.OIDC_ENABLED
            and settings.OIDC_DISABLE_PASSWORD_LOGIN
            and has_oidc_identity(user)
        ):
            raise forms.ValidationError(
                _("Your account signs in through single sign-on: use the button below."),
                code="sso_only",
            )


class RemoveTwoFactorForm(CodeForm):
    # Not required by the form: an account without a usable password (single sign-on)
    # has none to give; the view checks it for every account that has one.
    password = forms.CharField(
        widget=forms.PasswordInput, strip=False, max_length=256, required=False
    )


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=True)

    # django-stubs declares no Meta on UserCreationForm; Django's has one (model, fields).
    class Meta(UserCreationForm.Meta):  # type: ignore[name-defined]
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self) -> str:
        # Files are shared by e-mail address: nobody may claim one that is already in use.
        email = self.cleaned_data["email"]
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(_("An account with this e-mail address exists."))
        return email


class TokenForm(forms.Form):
    """A new personal access token: a name, its scopes, its life in days (at most
    API_TOKEN_MAX_DAYS), and a current code when the account has a second factor."""

    name = forms.CharField(label=gettext_lazy("Name (what the token is for)"), max_length=100)
    scopes = forms.MultipleChoiceField(
        label=gettext_lazy("Scopes"),
        choices=[
            ("read", gettext_lazy("read: list and download files")),
            ("write", gettext_lazy("write: upload and delete files")),
            ("share", gettext_lazy("share: share with colleagues, make links")),
        ],
        widget=forms.CheckboxSelectMultiple,
    )
    expires_in_days = forms.IntegerField(label=gettext_lazy("Expires in (days)"), min_value=1)
    code = forms.CharField(
        label=gettext_lazy("Code from your authenticator app, or a recovery code"),
        max_length=32,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}),
    )

    def __init__(self, *args: object, needs_code: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        days = cast(forms.IntegerField, self.fields["expires_in_days"])
        days.max_value = settings.API_TOKEN_MAX_DAYS
        days.validators.append(MaxValueValidator(settings.API_TOKEN_MAX_DAYS))
        days.initial = min(30, settings.API_TOKEN_MAX_DAYS)
        days.widget.attrs.update(min=1, max=settings.API_TOKEN_MAX_DAYS)
        self.fields["code"].required = needs_code
        if not needs_code:
            del self.fields["code"]


class QueuedPasswordResetForm(PasswordResetForm):
    """Django's password-reset form, whose e-mail is queued for the worker
    (securefiles.lib.mail.send_later) instead of sent inside the request: a slow or hung
    mail server never holds the page."""

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict,
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        account_services.password_reset_mail_send(
            subject_template=subject_template_name,
            body_template=email_template_name,
            context=context,
            to=to_email,
        )
