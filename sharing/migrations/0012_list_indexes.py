"""Indexes for the file list, "shared with me", the admin's file list and the name search.

Built with CREATE INDEX CONCURRENTLY on PostgreSQL, so a portal with a million files keeps
taking uploads while they are built (hence ``atomic = False``; a failed concurrent build
leaves an INVALID index: drop it and migrate again). SQLite gets plain CREATE INDEX.
The name search's trigram index exists on PostgreSQL only (README "Metadata at scale").
"""

from django.db import migrations, models
from django.db.models.functions import Left, Lower

from securefiles.lib.indexes import (
    AddIndexConcurrentlyWherePossible,
    PostgresTrigramIndex,
    TrigramExtensionWherePossible,
    RemoveIndexConcurrentlyWherePossible,
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("sharing", "0011_storage_usage")]

    operations = [
        TrigramExtensionWherePossible(),
        AddIndexConcurrentlyWherePossible(
            model_name="storedfile",
            index=models.Index(fields=["owner", "created_at", "id"], name="file_owner_date_idx"),
        ),
        # Superseded by the one above, which PostgreSQL also reads backwards.
        RemoveIndexConcurrentlyWherePossible(
            model_name="storedfile", name="sharing_sto_owner_i_376433_idx"
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="storedfile",
            index=models.Index(fields=["owner", "size", "id"], name="file_owner_size_idx"),
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="storedfile",
            index=models.Index(
                models.F("owner"),
                Lower(Left("name", 200)),
                models.F("id"),
                name="file_owner_name_idx",
            ),
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="storedfile",
            index=models.Index(fields=["created_at", "id"], name="file_date_idx"),
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="share",
            index=models.Index(
                fields=["colleague", "created_at", "id"], name="share_colleague_date_idx"
            ),
        ),
        PostgresTrigramIndex(table="sharing_storedfile", column="name", name="file_name_trgm_idx"),
    ]
