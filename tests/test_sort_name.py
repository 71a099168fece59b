"""The name sort's stored key (sharing 0019): every file gets it however it was written,
the list sorts by it, and a page of the name sort typed by number can be read from its
index alone on PostgreSQL (an index on ``lower(left(name, 200))`` never could)."""

from __future__ import annotations

import importlib
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sharing import selectors
from sharing.models import StoredFile, sort_name_of
from tests.helpers import make_file
from tests.test_metadata_scale import add_rows, listed_ids

pytestmark = pytest.mark.django_db

LONG = "Ä" + "b" * 248 + "Z"  # 250 characters (an upload keeps 255 at most)


def test_an_upload_stores_its_name_lowered_and_cut_to_200_characters(alice) -> None:
    stored = make_file(alice, b"x", name=LONG)

    row = StoredFile.objects.values("name", "sort_name").get(pk=stored.pk)
    assert row["name"] == LONG
    assert row["sort_name"] == _lowered_by_the_database(LONG)
    assert row["sort_name"][1:] == "b" * 199  # cut at 200 characters
    assert sort_name_of(LONG) == "ä" + "b" * 199


def _lowered_by_the_database(name: str) -> str:
    """What the key is on this database: PostgreSQL's lower() by its locale (the
    trigger's), elsewhere Python's (sort_name_of)."""
    if connection.vendor != "postgresql":
        return sort_name_of(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT lower(left(%s, 200))", [name])
        return cursor.fetchone()[0]


def test_the_name_sort_ignores_case_and_breaks_ties_by_id(alice, alice_client) -> None:
    names = ["beta.txt", "Alpha.txt", "ALPHA.txt", "gamma.txt", "alpha.txt"]
    files = {make_file(alice, b"x", name=name).pk: name for name in names}

    ascending = listed_ids(alice_client.get("/?sort=name"))
    descending = listed_ids(alice_client.get("/?sort=-name"))

    alphas = sorted(str(pk) for pk, name in files.items() if name.lower() == "alpha.txt")
    by_name = {name: str(pk) for pk, name in files.items()}
    assert ascending == [*alphas, by_name["beta.txt"], by_name["gamma.txt"]]
    assert descending == ascending[::-1]


def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the trigger and the index-only read are PostgreSQL's")


def test_a_row_written_without_the_key_gets_it_from_the_database(alice) -> None:
    """What an older release inserting during the upgrade, or a bulk load, writes."""
    _postgresql_only()
    file_id = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sharing_storedfile (id, owner_id, name, content_type, size, digest,"
            " sha256_sealed, created_at, blob, wrapped_key, key_id, format_version, origin,"
            " scan_state) VALUES (%s, %s, %s, 'text/plain', 1, '', '', now(), %s, '',"
            " 'k', 1, 'upload', 'off')",
            [file_id, alice.pk, LONG, f"blobs/{file_id.hex}"],
        )
        # Nor can a wrong key be written over it.
        cursor.execute("UPDATE sharing_storedfile SET sort_name = 'zzz' WHERE id = %s", [file_id])

    assert StoredFile.objects.get(pk=file_id).sort_name == _lowered_by_the_database(LONG)
    assert StoredFile.objects.get(pk=file_id).sort_name.endswith("b" * 199)


def test_a_name_sort_page_by_number_is_read_from_the_index_alone(alice) -> None:
    _postgresql_only()
    add_rows(alice, 400)
    files = selectors.files_owned_by(user=alice, ordering="name")
    ids = files.values("pk")[200:250]
    sql, params = ids.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sharing_storedfile")
        # 400 rows: left alone, the planner would rather read the small table and sort it.
        # Forbidden those, it reads the expression index of before (file_owner_name_idx)
        # with an Index Scan, fetching every skipped row: never index-only.
        for method in ("seqscan", "bitmapscan", "sort"):
            cursor.execute(f"SET LOCAL enable_{method} = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]

    scans = _nodes(plan[0]["Plan"])
    assert ("Index Only Scan", "file_owner_sort_name_idx") in scans, scans
    assert not any(kind == "Sort" for kind, _ in scans), scans


def _nodes(node: dict) -> list[tuple[str, str]]:
    found = [(node["Node Type"], node.get("Index Name", ""))]
    for child in node.get("Plans", []):
        found += _nodes(child)
    return found


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_every_file_in_batches(alice, monkeypatch) -> None:
    migration = importlib.import_module("sharing.migrations.0019_storedfile_sort_name")
    monkeypatch.setattr(migration, "BATCH", 3)
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([("sharing", "0018_share_file_name")])
        old = executor.loader.project_state(("sharing", "0018_share_file_name")).apps
        OldFile = old.get_model("sharing", "StoredFile")
        names = ["Zeta", "ÉCOLE.pdf", "alpha", LONG, "Beta", "b", "ALPHA", "x" * 5]
        rows = [
            OldFile(
                id=uuid.uuid4(),
                owner_id=alice.pk,
                name=name,
                size=1,
                digest=b"",
                blob=f"blobs/{uuid.uuid4().hex}",
                wrapped_key=b"",
                key_id="k",
            )
            for name in names
        ]
        OldFile.objects.bulk_create(rows)

        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    finally:
        MigrationExecutor(connection).migrate(leaves)

    stored = dict(StoredFile.objects.values_list("name", "sort_name"))
    assert stored == {name: _lowered_by_the_database(name) for name in names}


def _nullable(column: str) -> bool:
    with connection.cursor() as cursor:
        described = connection.introspection.get_table_description(cursor, "sharing_storedfile")
    return {info.name: info.null_ok for info in described}[column]


@pytest.mark.django_db(transaction=True)
def test_unapplied_the_key_is_nullable_again_before_its_trigger_goes() -> None:
    """Unapplying 0019 drops the trigger before the column: meanwhile the column must take
    the NULL an older release's insert leaves (SetNotNullWherePossible's backwards once
    set NOT NULL again on PostgreSQL; elsewhere it is the plain AlterField)."""
    _postgresql_only()
    migration = importlib.import_module("sharing.migrations.0019_storedfile_sort_name")
    state = MigrationExecutor(connection).loader.project_state(("sharing", "0018_share_file_name"))
    *before_it, set_not_null = migration.Migration.operations[:4]
    for operation in before_it:
        operation.state_forwards("sharing", state)
    nullable_state = state.clone()
    set_not_null.state_forwards("sharing", state)
    assert not _nullable("sort_name")
    try:
        with connection.schema_editor(atomic=False) as editor:
            set_not_null.database_backwards("sharing", editor, state, nullable_state)
        assert _nullable("sort_name")
    finally:
        with connection.schema_editor(atomic=False) as editor:
            set_not_null.database_forwards("sharing", editor, nullable_state, state)
    assert not _nullable("sort_name")


class Interrupted(Exception):
    """A deploy's timeout, a lost connection: the migration stops after an operation."""


@pytest.mark.parametrize("stage", [0, 1, 2, 3, 5, 6])
@pytest.mark.django_db(transaction=True)
def test_an_interrupted_migration_is_migrated_again(alice, monkeypatch, stage: int) -> None:
    """0019 is not atomic: stopped after any of its operations (what it did stays), it is
    migrated again to the end, with every file's key."""
    migration = importlib.import_module("sharing.migrations.0019_storedfile_sort_name")
    operation = migration.Migration.operations[stage]
    done = operation.database_forwards

    def interrupted(app_label, editor, *states) -> None:  # type: ignore[no-untyped-def]
        done(app_label, editor, *states)
        if stage == 3 and connection.vendor == "postgresql":  # stopped during VALIDATE
            editor.execute(
                "ALTER TABLE sharing_storedfile ADD CONSTRAINT"
                ' "sharing_storedfile_sort_name_not_null" CHECK (sort_name IS NOT NULL) NOT VALID'
            )
        raise Interrupted

    make_file(alice, b"x", name="Before.txt")
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        MigrationExecutor(connection).migrate([("sharing", "0018_share_file_name")])
        OldFile = (
            MigrationExecutor(connection)
            .loader.project_state(("sharing", "0018_share_file_name"))
            .apps.get_model("sharing", "StoredFile")
        )
        OldFile.objects.filter(owner_id=alice.pk).update(name="Renamed.TXT")
        monkeypatch.setattr(operation, "database_forwards", interrupted)
        with pytest.raises(Interrupted):
            MigrationExecutor(connection).migrate(leaves)
        monkeypatch.undo()

        MigrationExecutor(connection).migrate(leaves)
    finally:
        monkeypatch.undo()
        MigrationExecutor(connection).migrate(leaves)

    assert list(StoredFile.objects.values_list("sort_name", flat=True)) == ["renamed.txt"]
    assert not _nullable("sort_name")
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, "sharing_storedfile")
    assert "file_owner_sort_name_idx" in indexes and "file_owner_name_idx" not in indexes
    assert "sharing_storedfile_sort_name_not_null" not in indexes
