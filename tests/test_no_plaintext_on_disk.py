"""No byte of an uploaded file reaches a disk in plaintext, not even while it streams in.

The upload is a 6 MiB repetition of a random 61-byte block, so any window of 61 or more
plaintext bytes is one of the block's 61 rotations: finding those in a file proves a leak
of any 64-byte window. The request body is served by a wsgi.input that, while the view
reads it, scans MEDIA_ROOT and the temp directory for them.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings

from sharing.crypto import MAGIC, ciphertext_size
from sharing.models import StoredFile
from tests.helpers import BOUNDARY, MULTIPART, UPLOAD_URL, MiB, files_on_disk, streamed

pytestmark = pytest.mark.django_db

PERIOD = 61
BLOCK = secrets.token_bytes(PERIOD)
ROTATIONS = tuple((BLOCK + BLOCK)[i : i + PERIOD] for i in range(PERIOD))
SIZE = 6 * MiB
FILE_NAME = "Quarterly-Payroll-Confidential.xlsx"
READ_CHUNK = 8 * MiB


def _plaintext(size: int = SIZE) -> bytes:
    return (BLOCK * (size // PERIOD + 1))[:size]


def _holds_plaintext(path: str) -> bool:
    """Whether the file holds any PERIOD-byte window of the plaintext."""
    carry = b""
    with open(path, "rb") as source:
        while chunk := source.read(READ_CHUNK):
            data = carry + chunk
            if any(rotation in data for rotation in ROTATIONS):
                return True
            carry = data[-(PERIOD - 1) :]
    return False


def _regular_files(root: str, since: float | None) -> list[str]:
    found = []
    for folder, _dirs, names in os.walk(root):  # does not follow symlinks
        for name in names:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue  # gone already
            if not stat.S_ISREG(info.st_mode) or info.st_size < PERIOD:
                continue
            if since is None or info.st_mtime >= since:
                found.append(path)
    return found


def scan_for_plaintext(since: float) -> list[str]:
    """Files under MEDIA_ROOT (all) and the temp dir (written since ``since``) that leak."""
    media = os.path.realpath(settings.MEDIA_ROOT)
    candidates = _regular_files(media, since=None)
    candidates += [
        path
        for path in _regular_files(tempfile.gettempdir(), since=since)
        if not os.path.realpath(path).startswith(media + os.sep)
    ]
    hits = []
    for path in candidates:
        try:
            if _holds_plaintext(path):
                hits.append(path)
        except OSError:
            continue  # unreadable (another user's) or removed meanwhile
    return hits


class ScanningInput:
    """A wsgi.input serving a multipart body; it scans the disks as the view reads."""

    def __init__(self, body: bytes, scan_at: tuple[int, ...], since: float) -> None:
        self._body = memoryview(body)
        self._position = 0
        self._scan_at = list(scan_at)
        self._since = since
        self.hits: list[str] = []
        self.blob_sizes: list[int] = []

    def read(self, size: int = -1) -> bytes:
        end = len(self._body) if size is None or size < 0 else self._position + size
        chunk = bytes(self._body[self._position : end])
        self._position += len(chunk)
        while self._scan_at and self._position >= self._scan_at[0]:
            self._scan_at.pop(0)
            self._scan()
        return chunk

    def readline(self, size: int = -1) -> bytes:  # part of the WSGI input API; unused
        raise NotImplementedError

    def _scan(self) -> None:
        self.hits += scan_for_plaintext(self._since)
        self.blob_sizes.append(sum(path.stat().st_size for path in files_on_disk()))


def _body(data: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{FILE_NAME}"\r\n'
        "Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n"
        "\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def since() -> float:
    return time.time() - 2  # file systems store mtimes coarser than time.time()


def test_it_never_writes_plaintext_while_uploading(alice_client, since) -> None:
    data = _plaintext()
    body = _body(data)
    wsgi_input = ScanningInput(body, scan_at=(2 * MiB, 4 * MiB, len(body)), since=since)

    response = alice_client.generic(
        "POST",
        UPLOAD_URL,
        CONTENT_TYPE=MULTIPART,
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": wsgi_input},
    )

    assert response.status_code == 302
    assert len(wsgi_input.blob_sizes) == 3, "the view did not read the whole body"
    # Ciphertext reached the disk while the body streamed in, segment by segment.
    assert 0 < wsgi_input.blob_sizes[0] < wsgi_input.blob_sizes[1]
    assert wsgi_input.blob_sizes[1] >= 2 * MiB
    assert wsgi_input.hits == []
    assert scan_for_plaintext(since) == []
    stored = StoredFile.objects.get()
    assert stored.size == SIZE
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data


def test_it_stores_only_sealed_blobs_under_random_names(alice_client) -> None:
    data = _plaintext(3 * MiB)
    body = _body(data)

    response = alice_client.generic(
        "POST",
        UPLOAD_URL,
        CONTENT_TYPE=MULTIPART,
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": ScanningInput(body, scan_at=(), since=0)},
    )

    assert response.status_code == 302
    stored = StoredFile.objects.get()
    [path] = files_on_disk()
    assert path == Path(settings.MEDIA_ROOT) / stored.blob.name
    assert path.read_bytes()[: len(MAGIC)] == MAGIC == b"SFEC"
    assert path.stat().st_size == ciphertext_size(len(data))
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    relative = path.relative_to(settings.MEDIA_ROOT).as_posix()
    assert re.fullmatch(r"blobs/[0-9a-f]{2}/[0-9a-f]{32}", relative), relative
    for part in re.findall(r"[a-z]{3,}", FILE_NAME.lower()):
        assert part not in relative.lower()


def test_the_scanner_finds_a_plaintext_window(media_root, since) -> None:
    # The control: without it, a scanner that never matches would pass the tests above.
    window = _plaintext(PERIOD * 10)[17 : 17 + 64]
    leak = media_root / "leak.bin"
    leak.write_bytes(os.urandom(100_000) + window + os.urandom(100_000))
    spool = tempfile.NamedTemporaryFile(prefix="securefiles-scan-", delete=False)  # noqa: SIM115
    try:
        spool.write(os.urandom(READ_CHUNK - 30) + window)  # straddles a read boundary
        spool.close()

        hits = scan_for_plaintext(since)
    finally:
        os.unlink(spool.name)

    assert sorted(map(os.path.realpath, hits)) == sorted(
        [str(leak.resolve()), os.path.realpath(spool.name)]
    )
