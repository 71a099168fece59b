"""Real job workers for the tests of the queue: `manage.py` processes on the test database.

The tests that use these are transactional (their rows are committed, so another process
sees them). The processes get this process's environment (secrets, MEDIA_ROOT) with the
database queue on and DATABASE_URL pointing at the test database, SQLite or PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
DATABASE_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def current_database_url() -> str:
    """DATABASE_URL of the database this test runs on (pytest-django's test_ copy)."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgres://{params['USER']}{password}@{host}:{port}/{params['NAME']}"


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=current_database_url(), TASKS_BACKEND="database", DEBUG="False")
    env.update(extra)
    return env


def manage(*args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `manage.py args` on the test database; its completed process (any exit code)."""
    return subprocess.run(  # noqa: S603  (our interpreter and manage.py, no shell)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=worker_env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def worker_batch(**extra: str) -> subprocess.CompletedProcess[str]:
    """One `db_worker --batch`: runs every job that is ready, then exits."""
    return manage(
        "db_worker", "--batch", "--no-reload", "--no-startup-delay", "--queue-name", "*", **extra
    )


@contextmanager
def started(*args: str, **extra: str) -> Iterator[subprocess.Popen[str]]:
    """`manage.py args` running in the background; killed (if still running) at the end."""
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=worker_env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


class _LoopbackServer:
    """A TCP server on 127.0.0.1 (a free port) that hands each connection to ``_serve``."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return  # closed
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


class HungSMTPServer(_LoopbackServer):
    """A mail server that hangs: accepts connections and never says a word.
    ``connections`` counts the connections it accepted."""

    def __init__(self) -> None:
        self.connections = 0
        self._held: list[socket.socket] = []
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        self.connections += 1
        self._held.append(conn)  # kept open, never answered

    def close(self) -> None:
        super().close()
        for conn in self._held:
            conn.close()


class TinySMTPServer(_LoopbackServer):
    """A minimal SMTP server (RFC 5321's happy path) that keeps every message it receives:
    ``messages`` is a list of (recipients, raw message bytes)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 tiny ESMTP\r\n")
        recipients: list[str] = []
        with conn, reader:
            for line in reader:
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 tiny\r\n")
                elif verb == b"RCPT":
                    recipients.append(line.split(b":", 1)[1].strip(b" <>\r\n").decode())
                    conn.sendall(b"250 ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    data = b""
                    for body_line in reader:
                        if body_line == b".\r\n":
                            break
                        data += body_line
                    self.messages.append((recipients, data))
                    recipients = []
                    conn.sendall(b"250 queued\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:  # MAIL, RSET, NOOP
                    conn.sendall(b"250 ok\r\n")
