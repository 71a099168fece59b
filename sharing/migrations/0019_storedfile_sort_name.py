"""The name sort reads a stored column, so a page of it typed by number is index-only.

The file list sorted by name ordered by ``lower(left(name, 200))`` from an index on that
expression. PostgreSQL never reads an expression index index-only (its planner sees that
the query needs ``name``, which the index lacks), so ``?sort=name&page=1000`` fetched the
50,000 rows it skipped, or sorted all the owner's files: 55-125 ms at 100,000 files.
``sort_name`` holds the key itself, indexed by (owner_id, sort_name, id).

Safe on a table of millions of files while the portal runs (``atomic = False``):

* the column is added nullable (no rewrite);
* on PostgreSQL a trigger sets it on every insert and rename (``lower(left(name,
  200))``, the old index's expression, so the order does not change), so files an older
  release uploads meanwhile get it too;
* existing rows are filled BATCH at a time, in order of id, each batch its own
  transaction;
* NOT NULL is set without a scan under an exclusive lock (SetNotNullWherePossible);
* the new index is built and the old one dropped concurrently;
* interrupted (a deploy's timeout during the fill, say), it is simply migrated again:
  the column, trigger, check and new index a run left are kept or replaced, and the
  fill takes up the rows still without a key.

On SQLite the rows are filled with the first 200 characters of the name in Python's lower
case (what sharing.models.sort_name_of gives new rows there; written out here, so that
this migration does not change if that function does) and the table is rebuilt for NOT
NULL.
"""

from typing import Any

from django.db import migrations, models
from django.db.models.functions import Left, Lower

from securefiles.lib.indexes import (
    AddFieldIfMissing,
    AddIndexConcurrentlyWherePossible,
    RemoveIndexConcurrentlyWherePossible,
    RunSQLOnPostgreSQL,
    SetNotNullWherePossible,
)

BATCH = 10_000

TRIGGER = """
CREATE OR REPLACE FUNCTION sharing_storedfile_sort_name() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.sort_name := lower(left(NEW.name, 200));
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS sharing_storedfile_sort_name ON sharing_storedfile;
CREATE TRIGGER sharing_storedfile_sort_name
    BEFORE INSERT OR UPDATE OF name, sort_name ON sharing_storedfile
    FOR EACH ROW EXECUTE FUNCTION sharing_storedfile_sort_name();
"""
NO_TRIGGER = """
DROP TRIGGER IF EXISTS sharing_storedfile_sort_name ON sharing_storedfile;
DROP FUNCTION IF EXISTS sharing_storedfile_sort_name();
"""


def fill_sort_names(apps: Any, schema_editor: Any) -> None:
    """Set every file's sort_name, BATCH files (in order of id) per transaction."""
    StoredFile = apps.get_model("sharing", "StoredFile")
    on_postgresql = schema_editor.connection.vendor == "postgresql"
    ids = StoredFile.objects.order_by("pk").values_list("pk", flat=True)
    last = None
    while True:
        batch = list((ids.filter(pk__gt=last) if last else ids)[:BATCH])
        if not batch:
            return
        last = batch[-1]
        empty = StoredFile.objects.filter(pk__gte=batch[0], pk__lte=last, sort_name=None)
        if on_postgresql:
            empty.update(sort_name=Lower(Left("name", 200)))
        else:
            _fill_in_python(StoredFile, empty)


def _fill_in_python(StoredFile: Any, files: Any) -> None:
    rows = [
        StoredFile(pk=pk, sort_name=name[:200].lower())
        for pk, name in files.values_list("pk", "name")
    ]
    StoredFile.objects.bulk_update(rows, ["sort_name"], batch_size=500)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("sharing", "0018_share_file_name")]

    operations = [
        AddFieldIfMissing(
            model_name="storedfile",
            name="sort_name",
            field=models.TextField(editable=False, null=True),
        ),
        RunSQLOnPostgreSQL(TRIGGER, NO_TRIGGER),
        migrations.RunPython(fill_sort_names, migrations.RunPython.noop, elidable=True),
        SetNotNullWherePossible(
            model_name="storedfile",
            name="sort_name",
            field=models.TextField(editable=False),
        ),
        # An index an interrupted run left (INVALID if its build was cut short) is
        # dropped and built again.
        RunSQLOnPostgreSQL(
            "DROP INDEX CONCURRENTLY IF EXISTS file_owner_sort_name_idx",
            migrations.RunSQL.noop,
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="storedfile",
            index=models.Index(
                fields=["owner", "sort_name", "id"], name="file_owner_sort_name_idx"
            ),
        ),
        RemoveIndexConcurrentlyWherePossible(model_name="storedfile", name="file_owner_name_idx"),
    ]
