"""Writes: every change to stored files goes through here, in a transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from sharing import names
from sharing.crypto import VERSION, wrap_key
from sharing.keyring import get_keyring
from sharing.models import StoredFile
from sharing.storage import get_encrypted_storage
from sharing.uploads import EncryptedUpload

logger = logging.getLogger(__name__)


def _stored_file_from_upload(*, owner: AbstractBaseUser, upload: EncryptedUpload) -> StoredFile:
    master = get_keyring().primary
    return StoredFile(
        id=upload.key.file_id,
        owner=owner,
        name=names.stored_name(upload.name or ""),
        content_type=names.content_type(upload.content_type),
        size=upload.blob.plaintext_size,
        digest=upload.blob.digest,
        blob=upload.blob.name,
        wrapped_key=wrap_key(upload.key, master),
        key_id=master.key_id,
        format_version=VERSION,
    )


def file_create_many(
    *, owner: AbstractBaseUser, uploads: Sequence[EncryptedUpload]
) -> list[StoredFile]:
    """Record already-stored encrypted uploads; all rows commit together or none do."""
    files = [_stored_file_from_upload(owner=owner, upload=upload) for upload in uploads]
    with transaction.atomic():
        for stored in files:
            stored.save(force_insert=True)
    for stored in files:
        logger.info("file uploaded id=%s owner=%s size=%d", stored.id, owner.pk, stored.size)
    return files


def file_delete(*, file: StoredFile) -> None:
    """Delete a file: the row (and with it the wrapped key) now, the blob on commit."""
    file_id = file.pk
    with transaction.atomic():
        file.delete()
    logger.info("file deleted id=%s", file_id)


@receiver(post_delete, sender=StoredFile)
def _remove_blob_on_commit(sender: type, instance: StoredFile, **kwargs: object) -> None:
    # Every way a row can go (the service, the admin's bulk action, a deleted owner's
    # cascade) passes here. The blob goes only once the deletion has committed, so a
    # rolled-back transaction never leaves a row without its content.
    name = instance.blob.name
    transaction.on_commit(lambda: _delete_blob(name))


def _delete_blob(name: str) -> None:
    try:
        get_encrypted_storage().delete(name)
    except OSError:
        # The row and its wrapped key are gone, so the blob is unreadable; the storage
        # sweep (cleanup_storage) removes it later.
        logger.warning("blob of a deleted file could not be removed name=%s", name)
