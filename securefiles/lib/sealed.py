"""Sealing a job's arguments before they enter the queue table.

The queue (django-tasks-db) is a database table that backups, replicas and anyone with
read access to the database see: a queued e-mail's address and link, or the IP address
and browser of the administrator who started a bulk job, must not lie there in clear. A
sealed value is AES-256-GCM (RFC 5116; 12-byte nonce, 16-byte tag) of its JSON under a
key derived from SECRET_KEY with HKDF-SHA256 (RFC 5869), base64-encoded.

Opening tries SECRET_KEY, then each of SECRET_KEY_FALLBACKS (Django's rotation setting),
so a job queued just before a rotation still runs; a value sealed under a key that is in
neither fails authentication (SealBroken) and is never read.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from Crypto.Random import get_random_bytes
from django.conf import settings

_NONCE_BYTES = 12
_TAG_BYTES = 16


class SealBroken(ValueError):
    """The sealed value was altered, or sealed under a SECRET_KEY no longer configured."""


def _key(secret: str, purpose: bytes) -> bytes:
    return HKDF(secret.encode(), 32, b"", SHA256, context=purpose)


def seal(value: Any, *, purpose: bytes) -> str:
    """``value`` (anything json.dumps takes) sealed under SECRET_KEY for ``purpose`` (a
    context string: a value sealed for one purpose never opens for another)."""
    nonce = get_random_bytes(_NONCE_BYTES)
    cipher = AES.new(_key(settings.SECRET_KEY, purpose), AES.MODE_GCM, nonce=nonce)
    ciphertext, tag = cipher.encrypt_and_digest(json.dumps(value).encode())
    return base64.b64encode(nonce + ciphertext + tag).decode()


def unseal(sealed: str, *, purpose: bytes) -> Any:
    """The value ``seal`` sealed, once its tag verified under SECRET_KEY or one of
    SECRET_KEY_FALLBACKS. Raises SealBroken otherwise (nothing of it is returned)."""
    try:
        raw = base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise SealBroken("not a sealed value") from None
    if len(raw) < _NONCE_BYTES + _TAG_BYTES:
        raise SealBroken("not a sealed value")
    nonce, ciphertext, tag = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:-_TAG_BYTES], raw[-_TAG_BYTES:]
    for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]:
        cipher = AES.new(_key(secret, purpose), AES.MODE_GCM, nonce=nonce)
        try:
            plaintext = cipher.decrypt_and_verify(ciphertext, tag)
        except ValueError:
            continue
        return json.loads(plaintext)
    raise SealBroken("sealed under another SECRET_KEY, or altered")
