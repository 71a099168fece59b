"""The probes under real gunicorn as a load balancer and an attacker reach them: a plain
HTTP probe to a pod's address (HTTPS=True, Host: 10.0.3.7, GET and HEAD) is answered, and
no path trick turns another URL into a probe (so none skips the host check, the HTTPS
redirect or any other middleware): a trailing slash, another case, a doubled slash, a
query, or a SCRIPT_NAME header naming a prefix to strip."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.live_gunicorn import free_port, manage, running_gunicorn, server_env

POD = "10.0.3.7"


def _raw(port: int, request: bytes) -> bytes:
    """Send one raw HTTP/1.1 request (Connection: close); the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _get(port: int, path: str, *headers: str, method: str = "GET") -> tuple[int, bytes]:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {POD}", "Connection: close", *headers]
    answer = _raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_probes_answer_a_load_balancer_and_no_path_trick_reaches_them(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path, port, HTTPS="True", ALLOWED_HOSTS="files.example.org")
    manage(env, "migrate", "--noinput")

    with running_gunicorn(env, tmp_path / "gunicorn.log"):
        assert _get(port, "/healthz")[0] == 200
        assert _get(port, "/readyz?from=lb")[0] == 200
        assert _get(port, "/readyz", method="HEAD") == (200, b"")
        for trick in ("/healthz/", "/HEALTHZ", "//healthz", "/x/healthz", "/healthz%2F"):
            # Any other URL: refused for its host, as every non-probe URL is.
            assert _get(port, trick)[0] == 400, trick
        # gunicorn strips a SCRIPT_NAME header's prefix from the path when the peer is a
        # trusted forwarder (127.0.0.1 by default): the portal is never mounted under a
        # prefix, so a client must not be able to make /x/healthz (or /x/admin/, past a
        # proxy's path rule) look like another path.
        assert _get(port, "/x/healthz", "SCRIPT_NAME: /x")[0] == 400
