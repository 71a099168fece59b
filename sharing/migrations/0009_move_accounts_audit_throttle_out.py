"""AuditEntry, AuditHead, ThrottleCounter and RecoveryCode now belong to the audit,
throttle and accounts apps. Their tables stay as they are: only sharing's state forgets
them (database_operations is empty), after the new apps have taken them over."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("audit", "0001_initial"),
        ("throttle", "0001_initial"),
        ("sharing", "0008_storedfile_origin"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name="AuditEntry",
                ),
                migrations.DeleteModel(
                    name="AuditHead",
                ),
                migrations.RemoveField(
                    model_name="recoverycode",
                    name="user",
                ),
                migrations.DeleteModel(
                    name="ThrottleCounter",
                ),
                migrations.DeleteModel(
                    name="RecoveryCode",
                ),
            ],
            database_operations=[],
        ),
    ]
