"""tus 1.0.0 against real gunicorn with a real client (tuspy 1.1.0).

Two gunicorn instances share one SQLite database and one MEDIA_ROOT (and the same keys):
an upload's PATCHes alternate between them, some cut mid-segment by the client's chunk
size, and a connection killed mid-PATCH is resumed from the offset the server stored. A
server stopped mid-upload and started again (same database, media folder and keys) takes
the upload up where it was.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from tusclient.client import TusClient

from tests.live_gunicorn import create_user, free_port, manage, running_gunicorn, server_env

MiB = 1024 * 1024
PART = 8 * MiB  # an S3 part of a resumable upload: 8 segments
PASSWORD = "Quill-Harbor-7-Lantern"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("tus-live")
    first = server_env(tmp, free_port())
    second = {**first, "GUNICORN_BIND": f"127.0.0.1:{free_port()}"}
    manage(first, "migrate", "--noinput")
    create_user(first, "alice", PASSWORD)
    with running_gunicorn(first, tmp / "first.log") as one:
        with running_gunicorn(second, tmp / "second.log") as two:
            yield one, two


def _login(base: str) -> dict[str, str]:
    """Headers for a logged-in session: its cookies and the CSRF token (X-CSRFToken)."""
    session = requests.Session()
    session.trust_env = False
    session.get(f"{base}/accounts/login/", timeout=10)
    response = session.post(
        f"{base}/accounts/login/",
        data={
            "username": "alice",
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    return {"Cookie": cookie, "X-CSRFToken": session.cookies["csrftoken"]}


def _on(base: str, url: str) -> str:
    return base + urlsplit(url).path


def _download(base: str, headers: dict[str, str], upload_url: str) -> bytes:
    file_id = urlsplit(upload_url).path.rstrip("/").rsplit("/", 1)[1]
    response = requests.get(f"{base}/files/{file_id}/download/", headers=headers, timeout=60)
    assert response.status_code == 200
    return response.content


def test_patches_alternate_between_two_servers(servers: tuple[str, str]) -> None:
    one, two = servers
    headers = _login(one)
    data = secrets.token_bytes(5 * MiB + 4321)
    client = TusClient(f"{one}/files/uploads/", headers=headers)
    uploader = client.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=MiB + MiB // 2,  # every PATCH ends mid-segment
        metadata={"filename": "minutes.pdf", "filetype": "application/pdf"},
    )
    uploader.set_url(uploader.create_url())
    patches = 0
    while uploader.offset < len(data):
        uploader.url = _on((one, two)[patches % 2], uploader.url)
        before = uploader.offset
        uploader.upload_chunk()
        patches += 1
        assert uploader.offset % MiB == 0 or uploader.offset == len(data)
        assert uploader.offset > before
    assert patches >= 5
    assert _download(two, headers, uploader.url) == data


def _patch_request(base: str, headers: dict[str, str], path: str, length: int) -> bytes:
    """The head of a PATCH at offset 0 announcing ``length`` body bytes."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    return (
        f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Cookie: {headers['Cookie']}\r\nX-CSRFToken: {headers['X-CSRFToken']}\r\n"
        "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
        "Content-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _patch_killed(base: str, headers: dict[str, str], url: str, data: bytes, sent: int) -> None:
    """A PATCH of all of ``data`` whose connection is killed after ``sent`` body bytes."""
    address = (urlsplit(base).hostname, urlsplit(base).port)
    with socket.create_connection(address) as sock:
        sock.sendall(_patch_request(base, headers, urlsplit(url).path, len(data)) + data[:sent])
        time.sleep(0.5)


def test_a_connection_killed_mid_patch_resumes(servers: tuple[str, str]) -> None:
    one, two = servers
    headers = _login(one)
    data = secrets.token_bytes(3 * MiB + 99)
    created = requests.post(
        f"{one}/files/uploads/",
        headers={**headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    _patch_killed(one, headers, url, data, 2 * MiB + 500)
    deadline = time.monotonic() + 20
    offset = -1
    while time.monotonic() < deadline:
        answer = requests.head(
            _on(two, url), headers={**headers, "Tus-Resumable": "1.0.0"}, timeout=10
        )
        offset = int(answer.headers["Upload-Offset"])
        if offset == 2 * MiB:
            break
        time.sleep(0.2)
    assert offset == 2 * MiB
    client = TusClient(f"{two}/files/uploads/", headers=headers)
    uploader = client.uploader(file_stream=io.BytesIO(data), url=_on(two, url))
    # The lease of the killed PATCH is released when its body ends; retry if it is not yet.
    for _ in range(20):
        try:
            uploader.upload()
            break
        except Exception:  # tuspy raises TusCommunicationError on 423
            time.sleep(0.5)
            uploader.offset = uploader.get_offset()
    assert hashlib.sha256(_download(one, headers, url)).digest() == hashlib.sha256(data).digest()


def test_an_upload_resumes_on_a_restarted_server(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())
    manage(env, "migrate", "--noinput")
    create_user(env, "alice", PASSWORD)
    data = secrets.token_bytes(4 * MiB + 4321)
    with running_gunicorn(env, tmp_path / "before.log") as before:
        headers = _login(before)
        client = TusClient(f"{before}/files/uploads/", headers=headers)
        uploader = client.uploader(
            file_stream=io.BytesIO(data),
            chunk_size=MiB,
            metadata={"filename": "thesis.pdf", "filetype": "application/pdf"},
        )
        uploader.set_url(uploader.create_url())
        uploader.upload_chunk()
        uploader.upload_chunk()
        assert uploader.offset == 2 * MiB
        url = uploader.url
    # No PATCH in flight: the server was terminated between two requests. A new instance
    # (another process, another port) on the same database and MEDIA_ROOT takes over.
    restarted_env = {**env, "GUNICORN_BIND": f"127.0.0.1:{free_port()}"}
    with running_gunicorn(restarted_env, tmp_path / "after.log") as after:
        answer = requests.head(
            _on(after, url), headers={**headers, "Tus-Resumable": "1.0.0"}, timeout=10
        )
        assert answer.status_code == 200
        assert answer.headers["Upload-Offset"] == str(2 * MiB)
        client = TusClient(f"{after}/files/uploads/", headers=headers)
        resumed = client.uploader(file_stream=io.BytesIO(data), url=_on(after, url), chunk_size=MiB)
        assert resumed.offset == 2 * MiB  # tuspy asked the new server where to go on
        resumed.upload()
        assert _download(after, headers, url) == data


def _raw_patch(base: str, headers: dict[str, str], path: str, length: int, body: bytes) -> bytes:
    """One PATCH on a new connection announcing ``length`` body bytes but sending ``body``;
    everything the server sent until it closed the connection, or "<still open>" after a
    second of silence once it answered (well inside gunicorn's 5 s keep-alive)."""
    with socket.create_connection((urlsplit(base).hostname, urlsplit(base).port)) as sock:
        sock.settimeout(30)  # for the answer
        sock.sendall(_patch_request(base, headers, path, length) + body)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                sock.settimeout(1)
        except TimeoutError:
            received += b"<still open>"
        return received


def test_a_413_says_connection_close_and_the_server_closes(servers: tuple[str, str]) -> None:
    one, _ = servers
    headers = _login(one)
    created = requests.post(
        f"{one}/files/uploads/",
        headers={**headers, "Tus-Resumable": "1.0.0", "Upload-Length": "10"},
        timeout=10,
    )
    path = urlsplit(created.headers["Location"]).path

    # A body past Upload-Length is refused unread: the server will not read 8 MiB to keep
    # the connection, and says so before it closes it (RFC 9112 section 9.6).
    answer = _raw_patch(one, headers, path, 8 * MiB, secrets.token_bytes(256 * 1024))
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"\r\nConnection: close\r\n" in b"\r\n" + rest
    assert not answer.endswith(b"<still open>")

    # A PATCH whose body is read to its end keeps the connection, and says so.
    kept = _raw_patch(one, headers, path, 10, b"0123456789")
    assert kept.startswith(b"HTTP/1.1 204 ")
    assert b"\r\nConnection: keep-alive\r\n" in kept
    assert kept.endswith(b"<still open>")


def test_tuspy_uploads_to_s3_with_a_patch_killed_mid_part(tmp_path: Path, moto_server: str) -> None:
    """STORAGE_BACKEND=s3 against moto_server: tuspy sends a 19 MiB file (parts of 8
    segments), one PATCH is killed mid-part and resumed from the offset the server
    stored (whole parts), and the bucket ends up with one object, all ciphertext, and no
    multipart upload left."""
    from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY
    from tests.test_s3_storage import objects, pending_uploads, s3_client
    from tests.test_tus_s3 import has_marker, marked

    bucket = f"securefiles-live-{secrets.token_hex(6)}"
    s3_client(moto_server).create_bucket(Bucket=bucket)
    env = server_env(
        tmp_path,
        free_port(),
        STORAGE_BACKEND="s3",
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=moto_server,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_S3_REGION_NAME=REGION,
    )
    manage(env, "migrate", "--noinput")
    create_user(env, "alice", PASSWORD)
    data = marked(19 * MiB + 321)
    with running_gunicorn(env, tmp_path / "s3.log") as base:
        headers = _login(base)
        created = requests.post(
            f"{base}/files/uploads/",
            headers={**headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        # A PATCH of the whole file, killed 11.5 MiB in: one part (8 MiB) is stored.
        _patch_killed(base, headers, url, data, 11 * MiB + MiB // 2)
        client = TusClient(f"{base}/files/uploads/", headers=headers)
        uploader = client.uploader(file_stream=io.BytesIO(data), url=url, chunk_size=PART)
        for _ in range(40):  # the killed PATCH holds the upload until its body ends
            try:
                uploader.offset = uploader.get_offset()
                break
            except Exception:  # tuspy raises TusCommunicationError on 423
                time.sleep(0.25)
        assert uploader.offset == 8 * MiB  # resumed after the stored part, not from 0
        uploader.upload()  # one part per PATCH, then the last (short) one
        assert _download(base, headers, url) == data

    stored = objects(moto_server, bucket)
    assert len(stored) == 1
    (blob,) = stored.values()
    assert blob.startswith(b"SFEC") and not has_marker(blob)
    assert pending_uploads(moto_server, bucket) == []
