"""Migration operations that build indexes without locking a large table's writers.

On PostgreSQL an index is built with CREATE INDEX CONCURRENTLY (writes go on while it is
built; the migration must say ``atomic = False``, Django's AddIndexConcurrently); every
other database (SQLite in tests and small installs) gets the plain operation, whose lock
is harmless there. Django documents the pattern: "Migrations that add indexes
concurrently" in docs/ref/contrib/postgres/operations.txt.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import (
    AddIndexConcurrently,
    BtreeGinExtension,
    RemoveIndexConcurrently,
    TrigramExtension,
)
from django.db import migrations


def _on_postgresql(schema_editor: Any) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class _ConcurrentlyOnPostgreSQL:
    """Run the concurrent operation (the next class in the MRO) on PostgreSQL, and
    ``plain``, the ordinary operation it stands for, on any other database (where None:
    nothing)."""

    plain: Any = None

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if _on_postgresql(schema_editor):
            super().database_forwards(app_label, schema_editor, *args)  # type: ignore[misc]
        elif self.plain is not None:
            self.plain.database_forwards(self, app_label, schema_editor, *args)

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if _on_postgresql(schema_editor):
            super().database_backwards(app_label, schema_editor, *args)  # type: ignore[misc]
        elif self.plain is not None:
            self.plain.database_backwards(self, app_label, schema_editor, *args)


class AddIndexConcurrentlyWherePossible(_ConcurrentlyOnPostgreSQL, AddIndexConcurrently):
    """AddIndex, concurrently on PostgreSQL (the migration must be ``atomic = False``)."""

    plain = migrations.AddIndex


class RemoveIndexConcurrentlyWherePossible(_ConcurrentlyOnPostgreSQL, RemoveIndexConcurrently):
    """RemoveIndex, concurrently on PostgreSQL (the migration must be ``atomic = False``)."""

    plain = migrations.RemoveIndex


class PostgresTrigramIndex(_ConcurrentlyOnPostgreSQL, migrations.RunSQL):
    """A pg_trgm GIN index on ``upper(<column>)``, built concurrently, PostgreSQL only.

    It serves Django's ``icontains`` there (``UPPER(col::text) LIKE UPPER('%q%')``) for any
    query of three characters or more, in any script. Kept out of the models' state (a GIN
    index cannot be described to SQLite): elsewhere this operation does nothing. Needs
    TrigramExtension earlier in the migrations and ``atomic = False``.

    ``prefix``: columns the index holds before the name (GIN keys of their own, through
    btree_gin: BtreeGinExtensionWherePossible earlier), so that a search with equality on
    them (``owner_id = 7 AND UPPER(name) LIKE …``) finds in the index only the rows that
    match both, instead of every matching name in the table.
    """

    def __init__(self, *, table: str, column: str, name: str, prefix: tuple[str, ...] = ()) -> None:
        keys = ", ".join([*(f'"{key}"' for key in prefix), f'upper("{column}") gin_trgm_ops'])
        create = f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" USING gin ({keys})'
        super().__init__(create, f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


class TrigramExtensionWherePossible(_ConcurrentlyOnPostgreSQL, TrigramExtension):
    """CREATE EXTENSION IF NOT EXISTS pg_trgm on PostgreSQL; nothing elsewhere.

    Unapplied, it leaves the extension installed: two apps' migrations use it (sharing
    0012, audit 0002), and dropping it under the other's indexes would fail. (Django's
    own operation also queries pg_extension when unapplied, even on SQLite.)
    """

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        return  # the extension stays (see the class docstring)


class BtreeGinExtensionWherePossible(_ConcurrentlyOnPostgreSQL, BtreeGinExtension):
    """CREATE EXTENSION IF NOT EXISTS btree_gin on PostgreSQL (trusted since 13, as
    pg_trgm: the database owner may create it); nothing elsewhere. It lets a GIN index
    hold plain columns (an owner's id) beside trigrams. Unapplied, it stays installed, as
    TrigramExtensionWherePossible does: dropping it would fail under another's index."""

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        return  # the extension stays (see the class docstring)


class RunSQLOnPostgreSQL(_ConcurrentlyOnPostgreSQL, migrations.RunSQL):
    """RunSQL on PostgreSQL (a trigger, say); nothing on any other database."""


class SetNotNullWherePossible(migrations.AlterField):
    """AlterField to a NOT NULL ``field`` whose column holds no NULL any more, without
    holding a large table's ACCESS EXCLUSIVE lock for a scan of every row on PostgreSQL.

    There: ``ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID`` (a moment's lock),
    ``VALIDATE CONSTRAINT`` (scans under SHARE UPDATE EXCLUSIVE: reads and writes go on),
    ``SET NOT NULL`` (PostgreSQL 12+ proves it from the valid check, no scan), then the
    check is dropped: the pattern of PostgreSQL's ALTER TABLE documentation ("SET/DROP NOT
    NULL"). Any other database: the plain AlterField (SQLite rebuilds the table). Raises
    the database's IntegrityError if a NULL is left.
    """

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if not _on_postgresql(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        table = schema_editor.quote_name(model._meta.db_table)
        column = schema_editor.quote_name(model._meta.get_field(self.name).column)
        check = schema_editor.quote_name(f"{model._meta.db_table}_{self.name}_not_null")
        for statement in (
            # Left by an interrupted run (a timeout during VALIDATE, say): migrate again.
            f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}",
            f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID",
            f"ALTER TABLE {table} VALIDATE CONSTRAINT {check}",
            f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",
            f"ALTER TABLE {table} DROP CONSTRAINT {check}",
        ):
            schema_editor.execute(statement)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        """Back to the nullable column: the plain AlterField everywhere (on PostgreSQL
        ``DROP NOT NULL``, no scan). AlterField's own database_backwards calls
        database_forwards, which here would set NOT NULL once more: unapplied, the column
        stayed NOT NULL, and rows written meanwhile by a release that does not know it
        (once the trigger that fills it is gone) failed."""
        migrations.AlterField.database_forwards(
            self, app_label, schema_editor, from_state, to_state
        )


class AddFieldIfMissing(migrations.AddField):
    """AddField, except that a column already there is left as it is: a non-atomic
    migration interrupted after adding it (a deploy's timeout during a long fill) can
    then simply be migrated again, instead of failing on "column already exists"."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            columns = connection.introspection.get_table_description(cursor, model._meta.db_table)
        if model._meta.get_field(self.name).column in {column.name for column in columns}:
            return
        super().database_forwards(app_label, schema_editor, from_state, to_state)
