"""Encrypted storage: the Django storage that encrypts and verifies (encrypted), its sinks
and reads on S3 (s3), the streaming upload handler (uploads) and the master keyring
(keyring). Never reads or writes a plaintext byte to a disk. The names below are what the
rest of the project (and migration 0001, which names get_encrypted_storage) uses."""

from sharing.storage.encrypted import (
    BlobWriteFailed,
    EncryptedStorage,
    PlaintextAccessRefused,
    StoredBlob,
    get_encrypted_storage,
)

__all__ = [
    "BlobWriteFailed",
    "EncryptedStorage",
    "PlaintextAccessRefused",
    "StoredBlob",
    "get_encrypted_storage",
]
