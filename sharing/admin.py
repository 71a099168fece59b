"""Admin: metadata, shares, links and the audit log. No admin page can read a file's content.

Every change an administrator makes through these pages is itself audit-logged.
"""

import csv
from collections.abc import Iterator
from contextlib import suppress

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from sharing import services
from sharing.audit import Actor, actor_from_request
from sharing.models import AuditEntry, Share, ShareLink, StorageQuota, StoredFile

User = get_user_model()


class StorageQuotaInline(admin.StackedInline):
    model = StorageQuota
    can_delete = True
    extra = 0
    max_num = 1
    verbose_name = "storage quota override"


admin.site.unregister(User)


@admin.register(User)
class UserWithQuotaAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, StorageQuotaInline]

    def save_model(self, request: HttpRequest, obj: User, form: forms.Form, change: bool) -> None:
        # Deactivating a user offboards them (sharing.signals): logged as this admin's act.
        obj._audit_actor = actor_from_request(request)
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        _delete_files_of(obj, actor_from_request(request))
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = actor_from_request(request)
        for user in queryset:
            _delete_files_of(user, actor)
        super().delete_queryset(request, queryset)


def _delete_files_of(user: User, actor: Actor) -> None:
    """Delete a user's files one by one through the service, so each deletion is audited
    (the cascade from the user's row would remove them without a trace in the log)."""
    for stored in StoredFile.objects.filter(owner=user):
        with suppress(services.FileGone):  # deleted meanwhile: nothing left to do
            services.file_delete(file=stored, actor=actor)


class TransferForm(forms.Form):
    new_owner = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True))


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
    actions = ["delete_selected", "transfer_files"]

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
    search_fields = ("file__name", "created_by__username", "=id")
    list_select_related = ("file", "created_by")
    fields = (
        "id",
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


class _Echo:
    def write(self, value: str) -> str:
        return value


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: no add, change or delete, not even for superusers."""

    list_display = ("seq", "created_at", "actor", "event", "file_name", "link_id", "ip")
    list_filter = ("event", "created_at", "actor")
    search_fields = ("actor", "file_name", "=file_id", "ip", "detail")
    date_hierarchy = "created_at"
    actions = ["export_csv"]
    CSV_FIELDS = (
        "seq",
        "created_at",
        "actor",
        "actor_user_id",
        "ip",
        "user_agent",
        "event",
        "file_id",
        "file_name",
        "link_id",
        "detail",
        "prev_mac",
        "mac",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: AuditEntry | None = None) -> tuple:
        return self.CSV_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> HttpResponse:
        # Select all on a date-filtered list to export a date range.
        rows = queryset.order_by("seq").values_list(*self.CSV_FIELDS)
        response = StreamingHttpResponse(self._csv_lines(rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
        return response

    def _csv_lines(self, rows: QuerySet) -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield writer.writerow(self.CSV_FIELDS)
        for row in rows.iterator(chunk_size=2000):
            yield writer.writerow([_csv_safe(value) for value in row])


def _csv_safe(value: object) -> str:
    """Neutralise spreadsheet formulas (CSV injection through names and user agents)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
