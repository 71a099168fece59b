"""The recovery code model, moved from sharing.

The model moved here from `sharing` with its table (db_table is unchanged): this migration
changes only Django's idea of which app holds it, no row and no column. On a new database
sharing's own migrations 0002/0004 have created the table by now; on an upgraded one it is
there with its rows. The model's content type moves along, so permissions granted on it
and admin log entries keep pointing at it.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_content_types(apps, schema_editor):  # type: ignore[no-untyped-def]
    """sharing.<model> -> accounts.<model>, unless the target already exists."""
    content_types = apps.get_model("contenttypes", "ContentType")
    for model in ("recoverycode",):
        if not content_types.objects.filter(app_label="accounts", model=model).exists():
            content_types.objects.filter(app_label="sharing", model=model).update(
                app_label="accounts"
            )


def move_content_types_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    content_types = apps.get_model("contenttypes", "ContentType")
    for model in ("recoverycode",):
        if not content_types.objects.filter(app_label="sharing", model=model).exists():
            content_types.objects.filter(app_label="accounts", model=model).update(
                app_label="sharing"
            )


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("sharing", "0008_storedfile_origin"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="RecoveryCode",
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
                        ("code_digest", models.CharField(max_length=64, unique=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("used_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="recovery_codes",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "sharing_recoverycode",
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
