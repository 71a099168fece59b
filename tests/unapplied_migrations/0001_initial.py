"""A migration never applied: test_health points the ops app at it (MIGRATION_MODULES) to
show /readyz failing while `migrate` has not run."""

from django.db import migrations


class Migration(migrations.Migration):
    operations: list = []
