"""Shares in the admin: revoked through the service, never deleted in bulk."""

from contextlib import suppress

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.actors import actor_from_request
from sharing import services
from sharing.models import Share


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    list_display = ("file", "colleague", "group", "owner", "expires_on", "created_at")
    list_filter = (
        "created_at",
        "expires_on",
        ("colleague", admin.RelatedOnlyFieldListFilter),
        ("group", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("file__name", "colleague__username", "group__name", "file__owner__username")
    list_select_related = ("file", "file__owner", "colleague", "group")
    readonly_fields = ("file", "colleague", "group", "expires_on", "created_at")
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
        for share in queryset.select_related("file", "colleague", "group"):
            with suppress(services.FileGone):  # the file, and so the share, deleted meanwhile
                count += services.share_revoke(share=share, actor=actor)
        self.message_user(request, f"Revoked {count} share(s).", messages.SUCCESS)
