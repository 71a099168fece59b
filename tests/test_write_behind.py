"""Blobs written behind the sealing (sharing.storage.write_behind): the bytes land in
order, a failed write reaches the upload before any row names the blob, and a full disk
leaves nothing behind."""

from __future__ import annotations

import errno
import os
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import Client

from sharing.models import ResumableUpload, StoredFile
from sharing.services.maintenance import file_reencrypt
from sharing.storage.write_behind import WriteBehind
from tests.helpers import MiB, files_on_disk, streamed, upload
from tests.helpers_requests import make_request, send_form, visitor
from tests.test_tus import create, head, patch


def _writer_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(("blob-", "write-behind")))


def _assert_nothing_kept() -> None:
    """No row, no blob, no writer thread left behind."""
    assert not StoredFile.objects.exists()
    assert files_on_disk() == []
    assert _writer_threads() == 0


def _resume_to_the_end(client: Client, location: str, offset: int, data: bytes) -> None:
    """PATCH the rest of ``data`` from ``offset``: the file completes and reads back whole."""
    done = patch(client, location, offset, data[offset:])
    assert done.status_code == 204
    assert done["Upload-Offset"] == str(len(data))
    stored = StoredFile.objects.get()
    assert streamed(client.get(f"/files/{stored.id}/download/")) == data
    assert _writer_threads() == 0


def test_bytes_land_in_order_after_flush(tmp_path: Path) -> None:
    pieces = [os.urandom(n) for n in (1, 4096, MiB + 16, 7, MiB, 3 * MiB + 1, 0, 65_537)]
    path = tmp_path / "blob"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    behind = WriteBehind(fd)
    try:
        buffer = bytearray(3 * MiB + 1)
        for piece in pieces:
            # The caller reuses one buffer: what was queued must be a copy.
            buffer[: len(piece)] = piece
            behind.write(memoryview(buffer)[: len(piece)])
            buffer[: len(piece)] = bytes(len(piece))
        behind.flush()
        assert path.read_bytes() == b"".join(pieces)
    finally:
        behind.close()
        os.close(fd)


def test_a_failed_write_is_raised_by_flush_and_every_later_call() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    behind = WriteBehind(fd)
    try:
        behind.write(b"x" * 4096)
        with pytest.raises(OSError) as raised:
            behind.flush()
        assert raised.value.errno == errno.ENOSPC
        with pytest.raises(OSError):
            behind.write(b"more")
    finally:
        behind.close()
        os.close(fd)


def test_close_without_flush_stops_the_thread(tmp_path: Path) -> None:
    before = _writer_threads()
    fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT, 0o600)
    behind = WriteBehind(fd)
    for _ in range(5):
        behind.write(b"y" * MiB)
    behind.close()
    behind.close()  # twice is fine
    os.close(fd)
    assert _writer_threads() == before
    with pytest.raises(ValueError):
        behind.write(b"z")


@pytest.fixture
def disk_limit() -> Iterator[Callable[[int | None], None]]:
    """Call with a byte count to make files stop growing there (as above), with None to
    lift the limit again; lifted at the end whatever happened."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(size: int | None) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft if size is None else size, hard))

    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.django_db
def test_upload_onto_a_full_disk_is_refused_and_leaves_nothing(
    alice_client, disk_limit: Callable[[int | None], None]
) -> None:
    disk_limit(2 * MiB)
    response = upload(alice_client, ("big.bin", os.urandom(6 * MiB)))
    assert response.status_code == 507
    assert b"Nothing was stored" in response.content
    _assert_nothing_kept()


@pytest.mark.django_db
def test_a_tus_patch_onto_a_full_disk_gets_507_and_resumes_once_there_is_room(
    alice_client, disk_limit: Callable[[int | None], None]
) -> None:
    data = os.urandom(6 * MiB + 123)
    status, location = create(alice_client, len(data), filename="scan.bin")
    assert status == 201
    disk_limit(3 * MiB)
    refused = patch(alice_client, location, 0, data)
    assert refused.status_code == 507
    assert refused["Tus-Resumable"] == "1.0.0"
    # Nothing past what was fsynced and acknowledged before the failure is promised.
    assert int(head(alice_client, location)["Upload-Offset"]) == 0
    assert not StoredFile.objects.exists()
    disk_limit(None)
    _resume_to_the_end(alice_client, location, 0, data)


@pytest.mark.django_db
def test_a_senders_upload_onto_a_full_disk_is_refused_and_leaves_nothing(
    alice_client, disk_limit: Callable[[int | None], None]
) -> None:
    token, found = make_request(alice_client)
    sender = visitor(token)
    disk_limit(2 * MiB)
    response = send_form(sender, token, ("evidence.mov", os.urandom(5 * MiB)))
    assert response.status_code == 507
    assert b"Nothing was stored" in response.content
    assert not StoredFile.objects.exists()
    assert files_on_disk() == []
    found.refresh_from_db()
    assert found.received_files == 0


@pytest.mark.django_db
def test_an_empty_tus_upload_onto_a_full_disk_gets_507_and_leaves_nothing(
    alice_client, disk_limit: Callable[[int | None], None]
) -> None:
    # The header (49 bytes) fits, the empty file's one sealed segment (16 bytes) does not:
    # it was a 500 that left an unfinished upload whose blob never verifies.
    disk_limit(55)
    status, _location = create(alice_client, 0, filename="empty.txt")
    disk_limit(None)  # before any check: the test database may be a file as well
    assert status == 507
    assert not ResumableUpload.objects.exists()
    assert not StoredFile.objects.exists()
    assert files_on_disk() == []
    status, _location = create(alice_client, 0, filename="empty.txt")
    assert status == 201
    stored = StoredFile.objects.get()
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == b""


@pytest.mark.django_db
def test_reencrypting_onto_a_full_disk_is_a_failed_verdict_not_a_crash(
    alice_client, disk_limit: Callable[[int | None], None]
) -> None:
    data = os.urandom(3 * MiB)
    upload(alice_client, ("kept.bin", data))
    stored = StoredFile.objects.get()
    before = files_on_disk()
    disk_limit(MiB)
    # reencrypt_files counts it "failed" and goes on with the next file (as for EIO).
    verdict = file_reencrypt(f"{stored.id} {stored.blob.name}")
    disk_limit(None)
    assert verdict.outcome == "failed"
    assert "storage error" in verdict.detail
    assert files_on_disk() == before  # the half-written copy is gone, the file is whole
    stored.refresh_from_db()
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
    assert _writer_threads() == 0


@pytest.mark.django_db
def test_after_a_refused_fsync_the_rest_of_the_body_opens_no_blob(
    alice_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sharing.storage import encrypted

    real_fsync, opened = os.fsync, []
    real_sink = encrypted.LocalFileSink

    def failing_once(fd: int) -> None:
        monkeypatch.setattr(encrypted.os, "fsync", real_fsync)
        raise OSError(errno.EIO, "Input/output error")

    def counted(path: str) -> encrypted.LocalFileSink:
        opened.append(path)
        return real_sink(path)

    monkeypatch.setattr(encrypted.os, "fsync", failing_once)
    monkeypatch.setattr(encrypted, "LocalFileSink", counted)
    response = upload(
        alice_client, ("a.bin", os.urandom(MiB)), ("b.bin", os.urandom(MiB)), ("c.bin", b"")
    )
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert len(opened) == 1  # a.bin's; b.bin and c.bin are never written
    _assert_nothing_kept()


@pytest.mark.django_db
def test_a_disk_that_fills_between_patches_keeps_what_was_acknowledged(
    alice_client, disk_limit: Callable[[int | None], None]
) -> None:
    data = os.urandom(6 * MiB)
    _status, location = create(alice_client, len(data), filename="scan.bin")
    first = patch(alice_client, location, 0, data[: 2 * MiB])
    assert first.status_code == 204
    kept = int(first["Upload-Offset"])
    disk_limit(3 * MiB)
    refused = patch(alice_client, location, kept, data[kept:])
    assert refused.status_code == 507
    # What the first PATCH acknowledged stays; nothing of the refused one is promised.
    assert int(head(alice_client, location)["Upload-Offset"]) == kept
    disk_limit(None)
    _resume_to_the_end(alice_client, location, kept, data)


@pytest.mark.django_db
def test_a_second_file_onto_a_full_disk_takes_the_first_with_it(
    alice_client, disk_limit: Callable[[int | None], None]
) -> None:
    disk_limit(3 * MiB)  # the first file fits, the second does not
    response = upload(alice_client, ("a.bin", os.urandom(MiB)), ("b.bin", os.urandom(5 * MiB)))
    disk_limit(None)
    assert response.status_code == 507
    _assert_nothing_kept()


def test_a_writer_that_meets_an_unexpected_error_does_not_hang_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: WriteBehind, data: bytes) -> None:
        raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(WriteBehind, "_write_all", broken)
    fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT, 0o600)
    behind = WriteBehind(fd)
    try:
        behind.write(b"x")
        with pytest.raises(RuntimeError):
            behind.flush()
    finally:
        behind.close()
        os.close(fd)


@pytest.mark.django_db
def test_a_stored_blob_and_a_new_folder_are_fsynced_in_their_folders(
    alice_client, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    response = upload(alice_client, ("a.txt", b"hello"))
    assert response.status_code in (200, 201, 302)
    [blob] = files_on_disk()
    assert str(blob) in synced  # the file's bytes
    assert str(blob.parent) in synced  # its name in its folder
    assert str(blob.parent.parent) in synced  # the folder, new, in its parent
