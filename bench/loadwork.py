"""What one load-test client does: list, upload (form and tus), download, claim links.

Every operation checks what it gets back (status, and for content the SHA-256 of every
byte against what was uploaded) and records its latency in a shared `Tally`. Sizes are in
bytes, times in seconds (time.perf_counter). Traffic goes to the loopback server only.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests

from bench.client import UUID_RE
from bench.common import MIB

LINK_RE = re.compile(r'value="https?://[^/"]+/s/([^/"]+)/"')
TUS_CHUNK = 8 * MIB  # multi-PATCH uploads: whole segments per PATCH (README, tus)
# Seconds per socket operation. One value for connect and read: urllib3 applies the connect
# timeout to sending the body too, and a body waits unread while every server thread is
# busy (50 clients, 16 threads), so a 5 s connect timeout failed a PATCH at load 18.
TIMEOUT = 120


class OperationFailed(Exception):
    """An answer the portal should not have given (status, header or body)."""


class Mismatch(OperationFailed):
    """Bytes downloaded differ from the bytes uploaded."""


@dataclass
class Tally:
    """Counts and latencies of every client, under one lock."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, name: str, seconds: float) -> None:
        """Record one `name` operation that took `seconds`."""
        with self.lock:
            self.latencies[name].append(seconds)

    def moved(self, *, up: int = 0, down: int = 0) -> None:
        """Add bytes of plaintext sent (`up`) and received and checked (`down`)."""
        with self.lock:
            self.bytes_up += up
            self.bytes_down += down

    def failed(self, operation: str, error: Exception) -> None:
        """Record an error; a Mismatch counts as one too."""
        with self.lock:
            self.errors.append(f"{operation}: {type(error).__name__}: {error}"[:300])
            if isinstance(error, Mismatch):
                self.mismatches += 1


@dataclass(frozen=True)
class Uploaded:
    """A file this client uploaded: its id, size and SHA-256 (hex)."""

    file_id: str
    size: int
    sha256: str


class Payloads:
    """Distinct contents cheaply: a 16-byte random prefix and a slice of one random buffer.

    Every upload is a new plaintext (its prefix), so a download that returned another
    upload's bytes would not match, while the client spends no CPU making random bytes.
    """

    def __init__(self, max_size: int, seed: int) -> None:
        self.pool = random.Random(seed).randbytes(max_size + MIB)  # noqa: S311 (test data)

    def make(self, size: int, rng: random.Random) -> tuple[bytes, memoryview, str]:
        """A prefix and the rest (together `size` bytes), and their SHA-256 (hex)."""
        prefix = secrets.token_bytes(16)
        start = rng.randrange(MIB)
        rest = memoryview(self.pool)[start : start + size - len(prefix)]
        return prefix, rest, _sha(prefix, rest)


def _sha(*parts: bytes | memoryview) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


class MultipartBody:
    """A multipart/form-data body (CSRF field, one `file` part) from memory, with an exact
    length: requests sends it in pieces of at most 1 MiB, with a Content-Length."""

    def __init__(self, token: str, name: str, parts: tuple[bytes, memoryview]) -> None:
        self.boundary = "----securefilesload" + secrets.token_hex(16)
        self.head = (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"'
            f"\r\n\r\n{token}\r\n--{self.boundary}\r\nContent-Disposition: form-data; "
            f'name="file"; filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        self.parts = parts
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    def __len__(self) -> int:
        return len(self.head) + sum(len(p) for p in self.parts) + len(self.tail)

    def __iter__(self) -> Iterator[bytes | memoryview]:
        yield self.head
        for part in self.parts:
            for offset in range(0, len(part), MIB):
                yield part[offset : offset + MIB]
        yield self.tail


@dataclass
class LoadClient:
    """One client: a logged-in session (copied cookies), its files, its random choices."""

    base: str
    cookies: dict[str, str]
    tally: Tally
    payloads: Payloads
    rng: random.Random
    sizes: tuple[int, int]  # smallest and largest upload, bytes
    keep_files: int = 4
    files: list[Uploaded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only: no proxy, no netrc
        self.session.cookies.update(self.cookies)
        self.csrf = self.cookies["csrftoken"]

    def run_until(self, stop_at: float) -> None:
        """Do operations, chosen at random, until `stop_at` (perf_counter seconds)."""
        while time.perf_counter() < stop_at:
            name = self.choose()
            try:
                getattr(self, name)()
            except (OperationFailed, requests.RequestException) as error:
                self.tally.failed(name, error)

    def choose(self) -> str:
        """The next operation: uploads until the client has a file, deletes beyond
        `keep_files` (so a long run's disk use stays bounded), otherwise weighted."""
        if len(self.files) > self.keep_files:
            return "delete"
        if not self.files:
            return self.rng.choice(("form_upload", "tus_upload"))
        names = ("file_list", "form_upload", "tus_upload", "download", "link_claim")
        return self.rng.choices(names, weights=(3, 1, 1, 3, 1))[0]

    def file_list(self) -> None:
        """GET / (my files, newest first): 200, listing this client's newest file (the
        account's other clients upload fewer than a page, 50, in the meantime)."""
        start = time.perf_counter()
        page = self.session.get(self.base + "/", timeout=TIMEOUT)
        self.tally.timed("file list", time.perf_counter() - start)
        _expect(page, 200)
        if self.files[-1].file_id not in set(UUID_RE.findall(page.text)):
            raise OperationFailed(f"the file list lacks {self.files[-1].file_id}")

    def _new_payload(self) -> tuple[bytes, memoryview, str]:
        return self.payloads.make(self.rng.randint(*self.sizes), self.rng)

    def form_upload(self) -> None:
        """POST /files/upload/ (multipart, streamed); the new file is found by its page."""
        prefix, rest, sha = self._new_payload()
        body = MultipartBody(self.csrf, f"load-{secrets.token_hex(4)}.bin", (prefix, rest))
        headers = {
            "Content-Type": f"multipart/form-data; boundary={body.boundary}",
            "Content-Length": str(len(body)),
            "X-CSRFToken": self.csrf,
            "Referer": self.base + "/",
            "Accept": "application/json",
        }
        start = time.perf_counter()
        answer = self.session.post(
            self.base + "/files/upload/", data=body, headers=headers, timeout=TIMEOUT
        )
        self.tally.timed("form upload", time.perf_counter() - start)
        _expect(answer, 201)
        [created] = answer.json()["files"]
        self.tally.moved(up=len(prefix) + len(rest))
        self._uploaded(str(created["id"]), len(prefix) + len(rest), sha)

    def tus_upload(self) -> None:
        """tus 1.0.0: create, then one PATCH (half the time) or 8 MiB PATCHes."""
        prefix, rest, sha = self._new_payload()
        data = memoryview(prefix + bytes(rest))
        start = time.perf_counter()
        location = self._tus_create(len(data))
        chunk = len(data) if self.rng.random() < 0.5 else TUS_CHUNK
        offset = 0
        while offset < len(data):
            offset = self._tus_patch(location, offset, data[offset : offset + chunk])
        self.tally.timed("tus upload", time.perf_counter() - start)
        self._uploaded(location.rstrip("/").rsplit("/", 1)[1], len(data), sha)

    def _tus_headers(self, **extra: str) -> dict[str, str]:
        return {"Tus-Resumable": "1.0.0", "X-CSRFToken": self.csrf, **extra}

    def _tus_create(self, length: int) -> str:
        name = base64.b64encode(f"load-{secrets.token_hex(4)}.bin".encode()).decode()
        headers = self._tus_headers(
            **{"Upload-Length": str(length), "Upload-Metadata": f"filename {name}"}
        )
        answer = self.session.post(self.base + "/files/uploads/", headers=headers, timeout=TIMEOUT)
        _expect(answer, 201)
        return (
            self.base
            + "/files/uploads/"
            + answer.headers["Location"].rstrip("/").rsplit("/", 1)[1]
            + "/"
        )

    def _tus_patch(self, location: str, offset: int, chunk: memoryview) -> int:
        headers = self._tus_headers(
            **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        )
        answer = self.session.patch(location, data=bytes(chunk), headers=headers, timeout=TIMEOUT)
        _expect(answer, 204)
        acknowledged = int(answer.headers["Upload-Offset"])
        if acknowledged != offset + len(chunk):
            raise OperationFailed(f"PATCH at {offset} acknowledged {acknowledged}")
        self.tally.moved(up=len(chunk))
        return acknowledged

    def _uploaded(self, file_id: str, size: int, sha: str) -> None:
        self.files.append(Uploaded(file_id, size, sha))

    def download(self) -> None:
        """GET a file of this client's; time to first byte, then every byte checked."""
        wanted = self.rng.choice(self.files)
        self._fetch("download", "GET", f"{self.base}/files/{wanted.file_id}/download/", wanted)

    def link_claim(self) -> None:
        """Create a link for 2 downloads; claim it twice anonymously, then see it refuse."""
        wanted = self.rng.choice(self.files)
        page = self.session.post(
            f"{self.base}/files/{wanted.file_id}/links/",
            data={"expires_in_hours": "1", "max_downloads": "2", "password": ""},
            headers={"X-CSRFToken": self.csrf, "Referer": self.base + "/"},
            timeout=TIMEOUT,
        )
        _expect(page, 201)
        [token] = LINK_RE.findall(page.text)
        with requests.Session() as visitor:
            visitor.trust_env = False
            url = f"{self.base}/s/{token}/"
            for _ in range(2):
                self._fetch("link download", "POST", url, wanted, session=visitor)
            _expect(visitor.post(url, timeout=TIMEOUT), 404)  # used up

    def _fetch(
        self,
        label: str,
        method: str,
        url: str,
        wanted: Uploaded,
        session: requests.Session | None = None,
    ) -> None:
        digest, received = hashlib.sha256(), 0
        start = time.perf_counter()
        with (session or self.session).request(method, url, stream=True, timeout=TIMEOUT) as got:
            _expect(got, 200)
            for chunk in got.iter_content(MIB):
                if not received:
                    self.tally.timed(f"{label} time to first byte", time.perf_counter() - start)
                digest.update(chunk)
                received += len(chunk)
        self.tally.timed(label, time.perf_counter() - start)
        self.tally.moved(down=received)
        if received != wanted.size or digest.hexdigest() != wanted.sha256:
            raise Mismatch(f"{url}: {received} bytes, not the {wanted.size} uploaded")

    def delete(self) -> None:
        """POST /files/<id>/delete/ for the oldest file: a redirect, then its URL is 404."""
        gone = self.files.pop(0)
        url = f"{self.base}/files/{gone.file_id}/"
        headers = {"X-CSRFToken": self.csrf, "Referer": self.base + "/"}
        answer = self.session.post(url + "delete/", headers=headers, timeout=TIMEOUT)
        _expect(answer, 200, 302)
        _expect(self.session.get(url + "download/", timeout=TIMEOUT), 404)


def _expect(answer: requests.Response, *statuses: int) -> None:
    if answer.status_code not in statuses:
        raise OperationFailed(
            f"{answer.request.method} {answer.url}: HTTP {answer.status_code}, "
            f"expected {statuses}: {answer.text[:120]!r}"
        )
