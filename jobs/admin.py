"""Job runs in the admin: read-only, for watching progress (no page starts, changes or
deletes a run; the commands and the admin's actions do)."""

from django.contrib import admin
from django.http import HttpRequest

from jobs.models import JobRun


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "progress", "started_at", "heartbeat_at", "finished_at")
    list_filter = ("name", "status", "started_at")
    fields = (
        "name",
        "status",
        "progress",
        "counts",
        "params",
        "summary",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )
    readonly_fields = fields

    @admin.display(description="Progress")
    def progress(self, obj: JobRun) -> str:
        """``done/total (percent)`` of the run's items (files, for the maintenance jobs);
        ``done so far`` for a run whose total is not known ahead (a cleanup_storage run
        begun before its sweep went folder by folder counted blobs so)."""
        if not obj.total:
            return f"{obj.done} so far" if obj.done else f"{obj.done}/0"
        return f"{obj.done}/{obj.total} ({100 * obj.done // obj.total}%)"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        return False
