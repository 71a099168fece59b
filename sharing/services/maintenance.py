"""Maintenance of stored content: imports, key rotation and re-encryption."""

from __future__ import annotations

import hmac
import logging

from django.db import transaction

from audit.actors import Actor
from audit.events import Event
from audit.services import audit_record
from securefiles.lib.auth_types import User
from sharing.crypto import VERSION, FileKey, keyed_digest, seal_sha256, unwrap_key, wrap_key
from sharing.crypto.stream import measure
from sharing.models import StoredFile
from sharing.services.files import blob_delete, stored_file_from_upload, uploads_record
from sharing.storage import EncryptedStorage, StoredBlob
from sharing.storage.keyring import get_keyring
from sharing.storage.uploads import EncryptedUpload

logger = logging.getLogger(__name__)


def file_create_imported(
    *,
    owner: User,
    name: str,
    content_type: str,
    key: FileKey,
    blob: StoredBlob,
    actor: Actor | None = None,
    legacy: bool = False,
    manifest_checked: bool = False,
) -> StoredFile:
    """Record a file whose content was encrypted and stored outside an upload (imports).

    Exactly like an upload: the data key is wrapped under the primary master key. With
    ``legacy``, the content came from the prototype's unauthenticated CBC format: the row
    is marked (origin "legacy", shown on the file list and page) and the upload's audit
    entry says ``imported=legacy-cbc`` and whether a SHA-256 manifest confirmed the
    content (``manifest_checked=yes|no``). Raises QuotaExceeded like file_create_many.
    """
    upload = EncryptedUpload(key=key, blob=blob, name=name, content_type=content_type)
    origin = StoredFile.Origin.LEGACY if legacy else StoredFile.Origin.UPLOAD
    stored = stored_file_from_upload(owner=owner, upload=upload, origin=origin)
    detail = f" imported=legacy-cbc manifest_checked={'yes' if manifest_checked else 'no'}"
    uploads_record(
        owner=owner,
        files=[stored],
        actor=actor or Actor(label=owner.get_username(), user_id=owner.pk),
        expires_at=None,
        audit_detail=detail if legacy else "",
    )
    return stored


def file_rewrap_key(*, file: StoredFile) -> bool:
    """Re-wrap a file's data key under the primary master key; False if it already was.

    The row is re-read locked and committed on its own, so a crash leaves each row on its
    old key or on the primary, never in between. Content is never touched. Raises
    KeyUnwrapError if the row's master key is not configured or its wrapped key does not
    open, and StoredFile.DoesNotExist if the file was deleted meanwhile.
    """
    keyring = get_keyring()
    with transaction.atomic():
        locked = StoredFile.objects.select_for_update().get(pk=file.pk)
        if locked.key_id == keyring.primary.key_id:
            return False
        key = unwrap_key(bytes(locked.wrapped_key), locked.id, keyring.get(locked.key_id))
        locked.wrapped_key = wrap_key(key, keyring.primary)
        locked.key_id = keyring.primary.key_id
        locked.save(update_fields=["wrapped_key", "key_id"])
    file.wrapped_key, file.key_id = locked.wrapped_key, locked.key_id
    return True


def file_replace_content(
    *, file: StoredFile, old_blob: str, key: FileKey, blob: StoredBlob
) -> bool:
    """Point a file at a re-encrypted copy of its content; remove the old blob once committed.

    The caller has checked that ``blob`` decrypts under ``key`` to the file's plaintext.
    Returns False, changing nothing, if the file was deleted or its blob replaced meanwhile.
    """
    if key.file_id != file.id or blob.plaintext_size != file.size:
        raise ValueError("the new blob is not this file's content")
    master = get_keyring().primary
    with transaction.atomic():
        locked = StoredFile.objects.select_for_update().filter(pk=file.pk, blob=old_blob).first()
        if locked is None:
            return False
        locked.blob, locked.digest, locked.format_version = blob.name, blob.digest, VERSION
        locked.sha256_sealed = seal_sha256(key, blob.sha256)
        locked.wrapped_key, locked.key_id = wrap_key(key, master), master.key_id
        locked.save(
            update_fields=[
                "blob",
                "digest",
                "sha256_sealed",
                "format_version",
                "wrapped_key",
                "key_id",
            ]
        )
        transaction.on_commit(lambda: blob_delete(old_blob))
    return True


def keys_rotated_record(*, summary: str) -> None:
    """Audit a rotate_keys run that changed something (its summary line as the detail)."""
    audit_record(event=Event.KEYS_ROTATED, actor=Actor(label="rotate_keys"), detail=summary)


def content_reencrypted_record(*, summary: str) -> None:
    """Audit a reencrypt_files run that changed something (its summary line as the detail)."""
    audit_record(
        event=Event.CONTENT_REENCRYPTED, actor=Actor(label="reencrypt_files"), detail=summary
    )


class ContentMismatch(Exception):
    """A blob's plaintext is not what its row (or the copy just written) says."""


def file_content_copy(
    *, storage: EncryptedStorage, file: StoredFile, old: FileKey, new: FileKey
) -> StoredBlob:
    """Stream a file's plaintext into a new blob under the data key ``new`` (reencrypt_files).

    The old plaintext must match the row (size and keyed digest), and the new blob must
    read back to the same size and digest; otherwise nothing new is kept.
    """
    writer = storage.open_writer(new)
    try:
        with storage.open_plaintext(file.blob.name, old) as reader:
            for segment in reader.segments():
                writer.write(segment)
        blob = writer.close()
    except BaseException:
        writer.abort()
        raise
    try:
        # The writer hashed the plaintext on its way through: it must be the row's file.
        if blob.plaintext_size != file.size or not hmac.compare_digest(
            keyed_digest(old, blob.sha256), bytes(file.digest)
        ):
            raise ContentMismatch("old blob's plaintext does not match the row's size and digest")
        size, digest = measure(storage.open_plaintext(blob.name, new), new)
        if size != blob.plaintext_size or not hmac.compare_digest(digest, blob.digest):
            raise ContentMismatch("new blob does not read back to the same content")
    except BaseException:
        storage.delete(blob.name)
        raise
    return blob
