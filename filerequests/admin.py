"""File requests in the admin: state and counts; revoked (audited), never deleted."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.actors import actor_from_request
from filerequests import selectors, services
from filerequests.models import FileRequest


@admin.register(FileRequest)
class FileRequestAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "owner",
        "state",
        "received_files",
        "max_files",
        "received_bytes",
        "max_bytes",
        "created_at",
        "expires_at",
    )
    list_filter = ("created_at", "expires_at")
    search_fields = ("title", "owner__username", "=id")
    list_select_related = ("owner",)
    # The page of one request: what the list shows, and who must say who they are.
    fields = (*list_display, "require_sender", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_requests"]

    @admin.display(description="State")
    def state(self, obj: FileRequest) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        if not selectors.request_is_live(obj):
            return "expired"
        return "full" if selectors.request_is_full(obj) else "open"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: FileRequest | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: FileRequest | None = None) -> bool:
        return False  # revoked, never deleted, so the record stays

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        user = request.user
        if user.is_superuser or user.has_perm("filerequests.change_filerequest"):
            return actions
        return {}

    @admin.action(description="Revoke selected requests")
    def revoke_requests(self, request: HttpRequest, queryset: QuerySet[FileRequest]) -> None:
        actor = actor_from_request(request)
        revoked = sum(
            services.request_revoke(file_request=found, actor=actor) for found in queryset
        )
        self.message_user(request, f"{revoked} request(s) revoked.", messages.SUCCESS)
