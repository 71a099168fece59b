"""System checks: `manage.py check` (and migrate, runserver) fail without usable keys."""

from collections.abc import Sequence

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from sharing.keyring import get_keyring


@checks.register(checks.Tags.security)
def check_encryption_keys(app_configs: Sequence[AppConfig] | None, **kwargs: object) -> list:
    try:
        get_keyring()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="sharing.E001")]
    return []
