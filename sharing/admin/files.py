"""Files in the admin: metadata only, deletion and transfer through the services."""

from contextlib import suppress

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import format_html

from audit.actors import actor_from_request
from securefiles.lib.auth_types import User
from securefiles.lib.paging import CappedCountPaginator
from sharing import display, selectors, services
from sharing.models import StoredFile
from sharing.storage.keyring import get_keyring


class TransferForm(forms.Form):
    new_owner = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True))


class KeyIdFilter(admin.SimpleListFilter):
    """By master key id, among the keys configured in ENCRYPTION_KEYS."""

    title = "key id"
    parameter_name = "key_id"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [(key_id, key_id) for key_id in get_keyring().ids]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(key_id=self.value()) if self.value() else queryset


class OwnerFilter(admin.SimpleListFilter):
    """By owner, among the users who own files (read from their storage usage rows)."""

    title = "owner"
    parameter_name = "owner"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return list(selectors.owners_with_files())

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(owner_id=int(value)) if value and value.isdigit() else queryset


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "size_shown", "content_type", "created_at", "key_id")
    # A million files: the filters list what they offer without reading the files (no
    # date_hierarchy, which lists the distinct years of every row), the search and the
    # count use indexes, the list is read in the order of the index on (created_at, id).
    list_filter = ("created_at", KeyIdFilter, OwnerFilter)
    search_fields = ("name",)  # shows the search box; get_search_results does the search
    search_help_text = (
        "File name (part of it, any case), owner's username or e-mail (part of it), or a file id."
    )
    list_select_related = ("owner",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = (
        "id",
        "name",
        "owner",
        "content_type",
        "size_in_full",
        "scan_state",
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

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[StoredFile], search_term: str
    ) -> tuple[QuerySet[StoredFile], bool]:
        return selectors.files_matching(
            queryset, search_term, first=self._rows_shown(request)
        ), False

    def _rows_shown(self, request: HttpRequest) -> int | None:
        """How many matches the list in its default order reads at most: its capped count
        and the rows up to its page's end (None: all of them, for another order, and for
        an action, which may apply to every match)."""
        if request.method != "GET" or ORDER_VAR in request.GET:
            return None
        try:
            page = max(int(request.GET.get(PAGE_VAR, 1)), 1)
        except ValueError:
            page = 1
        return max(self.paginator.filtered_cap + 1, page * self.list_per_page)

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
            # The worker transfers them one by one (each audited), out of this request.
            services.files_transfer_later(
                files=list(queryset),
                new_owner=form.cleaned_data["new_owner"],
                actor=actor_from_request(request),
            )
            self.message_user(
                request,
                f"Transferring {queryset.count()} file(s); progress: Background jobs › Job runs.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "files": queryset,
            "title": "Transfer files",
            "opts": self.model._meta,
        }
        return render(request, "admin/sharing/transfer.html", context)
