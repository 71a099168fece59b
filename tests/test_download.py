"""GET/HEAD /files/<id>/download/: the exact bytes, safe headers, and no unverified byte."""

from __future__ import annotations

import logging
import os
import shutil
import threading

import pytest
from django.http import HttpResponseBase, StreamingHttpResponse
from django.test import Client

from audit.events import Event
from audit.models import AuditEntry
from audit.selectors import verify_chain
from sharing.crypto import DEFAULT_SEGMENT_SIZE, HEADER_SIZE, TAG_SIZE, BlobIntegrityError
from sharing.models import StoredFile
from sharing.views import streaming
from tests.helpers import MiB, blob_path, make_file, make_link, streamed, upload

pytestmark = pytest.mark.django_db

SEALED_SEGMENT = DEFAULT_SEGMENT_SIZE + TAG_SIZE
MARKER = b"PLAINTEXT-MARKER-7c1f0e"


def _url(stored: StoredFile) -> str:
    return f"/files/{stored.id}/download/"


def _flip_byte(stored: StoredFile, offset: int) -> None:
    path = blob_path(stored)
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))


def _marked(size: int) -> bytes:
    """Random bytes with MARKER at the start of every 64 KiB, so any leak shows."""
    data = bytearray(os.urandom(size))
    for start in range(0, size - len(MARKER) + 1, 64 * 1024):
        data[start : start + len(MARKER)] = MARKER
    return bytes(data)


def _integrity_errors(caplog: pytest.LogCaptureFixture, stored: StoredFile) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and "integrity" in r.getMessage()
        and str(stored.id) in r.getMessage()
    ]


def _integrity_audited(stored: StoredFile) -> list[AuditEntry]:
    """The audit chain's integrity-failure entries for this file (the chain must hold)."""
    assert verify_chain().intact
    return list(AuditEntry.objects.filter(event=Event.INTEGRITY_ERROR, file_id=stored.id))


def _assert_no_plaintext_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert MARKER.decode() not in caplog.text
    for record in caplog.records:
        assert MARKER.decode() not in record.getMessage()


# ---------------------------------------------------------------------------- content


@pytest.mark.parametrize(
    "size",
    [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 12345],
    ids=["empty", "one byte", "1 MiB - 1", "1 MiB", "1 MiB + 1", "about 3 MiB"],
)
def test_it_returns_the_uploaded_bytes(alice_client, size) -> None:
    data = os.urandom(size)
    assert upload(alice_client, ("data.bin", data)).status_code == 302
    stored = StoredFile.objects.get()

    response = alice_client.get(_url(stored))

    assert response.status_code == 200
    assert response["Content-Length"] == str(size)
    body = streamed(response)
    assert len(body) == size
    assert body == data


def test_it_streams_in_chunks_of_at_most_one_segment(alice, alice_client) -> None:
    data = os.urandom(3 * MiB + 5)
    stored = make_file(alice, data)

    response = alice_client.get(_url(stored))

    assert isinstance(response, StreamingHttpResponse)
    # No file descriptor a server could sendfile() in place of the plaintext.
    assert getattr(response, "file_to_stream", None) is None
    chunks = list(response.streaming_content)
    assert len(chunks) >= 4
    assert max(len(chunk) for chunk in chunks) <= MiB + 1024
    assert b"".join(chunks) == data


def test_it_sends_safe_download_headers(alice, alice_client) -> None:
    stored = make_file(alice, b"%PDF-1.7 hello", name="report.pdf", content_type="application/pdf")

    response = alice_client.get(_url(stored))

    assert response["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert response["Content-Length"] == "14"
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Frame-Options"] == "DENY"
    streamed(response)


NON_ASCII_NAMES = {
    "accents": ("Résumé café.pdf", "Resume cafe.pdf", "R%C3%A9sum%C3%A9%20caf%C3%A9.pdf"),
    "cjk": ("東京 report.txt", "__ report.txt", "%E6%9D%B1%E4%BA%AC%20report.txt"),
    "look-alike quote and slash": (
        "a\uff02b\uff0fc.txt",
        "a_b_c.txt",
        "a%EF%BC%82b%EF%BC%8Fc.txt",
    ),
    "nothing ascii": ("東京", "__", "%E6%9D%B1%E4%BA%AC"),
}


@pytest.mark.parametrize(
    ("name", "fallback", "encoded"), NON_ASCII_NAMES.values(), ids=NON_ASCII_NAMES.keys()
)
def test_every_download_of_a_non_ascii_name_has_an_ascii_fallback(
    alice, alice_client, name, fallback, encoded
) -> None:
    # RFC 6266 section 4.3: filename= (ASCII) for clients that ignore filename*, then
    # filename*; the owner's download and a share link's download alike.
    stored = make_file(alice, b"contents", name=name)
    token, _ = make_link(alice_client, stored)
    expected = f"attachment; filename=\"{fallback}\"; filename*=utf-8''{encoded}"

    owner = alice_client.get(_url(stored))
    visitor = Client().post(f"/s/{token}/")

    assert owner.status_code == visitor.status_code == 200
    assert owner["Content-Disposition"] == expected
    assert visitor["Content-Disposition"] == expected
    assert streamed(owner) == streamed(visitor) == b"contents"


def test_it_serves_html_as_a_sandboxed_attachment(alice, alice_client) -> None:
    html = b"<script>alert(document.cookie)</script>"
    stored = make_file(alice, html, name="page.html", content_type="text/html")

    response = alice_client.get(_url(stored))

    assert response["Content-Type"] == "text/html"
    assert response["Content-Disposition"] == 'attachment; filename="page.html"'
    assert response["X-Content-Type-Options"] == "nosniff"
    csp = response["Content-Security-Policy"]
    assert "sandbox" in csp
    assert "default-src 'none'" in csp
    assert streamed(response) == html


# ---------------------------------------------------------------------------- HEAD


def test_it_answers_head_with_headers_only(alice, alice_client) -> None:
    stored = make_file(alice, b"z" * 5000, name="z.txt")

    response = alice_client.head(_url(stored))

    assert response.status_code == 200
    assert response["Content-Length"] == "5000"
    assert response["Content-Disposition"] == 'attachment; filename="z.txt"'
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert not response.streaming
    assert response.content == b""


def test_it_answers_head_without_reading_the_blob(alice, alice_client) -> None:
    stored = make_file(alice, b"x" * 2000)
    _flip_byte(stored, HEADER_SIZE + 10)

    head = alice_client.head(_url(stored))
    get = alice_client.get(_url(stored))

    assert head.status_code == 200
    assert head["Content-Length"] == "2000"
    assert get.status_code == 502


def test_it_answers_head_with_the_blob_gone(alice, alice_client) -> None:
    stored = make_file(alice, b"x" * 2000)
    blob_path(stored).unlink()

    assert alice_client.head(_url(stored)).status_code == 200
    assert alice_client.get(_url(stored)).status_code == 502


# ---------------------------------------------------------------------------- integrity


def test_it_answers_502_to_a_corrupted_first_segment(alice, alice_client, sharing_log) -> None:
    stored = make_file(alice, _marked(200_000))
    _flip_byte(stored, HEADER_SIZE + 100)

    response = alice_client.get(_url(stored))

    assert response.status_code == 502
    assert not response.streaming
    assert b"could not be verified" in response.content
    assert MARKER not in response.content
    assert "Content-Disposition" not in response
    assert _integrity_errors(sharing_log, stored)
    _assert_no_plaintext_logged(sharing_log)


def _read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "download-read-ahead"]


def test_a_download_closed_mid_stream_stops_its_read_ahead(alice, alice_client) -> None:
    data = os.urandom(6 * MiB)
    stored = make_file(alice, data)
    response = alice_client.get(_url(stored))
    chunks = iter(response.streaming_content)

    assert next(chunks) + next(chunks) == data[: 2 * MiB]
    response.close()  # what the WSGI server does when the client goes away

    assert _read_ahead_threads() == []


def test_the_read_ahead_stays_a_few_segments_ahead() -> None:
    pulled = []

    def source():
        for index in range(10):
            pulled.append(index)
            yield bytes([index])

    ahead = streaming._read_ahead(source(), depth=2)
    assert next(ahead) == b"\x00"
    deadline = threading.Event()
    deadline.wait(0.2)  # room for the thread to run ahead as far as it may (no timing assert)
    # One being handed over, two queued, one waiting to be queued: never the whole file.
    assert len(pulled) <= 4
    assert b"".join(ahead) == bytes(range(1, 10))
    assert _read_ahead_threads() == []


def test_the_read_ahead_raises_a_failure_after_what_came_before() -> None:
    def source():
        yield b"a"
        yield b"b"
        raise BlobIntegrityError("segment failed authentication")

    received = []
    with pytest.raises(BlobIntegrityError):
        for chunk in streaming._read_ahead(source()):
            received.append(chunk)
    assert received == [b"a", b"b"]
    assert _read_ahead_threads() == []


def test_it_breaks_the_stream_at_a_corrupted_later_segment(
    alice, alice_client, sharing_log
) -> None:
    data = _marked(2 * MiB + MiB // 2)
    stored = make_file(alice, data)
    _flip_byte(stored, HEADER_SIZE + SEALED_SEGMENT + 100)

    response = alice_client.get(_url(stored))

    assert response.status_code == 200
    assert response["Content-Length"] == str(len(data))
    received = b""
    with pytest.raises(BlobIntegrityError):
        for chunk in response.streaming_content:
            received += chunk
    assert len(received) < len(data)
    assert received == data[: len(received)]  # only verified segments went out
    assert len(received) <= DEFAULT_SEGMENT_SIZE
    assert _integrity_errors(sharing_log, stored)
    _assert_no_plaintext_logged(sharing_log)


def test_it_answers_502_to_a_blob_cut_at_a_segment_boundary(alice, alice_client) -> None:
    # Its length no longer fits the row's size, so this is found before any header.
    data = os.urandom(2 * MiB + 10)
    stored = make_file(alice, data)
    path = blob_path(stored)
    path.write_bytes(path.read_bytes()[: HEADER_SIZE + 2 * SEALED_SEGMENT])

    response = alice_client.get(_url(stored))

    assert response.status_code == 502
    assert not response.streaming
    assert _integrity_audited(stored)


def test_it_answers_502_to_a_blob_cut_inside_its_only_segment(alice, alice_client) -> None:
    stored = make_file(alice, b"short file")
    path = blob_path(stored)
    path.write_bytes(path.read_bytes()[:-1])

    assert alice_client.get(_url(stored)).status_code == 502


def test_it_answers_502_to_bytes_appended_to_a_blob(alice, alice_client) -> None:
    stored = make_file(alice, b"short file")
    with blob_path(stored).open("ab") as blob:
        blob.write(b"\x00" * 16)

    assert alice_client.get(_url(stored)).status_code == 502


def test_it_answers_502_to_a_missing_blob(alice, alice_client, sharing_log) -> None:
    stored = make_file(alice, b"gone")
    blob_path(stored).unlink()

    response = alice_client.get(_url(stored))

    assert response.status_code == 502
    assert _integrity_errors(sharing_log, stored)


def test_it_answers_502_to_another_files_blob(alice, alice_client) -> None:
    first = make_file(alice, b"A" * 1000, name="a.txt")
    second = make_file(alice, b"B" * 1000, name="b.txt")
    shutil.copyfile(blob_path(first), blob_path(second))

    response = alice_client.get(_url(second))

    assert response.status_code == 502
    assert b"AAAA" not in response.content
    assert streamed(alice_client.get(_url(first))) == b"A" * 1000


def test_it_answers_502_to_an_unknown_master_key(alice, alice_client, sharing_log) -> None:
    stored = make_file(alice, b"secret")
    StoredFile.objects.filter(pk=stored.pk).update(key_id="retired")

    response = alice_client.get(_url(stored))

    assert response.status_code == 502
    assert _integrity_errors(sharing_log, stored)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_it_answers_502_to_a_damaged_wrapped_key(alice, alice_client, damage) -> None:
    stored = make_file(alice, b"secret")
    wrapped = bytearray(stored.wrapped_key)
    wrapped[-1] ^= 0x80
    damaged = {"flip": bytes(wrapped), "truncate": bytes(wrapped[:-1]), "empty": b""}[damage]
    StoredFile.objects.filter(pk=stored.pk).update(wrapped_key=damaged)

    response = alice_client.get(_url(stored))

    assert response.status_code == 502
    assert b"secret" not in response.content


def test_it_answers_502_to_another_files_wrapped_key(alice, alice_client) -> None:
    first = make_file(alice, b"first")
    second = make_file(alice, b"second")
    StoredFile.objects.filter(pk=second.pk).update(wrapped_key=first.wrapped_key)

    assert alice_client.get(_url(second)).status_code == 502


# ---------------------------------------------------------------------------- audit trail


def _fetch(how: str, stored: StoredFile, owner_client: Client) -> HttpResponseBase:
    """GET as the owner, or POST to a fresh share link as an anonymous visitor."""
    if how == "owner":
        return owner_client.get(_url(stored))
    token, _link = make_link(owner_client, stored, expires_in_hours="24")
    return Client().post(f"/s/{token}/")


@pytest.mark.parametrize("how", ["owner", "link"])
def test_it_audits_a_first_segment_that_fails(alice, alice_client, how) -> None:
    stored = make_file(alice, _marked(200_000))
    _flip_byte(stored, HEADER_SIZE + 100)

    response = _fetch(how, stored, alice_client)

    assert response.status_code == 502
    [entry] = _integrity_audited(stored)
    assert "first segment failed" in entry.detail
    assert ("via=owner" if how == "owner" else "via=link") in entry.detail
    assert entry.actor == ("alice" if how == "owner" else f"link {stored.links.get().pk}")
    if how == "owner":  # nothing was sent: the owner's activity must not say "Downloaded"
        assert not AuditEntry.objects.filter(event="file.download", file_id=stored.id).exists()


@pytest.mark.parametrize("how", ["owner", "link"])
def test_it_audits_a_later_segment_that_fails_mid_stream(alice, alice_client, how) -> None:
    data = _marked(2 * MiB + 100)
    stored = make_file(alice, data)
    _flip_byte(stored, HEADER_SIZE + SEALED_SEGMENT + 100)

    response = _fetch(how, stored, alice_client)

    assert response.status_code == 200
    assert not _integrity_audited(stored)  # nothing has failed yet: headers only
    with pytest.raises(BlobIntegrityError):
        streamed(response)
    [entry] = _integrity_audited(stored)
    assert "later segment failed" in entry.detail


# ---------------------------------------------------------------------------- row size


@pytest.mark.parametrize("how", ["owner", "link"])
@pytest.mark.parametrize("delta", [-1, -MiB, 1, MiB])
def test_it_answers_502_when_the_row_size_does_not_fit_the_blob(
    alice, alice_client, sharing_log, how, delta
) -> None:
    # Someone with write access to the database (and no key) edits `size`: before, a
    # smaller size ended the download early with a clean 200 (curl exit 0).
    data = _marked(2 * MiB + 100)
    stored = make_file(alice, data)
    StoredFile.objects.filter(pk=stored.pk).update(size=len(data) + delta)
    stored.refresh_from_db()

    response = _fetch(how, stored, alice_client)

    assert response.status_code == 502
    assert not response.streaming
    assert "Content-Length" not in response or response["Content-Length"] != str(stored.size)
    assert MARKER not in response.content
    [entry] = _integrity_audited(stored)
    assert "expected size" in entry.detail
    assert _integrity_errors(sharing_log, stored)


def test_it_still_serves_a_row_whose_size_fits_the_blob(alice, alice_client) -> None:
    data = os.urandom(2 * MiB)  # exactly two full segments: the boundary case
    stored = make_file(alice, data)

    response = alice_client.get(_url(stored))

    assert response.status_code == 200
    assert streamed(response) == data
    assert not _integrity_audited(stored)
