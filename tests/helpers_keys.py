"""Helpers for the tests of the key, storage-maintenance and import commands.

Plain functions, on top of tests/helpers.py (make_file, ...) and the fixtures of
tests/conftest.py (alice, bob, alice_client, and an empty MEDIA_ROOT around every test).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from sharing.crypto import FileKey, generate_key_entry
from sharing.models import StoredFile
from sharing.storage import get_encrypted_storage


def use_keys(settings: object, *entries: str) -> None:
    """Set ENCRYPTION_KEYS (the first entry is the primary); the keyring resets itself."""
    settings.ENCRYPTION_KEYS = ",".join(entries)  # type: ignore[attr-defined]


def new_key(key_id: str) -> str:
    return generate_key_entry(key_id)


def download(client: Client, stored: StoredFile) -> bytes:
    """The file's bytes through the real download URL, as its logged-in owner gets them."""
    response = client.get(reverse("sharing:download", args=[stored.pk]))
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content)


def blob_path_of(name: str) -> Path:
    """Where a blob (named, with or without a row) is on disk."""
    return Path(get_encrypted_storage().inner.path(name))


def blob_names() -> set[str]:
    return {name for name, _modified in get_encrypted_storage().list_blobs()}


def orphan_blob(data: bytes = b"left over by a killed upload") -> str:
    """A real encrypted blob that no row points at."""
    return get_encrypted_storage().save_plaintext([data], FileKey.generate()).name


@dataclass
class Result:
    out: str
    err: str
    error: CommandError | None

    @property
    def exit_code(self) -> int:
        return self.error.returncode if self.error else 0


def run(command: str, *args: str, **options: object) -> Result:
    """Run a management command; keep its output and the CommandError it ended with."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(command, *args, stdout=out, stderr=err, **options)
    except CommandError as exc:
        return Result(out.getvalue(), err.getvalue(), exc)
    return Result(out.getvalue(), err.getvalue(), None)
