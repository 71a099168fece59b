"""Whole-buffer encryption and decryption for tests: the portal itself only streams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from io import BytesIO

from sharing.crypto import DEFAULT_SEGMENT_SIZE, DecryptingReader, FileKey, StreamEncryptor


def encrypt_chunks(
    chunks: Iterable[bytes], key: FileKey, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> Iterator[bytes]:
    """Yield the whole blob for a plaintext given as an iterable of chunks."""
    encryptor = StreamEncryptor(key, segment_size)
    yield encryptor.header
    for chunk in chunks:
        yield from encryptor.update(chunk)
    yield encryptor.finalize()


def encrypt_bytes(
    plaintext: bytes, key: FileKey, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> bytes:
    return b"".join(encrypt_chunks([plaintext], key, segment_size))


def decrypt_bytes(blob: bytes, key: FileKey) -> bytes:
    return b"".join(DecryptingReader(BytesIO(blob), key).segments())
