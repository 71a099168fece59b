"""Streaming authenticated encryption for stored files, and master-key handling.

The byte layout is specified in ``docs/FORMAT.md``; in short:

    blob    = header || segment_0 || ... || segment_n          (n >= 0, last one flagged)
    header  = magic "SFEC" | version u8 | suite u8 | segment size u32be | salt[32] | prefix[7]
    segment = AES-256-GCM(content key, nonce, plaintext segment) || tag[16]
    nonce   = prefix[7] || segment index u32be || last flag u8 (0x00 or 0x01)
    content key = HKDF-SHA-256(data key, salt, info = label || header || file UUID)

The per-file data key is random and is stored only wrapped by a master key (AES-256-GCM,
with the file's UUID and the master key id as associated data), outside the blob.

Every AES-256-GCM operation in this package goes through ``gcm_seal`` / ``gcm_open`` (12-byte
explicit nonce, 16-byte tag, 32-byte key), so the Wycheproof vectors in the tests exercise
exactly the code path that seals segments and wraps keys.

Pure Python over pycryptodome: nothing in this package imports Django, so the format can be
read and tested on its own. Modules: aead (every
GCM call), keys (data keys, master keys, wrapping), stream (the segmented blob format),
legacy (reading the Flask prototype's CBC files, for import only). The names below are the
package's public interface."""

from sharing.crypto.aead import (
    KEY_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    Buffer,
    InvalidTag,
    gcm_open,
    gcm_seal,
    gcm_seal_into,
)
from sharing.crypto.keys import (
    HOW_TO_MAKE_A_KEY,
    KEY_ID_ALPHABET,
    SEALED_SHA256_SIZE,
    WRAPPED_KEY_SIZE,
    FileKey,
    KeyConfigError,
    KeyProblem,
    Keyring,
    KeyUnwrapError,
    MasterKey,
    generate_key_entry,
    keyed_digest,
    open_sha256,
    parse_keyring,
    seal_sha256,
    unwrap_key,
    wrap_key,
)
from sharing.crypto.stream import (
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    MAGIC,
    MAX_SEGMENTS,
    PREFIX_SIZE,
    SALT_SIZE,
    SEGMENT_SIZES,
    SUITE_AES256GCM_HKDF_SHA256,
    VERSION,
    BlobIntegrityError,
    DecryptingReader,
    FileTooLarge,
    PlaintextDigests,
    SegmentSealer,
    StreamEncryptor,
    ciphertext_size,
    max_plaintext_size,
    measure,
    measure_all,
    new_header,
    plaintext_size_of,
)

__all__ = [
    "BlobIntegrityError",
    "Buffer",
    "DEFAULT_SEGMENT_SIZE",
    "DecryptingReader",
    "FileKey",
    "FileTooLarge",
    "HEADER_SIZE",
    "HOW_TO_MAKE_A_KEY",
    "InvalidTag",
    "KEY_ID_ALPHABET",
    "KEY_SIZE",
    "KeyConfigError",
    "KeyProblem",
    "KeyUnwrapError",
    "Keyring",
    "MAGIC",
    "MAX_SEGMENTS",
    "MasterKey",
    "NONCE_SIZE",
    "PREFIX_SIZE",
    "SALT_SIZE",
    "SEALED_SHA256_SIZE",
    "SEGMENT_SIZES",
    "SUITE_AES256GCM_HKDF_SHA256",
    "PlaintextDigests",
    "SegmentSealer",
    "StreamEncryptor",
    "TAG_SIZE",
    "VERSION",
    "WRAPPED_KEY_SIZE",
    "ciphertext_size",
    "gcm_open",
    "gcm_seal",
    "gcm_seal_into",
    "generate_key_entry",
    "keyed_digest",
    "max_plaintext_size",
    "measure",
    "measure_all",
    "new_header",
    "open_sha256",
    "parse_keyring",
    "plaintext_size_of",
    "seal_sha256",
    "unwrap_key",
    "wrap_key",
]
