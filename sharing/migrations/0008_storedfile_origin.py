# StoredFile.origin: files imported from the prototype's unauthenticated CBC format are
# marked "legacy". 0007 is added on another branch; the merge points this at it.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sharing", "0007_sharelink_label"),
    ]

    operations = [
        migrations.AddField(
            model_name="storedfile",
            name="origin",
            field=models.CharField(
                choices=[
                    ("upload", "Uploaded"),
                    ("legacy", "Imported from the unauthenticated legacy format"),
                ],
                default="upload",
                editable=False,
                max_length=16,
            ),
        ),
    ]
