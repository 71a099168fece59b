"""Resumable uploads (tus 1.0.0) with STORAGE_BACKEND=s3, against moto_server.

The blob is an S3 multipart upload: progress is acknowledged in whole parts of 8 segments,
a PATCH cut mid-part resumes from the offset, nothing but ciphertext reaches the bucket
(objects and parts in progress), termination and expiry abort the multipart upload.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import storages
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from sharing import selectors
from sharing.crypto import HEADER_SIZE, TAG_SIZE, keyed_digest, open_sha256
from sharing.models import ResumableUpload, StoredFile
from sharing.storage.encrypted import resumable_part_segments
from tests.helpers import MiB, streamed
from tests.test_no_plaintext_on_disk import BLOCK, PERIOD
from tests.test_s3_storage import bucket, objects, pending_uploads, s3_client  # noqa: F401
from tests.test_tus import (  # noqa: F401 (read_backs is a fixture)
    OCTETS,
    TUS,
    create,
    head,
    patch,
    patch_dying_before_the_file,
    read_backs,
    stored_digests,
)

pytestmark = pytest.mark.django_db

PART = resumable_part_segments(MiB) * MiB  # plaintext bytes in a full part: 8 MiB


def marked(size: int) -> bytes:
    """``size`` bytes of a random 61-byte block repeated: any 61 bytes of it in the bucket
    would be plaintext."""
    return (BLOCK * (size // PERIOD + 1))[:size]


def has_marker(blob: bytes) -> bool:
    return any(BLOCK[i:] + BLOCK[:i] in blob for i in range(PERIOD))


@pytest.fixture
def parts_sent(bucket: str) -> Iterator[list[tuple[int, bytes]]]:  # noqa: F811
    """(PartNumber, body) of every UploadPart the server sends to the bucket."""
    sent: list[tuple[int, bytes]] = []

    def record(params: dict, **_: object) -> None:
        sent.append((params["PartNumber"], bytes(params["Body"])))

    events = storages["ciphertext"].connection.meta.client.meta.events
    events.register("before-parameter-build.s3.UploadPart", record)
    try:
        yield sent
    finally:
        events.unregister("before-parameter-build.s3.UploadPart", record)


def test_part_size_is_over_s3s_minimum() -> None:
    assert resumable_part_segments(MiB) == 8
    for segment in (64 * 1024, MiB, 4 * MiB):
        assert resumable_part_segments(segment) * (segment + TAG_SIZE) >= 5 * MiB


def test_a_multi_patch_upload_cut_mid_part_resumes_and_downloads_identical(
    alice: User,
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
    parts_sent: list[tuple[int, bytes]],
) -> None:
    data = marked(20 * MiB + 12345)  # parts of 8, 8 and 4 MiB
    assert has_marker(data[1000:1200])  # the scan below would see plaintext
    status, location = create(alice_client, len(data), filename="payroll.xlsx")
    assert status == 201
    row = ResumableUpload.objects.get()
    assert row.s3_upload_id
    assert [u["UploadId"] for u in pending_uploads(moto_server, bucket)] == [row.s3_upload_id]
    assert objects(moto_server, bucket) == {}

    # Cut mid-part 2: only part 1 is acknowledged, and recorded in the row.
    response = patch(alice_client, location, 0, data[: PART + 3 * MiB + 5])
    assert response.status_code == 204
    assert response["Upload-Offset"] == str(PART)
    assert head(alice_client, location)["Upload-Offset"] == str(PART)
    row.refresh_from_db()
    assert [p["PartNumber"] for p in row.s3_parts] == [1]
    assert [(n, len(b)) for n, b in parts_sent] == [(1, HEADER_SIZE + 8 * (MiB + TAG_SIZE))]
    # A PATCH too short to complete a part could never move the offset: a client resending
    # from the offset would loop for ever, so it is refused unread (400), nothing changed.
    response = patch(alice_client, location, PART, data[PART : PART + 5 * MiB])
    assert response.status_code == 400
    assert b"whole part" in response.content or b"a whole segment" in response.content
    assert head(alice_client, location)["Upload-Offset"] == str(PART)
    assert len(parts_sent) == 1
    # What a PATCH killed after UploadPart but before its row moved leaves: a part 2
    # that is not recorded. The resent part replaces it.
    s3_client(moto_server).upload_part(
        Bucket=bucket,
        Key=row.blob,
        UploadId=row.s3_upload_id,
        PartNumber=2,
        Body=secrets.token_bytes(5 * MiB),
    )
    assert not StoredFile.objects.exists()
    assert objects(moto_server, bucket) == {}

    response = patch(alice_client, location, PART, data[PART:])
    assert response.status_code == 204
    assert response["Upload-Offset"] == str(len(data))

    stored = StoredFile.objects.get(pk=row.pk)
    assert not ResumableUpload.objects.exists()
    assert pending_uploads(moto_server, bucket) == []
    stored_objects = objects(moto_server, bucket)
    assert list(stored_objects) == [stored.blob.name]
    assert len(stored_objects[stored.blob.name]) == HEADER_SIZE + len(data) + 21 * TAG_SIZE
    assert [n for n, _ in parts_sent] == [1, 2, 3]
    assert not any(has_marker(body) for _, body in parts_sent)
    assert not has_marker(stored_objects[stored.blob.name])

    assert stored.size == len(data)
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
    key = selectors.file_data_key(file=stored)
    plain = hashlib.sha256(data).digest()
    assert bytes(stored.digest) == keyed_digest(key, plain)
    assert open_sha256(key, bytes(stored.sha256_sealed)) == plain
    assert alice.files.count() == 1


def test_zero_length_and_sub_part_uploads_complete(
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
) -> None:
    status, _ = create(alice_client, 0, filename="empty.txt")
    assert status == 201
    empty = StoredFile.objects.get(name="empty.txt")
    assert empty.size == 0
    assert streamed(alice_client.get(f"/files/{empty.id}/download/")) == b""

    data = secrets.token_bytes(3 * MiB + 7)  # one part, under S3's 5 MiB minimum
    _, location = create(alice_client, len(data), filename="small.bin")
    assert patch(alice_client, location, 0, data[:MiB]).status_code == 400  # short of the end
    assert patch(alice_client, location, 0, data)["Upload-Offset"] == str(len(data))
    small = StoredFile.objects.get(name="small.bin")
    assert streamed(alice_client.get(f"/files/{small.id}/download/")) == data

    assert not ResumableUpload.objects.exists()
    assert pending_uploads(moto_server, bucket) == []
    assert sorted(objects(moto_server, bucket)) == sorted([empty.blob.name, small.blob.name])


def test_termination_aborts_the_multipart_upload(
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
) -> None:
    _, location = create(alice_client, 2 * PART, filename="gone.bin")
    assert patch(alice_client, location, 0, secrets.token_bytes(PART))["Upload-Offset"] == str(PART)
    assert len(pending_uploads(moto_server, bucket)) == 1

    assert alice_client.delete(location, **TUS).status_code == 204  # type: ignore[arg-type]

    assert pending_uploads(moto_server, bucket) == []
    assert objects(moto_server, bucket) == {}
    assert not ResumableUpload.objects.exists()
    assert head(alice_client, location).status_code == 404
    # A PATCH that comes after finds nothing.
    assert patch(alice_client, location, PART, b"x").status_code == 404


def test_expiry_and_cleanup_abort_it_and_cleanup_keeps_live_ones(
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
) -> None:
    _, expired = create(alice_client, PART + 10, filename="old.bin")
    patch(alice_client, expired, 0, secrets.token_bytes(PART))
    _, live = create(alice_client, 10, filename="live.bin")
    live_row = ResumableUpload.objects.get(name="live.bin")
    ResumableUpload.objects.filter(name="old.bin").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert head(alice_client, expired).status_code == 410

    out = StringIO()
    # Two hours on, past the grace period: the live upload's multipart upload is kept.
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(hours=2)):
        call_command("cleanup_storage", "--grace-hours", "1", stdout=out)

    assert "deleted 1 expired resumable uploads" in out.getvalue()
    assert [u["UploadId"] for u in pending_uploads(moto_server, bucket)] == [live_row.s3_upload_id]
    assert objects(moto_server, bucket) == {}
    assert list(ResumableUpload.objects.values_list("name", flat=True)) == ["live.bin"]
    assert patch(alice_client, live, 0, b"0123456789")["Upload-Offset"] == "10"
    assert StoredFile.objects.get().name == "live.bin"


def test_a_refused_creation_leaves_no_multipart_upload(
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.USER_QUOTA_MB = 1
    assert create(alice_client, MiB + 1)[0] == 413  # over the quota, after the start
    settings.USER_QUOTA_MB = 0
    settings.TUS_MAX_UNFINISHED = 1
    assert create(alice_client, 1)[0] == 201
    assert create(alice_client, 1)[0] == 429
    assert ResumableUpload.objects.count() == 1
    assert len(pending_uploads(moto_server, bucket)) == 1
    assert objects(moto_server, bucket) == {}


def test_a_patch_whose_multipart_upload_is_gone_gets_404_and_the_upload_goes(
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
) -> None:
    # A bucket lifecycle rule (AbortIncompleteMultipartUpload) or a DELETE that raced it.
    _, location = create(alice_client, 10)
    row = ResumableUpload.objects.get()
    s3_client(moto_server).abort_multipart_upload(
        Bucket=bucket, Key=row.blob, UploadId=row.s3_upload_id
    )
    assert patch(alice_client, location, 0, b"0123456789").status_code == 404
    assert not ResumableUpload.objects.exists()
    assert head(alice_client, location).status_code == 404
    assert objects(moto_server, bucket) == {}


def test_a_completion_cut_short_is_finished_by_the_next_patch(
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
) -> None:
    data = secrets.token_bytes(PART + 100)
    _, location = create(alice_client, len(data), filename="late.bin")
    storage = storages["encrypted"]
    with (
        mock.patch.object(type(storage), "resumable_part_complete", side_effect=OSError),
        pytest.raises(OSError),
    ):
        patch(alice_client, location, 0, data)  # the server died before completing
    assert ResumableUpload.objects.get().offset == len(data)
    assert not StoredFile.objects.exists()

    response = patch(alice_client, location, len(data), b"", CONTENT_TYPE=OCTETS)
    assert response.status_code == 204
    stored = StoredFile.objects.get()
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
    assert pending_uploads(moto_server, bucket) == []


def test_a_completion_interrupted_after_the_last_part_is_finished_by_head(
    alice: User,
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = secrets.token_bytes(PART + 100)
    _, location = create(alice_client, len(data), filename="late.bin")
    patch_dying_before_the_file(alice_client, location, data, monkeypatch)
    row = ResumableUpload.objects.get()
    assert row.offset == len(data)
    assert [p["PartNumber"] for p in row.s3_parts] == [1, 2]
    assert not StoredFile.objects.exists()

    response = head(alice_client, location)
    assert response.status_code == 200
    assert response["Upload-Offset"] == response["Upload-Length"] == str(len(data))
    stored = alice.files.get()
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
    assert pending_uploads(moto_server, bucket) == []
    assert list(objects(moto_server, bucket)) == [stored.blob.name]


def test_a_head_completes_an_upload_whose_multipart_upload_was_not_completed(
    alice: User,
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
) -> None:
    data = secrets.token_bytes(PART + 100)
    _, location = create(alice_client, len(data), filename="late.bin")
    storage = storages["encrypted"]
    with (
        mock.patch.object(type(storage), "resumable_part_complete", side_effect=OSError),
        pytest.raises(OSError),
    ):
        patch(alice_client, location, 0, data)  # the server died before completing
    assert pending_uploads(moto_server, bucket) != []

    response = head(alice_client, location)
    assert response["Upload-Offset"] == response["Upload-Length"] == str(len(data))
    stored = alice.files.get()
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
    assert pending_uploads(moto_server, bucket) == []


def test_a_patch_holds_about_one_part_in_memory(
    alice: User,
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
) -> None:
    import io
    import tracemalloc

    from audit.actors import Actor
    from sharing import services

    data = secrets.token_bytes(3 * PART)
    body = io.BytesIO(data)  # shares data's buffer: reads are the only copies
    _, location = create(alice_client, len(data))
    row, token = services.resumable_lease_take(
        upload_id=ResumableUpload.objects.get().pk, owner=alice, offset=0
    )
    tracemalloc.start()
    try:
        progress = services.resumable_append(
            upload=row,
            token=token,
            read=body.read,
            body_length=3 * PART - 1,
            actor=Actor(label="test", user_id=alice.pk),
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert progress.offset == 2 * PART
    assert peak < 2 * PART, f"peak {peak / MiB:.1f} MiB for a 24 MiB PATCH"


def test_one_patch_and_several_give_the_form_uploads_digests_on_s3(
    alice_client: Client,
    moto_server: str,
    bucket: str,  # noqa: F811
    read_backs: list[int],  # noqa: F811
) -> None:
    data = secrets.token_bytes(PART + MiB + 99)  # a full part and a short last one
    plain = hashlib.sha256(data).digest()
    _, location = create(alice_client, len(data), filename="one.bin")
    assert patch(alice_client, location, 0, data)["Upload-Offset"] == str(len(data))
    assert read_backs == []
    _, location = create(alice_client, len(data), filename="several.bin")
    assert patch(alice_client, location, 0, data[:PART])["Upload-Offset"] == str(PART)
    assert patch(alice_client, location, PART, data[PART:])["Upload-Offset"] == str(len(data))
    assert read_backs == [1]
    for name in ("one.bin", "several.bin"):
        stored = StoredFile.objects.get(name=name)
        assert stored_digests(stored)[0] == plain
        assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
