"""Keys: the per-file data key, the master keys from ENCRYPTION_KEYS, and wrapping the
one under the other (AES-256-GCM bound to the file's UUID and the master key id)."""

from __future__ import annotations

import base64
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

if TYPE_CHECKING:
    pass

from sharing.crypto.aead import KEY_SIZE, NONCE_SIZE, TAG_SIZE, InvalidTag, gcm_open, gcm_seal

SEALED_SHA256_SIZE = 12 + 32 + 16  # nonce, SHA-256, tag

_SHA256_SEAL_LABEL = b"securefiles/v1 plaintext sha256 seal key"


class KeyProblem(Exception):
    """Base for key configuration and unwrapping problems."""


class KeyConfigError(KeyProblem):
    """ENCRYPTION_KEYS is missing or unusable."""


class KeyUnwrapError(KeyProblem):
    """A wrapped data key does not open under the named master key."""


@dataclass(frozen=True)
class FileKey:
    """The key context of one stored file: its UUID and its plaintext data key."""

    file_id: uuid.UUID
    data_key: bytes

    def __post_init__(self) -> None:
        if len(self.data_key) != KEY_SIZE:
            raise ValueError("a data key is exactly 32 bytes")

    def __repr__(self) -> str:  # never print key material in a traceback or log
        return f"FileKey(file_id={self.file_id!s}, data_key=<hidden>)"

    @classmethod
    def generate(cls, file_id: uuid.UUID | None = None) -> FileKey:
        return cls(file_id=file_id or uuid.uuid4(), data_key=secrets.token_bytes(KEY_SIZE))

    def digest_key(self) -> bytes:
        """Key for the stored plaintext HMAC, so a leaked database confirms no guess."""
        info = _DIGEST_LABEL + self.file_id.bytes
        return HKDF(self.data_key, KEY_SIZE, b"", SHA256, context=info)

    def sha256_seal_key(self) -> bytes:
        """Key that seals the file's plain SHA-256 in its row (shown to people with access)."""
        info = _SHA256_SEAL_LABEL + self.file_id.bytes
        return HKDF(self.data_key, KEY_SIZE, b"", SHA256, context=info)


def keyed_digest(key: FileKey, plaintext_sha256: bytes) -> bytes:
    """The row's digest: HMAC-SHA-256 under the file's digest key, over the plaintext's
    SHA-256. Without the data key it confirms nothing about a guessed file."""
    return hmac.digest(key.digest_key(), plaintext_sha256, "sha256")


def seal_sha256(key: FileKey, plaintext_sha256: bytes) -> bytes:
    """Encrypt the plaintext's SHA-256 for the row: readable only with the data key."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    return nonce + gcm_seal(key.sha256_seal_key(), nonce, plaintext_sha256, key.file_id.bytes)


def open_sha256(key: FileKey, sealed: bytes) -> bytes:
    """The SHA-256 sealed by seal_sha256; raises InvalidTag if it was altered."""
    if len(sealed) != SEALED_SHA256_SIZE:
        raise InvalidTag("sealed SHA-256 has the wrong length")
    nonce, body = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
    return gcm_open(key.sha256_seal_key(), nonce, body, key.file_id.bytes)


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r}, secret=<hidden>)"


@dataclass(frozen=True)
class Keyring:
    """The master keys from ENCRYPTION_KEYS; the first one wraps new data keys."""

    keys: tuple[MasterKey, ...]

    @property
    def primary(self) -> MasterKey:
        return self.keys[0]

    def get(self, key_id: str) -> MasterKey:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        raise KeyUnwrapError(f"master key {key_id!r} is not in ENCRYPTION_KEYS")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key.key_id for key in self.keys)


KEY_ID_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


HOW_TO_MAKE_A_KEY = "Generate one with: python manage.py generate_encryption_key"


_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _looks_human_typed(secret: bytes) -> bool:
    """A random 32-byte key is printable ASCII with odds of about 1e-14, and has fewer
    than 16 distinct byte values with odds far below that; a passphrase is and has."""
    printable = all(32 <= byte < 127 for byte in secret)
    return printable or len(set(secret)) < 16


_STANDARD_ONLY = frozenset("+/")


_URLSAFE_ONLY = frozenset("-_")


def _parse_key_entry(entry: str) -> MasterKey:
    """One ``id:base64`` entry; whitespace around it is ignored, inside it refused."""
    entry = entry.strip()
    if any(char.isspace() for char in entry):
        # A space after the colon or a line break inside the key: almost always a paste
        # gone wrong. Silently dropping it would make two spellings of one key valid.
        raise KeyConfigError("ENCRYPTION_KEYS: an entry has whitespace inside it")
    key_id, sep, encoded = entry.partition(":")
    if not sep or not key_id or not encoded:
        raise KeyConfigError("each ENCRYPTION_KEYS entry must look like <id>:<base64 key>")
    if not set(key_id) <= KEY_ID_ALPHABET or len(key_id) > 32:
        # The bad id is not quoted: with the entry written the wrong way round
        # (<base64 key>:<id>) it would be the key, and this message ends up in logs.
        raise KeyConfigError("ENCRYPTION_KEYS: a key id must be 1-32 of [A-Za-z0-9_.-]")
    if set(encoded) & _STANDARD_ONLY and set(encoded) & _URLSAFE_ONLY:
        # One key in one alphabet: a mix is not something any encoder writes, so it is a
        # key that was edited or pieced together, and could decode to the wrong bytes.
        raise KeyConfigError(
            f"ENCRYPTION_KEYS: key {key_id!r} mixes the standard (+/) and URL-safe (-_) "
            "base64 alphabets; use one"
        )
    try:
        # Strict: the standard or the URL-safe alphabet, nothing else. The default
        # decoder silently drops any other character, so a mangled key would still "parse".
        text = encoded.encode("ascii").translate(_URLSAFE_TO_STANDARD)
        secret = base64.b64decode(text, validate=True)
    except (ValueError, UnicodeEncodeError):
        raise KeyConfigError(f"ENCRYPTION_KEYS: key {key_id!r} is not valid base64") from None
    if len(secret) != KEY_SIZE:
        raise KeyConfigError(
            f"ENCRYPTION_KEYS: key {key_id!r} decodes to {len(secret)} bytes, not 32 random bytes"
        )
    if _looks_human_typed(secret):
        raise KeyConfigError(f"ENCRYPTION_KEYS: key {key_id!r} is not random (low entropy)")
    return MasterKey(key_id=key_id, secret=secret)


def parse_keyring(value: str) -> Keyring:
    """Parse ``id:base64,id:base64``; raise KeyConfigError with a fix for any problem."""
    try:
        if not value or not value.strip():
            raise KeyConfigError("ENCRYPTION_KEYS is not set")
        keys = tuple(_parse_key_entry(entry) for entry in value.split(","))
        ids = [key.key_id for key in keys]
        if len(set(ids)) != len(ids):
            raise KeyConfigError("ENCRYPTION_KEYS has a duplicate key id")
        if len({key.secret for key in keys}) != len(keys):
            raise KeyConfigError("ENCRYPTION_KEYS lists the same key under two ids")
    except KeyConfigError as exc:
        raise KeyConfigError(f"{exc}. {HOW_TO_MAKE_A_KEY}") from None
    return Keyring(keys=keys)


def generate_key_entry(key_id: str) -> str:
    entry = f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(KEY_SIZE)).decode()}"
    _parse_key_entry(entry)  # the id is validated the same way a reader would
    return entry


def _wrap_aad(key_id: str, file_id: uuid.UUID) -> bytes:
    return _WRAP_LABEL + b"\x00" + key_id.encode() + b"\x00" + file_id.bytes


def wrap_key(key: FileKey, master: MasterKey) -> bytes:
    """Seal a data key under a master key, bound to the file id and the master key id."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    return nonce + gcm_seal(
        master.secret, nonce, key.data_key, _wrap_aad(master.key_id, key.file_id)
    )


def unwrap_key(wrapped: bytes, file_id: uuid.UUID, master: MasterKey) -> FileKey:
    if len(wrapped) != WRAPPED_KEY_SIZE:
        raise KeyUnwrapError("wrapped key has the wrong length")
    nonce, sealed = wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:]
    try:
        data_key = gcm_open(master.secret, nonce, sealed, _wrap_aad(master.key_id, file_id))
    except InvalidTag:
        data_key = None
    if data_key is None:  # raised outside the except block: no chained context
        raise KeyUnwrapError(f"wrapped key does not open under master key {master.key_id!r}")
    return FileKey(file_id=file_id, data_key=data_key)


_DIGEST_LABEL = b"securefiles/v1 plaintext digest key"


_WRAP_LABEL = b"securefiles/v1 wrapped data key"


WRAPPED_KEY_SIZE = NONCE_SIZE + KEY_SIZE + TAG_SIZE
