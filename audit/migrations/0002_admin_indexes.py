"""Indexes for the audit log's admin at millions of entries: the event filter in the
list's order, a file's activity, the search by IP address, and the search by part of the
actor, file name or detail (trigram indexes, PostgreSQL only).

Built with CREATE INDEX CONCURRENTLY on PostgreSQL (``atomic = False``) so that entries
keep being recorded while they are built; SQLite gets plain CREATE INDEX.
"""

from django.db import migrations, models

from securefiles.lib.indexes import (
    AddIndexConcurrentlyWherePossible,
    PostgresTrigramIndex,
    TrigramExtensionWherePossible,
)

TABLE = "sharing_auditentry"  # the table kept its name when the model moved (0001)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("audit", "0001_initial")]

    operations = [
        TrigramExtensionWherePossible(),
        AddIndexConcurrentlyWherePossible(
            model_name="auditentry",
            index=models.Index(fields=["event", "seq"], name="audit_event_seq_idx"),
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="auditentry",
            index=models.Index(fields=["file_id", "seq"], name="audit_file_seq_idx"),
        ),
        AddIndexConcurrentlyWherePossible(
            model_name="auditentry",
            index=models.Index(fields=["ip", "seq"], name="audit_ip_seq_idx"),
        ),
        PostgresTrigramIndex(table=TABLE, column="actor", name="audit_actor_trgm_idx"),
        PostgresTrigramIndex(table=TABLE, column="file_name", name="audit_file_name_trgm_idx"),
        PostgresTrigramIndex(table=TABLE, column="detail", name="audit_detail_trgm_idx"),
    ]
