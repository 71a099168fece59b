"""The throttle counter model, moved from sharing.

The model moved here from `sharing` with its table (db_table is unchanged): this migration
changes only Django's idea of which app holds it, no row and no column. On a new database
sharing's migration 0002 has created the table by now; on an upgraded one it is
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
    ]
