"""Server control: a throw-away portal (own temp dir, SQLite DB, MEDIA_ROOT and keys)
served by gunicorn on a free loopback port, and stopped again however the run ends.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.common import log
from bench.procstat import children_of, stat_fields
from sharing.crypto import generate_key_entry
from tests.live_gunicorn import free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

CREATE_USER = """
import os
from django.contrib.auth import get_user_model
get_user_model().objects.create_user(
    os.environ["BENCH_USERNAME"], password=os.environ["BENCH_PASSWORD"]
)
"""


@dataclass(frozen=True)
class Site:
    """A migrated portal in `tmp` with one user; `env` is what gunicorn runs with."""

    tmp: Path
    env: dict[str, str]
    base: str  # http://127.0.0.1:<port>
    username: str
    password: str
    workers: int

    @property
    def log_path(self) -> Path:
        """Where gunicorn's output (error and access log) goes."""
        return self.tmp / "gunicorn.log"


def bench_env(
    tmp: Path, port: int, size_mb: int, workers: int, threads: int, username: str, password: str
) -> dict[str, str]:
    """The environment of the portal: fresh secrets, everything under `tmp`, uploads of
    `size_mb` MiB allowed. These variables override anything in .env."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "securefiles.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEYS": generate_key_entry("bench"),
        "DEBUG": "False",
        "ALLOWED_HOSTS": HOST,
        "HTTPS": "False",
        "CSRF_TRUSTED_ORIGINS": "",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp / "media"),
        "MAX_UPLOAD_MB": str(size_mb + 16),  # room for the multipart framing
        "LOG_LEVEL": "WARNING",
        "GUNICORN_BIND": f"{HOST}:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_TIMEOUT": "600",
        "BENCH_USERNAME": username,
        "BENCH_PASSWORD": password,
        "PYTHONUNBUFFERED": "1",
    }


def run_manage(env: dict[str, str], *args: str, timeout: float = 180) -> None:
    """Run `manage.py args` in `env` (at most `timeout` seconds); RuntimeError with its
    output if it fails."""
    result = subprocess.run(  # noqa: S603 (fixed argv, our own interpreter)
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"manage.py {args[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def prepare_site(tmp: Path, size_mb: int, workers: int, threads: int) -> Site:
    """Pick a free port, migrate a new database in `tmp` and create the benchmark user.

    The password goes through the environment, never on a command line.
    """
    port = free_port()
    username, password = "bench", secrets.token_urlsafe(24)
    env = bench_env(tmp, port, size_mb, workers, threads, username, password)
    log("migrate and create the user")
    run_manage(env, "migrate", "--noinput", "--verbosity", "0")
    run_manage(env, "shell", "--no-imports", "-c", CREATE_USER)
    return Site(tmp, env, f"http://{HOST}:{port}", username, password, workers)


def start_gunicorn(site: Site) -> subprocess.Popen[bytes]:
    """Start gunicorn with the project's gunicorn.conf.py in its own process group."""
    log(f"starting gunicorn on {site.base}")
    script = Path(sys.executable).with_name("gunicorn")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gunicorn"]
    command += ["securefiles.wsgi", "-c", str(ROOT / "gunicorn.conf.py")]
    with open(site.log_path, "wb") as log_file:
        return subprocess.Popen(  # noqa: S603 (fixed argv)
            command,
            cwd=ROOT,
            env=site.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so a stuck tree can be killed
        )


def wait_for_gunicorn(proc: subprocess.Popen[bytes], site: Site, timeout: float = 60) -> None:
    """Wait until the login page answers 200 and all `site.workers` workers exist;
    RuntimeError with the log's tail if gunicorn exits or `timeout` seconds pass."""

    def ready(response: requests.Response) -> bool:
        return response.status_code == 200 and len(children_of(proc.pid)) >= site.workers

    try:
        wait_until_up(site.base + "/accounts/login/", proc, timeout, ready=ready)
    except RuntimeError as error:
        raise RuntimeError(f"{error}:\n{tail(site.log_path)}") from error


def stop_gunicorn(proc: subprocess.Popen[bytes], worker_pids: set[int]) -> None:
    """SIGTERM, then SIGKILL to the process group after 30 s; then kill any worker in
    `worker_pids` that a dying master left behind (only if still in our group)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # graceful: idle workers exit at once
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group we created, master alive
            proc.wait(timeout=10)
    for pid in worker_pids:  # a worker orphaned by a dying master: only if still ours
        fields = stat_fields(pid)
        if fields and int(fields[2]) == proc.pid:  # field 5: process group
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def shut_down(
    proc: subprocess.Popen[bytes], site: Site, workers_seen: set[int], succeeded: bool
) -> None:
    """Stop gunicorn and its workers (those seen so far and those alive now); show the
    log's tail if the run failed or gunicorn did not exit cleanly."""
    stop_gunicorn(proc, workers_seen | set(children_of(proc.pid)))
    if not succeeded or proc.returncode not in (0, None):
        log(f"gunicorn exit code {proc.returncode}; log tail:\n{tail(site.log_path)}")


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a text file; "" if it cannot be read."""
    with suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""
