"""A btree index on the audit entries' actor, for the admin's search by actor.

The search lists the distinct actors from it (a few thousand labels, each found with one
index probe) and keeps those that contain the search; the entries of those actors are then
read from it too. The trigram index on upper(actor) (0002) served that search, but an
actor's name shares frequent trigrams with every other one ("OWN", "-00"), so its bitmap
of 49,505 matches cost 190 ms of 5,000,000 entries (README "Metadata at scale").

Built with CREATE INDEX CONCURRENTLY on PostgreSQL (``atomic = False``) so that entries
keep being recorded while it is built; SQLite gets plain CREATE INDEX.
"""

from django.db import migrations, models

from securefiles.lib.indexes import AddIndexConcurrentlyWherePossible


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("audit", "0002_admin_indexes")]

    operations = [
        AddIndexConcurrentlyWherePossible(
            model_name="auditentry",
            index=models.Index(fields=["actor", "seq"], name="audit_actor_seq_idx"),
        ),
    ]
