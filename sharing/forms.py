from datetime import datetime, timedelta

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ShareForm(forms.Form):
    """A share: with a colleague (``username``, a username or an e-mail address) or with a
    group (``group``, its name), and an optional last day of access (``expires_on``, an
    ISO 8601 date, YYYY-MM-DD)."""

    username = forms.CharField(label=_("Username or e-mail"), max_length=254, required=False)
    group = forms.CharField(label=_("Group"), max_length=150, required=False)
    expires_on = forms.DateField(
        label=_("Last day of access (optional)"),
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        if bool(cleaned.get("username")) == bool(cleaned.get("group")):
            raise forms.ValidationError(_("Name either a colleague or a group."))
        expires_on = cleaned.get("expires_on")
        if expires_on is not None and expires_on < timezone.localdate():
            self.add_error("expires_on", _("The last day of access cannot be in the past."))
        return cleaned


class LinkForm(forms.Form):
    label = forms.CharField(
        label=_("Label (optional): who the link is for"), required=False, max_length=100
    )
    expires_in_hours = forms.IntegerField(
        label=_("Expires in (hours)"), min_value=1, required=False
    )
    max_downloads = forms.IntegerField(
        label=_("Download limit"), min_value=1, max_value=1_000_000, required=False
    )
    password = forms.CharField(
        label=_("Password (optional)"),
        required=False,
        max_length=128,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["expires_in_hours"]
        field.widget.attrs.update(min=1, max=settings.LINK_MAX_HOURS)
        field.initial = settings.LINK_DEFAULT_HOURS

    def clean_expires_in_hours(self) -> int:
        hours = self.cleaned_data.get("expires_in_hours") or settings.LINK_DEFAULT_HOURS
        if hours > settings.LINK_MAX_HOURS:
            raise forms.ValidationError(
                _("A link can live at most %(max)d hours.") % {"max": settings.LINK_MAX_HOURS}
            )
        return hours


class LinkPasswordForm(forms.Form):
    password = forms.CharField(
        label=_("Password"),
        required=False,
        max_length=128,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
    )


class UploadOptionsForm(forms.Form):
    """Options sent with an upload: "delete after N days" (0 or empty = keep)."""

    expires_in_days = forms.IntegerField(min_value=0, max_value=36_500, required=False)

    def clean_expires_in_days(self) -> int:
        days = self.cleaned_data.get("expires_in_days")
        if days is None:
            days = settings.FILE_DEFAULT_DAYS or settings.FILE_MAX_DAYS
        if settings.FILE_MAX_DAYS and not 0 < days <= settings.FILE_MAX_DAYS:
            raise forms.ValidationError(
                _("Files can be kept at most %(max)d days.") % {"max": settings.FILE_MAX_DAYS}
            )
        return days

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data["expires_in_days"]
        return timezone.now() + timedelta(days=days) if days else None
