"""AuditEntry, AuditHead, ThrottleCounter and RecoveryCode now belong to the audit,
throttle and accounts apps. Their tables stay as they are: only sharing's state forgets
them (database_operations is empty), after the new apps have taken them over; their
content types (and so the permissions granted on them) follow, both ways."""

from django.db import migrations

MOVED = {
    "auditentry": "audit",
    "audithead": "audit",
    "throttlecounter": "throttle",
    "recoverycode": "accounts",
}


def _move(apps, schema_editor, source, target_of):  # type: ignore[no-untyped-def]
    """Give each moved model's content type to its new app. If the new app already has one
    (a rollback and upgrade left both), the old one goes: its permissions are duplicates."""
    content_types = apps.get_model("contenttypes", "ContentType")
    for model, app in MOVED.items():
        old = content_types.objects.filter(app_label=source(app), model=model).first()
        if old is None:
            continue
        if content_types.objects.filter(app_label=target_of(app), model=model).exists():
            old.delete()
        else:
            old.app_label = target_of(app)
            old.save(update_fields=["app_label"])


def content_types_forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    _move(apps, schema_editor, lambda app: "sharing", lambda app: app)


def content_types_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    _move(apps, schema_editor, lambda app: app, lambda app: "sharing")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("audit", "0001_initial"),
        ("throttle", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
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
        migrations.RunPython(content_types_forward, content_types_back),
    ]
