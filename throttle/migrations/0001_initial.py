"""The throttle counter model, moved from sharing.

The model moved here from `sharing` with its table (db_table is unchanged): this migration
changes only Django's idea of which app holds it, no row and no column. On a new database
sharing's own migrations 0002/0004 have created the table by now; on an upgraded one it is
there with its rows. The model's content type moves along, so permissions granted on it
and admin log entries keep pointing at it.
"""

from django.db import migrations, models


def move_content_types(apps, schema_editor):  # type: ignore[no-untyped-def]
    """sharing.<model> -> throttle.<model>, unless the target already exists."""
    content_types = apps.get_model("contenttypes", "ContentType")
    for model in ("throttlecounter",):
        if not content_types.objects.filter(app_label="throttle", model=model).exists():
            content_types.objects.filter(app_label="sharing", model=model).update(
                app_label="throttle"
            )


def move_content_types_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    content_types = apps.get_model("contenttypes", "ContentType")
    for model in ("throttlecounter",):
        if not content_types.objects.filter(app_label="sharing", model=model).exists():
            content_types.objects.filter(app_label="throttle", model=model).update(
                app_label="sharing"
            )


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
                    name="ThrottleCounter",
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
                        ("key", models.CharField(max_length=200, unique=True)),
                        ("window_start", models.DateTimeField()),
                        ("count", models.PositiveIntegerField(default=0)),
                    ],
                    options={
                        "db_table": "sharing_throttlecounter",
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
