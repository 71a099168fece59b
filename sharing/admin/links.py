"""Share links in the admin: revoked, never deleted, so the record stays."""

from contextlib import suppress

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.actors import actor_from_request
from sharing import services
from sharing.models import LinkClaim, ShareLink


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


class LinkClaimInline(admin.TabularInline):
    """The link's downloads, each with the bytes sent under it (resumes included) against
    its budget: read-only, as the counts are what keeps max_downloads exact."""

    model = LinkClaim
    fields = ("number", "created_at", "sent", "budget")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("number",)
    verbose_name = "download"

    def has_add_permission(self, request: HttpRequest, obj: ShareLink | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ShareLink | None = None) -> bool:
        return False


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
    inlines = [LinkClaimInline]
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
