"""A portal under real gunicorn that the crash and restore tests kill -9 and start again.

The site's database is a throw-away one: SQLite in the test's temp dir, or, when the suite
runs on PostgreSQL (DATABASE_URL), a database of its own beside the suite's
(`<name>_<suffix>`, dropped and created). Its state is read as an operator would: rows
through `manage.py shell`, blobs by walking MEDIA_ROOT, answers over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlparse

import requests

from tests.live_gunicorn import (
    ROOT,
    manage,
    manage_run,
    recreate_postgres_database,
    wait_until_up,
)

STATE = """
import json
from sharing.models import ResumableUpload, StoredFile
print("STATE" + json.dumps({
    "files": {str(f.pk): f.blob.name for f in StoredFile.objects.all()},
    "key_ids": sorted(set(StoredFile.objects.values_list("key_id", flat=True))),
    "uploads": {str(u.pk): [u.blob, u.offset, u.length] for u in ResumableUpload.objects.all()},
}))
"""


def postgres_url(suffix: str) -> str | None:
    """A fresh PostgreSQL database named after the suite's plus `suffix` (dropped and
    created), or None when the suite runs on SQLite."""
    suite = os.environ.get("DATABASE_URL", "")
    if not suite.startswith("postgres"):
        return None
    parsed = urlparse(suite)
    url = parsed._replace(path=f"{parsed.path}_{suffix}").geturl()
    recreate_postgres_database(url)
    return url


def site_state(env: dict[str, str]) -> dict:
    """{"files": {id: blob}, "key_ids": [...], "uploads": {id: [blob, offset, length]}}."""
    result = run_command(env, "shell", "-c", STATE)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("STATE")]
    return json.loads(line[len("STATE") :])


def blobs_on_disk(env: dict[str, str]) -> set[str]:
    """Every file under MEDIA_ROOT/blobs, named as rows name blobs ("blobs/ab/...")."""
    media = Path(env["MEDIA_ROOT"])
    return {str(p.relative_to(media)) for p in (media / "blobs").rglob("*") if p.is_file()}


def run_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`manage.py args` in `env`, to its end (at most 120 s): its exit code and output."""
    return manage_run(env, *args, timeout=120)


def kill_command_after(env: dict[str, str], lines: int, marker: str, *args: str) -> list[str]:
    """Start `manage.py args`, kill -9 it once `lines` output lines started with `marker`
    (or at its end); the lines it printed. AssertionError if it ended before the kill."""
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line.rstrip("\n"))
        if sum(s.startswith(marker) for s in seen) >= lines:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"{args[0]} ended before the kill:\n{seen}"
    return seen


class Gunicorn:
    """gunicorn (the project's gunicorn.conf.py) in its own process group, so that
    kill -9 reaches the master and every worker at once."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.base = f"http://{env['GUNICORN_BIND']}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait (30 s at most) until the login page answers."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "gunicorn", "securefiles.wsgi", "-c", "gunicorn.conf.py"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_up(f"{self.base}/accounts/login/", self.proc, 30)

    def workers(self) -> list[int]:
        """The worker pids (the master's children, from /proc)."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def kill_all(self) -> None:
        """kill -9 the master and its workers (the whole process group)."""
        assert self.proc is not None
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        time.sleep(0.2)  # the kernel reaps the workers: their pids leave the group

    def kill_worker(self, index: int) -> None:
        """kill -9 one worker; the master starts another."""
        workers = self.workers()
        if workers:
            with suppress(ProcessLookupError):
                os.kill(workers[index % len(workers)], signal.SIGKILL)

    def stop(self) -> None:
        """Stop it however it is (SIGTERM, then kill -9 after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill_all()


@contextmanager
def serving(
    env: dict[str, str], log_path: Path, username: str, password: str
) -> Iterator[Gunicorn]:
    """Migrate the site's database, create one user with a password, and serve it under
    gunicorn until the block ends."""
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    create = "from django.contrib.auth.models import User; User.objects.create_user"
    manage(env, "shell", "-c", f"{create}({username!r}, password={password!r})")
    server = Gunicorn(env, log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def logged_in(base: str, username: str, password: str) -> requests.Session:
    """A session logged in through the login form; its CSRF token in `X-CSRFToken`."""
    session = requests.Session()
    session.trust_env = False
    session.get(f"{base}/accounts/login/", timeout=10)
    answer = session.post(
        f"{base}/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.status_code
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Referer": base + "/"})
    return session


def download(session: requests.Session, base: str, file_id: str) -> bytes:
    """The plaintext of a file (AssertionError unless 200)."""
    answer = session.get(f"{base}/files/{file_id}/download/", timeout=60)
    assert answer.status_code == 200, (file_id, answer.status_code)
    return answer.content


MAKE_FILES = """
import json
from django.contrib.auth.models import User
from tests.helpers import make_file
owner = User.objects.get(username=%(owner)r)
ids = [str(make_file(owner, (f"small file {n} " * (n + 1)).encode(), name=f"small-{n}.txt").pk)
       for n in range(%(count)d)]
print("IDS" + json.dumps(ids))
"""


def small_files(env: dict[str, str], owner: str, count: int) -> dict[str, bytes]:
    """Store `count` small files for `owner` through the storage and service (fast: no
    HTTP); their ids and plaintexts."""
    result = run_command(env, "shell", "-c", MAKE_FILES % {"owner": owner, "count": count})
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("IDS")]
    ids = json.loads(line[len("IDS") :])
    return {file_id: (f"small file {n} " * (n + 1)).encode() for n, file_id in enumerate(ids)}
