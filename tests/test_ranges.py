"""Ranged downloads (RFC 9110 section 14): the Range matrix an owner's client observes,
If-Range against the strong ETag and Last-Modified, several ranges, tampered segments
inside and outside a range, ranged reads on S3, and resuming with curl and wget."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from io import BytesIO, StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils.http import http_date

from audit.models import AuditEntry
from sharing.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    BlobIntegrityError,
    DecryptingReader,
    FileKey,
)
from sharing.models import StoredFile
from tests.helpers import MiB, blob_path, client_for, make_file, make_link, make_share, streamed
from tests.helpers_crypto import encrypt_bytes
from tests.test_s3_storage import bucket, s3_client  # noqa: F401 (the bucket fixture)

pytestmark = pytest.mark.django_db

SEALED = MiB + TAG_SIZE
SIZE = 3 * MiB + 12345  # four segments, the last one short
DATA = os.urandom(SIZE)


@pytest.fixture
def stored(alice) -> StoredFile:
    return make_file(alice, DATA, name="big.bin", content_type="application/octet-stream")


def _url(stored: StoredFile) -> str:
    return f"/files/{stored.id}/download/"


def _get(client: Client, stored: StoredFile, range_: str | None = None, **headers: str):
    if range_ is not None:
        headers["HTTP_RANGE"] = range_
    return client.get(_url(stored), **headers)


def _segment_offset(index: int) -> int:
    return HEADER_SIZE + index * SEALED


def _flip_local(stored: StoredFile, offset: int) -> None:
    path = blob_path(stored)
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))


# ---------------------------------------------------------------------------- the matrix

RANGES = {
    "first byte": ("bytes=0-0", 0, 1),
    "last byte": (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE),
    "suffix -500": ("bytes=-500", SIZE - 500, SIZE),
    "open 1000-": ("bytes=1000-", 1000, SIZE),
    "across a segment boundary": (f"bytes={MiB - 10}-{MiB + 9}", MiB - 10, MiB + 10),
    "exactly one segment": (f"bytes={MiB}-{2 * MiB - 1}", MiB, 2 * MiB),
    "the last, short segment": (f"bytes={3 * MiB}-", 3 * MiB, SIZE),
    "last-pos past the end": (f"bytes={SIZE - 5}-{SIZE + 1000}", SIZE - 5, SIZE),
    "suffix longer than the file": (f"bytes=-{SIZE + 1}", 0, SIZE),
    "unit in capitals, spaces": (" BYTES=0-4 , ", 0, 5),
}


@pytest.mark.parametrize(("header", "start", "stop"), RANGES.values(), ids=RANGES.keys())
def test_it_answers_a_range_with_206_and_those_bytes(
    alice_client, stored, header, start, stop
) -> None:
    response = _get(alice_client, stored, header)

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert response["Content-Length"] == str(stop - start)
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="big.bin"'
    assert response["Cache-Control"] == "private, no-store"
    assert streamed(response) == DATA[start:stop]


def test_it_advertises_ranges_and_validators_on_every_download(alice_client, stored) -> None:
    whole = _get(alice_client, stored)
    head = alice_client.head(_url(stored))

    assert whole.status_code == head.status_code == 200
    assert whole["Accept-Ranges"] == head["Accept-Ranges"] == "bytes"
    assert whole["ETag"] == head["ETag"]
    assert whole["ETag"].startswith('"') and not whole["ETag"].startswith('W/"')
    assert whole["Last-Modified"] == http_date(int(stored.created_at.timestamp()))
    assert streamed(whole) == DATA


UNSATISFIABLE = {
    "first-pos at the end": f"bytes={SIZE}-",
    "far beyond": f"bytes={SIZE + 10}-{SIZE + 20}",
    "suffix of zero": "bytes=-0",
    "several, none inside": f"bytes={SIZE}-,-0",
    "huge first-pos": f"bytes={10**40}-",
}


@pytest.mark.parametrize("header", UNSATISFIABLE.values(), ids=UNSATISFIABLE.keys())
def test_it_answers_416_beyond_the_end(alice_client, stored, header) -> None:
    response = _get(alice_client, stored, header)

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{SIZE}"
    assert response["Accept-Ranges"] == "bytes"
    assert DATA[:64] not in response.content


def test_it_answers_416_to_any_range_of_an_empty_file(alice, alice_client) -> None:
    empty = make_file(alice, b"", name="empty.txt")

    ranged = _get(alice_client, empty, "bytes=0-")
    whole = _get(alice_client, empty)

    assert ranged.status_code == 416
    assert ranged["Content-Range"] == "bytes */0"
    assert whole.status_code == 200
    assert streamed(whole) == b""


BAD_SYNTAX = {
    "not a number": "bytes=abc-",
    "other unit": "items=0-1",
    "last before first": "bytes=5-1",
    "no equals sign": "bytes 0-1",
    "empty set": "bytes=",
    "bare dash": "bytes=-",
    "one bad among good": "bytes=0-1,x",
    "negative": "bytes=--5",
    "non-ASCII digits": "bytes=\u0663-",
    "huge numbers, inverted": f"bytes={10**40}-{10**39}",
}


@pytest.mark.parametrize("header", BAD_SYNTAX.values(), ids=BAD_SYNTAX.keys())
def test_it_ignores_invalid_range_syntax_with_the_whole_file(alice_client, stored, header) -> None:
    response = _get(alice_client, stored, header)

    assert response.status_code == 200
    assert "Content-Range" not in response
    assert response["Content-Length"] == str(SIZE)
    assert streamed(response) == DATA


def test_it_answers_several_ranges_with_the_one_covering_range(alice_client, stored) -> None:
    # The documented choice (README): one part covering them all, never multipart.
    response = _get(alice_client, stored, f"bytes=0-9, {2 * MiB}-{2 * MiB + 9}, -5")
    partly_outside = _get(alice_client, stored, f"bytes=100-199,{SIZE + 5}-")

    assert response.status_code == 206
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Range"] == f"bytes 0-{SIZE - 1}/{SIZE}"
    assert streamed(response) == DATA
    assert partly_outside.status_code == 206
    assert partly_outside["Content-Range"] == f"bytes 100-199/{SIZE}"
    assert streamed(partly_outside) == DATA[100:200]


def test_it_honours_if_range_only_while_the_validator_matches(alice_client, stored) -> None:
    etag = _get(alice_client, stored)["ETag"]
    last_modified = http_date(int(stored.created_at.timestamp()))
    later = http_date(int(stored.created_at.timestamp()) + 1)

    by_etag = _get(alice_client, stored, "bytes=10-19", HTTP_IF_RANGE=etag)
    by_date = _get(alice_client, stored, "bytes=10-19", HTTP_IF_RANGE=last_modified)
    other_etag = _get(alice_client, stored, "bytes=10-19", HTTP_IF_RANGE='"0123abcd"')
    weak = _get(alice_client, stored, "bytes=10-19", HTTP_IF_RANGE="W/" + etag)
    other_date = _get(alice_client, stored, "bytes=10-19", HTTP_IF_RANGE=later)
    garbage = _get(alice_client, stored, "bytes=10-19", HTTP_IF_RANGE="yesterday")

    assert by_etag.status_code == by_date.status_code == 206
    assert streamed(by_etag) == streamed(by_date) == DATA[10:20]
    for mismatch in (other_etag, weak, other_date, garbage):
        assert mismatch.status_code == 200
        assert streamed(mismatch) == DATA


def test_it_ignores_a_range_on_head(alice_client, stored) -> None:
    response = alice_client.head(_url(stored), HTTP_RANGE="bytes=0-9")

    assert response.status_code == 200
    assert response["Content-Length"] == str(SIZE)
    assert response["Accept-Ranges"] == "bytes"
    assert "Content-Range" not in response
    assert response.content == b""


def test_it_evaluates_if_none_match_and_if_match(alice_client, stored) -> None:
    etag = _get(alice_client, stored)["ETag"]

    unchanged = _get(alice_client, stored, HTTP_IF_NONE_MATCH=etag)
    head = alice_client.head(_url(stored), HTTP_IF_NONE_MATCH=f'"other", {etag}')
    changed = _get(alice_client, stored, HTTP_IF_NONE_MATCH='"other"')
    matching = _get(alice_client, stored, "bytes=0-9", HTTP_IF_MATCH=etag)
    mismatched = _get(alice_client, stored, "bytes=0-9", HTTP_IF_MATCH='"other"')
    weak = _get(alice_client, stored, HTTP_IF_MATCH=f"W/{etag}")
    earlier = http_date(int(stored.created_at.timestamp()) - 60)
    unmodified_since = _get(alice_client, stored, HTTP_IF_UNMODIFIED_SINCE=earlier)

    # RFC 9110 sections 13.1.1 and 13.1.2: 304 with the validators and no body ...
    assert unchanged.status_code == head.status_code == 304
    assert unchanged["ETag"] == head["ETag"] == etag
    assert unchanged.content == b""
    assert unchanged["Cache-Control"] == "private, no-store"
    # ... 412 when If-Match fails (strong comparison) or the file is newer than asked.
    assert mismatched.status_code == weak.status_code == unmodified_since.status_code == 412
    assert changed.status_code == 200
    assert streamed(changed) == DATA
    assert matching.status_code == 206
    assert streamed(matching) == DATA[:10]


def test_a_link_precondition_that_fails_takes_no_download(alice, alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, max_downloads="1")
    visitor = Client()

    refused = visitor.post(f"/s/{token}/", HTTP_IF_MATCH='"other"')
    also = visitor.post(f"/s/{token}/", HTTP_IF_NONE_MATCH="*")
    link.refresh_from_db()
    assert refused.status_code == also.status_code == 412
    assert link.download_count == 0

    first = visitor.post(f"/s/{token}/", HTTP_RANGE="bytes=0-9")
    resume = visitor.get(f"/s/{token}/", HTTP_RANGE="bytes=10-", HTTP_IF_NONE_MATCH=first["ETag"])
    assert resume.status_code == 304
    assert streamed(first) == DATA[:10]
    link.refresh_from_db()
    assert link.download_count == 1


def test_it_keeps_the_etag_through_re_encryption_not_across_contents(alice, stored) -> None:
    client = client_for(alice)
    before = _get(client, stored)["ETag"]
    blob_before = stored.blob.name
    twin = make_file(alice, DATA, name="twin.bin")
    other = make_file(alice, DATA[:-1] + bytes([DATA[-1] ^ 1]), name="other.bin")

    call_command("reencrypt_files", stdout=StringIO())
    stored.refresh_from_db()

    assert stored.blob.name != blob_before
    after = _get(client, stored, "bytes=0-9", HTTP_IF_RANGE=before)
    assert after["ETag"] == before
    assert after.status_code == 206
    assert len({before, _get(client, twin)["ETag"], _get(client, other)["ETag"]}) == 3


def test_it_audits_a_ranged_download_with_its_range(alice_client, stored) -> None:
    streamed(_get(alice_client, stored, "bytes=5-9"))

    entry = AuditEntry.objects.filter(event="file.download", file_id=stored.id).get()
    assert entry.detail == f"via=owner range=bytes 5-9/{SIZE}"


def test_a_colleague_gets_ranges_too(alice_client, bob_client, stored) -> None:
    make_share(alice_client, stored, "bob")

    response = _get(bob_client, stored, "bytes=-3")

    assert response.status_code == 206
    assert streamed(response) == DATA[-3:]


# ---------------------------------------------------------------------------- tampering


def test_a_tampered_segment_outside_the_range_does_not_matter(alice_client, stored) -> None:
    _flip_local(stored, _segment_offset(0) + 100)
    _flip_local(stored, _segment_offset(3) + 100)

    middle = _get(alice_client, stored, f"bytes={MiB + 5}-{2 * MiB + 5}")

    assert middle.status_code == 206
    assert streamed(middle) == DATA[MiB + 5 : 2 * MiB + 6]
    assert _get(alice_client, stored).status_code == 502


def test_a_tampered_first_segment_of_the_range_answers_502(alice_client, stored) -> None:
    _flip_local(stored, _segment_offset(2) + 7)

    response = _get(alice_client, stored, f"bytes={2 * MiB + 1}-")

    assert response.status_code == 502
    assert "Content-Range" not in response
    assert DATA[2 * MiB : 2 * MiB + 64] not in response.content


def test_a_tampered_later_segment_of_the_range_breaks_the_stream(alice_client, stored) -> None:
    _flip_local(stored, _segment_offset(2) + 7)

    response = _get(alice_client, stored, f"bytes={MiB - 10}-{3 * MiB}")
    assert response.status_code == 206
    received = bytearray()
    with pytest.raises(BlobIntegrityError):
        for chunk in response.streaming_content:
            received += chunk

    # Only verified segments left: the range's part of segments 0 and 1, nothing of 2.
    assert bytes(received) == DATA[MiB - 10 : 2 * MiB]
    assert len(received) < int(response["Content-Length"])


def test_a_range_ending_before_the_last_segment_still_checks_the_blob_length(
    alice_client, stored
) -> None:
    path = blob_path(stored)
    path.write_bytes(path.read_bytes()[:-1])  # truncated: the row's size no longer fits

    assert _get(alice_client, stored, "bytes=0-9").status_code == 502


# ---------------------------------------------------------------------------- the reader


class CountingSource(BytesIO):
    """A blob in memory that counts the bytes read from it."""

    read_count = 0

    def readinto(self, buffer) -> int:  # type: ignore[override]
        count = super().readinto(buffer)
        self.read_count += count
        return count

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_count += len(data)
        return data


def _cost_of(blob: bytes, key: FileKey, size: int, start: int, stop: int) -> tuple[bytes, int]:
    source = CountingSource(blob)

    def open_span(begin: int, end: int) -> BytesIO:
        source.seek(begin)
        return source

    reader = DecryptingReader(
        source, key, expected_size=size, ciphertext_length=len(blob), open_span=open_span
    )
    data = b"".join(reader.plaintext_range(start, stop))
    return data, source.read_count


def test_a_range_at_the_end_costs_what_one_at_the_start_costs() -> None:
    segment = 64 * 1024
    size = 300 * segment + 777  # 301 segments
    plaintext = os.urandom(size)
    key = FileKey.generate()
    blob = encrypt_bytes(plaintext, key, segment)

    head, head_cost = _cost_of(blob, key, size, 0, segment)
    tail, tail_cost = _cost_of(blob, key, size, size - segment, size)

    assert head == plaintext[:segment]
    assert tail == plaintext[-segment:]
    # The header, and the one or two segments the range touches: never the blob.
    assert head_cost == HEADER_SIZE + segment + TAG_SIZE
    assert tail_cost <= HEADER_SIZE + 2 * (segment + TAG_SIZE)


# ---------------------------------------------------------------------------- S3


def _flip_s3(moto_server: str, bucket_name: str, stored: StoredFile, offset: int) -> None:
    client = s3_client(moto_server)
    key = stored.blob.name
    blob = bytearray(client.get_object(Bucket=bucket_name, Key=key)["Body"].read())
    blob[offset] ^= 0x01
    client.put_object(Bucket=bucket_name, Key=key, Body=bytes(blob))


def test_it_reads_only_the_ranges_segments_from_s3(alice, alice_client, moto_server, bucket):  # noqa: F811
    on_s3 = make_file(alice, DATA, name="big.bin", content_type="application/octet-stream")
    # Segments 0 and 1 tampered: a reader that fetched and checked them would fail.
    _flip_s3(moto_server, bucket, on_s3, _segment_offset(0) + 3)
    _flip_s3(moto_server, bucket, on_s3, _segment_offset(1) + 3)

    tail = _get(alice_client, on_s3, "bytes=-1000")
    across = _get(alice_client, on_s3, f"bytes={3 * MiB - 1}-{3 * MiB + 1}")
    inside = _get(alice_client, on_s3, f"bytes={MiB}-{MiB + 9}")

    assert tail.status_code == across.status_code == 206
    assert streamed(tail) == DATA[-1000:]
    assert streamed(across) == DATA[3 * MiB - 1 : 3 * MiB + 2]
    assert inside.status_code == 502
    assert _get(alice_client, on_s3).status_code == 502


# ---------------------------------------------------------------------------- curl and wget


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_and_wget_resume_a_broken_download(alice, live_server, tmp_path) -> None:
    stored = make_file(alice, DATA, name="big.bin")
    cookie = f"sessionid={client_for(alice).cookies['sessionid'].value}"
    url = f"{live_server.url}{_url(stored)}"
    expected = hashlib.sha256(DATA).hexdigest()

    partial = tmp_path / "curl.bin"
    partial.write_bytes(DATA[: MiB + 4321])  # what a broken transfer left behind
    subprocess.run(
        ["curl", "-sSf", "-C", "-", "-b", cookie, "-o", str(partial), url],
        check=True,
        timeout=60,
    )
    assert _sha256(partial) == expected

    if shutil.which("wget") is not None:
        partial = tmp_path / "wget.bin"
        partial.write_bytes(DATA[: 2 * MiB + 1])
        subprocess.run(
            ["wget", "-q", "-c", "--header", f"Cookie: {cookie}", "-O", str(partial), url],
            check=True,
            timeout=60,
        )
        assert _sha256(partial) == expected


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_resumes_a_link_download_without_using_another(alice, live_server, tmp_path) -> None:
    stored = make_file(alice, DATA, name="big.bin")
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    url = f"{live_server.url}/s/{token}/"
    jar = tmp_path / "cookies.txt"
    out = tmp_path / "link.bin"
    curl = ["curl", "-sSf", "-X", "POST", "-b", str(jar), "-c", str(jar), "-o", str(out)]

    subprocess.run([*curl, url], check=True, timeout=60)
    assert _sha256(out) == hashlib.sha256(DATA).hexdigest()
    out.write_bytes(DATA[: 2 * MiB + 77])  # as if the connection had broken there
    subprocess.run([*curl, "-C", "-", url], check=True, timeout=60)

    assert _sha256(out) == hashlib.sha256(DATA).hexdigest()
    link.refresh_from_db()
    assert link.download_count == 1
    # A fresh client (no grant) gets nothing: the one download is used.
    again = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.stdout == "404"
