"""Several app servers behind a load balancer: two gunicorn instances (two workers each) on
two ports over one PostgreSQL database, one S3 bucket (moto_server) and Redis, as the
README's "Several app servers" runs them.

Shown over HTTP, as clients see it: a tus upload started on one instance finishes on the
other; a session from one works on the other; a one-download link claimed 20 times at
once across both delivers exactly once; login lockout and link-password throttling count
across both, and their /metrics together saw it; a master-key rotation done exactly as
the README says never fails a download or an upload on either instance.

Needs PostgreSQL (DATABASE_URL=postgres://...): several hosts cannot share a SQLite file,
so on SQLite the module is skipped. Also needs the tests' Redis (database 13; TESTS_REDIS_URL).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from tusclient.client import TusClient

from sharing.crypto import generate_key_entry
from tests.live_gunicorn import (
    create_user,
    manage,
    server_env,
    start_gunicorn,
    stop_gunicorn,
    wait_until_up,
)
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, s3_client
from tests.test_throttle import redis_is_up, redis_url

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = redis_url(13)
# This module's own range, below the kernel's ephemeral ports: an instance restarts on its
# port, and while it is down no other test (they take ephemeral ports, free_port()) and no
# outgoing connection may take it; a test that did got the instance's answers instead.
PORTS = range(18400, 18500)
MiB = 1024 * 1024
PASSWORD = "Quill-Harbor-7-Lantern"
LINK_PASSWORD = "correct horse battery staple"
SCRAPE_TOKEN = secrets.token_urlsafe(32)
LIMIT = 4  # LOGIN_FAILURE_LIMIT and LINK_PASSWORD_ATTEMPTS of both instances
LINK_RE = re.compile(r"/s/([A-Za-z0-9_-]{20,})/")


pytestmark = [
    pytest.mark.database_url,
    pytest.mark.skipif(
        not DATABASE_URL.startswith("postgres"),
        reason="several app servers share one PostgreSQL database (DATABASE_URL=postgres://...)",
    ),
    pytest.mark.skipif(not redis_is_up(), reason="no Redis for the tests"),
]


def _free_port() -> int:
    """The first port of this module's range that nothing listens on."""
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A fresh PostgreSQL database on DATABASE_URL's server; its URL. Dropped at the end."""
    name = f"several_servers_{secrets.token_hex(4)}"
    parts = urlsplit(DATABASE_URL)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def bucket(moto_server: str) -> str:
    name = f"several-servers-{secrets.token_hex(6)}"
    s3_client(moto_server).create_bucket(Bucket=name)
    return name


@dataclass
class Instance:
    """One app server: its environment, its gunicorn process, its log."""

    env: dict[str, str]
    log: Path
    process: Popen[bytes] | None = None
    up: threading.Event = field(default_factory=threading.Event)

    @property
    def base(self) -> str:
        return f"http://{self.env['GUNICORN_BIND']}"

    def start(self) -> None:
        # Two workers each loading Django on a busy 2-core machine: up to a minute.
        self.process = start_gunicorn(self.env, self.log, seconds=60)
        # What a load balancer waits for before sending it traffic.
        wait_until_up(f"{self.base}/readyz", self.process, 60, ready=lambda r: r.status_code == 200)
        self.up.set()

    def stop(self) -> None:
        self.up.clear()  # the load balancer takes it out first
        if self.process is not None:
            stop_gunicorn(self.process)
            self.process = None

    def restart(self, **env: str) -> None:
        """Stop gracefully, change the environment, start again and wait until ready."""
        self.stop()
        self.env.update(env)
        self.start()


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, database: str, moto_server: str, bucket: str
) -> Iterator[tuple[Instance, Instance]]:
    tmp = tmp_path_factory.mktemp("several-servers")
    shared = {
        # Every instance has the same secrets, database, bucket and Redis (README).
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEYS": generate_key_entry("k1"),
        "DATABASE_URL": database,
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_S3_REGION_NAME": REGION,
        "THROTTLE_REDIS_URL": REDIS_URL,
        "LOGIN_FAILURE_LIMIT": str(LIMIT),
        "LINK_PASSWORD_ATTEMPTS": str(LIMIT),
        "METRICS_TOKEN_SHA256": hashlib.sha256(SCRAPE_TOKEN.encode()).hexdigest(),
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "4",
        "SECUREFILES_ENV_FILE": "",
    }
    first_port = _free_port()
    one = Instance(server_env(tmp, first_port, **shared), tmp / "one.log")
    # Bound before the second port is looked for, so the two differ.
    manage(one.env, "migrate", "--noinput")
    create_user(one.env, "alice", PASSWORD)
    create_user(one.env, "erin", PASSWORD)
    redis.Redis.from_url(REDIS_URL).flushdb()
    one.start()
    two = Instance(server_env(tmp, _free_port(), **shared), tmp / "two.log")
    try:
        two.start()
        yield one, two
    finally:
        two.stop()
        one.stop()
        redis.Redis.from_url(REDIS_URL).flushdb()


# ---------------------------------------------------------------------------- clients


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _login(base: str, username: str = "alice", password: str = PASSWORD) -> requests.Response:
    """Log in on ``base`` in a new session; the response carries it (response.session)."""
    session = _session()
    session.get(f"{base}/accounts/login/", timeout=10)
    response = session.post(
        f"{base}/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        allow_redirects=False,
        timeout=10,
    )
    response.session = session  # type: ignore[attr-defined]
    return response


def _alice(base: str) -> requests.Session:
    response = _login(base)
    assert response.status_code == 302, response.text[:300]
    return response.session  # type: ignore[attr-defined,no-any-return]


def _upload(session: requests.Session, base: str, data: bytes, name: str = "memo.pdf") -> str:
    """Upload through the form on ``base``; the new file's id."""
    response = session.post(
        f"{base}/files/upload/",
        files={"file": (name, data, "application/pdf")},
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Accept": "application/json"},
        timeout=60,
    )
    assert response.status_code == 201, response.text[:300]
    return str(response.json()["files"][0]["id"])


def _download(session: requests.Session, base: str, file_id: str) -> requests.Response:
    return session.get(f"{base}/files/{file_id}/download/", timeout=60)


def _make_link(session: requests.Session, base: str, file_id: str, **fields: str) -> str:
    response = session.post(
        f"{base}/files/{file_id}/links/",
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"], **fields},
        timeout=10,
    )
    assert response.status_code == 201, response.text[:300]
    return LINK_RE.findall(response.text)[0]


def _scrape(base: str) -> dict[tuple[str, frozenset], float]:
    response = requests.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}, timeout=10
    )
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


# ---------------------------------------------------------------------------- tests


def test_both_are_ready_on_postgresql_s3_and_redis(servers: tuple[Instance, Instance]) -> None:
    for server in servers:
        response = requests.get(f"{server.base}/readyz", timeout=10)
        assert response.status_code == 200
        assert set(json.loads(response.text)["checks"].values()) == {"ok"}


def test_a_tus_upload_started_on_one_finishes_on_the_other(
    servers: tuple[Instance, Instance],
) -> None:
    one, two = servers
    session = _alice(one.base)
    headers = {
        "Cookie": "; ".join(f"{c.name}={c.value}" for c in session.cookies),
        "X-CSRFToken": session.cookies["csrftoken"],
    }
    data = secrets.token_bytes(8 * MiB + 4321)  # one S3 part, then the rest
    uploader = TusClient(f"{one.base}/files/uploads/", headers=headers).uploader(
        file_stream=io.BytesIO(data), chunk_size=8 * MiB, metadata={"filename": "scan.pdf"}
    )
    uploader.set_url(uploader.create_url())
    uploader.upload_chunk()
    assert uploader.offset == 8 * MiB
    path = urlsplit(uploader.url).path
    uploader.url = two.base + path
    offer = requests.head(uploader.url, headers={**headers, "Tus-Resumable": "1.0.0"}, timeout=10)
    assert offer.headers["Upload-Offset"] == str(8 * MiB)
    uploader.upload_chunk()
    assert uploader.offset == len(data)

    file_id = path.rstrip("/").rsplit("/", 1)[1]
    for server in servers:
        assert _download(session, server.base, file_id).content == data


def test_a_session_from_one_works_on_the_other(servers: tuple[Instance, Instance]) -> None:
    one, two = servers
    session = _alice(one.base)

    for server in (two, one, two):
        page = session.get(f"{server.base}/", allow_redirects=False, timeout=10)
        assert page.status_code == 200
        assert "alice" in page.text
    file_id = _upload(session, two.base, b"from the second instance\n")
    assert _download(session, one.base, file_id).content == b"from the second instance\n"


def test_a_one_download_link_claimed_20_times_across_both_delivers_once(
    servers: tuple[Instance, Instance],
) -> None:
    one, two = servers
    session = _alice(one.base)
    data = secrets.token_bytes(256 * 1024)
    token = _make_link(session, one.base, _upload(session, one.base, data), max_downloads="1")
    before = [_scrape(server.base) for server in servers]
    barrier = threading.Barrier(20)

    def claim(n: int) -> tuple[int, bytes]:
        barrier.wait()
        response = _session().post(f"{servers[n % 2].base}/s/{token}/", timeout=60)
        return response.status_code, response.content

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(claim, range(20)))

    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: 1, 404: 19}
    assert [body for status, body in answers if status == 200] == [data]
    # Each instance's /metrics sums its two workers; together they saw one delivery.
    after = [_scrape(server.base) for server in servers]
    sent = sum(
        a[("securefiles_download_bytes_total", frozenset())]
        - b[("securefiles_download_bytes_total", frozenset())]
        for a, b in zip(after, before, strict=True)
    )
    assert sent == len(data)
    claims = frozenset({"view": "sharing:link", "method": "POST", "status": "404"}.items())
    refused = sum(
        a.get(("securefiles_http_requests_total", claims), 0)
        - b.get(("securefiles_http_requests_total", claims), 0)
        for a, b in zip(after, before, strict=True)
    )
    assert refused == 19


def test_login_lockout_counts_across_both(servers: tuple[Instance, Instance]) -> None:
    statuses = [
        _login(servers[n % 2].base, "erin", f"wrong guess {n}").status_code for n in range(LIMIT)
    ]

    # Two failures per instance: had each counted alone, neither would have locked.
    assert statuses[: LIMIT - 1] == [200] * (LIMIT - 1)
    for server in servers:
        assert _login(server.base, "erin", PASSWORD).status_code == 429


def test_link_password_throttling_counts_across_both(servers: tuple[Instance, Instance]) -> None:
    one, two = servers
    session = _alice(one.base)
    token = _make_link(
        session, one.base, _upload(session, one.base, b"terms\n"), password=LINK_PASSWORD
    )

    statuses = [
        _session()
        .post(f"{servers[n % 2].base}/s/{token}/", data={"password": f"guess {n}"}, timeout=10)
        .status_code
        for n in range(LIMIT)
    ]

    assert statuses == [403] * (LIMIT - 1) + [429]
    for server in servers:
        right = _session().post(
            f"{server.base}/s/{token}/", data={"password": LINK_PASSWORD}, timeout=10
        )
        assert right.status_code == 429


# ---------------------------------------------------------------------------- key rotation


@dataclass
class Traffic:
    """Downloads and uploads sent to both instances, as a load balancer would: only to an
    instance it sees up (an instance that refuses the connection is skipped, as a load
    balancer's health check would). Every other failure is recorded."""

    servers: tuple[Instance, Instance]
    files: dict[str, bytes]
    failures: list[str] = field(default_factory=list)
    served: Counter = field(default_factory=Counter)
    uploaded: Counter = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _targets(self, n: int) -> Iterator[Instance]:
        for server in (self.servers[n % 2], self.servers[(n + 1) % 2]):
            if server.up.is_set():
                yield server

    def _try(self, n: int, send, tally: Counter) -> None:  # type: ignore[no-untyped-def]
        for server in self._targets(n):
            try:
                problem = send(server)
            except requests.ConnectionError as exc:
                if "Connection refused" in str(exc):
                    continue  # stopped between the check and the connect: next one
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                self.failures.append(f"{server.base}: {problem}")
            else:
                with self.lock:
                    tally[server.base] += 1
            return

    def download(self, session: requests.Session) -> None:
        n = 0
        while not self.stop.is_set():
            with self.lock:
                # Every other one the newest file, which the other instance may have stored.
                pick = -1 if n % 2 else (n // 2) % len(self.files)
                file_id, data = list(self.files.items())[pick]

            def send(server: Instance, file_id: str = file_id, data: bytes = data) -> str:
                response = _download(session, server.base, file_id)
                if response.status_code != 200 or response.content != data:
                    return f"download {response.status_code}, {len(response.content)} bytes"
                return ""

            self._try(n, send, self.served)
            n += 1

    def upload(self, session: requests.Session) -> None:
        n = 0
        while not self.stop.is_set():
            data = secrets.token_bytes(50_000 + n)

            def send(server: Instance, data: bytes = data, name: str = f"during-{n}.pdf") -> str:
                file_id = _upload(session, server.base, data, name=name)
                with self.lock:
                    self.files[file_id] = data
                return ""

            self._try(n, send, self.uploaded)
            n += 1
            time.sleep(0.3)

    def wait_for_both(self, count: int = 6) -> None:
        """Until each instance has stored a new file, and then served ``count`` more
        downloads (half of them of the newest file): every instance in the mix."""
        self._wait(self.uploaded, 1)
        self._wait(self.served, count)

    def _wait(self, tally: Counter, count: int) -> None:
        with self.lock:
            target = {server.base: tally[server.base] + count for server in self.servers}
        while any(tally[base] < goal for base, goal in target.items()):
            assert not self.failures, self.failures
            time.sleep(0.05)


def test_a_key_rotation_as_the_readme_says_never_fails_a_request(
    servers: tuple[Instance, Instance],
) -> None:
    one, two = servers
    session = _alice(one.base)
    files = {}
    for n in range(6):
        data = secrets.token_bytes(64 * 1024 * (n + 1))
        files[_upload(session, servers[n % 2].base, data)] = data
    old, new = one.env["ENCRYPTION_KEYS"], generate_key_entry("k2")
    traffic = Traffic(servers, dict(files))
    workers = [
        threading.Thread(target=traffic.download, args=(_alice(one.base),)),
        threading.Thread(target=traffic.download, args=(_alice(two.base),)),
        threading.Thread(target=traffic.upload, args=(_alice(one.base),)),
    ]
    for worker in workers:
        worker.start()
    try:
        traffic.wait_for_both()
        # README "Rotating a master key", on every instance one by one at each step.
        # 1. The new key after the old one: every instance can read what it will wrap.
        for server in servers:
            server.restart(ENCRYPTION_KEYS=f"{old},{new}")
            traffic.wait_for_both()
        # 2. The new key first: new files are wrapped under it.
        for server in servers:
            server.restart(ENCRYPTION_KEYS=f"{new},{old}")
            traffic.wait_for_both()
        # 3. Re-wrap every data key under the new key, while traffic goes on.
        manage(one.env, "rotate_keys")
        traffic.wait_for_both()
        # 4. Nothing needs the old key any more: remove it.
        manage({**one.env, "ENCRYPTION_KEYS": new}, "check", "--fail-level", "WARNING")
        for server in servers:
            server.restart(ENCRYPTION_KEYS=new)
            traffic.wait_for_both()
    finally:
        traffic.stop.set()
        for worker in workers:
            worker.join(timeout=120)

    assert traffic.failures == []
    assert len(traffic.files) > len(files)  # uploads went on through every step
    assert _not_intact(session, servers, traffic.files) == []
    manage(one.env, "verify_files")


def _not_intact(
    session: requests.Session, servers: tuple[Instance, ...], files: dict[str, bytes]
) -> list[str]:
    """Every file downloaded from every instance, 8 at a time (each in a session of its own
    with ``session``'s cookies): the ones that did not come back byte-identical."""

    def check(job: tuple[Instance, str]) -> str:
        server, file_id = job
        own = _session()
        own.cookies.update(session.cookies)
        response = _download(own, server.base, file_id)
        if response.status_code == 200 and response.content == files[file_id]:
            return ""
        return f"{server.base} {file_id}: {response.status_code}, {len(response.content)} bytes"

    jobs = [(server, file_id) for file_id in files for server in servers]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [problem for problem in pool.map(check, jobs) if problem]
