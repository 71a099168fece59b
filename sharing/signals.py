"""The one receiver left in sharing: a file row can go by a cascade (its owner deleted),
which no service sees, so the blob is removed when any StoredFile row is deleted."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from sharing.models import StoredFile
from sharing.services.files import _delete_blob


@receiver(post_delete, sender=StoredFile)
def _remove_blob_on_commit(sender: type, instance: StoredFile, **kwargs: object) -> None:
    # Every way a row can go (the service, the admin's bulk action, a deleted owner's
    # cascade) passes here. The blob goes only once the deletion has committed, so a
    # rolled-back transaction never leaves a row without its content.
    name = instance.blob.name
    transaction.on_commit(lambda: _delete_blob(name))
