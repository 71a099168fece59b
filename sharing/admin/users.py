"""Users in the admin: invitations instead of passwords, quotas, and every change recorded."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import ReadOnlyPasswordHashField, UserChangeForm, UsernameField
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts import services as account_services
from audit.actors import actor_from_request
from securefiles.lib.auth_types import User
from sharing import selectors, services
from sharing.models import StorageQuota


class StorageQuotaInline(admin.StackedInline):
    model = StorageQuota
    can_delete = True
    extra = 0
    max_num = 1
    verbose_name = "storage quota override"


class _PasswordStatusWidget(forms.Widget):
    """Whether the user has a password: no hash summary, no link to a form that sets one."""

    read_only = True

    def render(
        self,
        name: str,
        value: object,
        attrs: dict | None = None,
        renderer: object | None = None,
    ) -> SafeString:
        usable = bool(value) and not str(value).startswith(UNUSABLE_PASSWORD_PREFIX)
        text = "Set by the user." if usable else "Not set yet."
        return format_html("<div>{}</div>", text)

    def id_for_label(self, id_: str) -> str:
        return ""  # no label points at it (Django's templates test this, "" or None alike)


class UserChangeWithoutPasswordForm(UserChangeForm):
    """Django's user change form, whose password field only says whether there is one."""

    password = ReadOnlyPasswordHashField(label="Password", widget=_PasswordStatusWidget)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "password" in self.fields:
            self.fields["password"].help_text = (
                "Administrators neither see nor set passwords. To let the user choose a new "
                'one, use the action "Send password reset e-mail" on the user list.'
            )


class UserInviteForm(forms.ModelForm):
    """A new user: username and e-mail only. The user chooses a password from an e-mail."""

    class Meta:
        model = User
        fields = ("username", "email")
        field_classes = {"username": UsernameField}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        self.fields["email"].help_text = "The user receives a link here to choose a password."


# Set on the user being changed: its state as read before the admin's form saved it.
_STATE_BEFORE = "_admin_state_before"

admin.site.unregister(User)


@admin.register(User)
class UserWithQuotaAdmin(UserAdmin):
    """Users: every change is recorded in the audit chain with the acting administrator.

    Administrators cannot set a user's password: new users get an e-mailed link to choose
    one, and "Send password reset e-mail" sends another.
    """

    form = UserChangeWithoutPasswordForm
    add_form = UserInviteForm
    add_form_template = None  # Django's carries the password fields' script
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("username", "email")}),)
    inlines = [*UserAdmin.inlines, StorageQuotaInline]
    actions = ["send_invitation", "send_password_reset", "second_factor_reset"]

    def get_urls(self) -> list[URLPattern]:
        # UserAdmin's form that sets another user's password is gone; its URL answers 404.
        urls = [
            url
            for url in super().get_urls()
            if getattr(url, "name", None) != "auth_user_password_change"
        ]
        gone = path("<id>/password/", self.admin_site.admin_view(self._no_password_form))
        return [gone, *urls]

    def _no_password_form(self, request: HttpRequest, id: str) -> HttpResponse:
        raise Http404("Administrators do not set users' passwords.")

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        """Never serves: an administrator cannot set another user's password."""
        raise PermissionDenied

    def get_inline_instances(
        self, request: HttpRequest, obj: User | None = None
    ) -> list[InlineModelAdmin]:
        # A new user is username and e-mail only; the quota is set (and audited) afterwards.
        return super().get_inline_instances(request, obj) if obj is not None else []

    def save_model(self, request: HttpRequest, obj: User, form: forms.Form, change: bool) -> None:
        actor = actor_from_request(request)
        # This form records its own entries (user_invite, user_change_record).
        setattr(obj, account_services.PRIVILEGES_AUDITED, True)
        if not change:
            account_services.user_invite(user=obj, actor=actor)
            return
        # Read before the row is written, compared in save_related once the groups,
        # permissions and quota inline are saved too.
        setattr(obj, _STATE_BEFORE, selectors.user_state(user_id=obj.pk))
        services.user_update(user=obj)

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        user = form.instance
        before = getattr(user, _STATE_BEFORE, None)
        if not change or before is None:
            return
        actor = actor_from_request(request)
        after = selectors.user_state(user_id=user.pk)
        services.user_change_record(user=user, before=before, after=after, actor=actor)
        if before.is_active and not after.is_active:
            services.user_offboard(user=user, actor=actor)

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        # The worker deletes the files one by one (each audited), then the account.
        services.user_delete_later(user=obj, actor=actor_from_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = actor_from_request(request)
        for user in queryset:
            services.user_delete_later(user=user, actor=actor)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: int) -> HttpResponse:
        """Say that the deletion is under way (its progress on the Job runs page)."""
        self.message_user(
            request,
            f"Deleting “{obj_display}”: their files are deleted one by one (each recorded "
            "in the audit log), then the account. Progress: Background jobs › Job runs.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:auth_user_changelist"))

    @admin.action(description="Send the invitation again", permissions=["change"])
    def send_invitation(self, request: HttpRequest, queryset: QuerySet) -> None:
        """E-mail each selected user who has not chosen a password yet a new invitation;
        their previous link stops working (audited)."""
        actor = actor_from_request(request)
        skipped = [
            user.get_username()
            for user in queryset
            if not account_services.invitation_send(user=user, actor=actor)
        ]
        sent = queryset.count() - len(skipped)
        self.message_user(request, f"Sent {sent} invitation(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                "Not sent (inactive, no e-mail address, or a password already chosen: use "
                "the password reset): " + ", ".join(skipped),
                messages.WARNING,
            )

    @admin.action(description="Send password reset e-mail", permissions=["change"])
    def send_password_reset(self, request: HttpRequest, queryset: QuerySet) -> None:
        """E-mail each selected user a link to choose a new password (audited)."""
        actor = actor_from_request(request)
        skipped = []
        for user in queryset:
            if not account_services.user_password_reset_send(user=user, actor=actor):
                skipped.append(user.get_username())
        sent = queryset.count() - len(skipped)
        self.message_user(request, f"Sent {sent} password reset e-mail(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                "Not sent (inactive or no e-mail address): " + ", ".join(skipped),
                messages.WARNING,
            )

    @admin.action(description="Reset second factor", permissions=["change"])
    def second_factor_reset(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Remove each selected user's authenticators and recovery codes (audited)."""
        actor = actor_from_request(request)
        reset = sum(
            account_services.second_factor_reset(user=user, actor=actor) for user in queryset
        )
        self.message_user(request, f"Reset the second factor of {reset} user(s).")
