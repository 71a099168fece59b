"""Forms of file requests: the owner's creation form, the visitor's details."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

# The largest limits the columns hold (PositiveIntegerField; BigIntegerField in bytes):
# beyond them the database refuses the row, which must be a form error, not a 500.
MAX_FILES_LIMIT = 2**31 - 1
MAX_MB_LIMIT = (2**63 - 1) // (1024 * 1024)


class RequestForm(forms.Form):
    """``POST /requests/``: every field but ``title`` optional (README "File requests")."""

    title = forms.CharField(label=_("Title"), max_length=200)
    message = forms.CharField(
        label=_("Message for the sender"), max_length=2000, required=False, widget=forms.Textarea
    )
    expires_in_hours = forms.IntegerField(
        label=_("Expires in (hours)"), min_value=1, required=False
    )
    max_files = forms.IntegerField(
        label=_("At most this many files"), min_value=1, max_value=MAX_FILES_LIMIT, required=False
    )
    max_mb = forms.IntegerField(
        label=_("At most this many MiB in all"),
        min_value=1,
        max_value=MAX_MB_LIMIT,
        required=False,
    )
    password = forms.CharField(
        label=_("Password (optional)"),
        max_length=128,
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    require_sender = forms.BooleanField(
        label=_("The sender must give a name and an e-mail address"), required=False
    )

    def clean_expires_in_hours(self) -> int:
        """Hours, FILE_REQUEST_DEFAULT_HOURS when empty, at most FILE_REQUEST_MAX_DAYS."""
        hours = self.cleaned_data.get("expires_in_hours")
        cap = settings.FILE_REQUEST_MAX_DAYS * 24
        if hours is None:
            return min(settings.FILE_REQUEST_DEFAULT_HOURS, cap)
        if hours > cap:
            raise forms.ValidationError(
                _("A request may last at most %(days)d days (%(hours)d hours).")
                % {"days": settings.FILE_REQUEST_MAX_DAYS, "hours": cap}
            )
        return hours


class SenderForm(forms.Form):
    """What a visitor gives before sending: name and e-mail (required when the request asks
    for them) and the request's password (when it has one)."""

    name = forms.CharField(label=_("Your name"), max_length=200, required=False)
    # 254: what the column holds (RFC 5321's path limit); Django's EmailField takes 320.
    email = forms.EmailField(label=_("Your e-mail address"), max_length=254, required=False)
    password = forms.CharField(label=_("Password"), max_length=128, required=False, strip=False)

    def __init__(self, *args: object, require_sender: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["name"].required = require_sender
        self.fields["email"].required = require_sender


class EmailLinkForm(forms.Form):
    """E-mail a new request's link: its token (from the page shown once) and a recipient."""

    token = forms.CharField(max_length=64, widget=forms.HiddenInput)
    email = forms.EmailField(label=_("Recipient's e-mail address"))
