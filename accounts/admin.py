"""Second factors in the admin: whose and whether confirmed, never the secret; groups
(teams) with their members, every change recorded."""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.models import AccessToken, OIDCIdentity, Passkey
from audit.actors import actor_from_request
from securefiles.lib.auth_types import User

if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)  # django-otp's shows the secret and its QR code


@admin.register(TOTPDevice)
class SecondFactorAdmin(admin.ModelAdmin):
    """Authenticators: whose, their name, confirmed or not; nothing of the secret.

    No add (users enrol themselves) and no change. Deleting one resets that user's second
    factor: all their authenticators and recovery codes go, recorded in the audit chain.
    """

    list_display = ("user", "name", "confirmed")
    list_filter = ("confirmed",)
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    fields = ("user", "name", "confirmed")
    readonly_fields = fields
    actions = ["second_factor_reset"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TOTPDevice | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the action below says what deleting does
        return actions

    def delete_model(self, request: HttpRequest, obj: TOTPDevice) -> None:
        account_services.second_factor_reset(user=obj.user, actor=actor_from_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TOTPDevice]) -> None:
        self._reset(request, queryset)

    @admin.action(description="Reset the second factor of their users", permissions=["delete"])
    def second_factor_reset(self, request: HttpRequest, queryset: QuerySet[TOTPDevice]) -> None:
        """Reset the second factor of every user owning a selected authenticator."""
        count = self._reset(request, queryset)
        self.message_user(request, f"Reset the second factor of {count} user(s).")

    def _reset(self, request: HttpRequest, queryset: QuerySet[TOTPDevice]) -> int:
        actor = actor_from_request(request)
        users = User.objects.filter(pk__in=queryset.values("user_id"))
        return sum(account_services.second_factor_reset(user=user, actor=actor) for user in users)


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    """Every user's personal access tokens: whose, name, prefix, scopes, expiry, last use.
    No add (users make their own, shown once) and no change; "Revoke" is the one
    action, audited with the administrator as actor. Deleting is not offered: a revoked
    row keeps the record of the token."""

    list_display = (
        "prefix_shown",
        "name",
        "user",
        "scopes",
        "expires_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
    )
    list_filter = ("scopes",)
    search_fields = ("user__username", "name", "prefix")
    list_select_related = ("user",)
    fields = list_display[1:] + ("created_at",)
    readonly_fields = fields
    actions = ["tokens_revoke"]

    @admin.display(description="token")
    def prefix_shown(self, obj: AccessToken) -> str:
        return f"sf_{obj.prefix}…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AccessToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AccessToken | None = None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["view"])
    def tokens_revoke(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> None:
        """Revoke every selected token that is not revoked yet."""
        actor = actor_from_request(request)
        count = sum(
            account_services.token_revoke(token=token, actor=actor)
            for token in queryset.select_related("user")
        )
        self.message_user(request, f"Revoked {count} token(s).")


class GroupWithMembersForm(forms.ModelForm):
    """Django's group form, plus its members (the reverse side of each user's groups)."""

    members = forms.ModelMultipleChoiceField(
        queryset=User.objects.order_by("username"),
        required=False,
        widget=FilteredSelectMultiple("members", is_stacked=False),
        help_text="Members see every file shared with the group; whoever is removed "
        "loses access at their next request.",
    )

    class Meta:
        model = Group
        fields = ("name", "permissions", "members")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            members = self.instance.user_set.values_list("pk", flat=True)
            self.initial.setdefault("members", list(members))


# Set on the group being changed: its state as read before the admin's form saved it.
_GROUP_BEFORE = "_admin_group_before"

admin.site.unregister(Group)


@admin.register(Group)
class AuditedGroupAdmin(GroupAdmin):
    """Groups (teams): name, permissions and members; every creation, change and deletion
    is recorded in the audit chain with the acting administrator."""

    form = GroupWithMembersForm
    list_display = ("name", "member_count")

    @admin.display(description="Members")
    def member_count(self, obj: Group) -> int:
        return obj.user_set.count()

    def save_model(self, request: HttpRequest, obj: Group, form: forms.Form, change: bool) -> None:
        before = account_selectors.group_state(group_id=obj.pk) if change else None
        setattr(obj, _GROUP_BEFORE, before)
        account_services.group_update(group=obj)

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        group = form.instance
        account_services.group_members_set(group=group, members=list(form.cleaned_data["members"]))
        account_services.group_change_record(
            before=getattr(group, _GROUP_BEFORE, None),
            after=account_selectors.group_state(group_id=group.pk),
            actor=actor_from_request(request),
        )

    def delete_model(self, request: HttpRequest, obj: Group) -> None:
        state = account_selectors.group_state(group_id=obj.pk)
        account_services.group_delete(group=obj, state=state, actor=actor_from_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Group]) -> None:
        actor = actor_from_request(request)
        for group in queryset:
            state = account_selectors.group_state(group_id=group.pk)
            account_services.group_delete(group=group, state=state, actor=actor)


@admin.register(OIDCIdentity)
class SSOIdentityAdmin(admin.ModelAdmin):
    """Which account each provider identity (issuer and ``sub``) signs in to. Read-only;
    deleting one unlinks it, recorded in the audit chain."""

    list_display = ("user", "issuer", "subject", "created_at")
    search_fields = ("user__username", "subject")
    list_select_related = ("user",)
    fields = ("user", "issuer", "subject", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one by one, each audited
        return actions

    def delete_model(self, request: HttpRequest, obj: OIDCIdentity) -> None:
        account_services.oidc_identity_unlink(identity=obj, actor=actor_from_request(request))


@admin.register(Passkey)
class PasskeyAdmin(admin.ModelAdmin):
    """Passkeys: whose, their name, when used; never changed here. To take a user's
    passkeys away, reset their second factor (audited) from the user list."""

    list_display = ("user", "name", "created_at", "last_used_at")
    search_fields = ("user__username", "name")
    list_select_related = ("user",)
    fields = ("user", "name", "created_at", "last_used_at", "sign_count")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
