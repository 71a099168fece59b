"""AES-256-GCM with explicit 12-byte nonces: every seal and open of the project goes
through gcm_seal / gcm_open, so the Wycheproof vectors test exactly that path."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from Crypto.Cipher import AES

if TYPE_CHECKING:
    from Crypto.Cipher._mode_gcm import GcmMode

# Anything pycryptodome reads or writes bytes through.
Buffer: TypeAlias = bytes | bytearray | memoryview


KEY_SIZE = 32


NONCE_SIZE = 12


TAG_SIZE = 16


class InvalidTag(Exception):
    """``gcm_open``: the sealed bytes do not authenticate under this key, nonce and AAD."""


def _gcm(key: Buffer, nonce: Buffer) -> GcmMode:
    # Explicit checks: AES.new would silently accept a 16/24-byte key (AES-128/192) and
    # any nonce length (a 16-byte nonce goes through GHASH, unlike the 12-byte one).
    if len(key) != KEY_SIZE:
        raise ValueError("AES-256-GCM takes a 32-byte key")
    if len(nonce) != NONCE_SIZE:
        raise ValueError("AES-256-GCM nonces here are exactly 12 bytes")
    return AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_SIZE)


def gcm_seal(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer = b"") -> bytes:
    """AES-256-GCM encrypt; return ciphertext || 16-byte tag."""
    cipher = _gcm(key, nonce)
    if aad:
        cipher.update(aad)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return ciphertext + tag


def gcm_seal_into(key: Buffer, nonce: Buffer, plaintext: Buffer, out: memoryview) -> int:
    """AES-256-GCM encrypt into ``out`` (ciphertext || tag); return the bytes written.

    The same operation as gcm_seal without allocating: a fresh MiB-sized object per
    segment costs more (page faults) than encrypting it.
    """
    length = len(plaintext)
    if len(out) < length + TAG_SIZE:
        raise ValueError("output buffer too small for ciphertext and tag")
    cipher = _gcm(key, nonce)
    cipher.encrypt(plaintext, output=out[:length])
    out[length : length + TAG_SIZE] = cipher.digest()
    return length + TAG_SIZE


def gcm_open(key: Buffer, nonce: Buffer, sealed: Buffer, aad: Buffer = b"") -> bytes:
    """AES-256-GCM decrypt ciphertext || tag; raise InvalidTag for anything inauthentic.

    No plaintext leaves this function unless the whole tag verified.
    """
    if len(sealed) < TAG_SIZE:
        raise InvalidTag("sealed message is shorter than a tag")
    cipher = _gcm(key, nonce)
    if aad:
        cipher.update(aad)
    with memoryview(sealed) as view:
        try:
            return cipher.decrypt_and_verify(view[:-TAG_SIZE], view[-TAG_SIZE:])
        except ValueError:
            pass
    # Raised outside the ``except`` block on purpose: an exception raised inside it keeps
    # the ValueError as __context__, whose traceback holds pycryptodome's frame with the
    # unverified plaintext (and this frame with the key) alive for as long as the error is.
    raise InvalidTag("MAC check failed")
