"""Stalled and slow clients against real gunicorn on loopback (CLIENT_IDLE_TIMEOUT_SECONDS).

One gunicorn per module (the project's gunicorn.conf.py, 1 worker, 4 threads) with an
idle timeout of IDLE seconds. Stalled clients (more than the threads) must be dropped by
the server and must not keep it from answering others; a slow client that keeps sending,
or keeps reading, must finish normally. Every wait is a poll against a deadline; the
module takes about 30 seconds.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from tests.live_gunicorn import create_user, free_port, manage, running_gunicorn, server_env

pytestmark = pytest.mark.slow

IDLE = 2  # CLIENT_IDLE_TIMEOUT_SECONDS of the server, in seconds
THREADS = 4
STALLED = 40  # stalled connections: ten times the threads
# Slack for the server to notice, answer and close (gunicorn's graceful close waits up
# to 2 s for the client to close its side), and for a loaded 2-core test machine.
SLACK = 6
PASSWORD = "Slow-Client-Password-37"
BIG = 16 * 1024 * 1024  # bytes: more than the kernel buffers both sides of loopback hold


@dataclass
class Server:
    base: str
    host: str
    port: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running gunicorn with IDLE seconds of idle timeout and one user, alice."""
    tmp = tmp_path_factory.mktemp("slow")
    port = free_port()
    env = server_env(
        tmp, port, CLIENT_IDLE_TIMEOUT_SECONDS=str(IDLE), GUNICORN_THREADS=str(THREADS)
    )
    manage(env, "migrate", "--noinput")
    create_user(env, "alice", PASSWORD)
    with running_gunicorn(env, tmp / "gunicorn.log") as base:
        yield Server(base, "127.0.0.1", port, tmp / "gunicorn.log")


def _csrf_cookie(server: Server) -> str:
    response = requests.get(f"{server.base}/accounts/login/", timeout=10)
    assert response.status_code == 200
    return response.cookies["csrftoken"]


def _connect(server: Server) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    return sock


def _head(server: Server, path: str, length: int, cookie: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\nCookie: csrftoken={cookie}\r\n\r\n"
    ).encode()


def _read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection; TimeoutError at the
    deadline (time.monotonic()) if it is still open."""
    received = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"still open; received {received[:200]!r}")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received
        except TimeoutError as exc:
            raise TimeoutError(f"still open; received {received[:200]!r}") from exc
        if not data:
            return received
        received += data


def _probe_until_answered(server: Server, deadline: float) -> requests.Response:
    """GET the login page again and again until it is answered or the deadline passes."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the server answered no probe before the deadline")
        try:
            return requests.get(f"{server.base}/accounts/login/", timeout=min(1.0, left))
        except (requests.ConnectionError, requests.Timeout):
            continue


def _assert_clean_log(server: Server) -> None:
    log = server.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert not re.search(r'" 5\d\d ', log), log[-3000:]


def test_stalled_bodies_are_dropped_and_others_served_again(server: Server) -> None:
    cookie = _csrf_cookie(server)
    # Two bytes of a promised hundred; with the CSRF cookie there, CsrfViewMiddleware
    # reads the body (the worst case: without it, a 403 comes before any read).
    stalls = [_connect(server) for _ in range(STALLED)]
    started = time.monotonic()
    for sock in stalls:
        sock.sendall(_head(server, "/accounts/login/", 100, cookie) + b"us")
    # More stalled connections than threads: the idle time counts from each client's last
    # byte, so the ones queued behind the first THREADS are dropped as soon as a thread
    # takes them, and the probe is answered within one idle timeout and a few seconds.
    assert STALLED > THREADS
    rounds = 1

    probe = _probe_until_answered(server, started + rounds * IDLE + SLACK)

    assert probe.status_code == 200
    for sock in stalls:
        with sock:
            answer = _read_until_closed(sock, started + rounds * IDLE + 2 * SLACK)
        # A clean 400 page, or nothing if the connection went before the answer did.
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    _assert_clean_log(server)
    assert "no byte of the request body for 2 s" in server.log_text()


def test_a_client_stalled_in_its_headers_is_dropped(server: Server) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /accounts/login/ HTTP/1.1\r\nHost: 127")

        assert _read_until_closed(sock, started + IDLE + SLACK) == b""

    assert requests.get(f"{server.base}/accounts/login/", timeout=10).status_code == 200
    _assert_clean_log(server)


def test_a_slow_but_moving_login_body_completes(server: Server) -> None:
    cookie = _csrf_cookie(server)
    body = urlencode(
        {"csrfmiddlewaretoken": cookie, "username": "alice", "password": PASSWORD}
    ).encode()
    pieces = 2 * IDLE + 2  # one piece a second: 6 s in all, three times the idle timeout
    size = -(-len(body) // pieces)
    with _connect(server) as sock:
        sock.sendall(_head(server, "/accounts/login/", len(body), cookie))
        for start in range(0, len(body), size):
            time.sleep(1)  # pacing the client, not an assertion: 1 s < IDLE between bytes
            sock.sendall(body[start : start + size])
        sock.settimeout(10)
        status_line = sock.recv(65536).split(b"\r\n", 1)[0]

    assert status_line == b"HTTP/1.1 302 Found"  # logged in: the whole body was read
    _assert_clean_log(server)


@pytest.fixture(scope="module")
def big_file(server: Server) -> tuple[requests.Session, str, str]:
    """alice's session, the download URL of a BIG-byte file of hers, and its SHA-256."""
    session = requests.Session()
    session.get(f"{server.base}/accounts/login/", timeout=10)
    csrf = session.cookies["csrftoken"]
    login = session.post(
        f"{server.base}/accounts/login/",
        data={"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 302, login.text
    data = secrets.token_bytes(BIG)
    uploaded = session.post(
        f"{server.base}/files/upload/",
        files={"file": ("big.bin", data, "application/octet-stream")},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Accept": "application/json"},
        timeout=60,
    )
    assert uploaded.status_code == 201, uploaded.text
    [stored] = uploaded.json()["files"]
    url = f"{server.base}/files/{stored['id']}/download/"
    return session, url, hashlib.sha256(data).hexdigest()


def test_a_big_download_still_completes(big_file: tuple[requests.Session, str, str]) -> None:
    session, url, digest = big_file

    response = session.get(url, timeout=30)

    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == digest


def test_a_client_that_stops_reading_a_download_is_dropped(
    server: Server, big_file: tuple[requests.Session, str, str]
) -> None:
    session, url, _ = big_file
    path = urlsplit(url).path
    cookies = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
    dropped_before = server.log_text().count("Closed a connection idle for too long")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(5)
        sock.connect((server.host, server.port))
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
            f"Cookie: {cookies}\r\n\r\n".encode()
        )
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 "), head[:200]
        # Now read nothing: the server's send buffer fills and its write stalls.
        deadline = time.monotonic() + IDLE + 2 * SLACK
        while server.log_text().count("Closed a connection idle for too long") == dropped_before:
            assert time.monotonic() < deadline, "the stalled download was not dropped"
            time.sleep(0.2)
        received = len(head) + len(_read_until_closed(sock, time.monotonic() + SLACK))

    assert received < BIG  # cut off, not completed
    # The thread is free again: the server still answers.
    assert requests.get(f"{server.base}/accounts/login/", timeout=10).status_code == 200
    _assert_clean_log(server)
