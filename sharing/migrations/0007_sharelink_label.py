from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sharing", "0006_link_refunds"),
    ]

    operations = [
        migrations.AddField(
            model_name="sharelink",
            name="label",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
    ]
