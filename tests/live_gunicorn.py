"""Start the portal under real gunicorn on loopback, for the live tests.

Shared by the live test modules: a free port, an environment with fresh secrets and its
own SQLite file and MEDIA_ROOT, manage.py commands in it, and a gunicorn process (the
project's gunicorn.conf.py) that is stopped again however the test ends.

`free_port` and `wait_until_up` are also used by tests/s3server.py and by the benchmark
(bench/server.py), so this module imports nothing from Django: it works without settings.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlparse

import requests

from sharing.crypto import generate_key_entry

ROOT = Path(__file__).resolve().parent.parent  # the repository root, settings.BASE_DIR


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a portal under `tmp`, bound to 127.0.0.1:`port`.

    One worker with 4 threads unless `extra` says otherwise (GUNICORN_THREADS=...); any
    other setting can be given in `extra` too.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "GUNICORN_", "MEDIA_", "HTTPS"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="securefiles.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        ENCRYPTION_KEYS=generate_key_entry("live1"),
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        MEDIA_ROOT=str(tmp / "media"),
        STORAGE_BACKEND="local",
        DEBUG="False",
        HTTPS="False",
        ALLOWED_HOSTS="127.0.0.1",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="4",
    )
    env.update(extra)
    return env


def recreate_postgres_database(url: str) -> None:
    """DROP (closing its connections) and CREATE the PostgreSQL database that `url` names,
    through the server's "postgres" database. Only for throw-away databases."""
    import psycopg
    from psycopg import sql

    parsed = urlparse(url)
    name = sql.Identifier(parsed.path.lstrip("/"))
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def manage_run(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `manage.py args` in `env` to its end (at most `timeout` seconds): its exit code
    and output, whatever they are."""
    return subprocess.run(  # noqa: S603  (our own interpreter and manage.py, no shell)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def manage(env: dict[str, str], *args: str) -> None:
    """Run `manage.py args` in `env`; AssertionError with its output if it fails."""
    result = manage_run(env, *args)
    assert result.returncode == 0, result.stdout + result.stderr


def create_user(env: dict[str, str], username: str, password: str) -> None:
    """Create a user with a password in the portal's database."""
    create = "from django.contrib.auth.models import User; User.objects.create_user"
    manage(env, "shell", "-c", f"{create}({username!r}, password={password!r})")


def wait_until_up(
    url: str,
    process: subprocess.Popen[bytes],
    seconds: float = 20,
    *,
    name: str = "gunicorn",
    ready: Callable[[requests.Response], bool] | None = None,
) -> None:
    """Poll `url` every 0.1 s until it answers and `ready(response)` holds (by default any
    answer will do).

    RuntimeError if `process` (called `name` in the message) exits or `seconds` seconds
    pass. The probe goes straight to the loopback server: no proxy, no netrc.
    """
    deadline = time.monotonic() + seconds
    with requests.Session() as probe:
        probe.trust_env = False
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            with suppress(requests.RequestException):
                response = probe.get(url, timeout=2)
                if ready is None or ready(response):
                    return
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer within {seconds:g} seconds")


def start_gunicorn(
    env: dict[str, str], log_path: Path, seconds: float = 20
) -> subprocess.Popen[bytes]:
    """Start gunicorn in `env` (migrated already), its output appended to `log_path`, and
    wait until it answers. Raises RuntimeError (after stopping it) if it does not answer
    within `seconds`."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gunicorn", "securefiles.wsgi", "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(f"http://{env['GUNICORN_BIND']}/accounts/login/", process, seconds)
    except RuntimeError:
        stop_gunicorn(process)
        raise
    return process


def stop_gunicorn(process: subprocess.Popen[bytes]) -> None:
    """Stop gunicorn gracefully (SIGTERM: requests in flight finish), killed after 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_gunicorn(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Run gunicorn in `env` (migrated already), output to `log_path`; yield its base URL.

    Raises RuntimeError if it does not answer within 20 seconds; it is stopped on exit.
    """
    process = start_gunicorn(env, log_path)
    try:
        yield f"http://{env['GUNICORN_BIND']}"
    finally:
        stop_gunicorn(process)
