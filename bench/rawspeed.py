"""The ceilings the HTTP figures are compared with, measured in memory in the same run:
the encrypted format (StreamEncryptor / DecryptingReader), bare AES-256-GCM and SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from typing import Any

from Crypto.Cipher import AES

from bench.common import MIB, mib_s
from securefiles.lib.malloc import tune_for_streaming
from sharing.crypto import DecryptingReader, FileKey, StreamEncryptor, ciphertext_size

FEED_SIZE = 1024 * 1024  # bytes the upload handler is given per call (UPLOAD_CHUNK_SIZE)


class _BlobSink:
    """Where the raw encryptor's sealed segments go: one preallocated, pre-touched blob,
    as the upload path writes each segment straight to its sink without keeping it."""

    def __init__(self, size: int) -> None:
        self._buffer = bytearray(b"\x00" * size)
        self._filled = 0

    def write(self, segment: memoryview) -> None:
        """Copy one sealed segment after the previous ones."""
        self._buffer[self._filled : self._filled + len(segment)] = segment
        self._filled += len(segment)

    def blob(self) -> bytes:
        """The bytes written so far."""
        return bytes(self._buffer[: self._filled])


def _time_format(plaintext: bytes, key: FileKey) -> tuple[float, float]:
    """One pass of the format over `plaintext`: (encrypt seconds, decrypt seconds)."""
    size = len(plaintext)
    # Sealed segments go to a pre-touched blob (see _BlobSink), fed 1 MiB views.
    sink = _BlobSink(ciphertext_size(size))
    source = memoryview(plaintext)
    start = time.perf_counter()
    encryptor = StreamEncryptor(key)
    sink.write(memoryview(encryptor.header))
    for offset in range(0, size, FEED_SIZE):
        encryptor.update_into(source[offset : offset + FEED_SIZE], sink.write)
    encryptor.finalize_into(sink.write)
    encrypt_seconds = time.perf_counter() - start
    blob = sink.blob()
    del sink

    start = time.perf_counter()
    count = 0
    for segment in DecryptingReader(io.BytesIO(blob), key).segments():
        count += len(segment)
    decrypt_seconds = time.perf_counter() - start
    if count != size:
        raise AssertionError(f"raw decrypt returned {count} bytes, expected {size}")
    return encrypt_seconds, decrypt_seconds


def _time_bare_gcm(key: bytes, buffer: bytes, buffers: int) -> tuple[float, float]:
    """Seal and open `buffer` `buffers` times, a new cipher object per buffer as the
    format does: (encrypt seconds, decrypt seconds)."""
    start = time.perf_counter()
    for index in range(buffers):
        nonce = index.to_bytes(12, "big")
        AES.new(key, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(buffer)
    encrypt_seconds = time.perf_counter() - start

    nonce = b"\xff" * 12
    sealed, tag = AES.new(key, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(buffer)
    start = time.perf_counter()
    for _index in range(buffers):
        AES.new(key, AES.MODE_GCM, nonce=nonce).decrypt_and_verify(sealed, tag)
    return encrypt_seconds, time.perf_counter() - start


def _time_sha256(buffer: bytes, buffers: int) -> float:
    """Seconds to hash `buffer` `buffers` times with one hashlib SHA-256."""
    start = time.perf_counter()
    digest = hashlib.sha256()
    for _index in range(buffers):
        digest.update(buffer)
    return time.perf_counter() - start


def measure_raw(size: int, repeat: int) -> dict[str, Any]:
    """Format encrypt/decrypt of `size` bytes in memory, bare GCM and SHA-256 on 1 MiB
    buffers, in MiB/s.

    Each figure is the best of `repeat` passes: they are ceilings. The process gets the
    malloc tuning the server applies (securefiles.lib.malloc), so both sides of each ratio
    allocate alike.
    """
    tune_for_streaming()
    plaintext = os.urandom(size)
    key = FileKey.generate()
    format_times = [_time_format(plaintext, key) for _ in range(repeat)]

    buffers = max(1, size // MIB)
    buffer = plaintext[:MIB]
    del plaintext
    gcm_key = os.urandom(32)
    gcm_enc, gcm_dec, sha = [], [], []
    for _ in range(repeat):
        encrypt_seconds, decrypt_seconds = _time_bare_gcm(gcm_key, buffer, buffers)
        gcm_enc.append(encrypt_seconds)
        gcm_dec.append(decrypt_seconds)
        sha.append(_time_sha256(buffer, buffers))

    gcm_bytes = buffers * MIB
    return {
        "format_encrypt_mib_s": mib_s(size, min(enc for enc, _ in format_times)),
        "format_decrypt_mib_s": mib_s(size, min(dec for _, dec in format_times)),
        "bare_gcm_encrypt_mib_s": mib_s(gcm_bytes, min(gcm_enc)),
        "bare_gcm_decrypt_mib_s": mib_s(gcm_bytes, min(gcm_dec)),
        "sha256_mib_s": mib_s(gcm_bytes, min(sha)),
        "encrypt_feed_bytes": FEED_SIZE,
        "repeat": repeat,
    }
