"""StorageUsage: each user's file count and bytes, kept by the services from now on, and
filled here from the rows (one GROUP BY over the files, one insert per owner)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, Sum


def count_usage(apps, schema_editor):
    StoredFile = apps.get_model("sharing", "StoredFile")
    StorageUsage = apps.get_model("sharing", "StorageUsage")
    if schema_editor.connection.vendor == "postgresql":
        # The counts must match the rows: no upload or deletion may commit between the
        # count and the deployment of the services that keep it (one aggregate; seconds
        # on a million files). Reads go on.
        schema_editor.execute('LOCK TABLE "sharing_storedfile" IN SHARE MODE')
    totals = (
        StoredFile.objects.order_by()
        .values("owner_id")
        .annotate(files=Count("pk"), bytes=Sum("size"))
    )
    StorageUsage.objects.bulk_create(
        (
            StorageUsage(user_id=row["owner_id"], files=row["files"], bytes=row["bytes"] or 0)
            for row in totals.iterator()
        ),
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("sharing", "0010_resumable_upload"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="StorageUsage",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="storage_usage",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("files", models.BigIntegerField(default=0)),
                ("bytes", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(count_usage, migrations.RunPython.noop),
    ]
