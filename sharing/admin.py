"""Admin: metadata only. No admin page can read a file's content."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from sharing import services
from sharing.models import StoredFile


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "size", "content_type", "created_at", "key_id")
    list_filter = ("created_at", "key_id", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "owner__username", "owner__email", "=id")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "name",
        "owner",
        "content_type",
        "size",
        "created_at",
        "key_id",
        "format_version",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # files arrive encrypted through the upload view only

    def has_change_permission(self, request: HttpRequest, obj: StoredFile | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: StoredFile) -> None:
        services.file_delete(file=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[StoredFile]) -> None:
        for stored in queryset:
            services.file_delete(file=stored)
