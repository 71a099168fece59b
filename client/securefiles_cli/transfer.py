"""Resumable transfers. Uploads speak tus (tuspy), remembering each unfinished upload's URL
between runs, so `put` run again after an interruption continues where the server says
it stopped. Downloads write to a part file beside the target and resume it with Range;
only a file whose SHA-256 matches what the server reports is renamed to its final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.fingerprint.interface import Fingerprint
from tusclient.storage.interface import Storage

from securefiles_cli.config import state_path
from securefiles_cli.errors import NETWORK, VERIFY, CliError
from securefiles_cli.http import TIMEOUT, Portal, error_of

# 8 MiB: whole 1 MiB segments, and whole 8 MiB parts on S3, so the server acknowledges all
# of every chunk and nothing is sent twice.
CHUNK_SIZE = 8 * 1024 * 1024
READ_SIZE = 1024 * 1024
PART_SUFFIX = ".securefiles-part"

Progress = Callable[[int], None]  # told the number of bytes done so far


class UploadStore(Storage):
    """tuspy's URL storage in a JSON file of the config folder (mode 0600): upload URLs
    hold no secret, but which files a user sends is their business."""

    _lock = threading.Lock()

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_path("uploads.json")

    def _read(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _write(self, items: dict[str, str]) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(items, handle)

    def get_item(self, key: str) -> str | None:
        return self._read().get(key)

    def set_item(self, key: str, value: str) -> None:
        with self._lock:
            self._write({**self._read(), key: value})

    def remove_item(self, key: str) -> None:
        with self._lock:
            items = self._read()
            items.pop(key, None)
            self._write(items)


class FileIdentity(Fingerprint):
    """Names one local file for one portal and token: the same path, size and mtime sent
    to the same place is the same upload (tuspy's default hashes only the first 64 KiB)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get_fingerprint(self, fs: Any) -> str:
        return self.key


def _identity(portal: Portal, path: Path) -> str:
    stat = path.stat()
    basis = f"{portal.url}|{portal.token[:11]}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(basis.encode()).hexdigest()


def upload(portal: Portal, path: Path, progress: Progress, store: UploadStore) -> str:
    """Upload ``path`` (resuming an unfinished upload of it); return the new file's id.

    CliError when the server refuses (its reason), or NETWORK when the connection fails:
    the upload is kept and the next run continues it.
    """
    key = _identity(portal, path)
    client = TusClient(f"{portal.url}/files/uploads/", headers=portal.auth_headers)
    uploader = _uploader(client, path, key, store)
    progress(uploader.offset)
    try:
        if not uploader.url:
            uploader.set_url(uploader.create_url())
            uploader.offset = 0
        while uploader.offset < uploader.get_file_size():
            uploader.upload_chunk()
            progress(uploader.offset)
    except TusCommunicationError as exc:
        raise _tus_error(exc) from None
    except requests.RequestException as exc:
        raise CliError(
            f"upload of {path.name} broke off ({type(exc).__name__}): "
            "run the command again to continue",
            NETWORK,
        ) from None
    store.remove_item(key)
    return str(uploader.url).rstrip("/").rsplit("/", 1)[1]


def _uploader(client: TusClient, path: Path, key: str, store: UploadStore) -> Any:
    """tuspy's uploader, at the offset the server holds for a remembered upload; a
    remembered upload the server no longer has (expired, finished) is forgotten."""
    options = dict(
        file_path=str(path), chunk_size=CHUNK_SIZE, metadata={"filename": path.name},
        store_url=True, url_storage=store, fingerprinter=FileIdentity(key),
    )  # fmt: skip
    try:
        return client.uploader(**options)
    except TusCommunicationError:
        store.remove_item(key)
        return client.uploader(**options)
    except requests.RequestException as exc:
        raise CliError(f"cannot reach the portal: {type(exc).__name__}", NETWORK) from None


def _tus_error(exc: TusCommunicationError) -> CliError:
    if exc.status_code is None:
        return CliError("the upload broke off: run the command again to continue", NETWORK)
    response = requests.Response()
    response.status_code = exc.status_code
    response._content = exc.response_content or b""  # noqa: SLF001  (a plain-text reason)
    error = error_of(response)
    detail = (exc.response_content or b"").decode("utf-8", "replace").strip()
    return CliError(f"upload refused: {detail or error}", error.code)


def download(
    portal: Portal, file_id: str, target: Path, progress: Progress, *, expected: dict
) -> None:
    """Download a file to ``target``: into ``target`` + PART_SUFFIX, resuming what an
    earlier run left there with a Range request; verified against ``expected["sha256"]``
    and only then renamed to ``target``. A part that does not verify is deleted (VERIFY)."""
    part = target.with_name(target.name + PART_SUFFIX)
    have = part.stat().st_size if part.exists() else 0
    if have > expected["size"]:
        part.unlink()
        have = 0
    if have < expected["size"] or expected["size"] == 0:
        _fetch(portal, file_id, part, have, progress)
    progress(expected["size"])
    digest = _sha256(part)
    if expected["sha256"] and digest != expected["sha256"]:
        part.unlink()
        raise CliError(
            f"{target.name}: SHA-256 {digest} does not match the server's "
            f"{expected['sha256']}; the download was deleted",
            VERIFY,
        )
    os.replace(part, target)


def _fetch(portal: Portal, file_id: str, part: Path, have: int, progress: Progress) -> None:
    """Append the rest of the file to ``part`` (from byte ``have``). The content of an id
    never changes in place, so a Range is safe without If-Range; the SHA-256 checks it."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with portal.session.get(
            f"{portal.url}/api/v1/files/{file_id}/content/",
            headers=headers, stream=True, timeout=TIMEOUT,
        ) as response:  # fmt: skip
            if response.status_code >= 400:
                raise error_of(response)
            mode = "ab" if response.status_code == 206 else "wb"
            done = have if mode == "ab" else 0
            descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | (
                os.O_APPEND if mode == "ab" else os.O_TRUNC), 0o600)  # fmt: skip
            with os.fdopen(descriptor, mode) as out:
                for chunk in response.iter_content(READ_SIZE):
                    out.write(chunk)
                    done += len(chunk)
                    progress(done)
    except requests.RequestException as exc:
        raise CliError(
            f"the download broke off ({type(exc).__name__}): run the command again to continue",
            NETWORK,
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["UploadStore", "download", "upload"]
