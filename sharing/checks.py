"""System checks: `manage.py check` (and migrate, runserver) fail without usable keys;
`check --deploy` also warns while SITE_URL or AUDIT_LOG_KEY is unset."""

from collections.abc import Sequence

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction

from securefiles.lib.site import site_url
from sharing import selectors
from sharing.storage.keyring import get_keyring


@checks.register(checks.Tags.security)
def check_encryption_keys(app_configs: Sequence[AppConfig] | None, **kwargs: object) -> list:
    try:
        get_keyring()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="sharing.E001")]
    return []


@checks.register(checks.Tags.security)
def check_key_ids_in_use(app_configs: Sequence[AppConfig] | None, **kwargs: object) -> list:
    """Warn while files, or unfinished resumable uploads, need a master key that
    ENCRYPTION_KEYS no longer holds."""
    try:
        configured = set(get_keyring().ids)
    except ImproperlyConfigured:
        return []  # sharing.E001 already says what is wrong
    try:
        with transaction.atomic():  # a savepoint: a failed query spoils no outer transaction
            files = selectors.key_ids_in_use()
            uploads = selectors.upload_key_ids_in_use()
    except DatabaseError:
        return []  # no table yet (before migrate) or no database reachable: nothing to compare
    return [
        *_missing_key_warnings(files, configured, "file(s)", "they cannot be downloaded"),
        *_missing_key_warnings(uploads, configured, "unfinished upload(s)", "they cannot resume"),
    ]


def _missing_key_warnings(
    in_use: dict[str, int], configured: set[str], what: str, consequence: str
) -> list:
    return [
        checks.Warning(
            f"{count} {what} need master key {key_id!r}, which is not in ENCRYPTION_KEYS: "
            f"{consequence}.",
            hint="Put the key back in ENCRYPTION_KEYS (after the primary), run "
            "`manage.py rotate_keys`, and only then remove it.",
            id="sharing.W001",
        )
        for key_id, count in sorted(in_use.items())
        if key_id not in configured
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_site_url(app_configs: Sequence[AppConfig] | None, **kwargs: object) -> list:
    """`check --deploy`: warn while SITE_URL is unset (e-mail links then guess the address)."""
    if settings.SITE_URL:
        return []
    return [
        checks.Warning(
            "SITE_URL is not set: links in e-mails (password resets) use "
            f"{site_url()!r}, made from the first ALLOWED_HOSTS entry and HTTPS.",
            hint="Set SITE_URL to the portal's public address, e.g. https://files.example.org.",
            id="sharing.W002",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_audit_log_key(app_configs: Sequence[AppConfig] | None, **kwargs: object) -> list:
    """`check --deploy`: warn while AUDIT_LOG_KEY is unset (the key then comes from
    SECRET_KEY, and rotating SECRET_KEY makes the whole audit log fail to verify)."""
    if settings.AUDIT_LOG_KEY:
        return []
    return [
        checks.Warning(
            "AUDIT_LOG_KEY is not set: the audit log's MAC key is derived from SECRET_KEY, "
            "so changing SECRET_KEY makes verify_audit_log fail on every entry.",
            hint="Set AUDIT_LOG_KEY to a long random value of its own and keep it with the "
            "backups; an existing log keeps verifying only under the key it was written with.",
            id="sharing.W003",
        )
    ]
