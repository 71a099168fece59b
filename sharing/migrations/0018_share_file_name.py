"""Each share keeps its file's name, and "Shared with me" is searched by it.

The search of "Shared with me" (``colleague = u AND UPPER(file.name) LIKE '%q%'``) had
PostgreSQL build the bitmap of every matching name in the portal from the trigram index
of every name, then join it to the user's shares: the files shared with a user have other
owners, which the shares do not record, so the index by owner (0017) cannot narrow it. With
the name on the share, a GIN index on (colleague_id, group_id, upper(file_name)
gin_trgm_ops) (btree_gin, 0017) yields only the user's matching shares, by name or by
group. A file's name never changes, so the copy stays true; Share.save() and
Share.objects.bulk_create fill it for new shares.

The column is added with a constant default (no table rewrite on PostgreSQL 11+), filled
in batches of BATCH shares, each its own transaction (``atomic = False``: a portal keeps
sharing meanwhile), and indexed with CREATE INDEX CONCURRENTLY (PostgreSQL only). Shares
made by an older release while this runs are filled by the batches that come after them;
migrating again fills any left.
"""

from typing import Any

from django.db import migrations, models

from securefiles.lib.indexes import PostgresTrigramIndex

BATCH = 10_000


def fill_file_names(apps: Any, schema_editor: Any) -> None:
    """Copy each share's file name, BATCH shares (by id) per statement and transaction."""
    Share = apps.get_model("sharing", "Share")
    StoredFile = apps.get_model("sharing", "StoredFile")
    name = StoredFile.objects.filter(pk=models.OuterRef("file_id")).values("name")[:1]
    last = Share.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    for start in range(0, last, BATCH):
        batch = Share.objects.filter(pk__gt=start, pk__lte=start + BATCH, file_name="")
        batch.update(file_name=models.Subquery(name))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("sharing", "0017_file_owner_name_trigram_index")]

    operations = [
        migrations.AddField(
            model_name="share",
            name="file_name",
            field=models.TextField(default="", db_default="", editable=False),
        ),
        migrations.RunPython(fill_file_names, migrations.RunPython.noop, elidable=True),
        PostgresTrigramIndex(
            table="sharing_share",
            column="file_name",
            name="share_file_name_trgm_idx",
            prefix=("colleague_id", "group_id"),
        ),
    ]
