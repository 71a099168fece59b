"""Second factors in the admin: whose and whether confirmed, never the secret."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services as account_services
from accounts.models import AccessToken
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
