"""Storage usage: each user's file count and bytes, kept in the transaction of every write
that adds, removes or moves a file, so pages read one row instead of summing every file."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, F, Sum

from sharing.models import StorageUsage, StoredFile


def usage_add(*, user_id: int, files: int, size: int) -> None:
    """Add ``files`` files and ``size`` bytes (negative to remove) to a user's usage.

    Call it inside the transaction that writes the file rows, before its audit entries
    (the audit head stays the last lock). The UPDATE takes the usage row's lock, so parallel
    uploads and deletions of one owner add up exactly, whatever order they commit in.
    """
    change = {"files": F("files") + files, "bytes": F("bytes") + size}
    if StorageUsage.objects.filter(user_id=user_id).update(**change):
        return
    # First file of this user: create the row (a parallel first upload may win the
    # insert; get_or_create then reads the row it committed), then add as above.
    StorageUsage.objects.get_or_create(user_id=user_id)
    StorageUsage.objects.filter(user_id=user_id).update(**change)


def usage_recount(*, user_id: int) -> StorageUsage:
    """Rebuild a user's usage from their file rows (after rows were written outside the
    services: a restore, a bulk import, a test's bulk_create). Returns the new row."""
    with transaction.atomic():
        totals = StoredFile.objects.filter(owner_id=user_id).aggregate(
            files=Count("pk"), bytes=Sum("size")
        )
        usage, _ = StorageUsage.objects.select_for_update().get_or_create(user_id=user_id)
        usage.files, usage.bytes = totals["files"], totals["bytes"] or 0
        usage.save(update_fields=["files", "bytes"])
    return usage
