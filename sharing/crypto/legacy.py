"""Reading the Flask prototype's files, for `manage.py import_legacy` only.

The prototype stored each upload as ``IV (16 bytes) || AES-CBC(PKCS#7(plaintext))`` under
one raw ASCII key (16, 24 or 32 characters) from its ``.env`` (``AES_KEY=...``). There is
no MAC: a wrong key or a damaged file shows up, at best, as bad padding on the last block,
and a wrong key still passes that test about once in 256 files. The importer therefore
treats many failures as a wrong key (see the command).

This module is the one place in the project where CBC is read, and it is only ever used
to import legacy files; nothing here encrypts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from Crypto.Cipher import AES
from Crypto.Util.Padding import unpad

from sharing.crypto.stream import read_up_to

BLOCK = AES.block_size  # 16
KEY_SIZES = (16, 24, 32)
KEY_VARIABLE = "AES_KEY"
MIN_FILE_SIZE = 2 * BLOCK  # IV and one (padding) block
READ_SIZE = 1 << 20  # a multiple of the block size


class LegacyKeyError(Exception):
    """The key file holds no usable key; the message says why, never the key."""


class LegacyFileError(Exception):
    """A legacy file cannot be decrypted: too short, not whole blocks, or bad padding."""


def read_key_file(path: Path) -> bytes:
    """The raw key from a prototype ``.env``: the value of its ``AES_KEY=`` line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LegacyKeyError(f"cannot read key file {str(path)!r}: {exc.strerror}") from None
    # Anything not ASCII becomes U+FFFD and is then refused by _check_key.
    for line in raw.decode("ascii", errors="replace").splitlines():
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and name.strip() == KEY_VARIABLE:
            return _check_key(_unquote(value.strip()))
    raise LegacyKeyError(f"key file {str(path)!r} has no {KEY_VARIABLE}=... line")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _check_key(value: str) -> bytes:
    if not value.isascii():
        raise LegacyKeyError(f"{KEY_VARIABLE} must be ASCII characters (the prototype's raw key)")
    if len(value) not in KEY_SIZES:
        raise LegacyKeyError(
            f"{KEY_VARIABLE} is {len(value)} characters long; an AES key is exactly 16, 24 or 32"
        )
    return value.encode("ascii")


def decrypt_chunks(source: BinaryIO, key: bytes, read_size: int = READ_SIZE) -> Iterator[bytes]:
    """Yield the plaintext of one legacy file piece by piece; memory stays about one read.

    The last ciphertext block is always held back until the end of the source is known,
    so that only it is unpadded. Raises LegacyFileError when the file turns out to be
    short, not whole blocks, or badly padded: by then earlier pieces have been yielded,
    so the caller must discard everything it made of them.
    """
    if len(key) not in KEY_SIZES or read_size % BLOCK:
        raise ValueError("legacy keys are 16, 24 or 32 bytes; reads are whole blocks")
    iv = read_up_to(source, BLOCK)
    if len(iv) < BLOCK:
        raise LegacyFileError(f"shorter than {MIN_FILE_SIZE} bytes")
    cipher = AES.new(key, AES.MODE_CBC, iv=iv)  # legacy import only: see the module docstring
    held, size = b"", BLOCK
    while chunk := read_up_to(source, read_size):
        size += len(chunk)
        data = held + chunk
        # Decrypt whole blocks, always keeping at least the last full block back.
        ready = max(0, (len(data) - BLOCK) // BLOCK * BLOCK)
        if ready:
            yield cipher.decrypt(data[:ready])
        held = data[ready:]
    if size < MIN_FILE_SIZE:
        raise LegacyFileError(f"shorter than {MIN_FILE_SIZE} bytes")
    if len(held) != BLOCK:
        raise LegacyFileError("not a whole number of 16-byte blocks (truncated or damaged)")
    yield _unpad_last(cipher.decrypt(held))


def _unpad_last(block: bytes) -> bytes:
    try:
        plaintext: bytes | None = unpad(block, BLOCK, style="pkcs7")
    except ValueError:
        plaintext = None
    if plaintext is None:  # raised outside the except block: no chained context
        raise LegacyFileError("bad padding (wrong key, or a damaged file)")
    return plaintext
