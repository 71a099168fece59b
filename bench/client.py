"""The HTTP client: log in, stream one file up as multipart, find it, stream it back.

Every function takes a `requests.Session` that talks to the loopback server directly.
Sizes are in bytes, times in seconds (time.perf_counter), CPU in seconds of this process.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from bench.common import MIB

UUID_RE = re.compile(
    r"/files/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/download/"
)


class MultipartFileBody:
    """multipart/form-data body streamed from a file, with an exact length.

    requests sees `__len__` and sends Content-Length (no chunked encoding); urllib3 sends
    each item of `__iter__` with sendall, so the client holds one 1 MiB piece at a time.
    """

    def __init__(self, path: Path, fields: dict[str, str], filename: str) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.boundary = "----securefilesbench" + secrets.token_hex(16)
        parts = []
        for name, value in fields.items():
            parts.append(
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n"
            )
        parts.append(
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        self.preamble = "".join(parts).encode()
        self.epilogue = f"\r\n--{self.boundary}--\r\n".encode()
        self.first_byte_at: float | None = None
        self.last_byte_at: float | None = None

    @property
    def content_type(self) -> str:
        """The Content-Type header, with the boundary."""
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        """The body's size in bytes: the Content-Length."""
        return len(self.preamble) + self.size + len(self.epilogue)

    def __iter__(self) -> Iterator[bytes]:
        """The body in pieces of at most 1 MiB; records when the first and the last piece
        were handed over."""
        self.first_byte_at = time.perf_counter()
        yield self.preamble
        with open(self.path, "rb") as source:
            while chunk := source.read(MIB):
                yield chunk
        yield self.epilogue
        self.last_byte_at = time.perf_counter()


def write_random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path`, 1 MiB at a time; return their SHA-256 (hex)."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(MIB, remaining))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def new_session() -> requests.Session:
    """A session with no proxy and no netrc: loopback only."""
    session = requests.Session()
    session.trust_env = False
    return session


def login(session: requests.Session, base: str, username: str, password: str) -> None:
    """Log in through the login form (CSRF cookie and Referer); RuntimeError if refused."""
    url = base + "/accounts/login/"
    page = session.get(url, timeout=10)
    page.raise_for_status()
    token = session.cookies.get("csrftoken")
    if not token:
        raise RuntimeError("login page set no csrftoken cookie")
    response = session.post(
        url,
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": url},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login failed: HTTP {response.status_code}")


def _prepare_upload(
    session: requests.Session, base: str, body: MultipartFileBody, token: str
) -> requests.PreparedRequest:
    """The upload request; RuntimeError if requests would not send an exact length."""
    request = requests.Request(
        "POST",
        base + "/files/upload/",
        data=body,
        headers={
            "Content-Type": body.content_type,
            "Content-Length": str(len(body)),
            "X-CSRFToken": token,
            "Referer": base + "/",
        },
    )
    prepared = session.prepare_request(request)
    if "Transfer-Encoding" in prepared.headers or prepared.headers["Content-Length"] != str(
        len(body)
    ):
        raise RuntimeError("the upload would not be sent with an exact Content-Length")
    return prepared


def upload(session: requests.Session, base: str, path: Path) -> dict[str, Any]:
    """POST the file at `path` to /files/upload/, streamed; times in seconds.

    The clock runs from the first body byte handed to the socket to the response (302).
    """
    token = session.cookies.get("csrftoken")  # rotated by the login
    if token is None:
        raise RuntimeError("no CSRF cookie after logging in")
    body = MultipartFileBody(path, {"csrfmiddlewaretoken": token}, "bench.bin")
    prepared = _prepare_upload(session, base, body, token)
    client_cpu = time.process_time()
    response = session.send(prepared, allow_redirects=False, timeout=(5, 300))
    done = time.perf_counter()
    client_cpu = time.process_time() - client_cpu
    if response.status_code != 302:
        raise RuntimeError(f"upload failed: HTTP {response.status_code}\n{response.text[:800]}")
    assert body.first_byte_at is not None and body.last_byte_at is not None
    return {
        "seconds": done - body.first_byte_at,
        "send_seconds": body.last_byte_at - body.first_byte_at,
        "response_after_last_byte_seconds": done - body.last_byte_at,
        "body_bytes": len(body),
        "client_cpu_seconds": client_cpu,
    }


def find_file_id(session: requests.Session, base: str) -> str:
    """The UUID of the one file listed on the home page; RuntimeError if not exactly one."""
    page = session.get(base + "/", timeout=30)
    page.raise_for_status()
    ids = UUID_RE.findall(page.text)
    if len(set(ids)) != 1:
        raise RuntimeError(f"expected exactly one file on the home page, found {sorted(set(ids))}")
    return ids[0]


def download(session: requests.Session, base: str, file_id: str) -> dict[str, Any]:
    """GET the file's download URL, streamed 1 MiB at a time and hashed as it arrives.

    The clock runs from sending the request to the last byte; times in seconds.
    """
    url = f"{base}/files/{file_id}/download/"
    digest = hashlib.sha256()
    received = 0
    client_cpu = time.process_time()
    start = time.perf_counter()
    with session.get(url, stream=True, timeout=(5, 120)) as response:
        headers_at = time.perf_counter()
        if response.status_code != 200:
            raise RuntimeError(f"download failed: HTTP {response.status_code}")
        length = response.headers.get("Content-Length")
        for chunk in response.iter_content(MIB):
            digest.update(chunk)
            received += len(chunk)
    done = time.perf_counter()
    return {
        "seconds": done - start,
        "time_to_headers_seconds": headers_at - start,
        "content_length": int(length) if length is not None else None,
        "received_bytes": received,
        "sha256": digest.hexdigest(),
        "client_cpu_seconds": time.process_time() - client_cpu,
    }


def check_round_trip(down: dict[str, Any], size: int, sha256: str) -> None:
    """AssertionError unless the download has the uploaded file's length and hash."""
    if down["content_length"] != size:
        raise AssertionError(f"Content-Length {down['content_length']} != {size}")
    if down["received_bytes"] != size or down["sha256"] != sha256:
        raise AssertionError("downloaded bytes differ from the uploaded file")
