# StoredFile.scan_state: what the ClamAV scan said on arrival. Files stored before
# scanning existed are "off" (not scanned).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sharing", "0013_share_groups_and_expiry"),
    ]

    operations = [
        migrations.AddField(
            model_name="storedfile",
            name="scan_state",
            field=models.CharField(
                choices=[
                    ("clean", "Scanned: no malware found"),
                    ("off", "Not scanned: scanning was off"),
                    ("too_large", "Not scanned: larger than the scanner's stream limit"),
                    ("unavailable", "Not scanned: the scanner was unavailable"),
                ],
                default="off",
                editable=False,
                max_length=16,
            ),
        ),
    ]
