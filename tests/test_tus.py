"""Resumable uploads (tus 1.0.0): core, creation, termination and expiration.

Each error status the spec names, a multi-PATCH upload cut mid-segment that downloads
byte-identical with a row like a form upload's, no plaintext on disk while it streams,
owner-only visibility, limits that leave nothing, expiry and cleanup.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from sharing import selectors
from sharing.crypto import (
    DecryptingReader,
    FileKey,
    SegmentSealer,
    StreamEncryptor,
    keyed_digest,
    new_header,
    open_sha256,
)
from sharing.models import ResumableUpload, StoredFile
from tests.helpers import MiB, files_on_disk, streamed, upload
from tests.test_no_plaintext_on_disk import BLOCK, PERIOD, scan_for_plaintext

pytestmark = pytest.mark.django_db

URL = "/files/uploads/"
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def create(client: Client, length: int, **metadata: str) -> tuple[int, str]:
    meta = ",".join(f"{k} {_b64(v)}" for k, v in metadata.items())
    headers = {**TUS, "HTTP_UPLOAD_LENGTH": str(length)}
    if meta:
        headers["HTTP_UPLOAD_METADATA"] = meta
    response = client.post(URL, **headers)  # type: ignore[arg-type]
    return response.status_code, response.get("Location", "")


def patch(client: Client, location: str, offset: int, body: bytes, **extra: str):  # type: ignore[no-untyped-def]
    headers = {**TUS, "HTTP_UPLOAD_OFFSET": str(offset), **extra}
    content_type = headers.pop("content_type", OCTETS)
    return client.generic("PATCH", location, body, content_type=content_type, **headers)


def head(client: Client, location: str, **extra: str):  # type: ignore[no-untyped-def]
    return client.head(location, **{**TUS, **extra})


def patch_dying_before_the_file(
    client: Client, location: str, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATCH all of ``data``, the server "dying" once every byte is acknowledged but
    before the StoredFile row (SystemExit out of the completion; its lease is released,
    as a finally still runs)."""
    from sharing.services import resumable

    real_complete = resumable._complete

    def dies_once(**kwargs):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(resumable, "_complete", real_complete)
        raise SystemExit("the server died before the StoredFile row")

    monkeypatch.setattr(resumable, "_complete", dies_once)
    with pytest.raises(SystemExit):
        patch(client, location, 0, data)


# ---------------------------------------------------------------------------- crypto


def test_segments_sealed_one_by_one_are_the_stream_encryptors_blob() -> None:
    key = FileKey.generate()
    data = secrets.token_bytes(3 * 65536 + 100)
    header = new_header(65536)
    sealer = SegmentSealer(key, header)
    blob = header
    # Sealed in reverse order, as separate "requests" would with a fresh sealer each.
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    for index in reversed(range(len(pieces))):
        sealed = SegmentSealer(key, header).seal(index, pieces[index], last=index == 3)
        pieces[index] = sealed
    blob += b"".join(pieces)
    import io

    with DecryptingReader(io.BytesIO(blob), key, expected_size=len(data)) as reader:
        assert b"".join(reader.segments()) == data
    assert sealer.segment_size == 65536
    with pytest.raises(ValueError):
        sealer.seal(0, b"short", last=False)
    # The same as a StreamEncryptor with that header would write: same length, same reader.
    assert len(blob) == len(StreamEncryptor(key, 65536).header) + len(data) + 4 * 16


# ---------------------------------------------------------------------------- protocol


def test_options_lists_version_extensions_and_max_size(alice_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    response = alice_client.options(URL)

    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert response["Tus-Extension"] == "creation,termination,expiration"
    assert response["Tus-Max-Size"] == str(settings.MAX_UPLOAD_BYTES)
    assert response["Tus-Resumable"] == "1.0.0"


def test_anonymous_gets_403_and_nothing_is_created(client: Client) -> None:
    status, _ = create(client, 10)

    assert status == 403
    assert not ResumableUpload.objects.exists()
    assert files_on_disk() == []


def test_412_without_tus_resumable(alice_client: Client) -> None:
    response = alice_client.post(URL, HTTP_UPLOAD_LENGTH="10")
    assert response.status_code == 412
    assert response["Tus-Version"] == "1.0.0"
    _, location = create(alice_client, 10)
    response = alice_client.generic(
        "PATCH", location, b"x", content_type=OCTETS, HTTP_UPLOAD_OFFSET="0"
    )
    assert response.status_code == 412


def test_400_for_bad_length_or_metadata(alice_client: Client) -> None:
    for headers in (
        {},
        {"HTTP_UPLOAD_LENGTH": "-1"},
        {"HTTP_UPLOAD_LENGTH": "١٢"},
        {"HTTP_UPLOAD_LENGTH": "1", "HTTP_UPLOAD_METADATA": "filename ***"},
        {"HTTP_UPLOAD_LENGTH": "1", "HTTP_UPLOAD_METADATA": f"filename {_b64('a')},filename"},
        {"HTTP_UPLOAD_LENGTH": "1", "HTTP_UPLOAD_METADATA": f"expires_in_days {_b64('x')}"},
        {"HTTP_UPLOAD_DEFER_LENGTH": "1"},
    ):
        assert alice_client.post(URL, **TUS, **headers).status_code == 400, headers  # type: ignore[arg-type]
    assert not ResumableUpload.objects.exists()
    assert files_on_disk() == []


def test_415_409_413_and_404(alice_client: Client) -> None:
    status, location = create(alice_client, 100, filename="a.txt")
    assert status == 201

    assert patch(alice_client, location, 0, b"x", content_type="text/plain").status_code == 415
    assert patch(alice_client, location, 5, b"x").status_code == 409
    assert patch(alice_client, location, 0, b"x" * 101).status_code == 413
    # A chunked body (no Content-Length) would never be read: 411, not a 204 without progress.
    chunked = {"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": ""}
    assert patch(alice_client, location, 0, b"x", **chunked).status_code == 411
    unknown = f"{URL}{'0' * 8}-0000-4000-8000-{'0' * 12}/"
    assert head(alice_client, unknown).status_code == 404
    assert patch(alice_client, unknown, 0, b"x").status_code == 404
    assert alice_client.delete(unknown, **TUS).status_code == 404  # type: ignore[arg-type]
    assert head(alice_client, location)["Upload-Offset"] == "0"


def test_a_multi_patch_upload_cut_mid_segment_resumes_and_matches_a_form_upload(
    alice: User, alice_client: Client
) -> None:
    data = secrets.token_bytes(3 * MiB + 12345)
    status, location = create(
        alice_client, len(data), filename="report.pdf", filetype="application/pdf"
    )
    assert status == 201
    assert head(alice_client, location)["Upload-Length"] == str(len(data))

    # A PATCH cut 1.5 segments in: only the sealed segment is acknowledged.
    response = patch(alice_client, location, 0, data[: MiB + MiB // 2])
    assert response.status_code == 204
    assert response["Upload-Offset"] == str(MiB)
    assert "Upload-Expires" in response
    assert head(alice_client, location)["Upload-Offset"] == str(MiB)
    assert not StoredFile.objects.exists()  # not in any list until complete
    # Resent from the server's offset, twice cut again, then to the end.
    assert patch(alice_client, location, MiB, data[MiB : 2 * MiB + 10])["Upload-Offset"] == str(
        2 * MiB
    )
    response = patch(alice_client, location, 2 * MiB, data[2 * MiB :])
    assert response.status_code == 204
    assert response["Upload-Offset"] == str(len(data))

    upload_id = location.rstrip("/").rsplit("/", 1)[1]
    stored = StoredFile.objects.get(pk=upload_id)
    assert not ResumableUpload.objects.exists()
    assert (stored.name, stored.content_type, stored.size) == (
        "report.pdf",
        "application/pdf",
        len(data),
    )
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
    key = selectors.file_data_key(file=stored)
    plain = hashlib.sha256(data).digest()
    assert bytes(stored.digest) == keyed_digest(key, plain)
    assert open_sha256(key, bytes(stored.sha256_sealed)) == plain
    # A form upload of the same bytes has its columns computed the same way.
    assert upload(alice_client, ("report.pdf", data)).status_code in (201, 302)
    form = StoredFile.objects.exclude(pk=stored.pk).get()
    form_key = selectors.file_data_key(file=form)
    assert bytes(form.digest) == keyed_digest(form_key, plain)
    assert open_sha256(form_key, bytes(form.sha256_sealed)) == plain
    assert form.size == stored.size
    assert alice.files.count() == 2


def test_the_last_segment_full_and_the_empty_upload(alice_client: Client) -> None:
    data = secrets.token_bytes(2 * MiB)
    _, location = create(alice_client, len(data), filename="even.bin")
    assert patch(alice_client, location, 0, data)["Upload-Offset"] == str(len(data))
    stored = StoredFile.objects.get()
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data

    status, location = create(alice_client, 0, filename="empty.txt")
    assert status == 201
    empty = StoredFile.objects.get(name="empty.txt")
    assert empty.size == 0
    assert streamed(alice_client.get(f"/files/{empty.id}/download/")) == b""
    assert not ResumableUpload.objects.exists()


def test_expires_in_days_is_kept_and_validated_like_the_forms(
    alice_client: Client, settings
) -> None:  # type: ignore[no-untyped-def]
    _, location = create(alice_client, 3, filename="k.txt", expires_in_days="7")
    patch(alice_client, location, 0, b"abc")
    stored = StoredFile.objects.get()
    assert stored.expires_at is not None
    assert timedelta(days=6) < stored.expires_at - timezone.now() <= timedelta(days=7)
    settings.FILE_MAX_DAYS = 30
    assert create(alice_client, 3, expires_in_days="31")[0] == 400


def test_no_plaintext_on_disk_during_a_multi_patch_upload(alice_client: Client) -> None:
    size = 3 * MiB + 777
    data = (BLOCK * (size // PERIOD + 1))[:size]
    since = time.time() - 1
    _, location = create(alice_client, size, filename="payroll.xlsx")
    offset = 0
    for cut in (MiB + 5, 2 * MiB + MiB // 3, size):
        response = patch(alice_client, location, offset, data[offset:cut])
        offset = int(response["Upload-Offset"])
        assert scan_for_plaintext(since) == []
    assert offset == size
    assert scan_for_plaintext(since) == []


def test_an_incomplete_upload_is_its_owners_alone(alice_client: Client, bob_client: Client) -> None:
    _, location = create(alice_client, 10, filename="secret.txt")

    assert head(bob_client, location).status_code == 404
    assert patch(bob_client, location, 0, b"0123456789").status_code == 404
    assert bob_client.delete(location, **TUS).status_code == 404  # type: ignore[arg-type]
    assert head(alice_client, location).status_code == 200
    assert b"secret" not in alice_client.get("/").content


def test_termination_removes_row_and_blob(alice_client: Client) -> None:
    _, location = create(alice_client, 2 * MiB, filename="gone.bin")
    patch(alice_client, location, 0, secrets.token_bytes(MiB))
    assert len(files_on_disk()) == 1

    response = alice_client.delete(location, **TUS)  # type: ignore[arg-type]

    assert response.status_code == 204
    assert files_on_disk() == []
    assert not ResumableUpload.objects.exists()
    assert head(alice_client, location).status_code == 404


def test_limits_refuse_and_leave_nothing(alice: User, alice_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAX_UPLOAD_MB = 1
    settings.MAX_UPLOAD_BYTES = MiB
    assert create(alice_client, MiB + 1)[0] == 413
    settings.USER_QUOTA_MB = 1
    assert create(alice_client, MiB)[0] == 201
    assert create(alice_client, 1)[0] == 413  # the unfinished upload counts
    settings.USER_QUOTA_MB = 0
    settings.TUS_MAX_UNFINISHED = 2
    assert create(alice_client, 1)[0] == 201
    assert create(alice_client, 1)[0] == 429
    # When the first unfinished upload expires and frees a place (24 hours by default).
    ResumableUpload.objects.filter(length=1).update(expires_at=timezone.now() + timedelta(hours=2))
    refused = alice_client.post(URL, **TUS, HTTP_UPLOAD_LENGTH="1")  # type: ignore[arg-type]
    assert refused.status_code == 429
    assert 7100 <= int(refused["Retry-After"]) <= 7200
    assert ResumableUpload.objects.count() == 2
    assert len(files_on_disk()) == 2


def test_the_quota_is_checked_again_at_completion(
    alice: User, alice_client: Client, settings
) -> None:  # type: ignore[no-untyped-def]
    _, location = create(alice_client, 10, filename="late.txt")
    settings.USER_QUOTA_MB = 1
    upload(alice_client, ("big.bin", secrets.token_bytes(MiB - 5)))
    response = patch(alice_client, location, 0, b"0123456789")
    assert response.status_code == 413
    assert not ResumableUpload.objects.exists()
    assert StoredFile.objects.count() == 1
    assert len(files_on_disk()) == 1


def test_a_second_patch_while_one_holds_the_lease_gets_423(
    alice: User, alice_client: Client
) -> None:
    _, location = create(alice_client, 10)
    row = ResumableUpload.objects.get()
    ResumableUpload.objects.filter(pk=row.pk).update(
        patching_until=timezone.now() + timedelta(seconds=30), lease_token="other"
    )
    busy = patch(alice_client, location, 0, b"0123456789")
    assert busy.status_code == 423
    # RFC 9110 section 10.2.3: when the other PATCH's lease runs out.
    assert 25 <= int(busy["Retry-After"]) <= 30
    ResumableUpload.objects.filter(pk=row.pk).update(
        patching_until=timezone.now() - timedelta(seconds=1)
    )
    assert patch(alice_client, location, 0, b"0123456789").status_code == 204


def test_a_crashed_patchs_unacknowledged_bytes_are_cut_off(alice_client: Client) -> None:
    data = secrets.token_bytes(2 * MiB + 3)
    _, location = create(alice_client, len(data))
    patch(alice_client, location, 0, data[:MiB])
    (blob,) = files_on_disk()
    with open(blob, "ab") as garbage:  # what a PATCH killed mid-write leaves
        garbage.write(secrets.token_bytes(5000))
    patch(alice_client, location, MiB, data[MiB:])
    stored = StoredFile.objects.get()
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data


def test_expired_uploads_answer_410_and_cleanup_removes_them(alice_client: Client) -> None:
    _, location = create(alice_client, 10)
    response = head(alice_client, location)
    assert "Upload-Expires" in response
    ResumableUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert head(alice_client, location).status_code == 410
    assert patch(alice_client, location, 0, b"0123456789").status_code == 410
    assert len(files_on_disk()) == 1
    call_command("cleanup_storage", verbosity=0)
    assert not ResumableUpload.objects.exists()
    assert files_on_disk() == []
    assert head(alice_client, location).status_code == 404


def test_cleanup_keeps_the_blob_of_an_unfinished_upload(alice_client: Client) -> None:
    _, location = create(alice_client, 10)
    call_command("cleanup_storage", "--grace-hours", "1", verbosity=0)
    (blob,) = files_on_disk()
    old = time.time() - 7200
    import os

    os.utime(blob, (old, old))
    call_command("cleanup_storage", "--grace-hours", "1", verbosity=0)
    assert files_on_disk() == [blob]


def test_anonymous_gets_403_on_an_upload_too(alice_client: Client, client: Client) -> None:
    _, location = create(alice_client, 10)

    assert head(client, location).status_code == 403
    assert patch(client, location, 0, b"0123456789").status_code == 403
    assert client.delete(location, **TUS).status_code == 403  # type: ignore[arg-type]
    assert head(alice_client, location)["Upload-Offset"] == "0"


def test_head_answers_have_no_body_and_an_offset_past_the_end_is_409(
    alice_client: Client,
) -> None:
    _, location = create(alice_client, 10)
    unknown = f"{URL}{'0' * 8}-0000-4000-8000-{'0' * 12}/"

    assert head(alice_client, location).content == b""
    assert head(alice_client, unknown).content == b""
    assert patch(alice_client, location, 50, b"x").status_code == 409
    assert patch(alice_client, location, 10**18, b"x").status_code == 409


def test_a_completion_interrupted_after_the_last_bytes_is_finished_by_head(
    alice: User, alice_client: Client, bob_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = secrets.token_bytes(2 * MiB + 777)  # a last segment that is not full
    _, location = create(alice_client, len(data), filename="late.bin")
    patch_dying_before_the_file(alice_client, location, data, monkeypatch)
    row = ResumableUpload.objects.get()
    assert row.offset == row.length == len(data)
    assert not StoredFile.objects.exists()

    response = head(alice_client, location)
    assert response.status_code == 200
    assert response["Upload-Offset"] == response["Upload-Length"] == str(len(data))
    assert not ResumableUpload.objects.exists()
    stored = alice.files.get()
    assert (stored.name, stored.size) == ("late.bin", len(data))
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
    # Completed: answered as complete from the file, so a client whose completing PATCH
    # lost its answer (a server killed after the commit) learns it is done.
    again = head(alice_client, location)
    assert again.status_code == 200
    assert again["Upload-Offset"] == again["Upload-Length"] == str(len(data))
    assert patch(alice_client, location, 0, data[:MiB]).status_code == 409
    assert patch(alice_client, location, len(data), b"").status_code == 204
    assert head(bob_client, location).status_code == 404  # another user: no such upload


def test_starting_cancelling_and_expiry_are_audited_and_the_chain_verifies(
    alice: User, alice_client: Client
) -> None:
    from audit.models import AuditEntry
    from audit.selectors import verify_chain

    _, location = create(alice_client, 5000, filename="draft.docx")
    cancelled_id = location.rstrip("/").rsplit("/", 1)[1]
    assert alice_client.delete(location, **TUS).status_code == 204
    _, location = create(alice_client, 7000, filename="old.bin")
    expired_id = location.rstrip("/").rsplit("/", 1)[1]
    ResumableUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("cleanup_storage")

    entries = [
        (e.event, str(e.file_id), e.file_name, e.detail, e.actor_user_id)
        for e in AuditEntry.objects.filter(event__startswith="upload.").order_by("seq")
    ]
    assert entries == [
        ("upload.started", cancelled_id, "draft.docx", "size=5000", alice.pk),
        ("upload.cancelled", cancelled_id, "draft.docx", "size=5000", alice.pk),
        ("upload.started", expired_id, "old.bin", "size=7000", alice.pk),
        ("upload.expired", expired_id, "old.bin", "size=7000", None),
    ]
    assert verify_chain().intact


@pytest.mark.parametrize("batch", ["by size", "by lease renewal"])
def test_a_long_patch_acknowledges_in_batches_never_past_what_is_on_disk(
    alice: User, monkeypatch: pytest.MonkeyPatch, batch: str
) -> None:
    from audit.actors import SYSTEM
    from sharing import services
    from sharing.crypto import ciphertext_size
    from sharing.services import resumable

    if batch == "by size":
        monkeypatch.setattr(resumable, "ACKNOWLEDGE_BYTES", 2 * MiB)
    else:  # a slow client: only the lease's renewal moves the offset
        monkeypatch.setattr(resumable, "ACKNOWLEDGE_BYTES", 1 << 40)
        monkeypatch.setattr(resumable, "_renew_every", lambda: 0.0)
    data = secrets.token_bytes(8 * MiB)
    created = services.resumable_create(
        owner=alice,
        length=len(data),
        name="long.bin",
        content_type="",
        expires_in_days=None,
        actor=SYSTEM,
    )
    body = data[: 7 * MiB + MiB // 2]  # the body ends mid-segment: that half is not kept
    seen: list[tuple[int, int]] = []  # (acknowledged offset, blob bytes on disk)
    position = 0

    def read(size: int) -> bytes:
        nonlocal position
        row = ResumableUpload.objects.get()
        (blob,) = files_on_disk()
        seen.append((row.offset, os.path.getsize(blob)))
        chunk = body[position : position + min(size, 256 * 1024)]
        position += len(chunk)
        return chunk

    leased, token = services.resumable_lease_take(upload_id=created.pk, owner=alice, offset=0)
    progress = services.resumable_append(
        upload=leased, token=token, read=read, body_length=len(body), actor=SYSTEM
    )

    assert progress.offset == 7 * MiB and progress.stored is None
    offsets = [offset for offset, _ in seen]
    assert offsets == sorted(offsets)
    assert any(0 < offset < 7 * MiB for offset in offsets)  # moved while the body streamed
    for offset, on_disk in seen:  # every acknowledged byte was sealed and written first
        assert offset % MiB == 0
        assert offset == 0 or on_disk >= ciphertext_size(offset)
    row = ResumableUpload.objects.get()
    assert (row.offset, row.patching_until, row.lease_token) == (7 * MiB, None, "")


def test_head_never_reports_complete_before_the_file_exists(
    alice: User, alice_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = secrets.token_bytes(MiB + 10)
    _, location = create(alice_client, len(data), filename="crash.bin")
    patch_dying_before_the_file(alice_client, location, data, monkeypatch)
    # A process that dies leaves its lease behind (a SystemExit here still ran finally).
    ResumableUpload.objects.update(
        patching_until=timezone.now() + timedelta(seconds=30), lease_token="dead"
    )

    busy = head(alice_client, location)
    assert busy.status_code == 423  # not 200 with Upload-Offset == Upload-Length
    assert "Upload-Offset" not in busy
    assert 1 <= int(busy["Retry-After"]) <= 30
    assert not StoredFile.objects.exists()

    ResumableUpload.objects.update(patching_until=timezone.now() - timedelta(seconds=1))
    done = head(alice_client, location)
    assert done.status_code == 200
    assert done["Upload-Offset"] == done["Upload-Length"] == str(len(data))
    stored = alice.files.get()  # the answer came after the file exists
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data


def stored_digests(stored: StoredFile) -> tuple[bytes, bytes, int]:
    """(plain SHA-256 opened from the row, keyed digest recomputed from it, size)."""
    key = selectors.file_data_key(file=stored)
    plain = open_sha256(key, bytes(stored.sha256_sealed))
    assert bytes(stored.digest) == keyed_digest(key, plain)
    return plain, bytes(stored.digest), stored.size


@pytest.fixture
def read_backs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the verifying read-backs at completion (the real one still runs): which
    path made a row's digests."""
    from sharing.services import resumable

    calls: list[int] = []
    real = resumable.measure_all

    def counted(reader, key, also=None):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(reader, key, also=also)

    monkeypatch.setattr(resumable, "measure_all", counted)
    return calls


def test_one_patch_hashes_as_it_seals_and_several_read_back_with_the_same_digests(
    alice_client: Client, read_backs: list[int]
) -> None:
    data = secrets.token_bytes(3 * MiB + 777)
    plain = hashlib.sha256(data).digest()

    # One PATCH from byte 0 to the end: hashed while sealed, no read-back.
    _, location = create(alice_client, len(data), filename="one.bin")
    assert patch(alice_client, location, 0, data)["Upload-Offset"] == str(len(data))
    assert read_backs == []
    one = StoredFile.objects.get(name="one.bin")

    # Several PATCHes (the first cut mid-segment, so the upload is resumed): read back.
    _, location = create(alice_client, len(data), filename="several.bin")
    assert patch(alice_client, location, 0, data[: MiB + 5])["Upload-Offset"] == str(MiB)
    assert patch(alice_client, location, MiB, data[MiB:])["Upload-Offset"] == str(len(data))
    assert read_backs == [1]
    several = StoredFile.objects.get(name="several.bin")

    assert upload(alice_client, ("form.bin", data)).status_code in (201, 302)
    form = StoredFile.objects.get(name="form.bin")

    for stored in (one, several, form):
        assert stored_digests(stored)[0] == plain
        assert stored.size == len(data)
        assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
    # Each file has its own key, so the keyed digests differ; each is the keyed digest
    # of hashlib's SHA-256 under that file's key (checked in stored_digests).
    assert len({bytes(f.digest) for f in (one, several, form)}) == 3


def test_a_patch_starting_at_zero_that_is_cut_keeps_the_read_back(
    alice_client: Client, read_backs: list[int]
) -> None:
    """A first PATCH from byte 0 that breaks, then one more from its offset: the second
    did not see the first's bytes, so completion reads the blob back."""
    data = secrets.token_bytes(2 * MiB + 1)
    _, location = create(alice_client, len(data), filename="cut.bin")
    assert patch(alice_client, location, 0, data[: MiB + 100])["Upload-Offset"] == str(MiB)
    assert patch(alice_client, location, MiB, data[MiB:]).status_code == 204
    assert read_backs == [1]
    assert stored_digests(StoredFile.objects.get())[0] == hashlib.sha256(data).digest()


def test_a_patch_shorter_than_a_segment_is_refused_unread(alice_client: Client) -> None:
    """A PATCH under one segment that does not end the file could never be acknowledged
    (only sealed segments count), so a client resending from the offset would loop for
    ever: 400, nothing stored; the file's short last piece is still taken."""
    data = os.urandom(2 * MiB + 300)
    status, location = create(alice_client, len(data), filename="small-chunks.bin")
    assert status == 201

    short = patch(alice_client, location, 0, data[:1_000_000])
    assert short.status_code == 400
    assert b"whole segment" in short.content
    assert head(alice_client, location)["Upload-Offset"] == "0"

    assert patch(alice_client, location, 0, data[: 2 * MiB])["Upload-Offset"] == str(2 * MiB)
    last = patch(alice_client, location, 2 * MiB, data[2 * MiB :])
    assert last.status_code == 204 and last["Upload-Offset"] == str(len(data))
    stored = StoredFile.objects.get(name="small-chunks.bin")
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
