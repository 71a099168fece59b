"""The whole upload / download / delete flow with STORAGE_BACKEND=s3 against moto_server."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.utils import timezone

from sharing.models import StoredFile
from sharing.storage import get_encrypted_storage
from sharing.storage import s3 as storage_s3
from tests.helpers import MiB, streamed, upload
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, s3_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def bucket(moto_server: str, settings) -> str:
    """A fresh private bucket, and the ciphertext storage pointed at it."""
    name = f"securefiles-test-{uuid.uuid4().hex[:12]}"
    s3_client(moto_server).create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "ciphertext": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": moto_server,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "region_name": REGION,
                "file_overwrite": False,
                "default_acl": None,
            },
        },
    }
    assert storage_s3.is_s3(storages["ciphertext"])
    return name


def objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(endpoint)
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing
    }


def pending_uploads(endpoint: str, bucket: str) -> list:
    return s3_client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_it_round_trips_a_multipart_file_through_the_bucket(
    alice_client,
    moto_server,
    bucket,
):
    data = os.urandom(20 * MiB + 123)  # three 8 MiB parts
    response = upload(alice_client, ("scan.pdf", data, "application/pdf"))
    assert response.status_code == 302
    stored = StoredFile.objects.get()

    stored_objects = objects(moto_server, bucket)
    assert list(stored_objects) == [stored.blob.name]
    blob = stored_objects[stored.blob.name]
    assert blob.startswith(b"SFEC")
    assert data[:4096] not in blob and data[-4096:] not in blob
    assert "scan" not in stored.blob.name

    download = alice_client.get(f"/files/{stored.id}/download/")
    assert download.status_code == 200
    assert int(download["Content-Length"]) == len(data)
    assert streamed(download) == data


def test_it_round_trips_an_empty_file(alice_client, moto_server, bucket):
    assert upload(alice_client, ("empty.txt", b"")).status_code == 302
    stored = StoredFile.objects.get()
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == b""


def test_it_deletes_the_object_with_the_file(
    alice_client,
    moto_server,
    bucket,
    django_capture_on_commit_callbacks,
):
    upload(alice_client, ("a.txt", b"confidential"))
    stored = StoredFile.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_client.post(f"/files/{stored.id}/delete/").status_code == 302
    assert objects(moto_server, bucket) == {}


def test_it_leaves_no_object_or_pending_upload_when_refused(
    alice_client,
    moto_server,
    bucket,
    small_upload_limit,
):
    body_limit = small_upload_limit
    # Two files, the second pushes the request over the limit while it streams.
    from tests.helpers import files_body, post_body

    body = files_body(("ok.txt", b"x" * 1000), ("big.bin", os.urandom(body_limit)))
    response = post_body(alice_client, body, CONTENT_LENGTH="1000")  # a lying length
    assert response.status_code in (400, 413)
    assert StoredFile.objects.count() == 0
    assert objects(moto_server, bucket) == {}
    assert pending_uploads(moto_server, bucket) == []


def test_it_detects_a_tampered_object(alice_client, moto_server, bucket):
    upload(alice_client, ("a.txt", b"secret " * 100))
    stored = StoredFile.objects.get()
    client = s3_client(moto_server)
    blob = bytearray(objects(moto_server, bucket)[stored.blob.name])
    blob[60] ^= 1
    client.put_object(Bucket=bucket, Key=stored.blob.name, Body=bytes(blob))
    response = alice_client.get(f"/files/{stored.id}/download/")
    assert response.status_code == 502
    assert b"secret" not in response.content


def test_it_aborts_stale_multipart_uploads(moto_server, bucket):
    client = s3_client(moto_server)
    client.create_multipart_upload(Bucket=bucket, Key="blobs/ab/left-by-a-crash")
    storage = storages["ciphertext"]
    future = timezone.now() + timedelta(hours=1)
    assert storage_s3.abort_stale_uploads(storage, future, dry_run=True) == 1
    assert len(pending_uploads(moto_server, bucket)) == 1
    assert storage_s3.abort_stale_uploads(storage, future, dry_run=False) == 1
    assert pending_uploads(moto_server, bucket) == []


def test_it_reads_an_object_without_buffering_it_whole(moto_server, bucket):
    # django-storages' S3File copies the whole object into memory on its first read; a
    # download must hold about one segment at a time, however large the file.
    import tracemalloc

    from sharing.crypto import FileKey

    storage = get_encrypted_storage()
    key = FileKey.generate()
    data = os.urandom(1024 * 1024)
    blob = storage.save_plaintext([data] * 24, key)  # 24 MiB
    expected = hashlib.sha256(data * 24).hexdigest()

    tracemalloc.start()
    try:
        digest = hashlib.sha256()
        reader = storage.open_plaintext(blob.name, key, expected_size=24 * MiB)
        try:
            for segment in reader.segments():
                digest.update(segment)
        finally:
            reader.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert digest.hexdigest() == expected
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB for a 24 MiB object"


def test_cleanup_storage_sweeps_the_bucket(alice, moto_server, bucket):
    from io import StringIO

    from django.core.management import call_command

    from sharing.crypto import FileKey
    from tests.helpers import make_file

    kept = make_file(alice, b"in use")
    orphan = get_encrypted_storage().save_plaintext([b"left by a crash"], FileKey.generate())
    s3_client(moto_server).create_multipart_upload(Bucket=bucket, Key="blobs/zz/half-written")
    out = StringIO()
    # The orphan and the pending upload are seconds old: a zero grace period is not
    # allowed, so look an hour into the future instead.
    future = timezone.now() + timedelta(hours=2)
    from unittest import mock

    with mock.patch("django.utils.timezone.now", return_value=future):
        call_command("cleanup_storage", "--grace-hours", "1", stdout=out)
    assert list(objects(moto_server, bucket)) == [kept.blob.name]
    assert orphan.name not in objects(moto_server, bucket)
    assert pending_uploads(moto_server, bucket) == []
    assert "aborted 1 stale multipart uploads" in out.getvalue()


def test_verify_files_passes_and_catches_tampering_on_s3(alice, moto_server, bucket):
    from io import StringIO

    from django.core.management import CommandError, call_command

    from tests.helpers import make_file

    stored = make_file(alice, os.urandom(3 * MiB))
    out = StringIO()
    call_command("verify_files", stdout=out)
    assert "1 ok" in out.getvalue()
    client = s3_client(moto_server)
    blob = bytearray(objects(moto_server, bucket)[stored.blob.name])
    blob[-5] ^= 0x40
    client.put_object(Bucket=bucket, Key=stored.blob.name, Body=bytes(blob))
    with pytest.raises((CommandError, SystemExit)):
        call_command("verify_files", stdout=StringIO())
