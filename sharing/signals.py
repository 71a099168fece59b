"""sharing's receivers, where Django offers no other hook: a file row can go by a cascade
(its owner deleted), which no service sees, so the blob is removed when any StoredFile row
is deleted; and the cached keyring is read again when ENCRYPTION_KEYS changes (tests and
`override_settings`)."""

from __future__ import annotations

from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from sharing.models import StoredFile
from sharing.services.files import blob_delete
from sharing.storage.keyring import get_keyring


@receiver(post_delete, sender=StoredFile)
def _remove_blob_on_commit(sender: type, instance: StoredFile, **kwargs: object) -> None:
    # Every way a row can go (the service, the admin's bulk action, a deleted owner's
    # cascade) passes here. The blob goes only once the deletion has committed, so a
    # rolled-back transaction never leaves a row without its content.
    name = instance.blob.name
    transaction.on_commit(lambda: blob_delete(name))


@receiver(setting_changed)
def _reset_keyring(*, setting: str, **kwargs: object) -> None:
    if setting == "ENCRYPTION_KEYS":
        get_keyring.cache_clear()
