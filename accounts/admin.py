"""Second factors in the admin: whose and whether confirmed, never the secret."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services as account_services
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
