"""A trigram index of file names by owner, for the search of a user's own files.

``owner_id = 7 AND UPPER(name) LIKE '%DOC-00012%'`` was served by the trigram index of
every name (0012): PostgreSQL built the bitmap of every matching name in the portal
(10,200 of 1,000,000 files for "doc-00012") and fetched each of those rows to keep the
owner's 100. A GIN index on (owner_id, upper(name) gin_trgm_ops) holds the owner as a
key of its own (btree_gin), so the index yields only the owner's matching rows: a search
costs what the user's matches cost (README "Metadata at scale").

btree_gin is a trusted extension since PostgreSQL 13, as pg_trgm is: the database owner
may create it. The index is built with CREATE INDEX CONCURRENTLY (``atomic = False``), so
uploads go on while it is built; an interrupted build leaves it INVALID: drop it and
migrate again. The portal-wide index of 0012 stays: the admin's search and "Shared with
me" use it. SQLite gets neither (its search reads the owner's rows).
"""

from django.db import migrations

from securefiles.lib.indexes import BtreeGinExtensionWherePossible, PostgresTrigramIndex


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("sharing", "0016_link_claim")]

    operations = [
        BtreeGinExtensionWherePossible(),
        PostgresTrigramIndex(
            table="sharing_storedfile",
            column="name",
            name="file_owner_name_trgm_idx",
            prefix=("owner_id",),
        ),
    ]
