"""The audit log's models, moved from sharing.

The model moved here from `sharing` with its table (db_table is unchanged): this migration
changes only Django's idea of which app holds it, no row and no column. On a new database
sharing's migration 0002 has created the tables by now; on an upgraded one it is
there with its rows. Its content type moves along in sharing's 0009, which depends on this
one, so permissions granted on it and admin log entries keep pointing at it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("sharing", "0008_storedfile_origin"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEntry",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("seq", models.PositiveBigIntegerField(editable=False, unique=True)),
                        ("created_at", models.DateTimeField(db_index=True, editable=False)),
                        ("actor", models.CharField(editable=False, max_length=200)),
                        (
                            "actor_user_id",
                            models.BigIntegerField(
                                blank=True, db_index=True, editable=False, null=True
                            ),
                        ),
                        ("ip", models.CharField(blank=True, editable=False, max_length=45)),
                        (
                            "user_agent",
                            models.CharField(blank=True, editable=False, max_length=300),
                        ),
                        ("event", models.CharField(db_index=True, editable=False, max_length=40)),
                        (
                            "file_id",
                            models.UUIDField(blank=True, db_index=True, editable=False, null=True),
                        ),
                        ("file_name", models.TextField(blank=True, editable=False)),
                        ("link_id", models.BigIntegerField(blank=True, editable=False, null=True)),
                        ("detail", models.TextField(blank=True, editable=False)),
                        ("prev_mac", models.CharField(editable=False, max_length=64)),
                        ("mac", models.CharField(editable=False, max_length=64)),
                    ],
                    options={
                        "verbose_name_plural": "audit entries",
                        "db_table": "sharing_auditentry",
                        "ordering": ["-seq"],
                    },
                ),
                migrations.CreateModel(
                    name="AuditHead",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("seq", models.PositiveBigIntegerField(default=0)),
                        ("mac", models.CharField(default="", max_length=64)),
                    ],
                    options={
                        "db_table": "sharing_audithead",
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
