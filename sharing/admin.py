"""Admin: metadata, shares, links and the audit log. No admin page can read a file's content.

Every change an administrator makes through these pages is itself audit-logged.
"""

from contextlib import suppress
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import ReadOnlyPasswordHashField, UserChangeForm, UsernameField
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts import services as account_services
from audit.actors import actor_from_request
from securefiles.lib.auth_types import User
from sharing import display, selectors, services
from sharing.models import Share, ShareLink, StorageQuota, StoredFile


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
    actions = ["send_password_reset", "reset_second_factor"]

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
        if not change:
            account_services.user_invite(user=obj, actor=actor)
            return
        # Read before the row is written, compared in save_related once the groups,
        # permissions and quota inline are saved too.
        setattr(obj, _STATE_BEFORE, selectors.user_state(user_id=obj.pk))
        super().save_model(request, obj, form, change)

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
        services.user_delete(user=obj, actor=actor_from_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = actor_from_request(request)
        for user in queryset:
            services.user_delete(user=user, actor=actor)

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
    def reset_second_factor(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Remove each selected user's authenticators and recovery codes (audited)."""
        actor = actor_from_request(request)
        reset = sum(
            account_services.reset_second_factor(user=user, actor=actor) for user in queryset
        )
        self.message_user(request, f"Reset the second factor of {reset} user(s).")


class TransferForm(forms.Form):
    new_owner = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True))


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "size_shown", "content_type", "created_at", "key_id")
    list_filter = ("created_at", "key_id", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "owner__username", "owner__email", "=id")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "name",
        "owner",
        "content_type",
        "size_in_full",
        "created_at",
        "key_id",
        "format_version",
    )
    readonly_fields = fields
    actions = ["delete_selected", "transfer_files"]

    @admin.display(description="size", ordering="size")
    def size_shown(self, obj: StoredFile) -> str:
        """The size in binary units ("190.7 MiB"), the exact byte count in its title."""
        return format_html(
            '<span title="{}">{}</span>',
            display.exact_bytes(obj.size),
            display.human_size(obj.size),
        )

    @admin.display(description="size")
    def size_in_full(self, obj: StoredFile) -> str:
        """The size in binary units and in bytes: "190.7 MiB (199,970,234 bytes)"."""
        return display.size_with_bytes(obj.size)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # files arrive encrypted through the upload view only

    def has_change_permission(self, request: HttpRequest, obj: StoredFile | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: StoredFile) -> None:
        with suppress(services.FileGone):  # deleted meanwhile: nothing left to do
            services.file_delete(file=obj, actor=actor_from_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[StoredFile]) -> None:
        actor = actor_from_request(request)
        for stored in queryset:
            with suppress(services.FileGone):
                services.file_delete(file=stored, actor=actor)

    @admin.action(description="Transfer selected files to another user", permissions=["delete"])
    def transfer_files(
        self, request: HttpRequest, queryset: QuerySet[StoredFile]
    ) -> HttpResponse | None:
        form = TransferForm(request.POST if "new_owner" in request.POST else None)
        if form.is_valid():
            actor = actor_from_request(request)
            for stored in queryset:
                with suppress(services.FileGone):  # deleted meanwhile
                    services.file_transfer(
                        file=stored, new_owner=form.cleaned_data["new_owner"], actor=actor
                    )
            self.message_user(request, f"Transferred {queryset.count()} file(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "files": queryset,
            "title": "Transfer files",
            "opts": self.model._meta,
        }
        return render(request, "admin/sharing/transfer.html", context)


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    list_display = ("file", "colleague", "owner", "created_at")
    list_filter = ("created_at", ("colleague", admin.RelatedOnlyFieldListFilter))
    search_fields = ("file__name", "colleague__username", "file__owner__username")
    list_select_related = ("file", "file__owner", "colleague")
    readonly_fields = ("file", "colleague", "created_at")
    actions = ["revoke_shares"]

    @admin.display(description="Owner")
    def owner(self, obj: Share) -> str:
        return obj.file.owner.get_username()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # owners share their own files

    def has_change_permission(self, request: HttpRequest, obj: Share | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # revocation is audited; use the action below
        return actions

    def delete_model(self, request: HttpRequest, obj: Share) -> None:
        with suppress(services.FileGone):  # the file, and so the share, deleted meanwhile
            services.share_revoke(share=obj, actor=actor_from_request(request))

    @admin.action(description="Revoke selected shares", permissions=["delete"])
    def revoke_shares(self, request: HttpRequest, queryset: QuerySet[Share]) -> None:
        actor = actor_from_request(request)
        count = 0
        for share in queryset.select_related("file", "colleague"):
            with suppress(services.FileGone):  # the file, and so the share, deleted meanwhile
                count += services.share_revoke(share=share, actor=actor)
        self.message_user(request, f"Revoked {count} share(s).", messages.SUCCESS)


class LinkStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "label",
        "file",
        "created_by",
        "created_at",
        "expires_at",
        "download_count",
        "max_downloads",
        "has_password",
        "revoked_at",
    )
    list_filter = (LinkStateFilter, "created_at", "expires_at")
    search_fields = ("file__name", "created_by__username", "label", "=id")
    list_select_related = ("file", "created_by")
    fields = (
        "id",
        "label",
        "file",
        "created_by",
        "created_at",
        "expires_at",
        "max_downloads",
        "download_count",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke_links"]

    @admin.display(boolean=True, description="Password")
    def has_password(self, obj: ShareLink) -> bool:
        return obj.has_password

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ShareLink | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ShareLink | None = None) -> bool:
        return False  # links are revoked, never deleted, so the record stays

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if request.user.has_perm("sharing.change_sharelink") or request.user.is_superuser:
            return actions
        return {}

    @admin.action(description="Revoke selected links")
    def revoke_links(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        actor = actor_from_request(request)
        for link in queryset.select_related("file"):
            with suppress(services.FileGone):  # the file, and so the link, deleted meanwhile
                services.link_revoke(link=link, actor=actor)
        self.message_user(request, f"Revoked {queryset.count()} link(s).", messages.SUCCESS)
