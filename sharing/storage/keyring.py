"""The master keys of this process, parsed once from settings.ENCRYPTION_KEYS.

Sits between the pure crypto module and everything that needs a master key: it turns a
configuration problem into ImproperlyConfigured, and resets when tests change the setting.
"""

from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from sharing.crypto import KeyConfigError, Keyring, parse_keyring


@lru_cache(maxsize=1)
def get_keyring() -> Keyring:
    """Return the configured keyring, or raise ImproperlyConfigured naming ENCRYPTION_KEYS."""
    try:
        return parse_keyring(settings.ENCRYPTION_KEYS)
    except KeyConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from None
