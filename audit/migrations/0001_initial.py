"""The audit log's models, moved from sharing.

The model moved here from `sharing` with its table (db_table is unchanged): this migration
changes only Django's idea of which app holds it, no row and no column. On a new database
sharing's own migrations 0002/0004 have created the table by now; on an upgraded one it is
there with its rows. The model's content type moves along, so permissions granted on it
and admin log entries keep pointing at it.
"""

from django.db import migrations, models


def move_content_types(apps, schema_editor):  # type: ignore[no-untyped-def]
    """sharing.<model> -> audit.<model>, unless the target already exists."""
    content_types = apps.get_model("contenttypes", "ContentType")
    for model in ("auditentry", "audithead"):
        if not content_types.objects.filter(app_label="audit", model=model).exists():
            content_types.objects.filter(app_label="sharing", model=model).update(app_label="audit")


def move_content_types_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    content_types = apps.get_model("contenttypes", "ContentType")
    for model in ("auditentry", "audithead"):
        if not content_types.objects.filter(app_label="sharing", model=model).exists():
            content_types.objects.filter(app_label="audit", model=model).update(app_label="sharing")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("sharing", "0008_storedfile_origin"),
        ("contenttypes", "0002_remove_content_type_name"),
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
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
