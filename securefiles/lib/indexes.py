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
    RemoveIndexConcurrently,
    TrigramExtension,
)
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState


def _on_postgresql(schema_editor: BaseDatabaseSchemaEditor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class AddIndexConcurrentlyWherePossible(AddIndexConcurrently):
    """AddIndex, concurrently on PostgreSQL (the migration must be ``atomic = False``)."""

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if _on_postgresql(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if _on_postgresql(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )


class RemoveIndexConcurrentlyWherePossible(RemoveIndexConcurrently):
    """RemoveIndex, concurrently on PostgreSQL (the migration must be ``atomic = False``)."""

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if _on_postgresql(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.RemoveIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if _on_postgresql(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.RemoveIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )


class PostgresTrigramIndex(migrations.RunSQL):
    """A pg_trgm GIN index on ``upper(<column>)``, built concurrently, PostgreSQL only.

    It serves Django's ``icontains`` there (``UPPER(col::text) LIKE UPPER('%q%')``) for any
    query of three characters or more, in any script. Kept out of the models' state (a GIN
    index cannot be described to SQLite): elsewhere this operation does nothing. Needs
    TrigramExtension earlier in the migrations and ``atomic = False``.
    """

    def __init__(self, *, table: str, column: str, name: str) -> None:
        create = (
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" '
            f'USING gin (upper("{column}") gin_trgm_ops)'
        )
        super().__init__(create, f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if _on_postgresql(schema_editor):
            super().database_forwards(app_label, schema_editor, *args)

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if _on_postgresql(schema_editor):
            super().database_backwards(app_label, schema_editor, *args)


class TrigramExtensionWherePossible(TrigramExtension):
    """CREATE EXTENSION IF NOT EXISTS pg_trgm on PostgreSQL; nothing elsewhere.

    Unapplied, it leaves the extension installed: two apps' migrations use it (sharing
    0012, audit 0002), and dropping it under the other's indexes would fail. (Django's
    own operation also queries pg_extension when unapplied, even on SQLite.)
    """

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if _on_postgresql(schema_editor):
            super().database_forwards(app_label, schema_editor, *args)

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        return  # the extension stays (see the class docstring)
