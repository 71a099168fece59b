"""The recovery code model, moved from sharing.

The model moved here from `sharing` with its table (db_table is unchanged): this migration
changes only Django's idea of which app holds it, no row and no column. On a new database
sharing's migration 0004 has created the table by now; on an upgraded one it is
there with its rows. Its content type moves along in sharing's 0009, which depends on this
one, so permissions granted on it and admin log entries keep pointing at it.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("sharing", "0008_storedfile_origin"),
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
    ]
