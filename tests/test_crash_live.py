"""kill -9 at random moments (seeded): gunicorn during 20 uploads, rotate_keys and
reencrypt_files mid-run; then what survives is checked as an operator would.

After the kills and restarts: no file row without its blob; every tus offset a client was
told (204 Upload-Offset) is still there (HEAD) and every upload resumes to its end;
cleanup_storage removes every orphan blob and nothing else (not the blob of an unfinished
upload); verify_files and verify_audit_log are clean; every file that was complete
downloads byte-identical. Runs on the suite's database engine (its own database on
PostgreSQL). Seed: CRASH_SEED (default 16).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import requests

from sharing.crypto import generate_key_entry
from tests.crash_site import (
    Gunicorn,
    blobs_on_disk,
    download,
    kill_command_after,
    logged_in,
    postgres_url,
    run_command,
    serving,
    site_state,
    small_files,
)
from tests.live_gunicorn import free_port, server_env

MiB = 1024 * 1024
PASSWORD = "Crash-Harbor-9-Lantern"
SEED = int(os.environ.get("CRASH_SEED", "16"))
UPLOADS = 20
SMALL_FILES = 40
PHASE_SECONDS = 60  # the uploads give up (and fail the test) after this long

pytestmark = pytest.mark.database_url  # on PostgreSQL, a database of its own (postgres_url)


class PacedBody:
    """A request body of known length sent in 256 KiB pieces 30 ms apart, so that a kill
    finds requests in flight (requests sends Content-Length, from __len__)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[bytes]:
        for offset in range(0, len(self.data), MiB // 4):
            time.sleep(0.03)
            yield self.data[offset : offset + MiB // 4]


@dataclass
class Outcome:
    """What the clients saw: files acknowledged (id -> plaintext), broken requests, and
    any tus offset that went backwards after it was acknowledged."""

    files: dict[str, bytes] = field(default_factory=dict)
    interrupted: int = 0
    lost_offsets: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _multipart(data: bytes, token: str) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
            f'{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="crash.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


class Uploader:
    """One client thread's uploads, each retried or resumed until it completes."""

    def __init__(self, base: str, outcome: Outcome, give_up_at: float) -> None:
        self.base, self.outcome, self.give_up_at = base, outcome, give_up_at
        self.session = logged_in(base, "alice", PASSWORD)
        self.chunk_rest = True  # each PATCH sends the rest of the file; False: 1 MiB each

    def _retrying(self, send):  # type: ignore[no-untyped-def]
        """Call `send` until the server answers (it may be dead or restarting)."""
        while time.monotonic() < self.give_up_at:
            try:
                return send()
            except requests.RequestException:
                with self.outcome.lock:
                    self.outcome.interrupted += 1
                time.sleep(0.3)
        raise TimeoutError("the server did not come back")

    def form(self, data: bytes) -> None:
        """POST /files/upload/ until one answers 201 (a broken one is simply sent again)."""
        token = self.session.cookies["csrftoken"]
        body, content_type = _multipart(data, token)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        while True:
            answer = self._retrying(
                lambda: self.session.post(
                    f"{self.base}/files/upload/", data=PacedBody(body), headers=headers, timeout=30
                )
            )
            if answer.status_code == 201:
                self._done(answer.json()["files"][0]["id"], data)
                return
            assert answer.status_code >= 500, answer.text  # a dying worker's 5xx: again

    def tus(self, data: bytes) -> None:
        """Create, then PATCH (the rest, or 1 MiB: `chunk_rest`); after a break, HEAD and go on."""
        location = self._create(len(data))
        acknowledged = offset = 0
        while offset < len(data):
            answer = self._retrying(lambda at=offset: self._patch(location, at, data))
            if answer.status_code == 204:
                offset = acknowledged = int(answer.headers["Upload-Offset"])
                continue
            assert answer.status_code in (409, 423) or answer.status_code >= 500, answer.text
            time.sleep(0.3 if answer.status_code == 423 else 0)  # a dead PATCH's lease
            offset = self._head(location)
            if offset < acknowledged:
                with self.outcome.lock:
                    self.outcome.lost_offsets.append(f"{location}: {acknowledged} -> {offset}")
        self._done(location.rstrip("/").rsplit("/", 1)[1], data)

    def _create(self, length: int) -> str:
        name = base64.b64encode(b"crash-tus.bin").decode()
        headers = {
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(length),
            "Upload-Metadata": f"filename {name}",
        }
        answer = self._retrying(
            lambda: self.session.post(f"{self.base}/files/uploads/", headers=headers, timeout=30)
        )
        assert answer.status_code == 201, answer.text
        return f"{self.base}/files/uploads/{answer.headers['Location'].rstrip('/').split('/')[-1]}/"

    def _patch(self, location: str, offset: int, data: bytes) -> requests.Response:
        end = len(data) if self.chunk_rest else min(len(data), offset + MiB)
        headers = {
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        }
        return self.session.patch(
            location, data=PacedBody(data[offset:end]), headers=headers, timeout=30
        )

    def _head(self, location: str) -> int:
        while time.monotonic() < self.give_up_at:
            answer = self._retrying(
                lambda: self.session.head(location, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
            )
            if answer.status_code == 200:
                return int(answer.headers["Upload-Offset"])
            assert answer.status_code in (423,) or answer.status_code >= 500, answer.status_code
            time.sleep(0.5)  # a killed PATCH's lease (TUS_PATCH_LEASE_SECONDS) runs out
        raise TimeoutError("HEAD never answered")

    def _done(self, file_id: str, data: bytes) -> None:
        with self.outcome.lock:
            self.outcome.files[file_id] = data


def _upload_all(uploaders: list[Uploader], jobs: list[tuple[str, bytes]]) -> None:
    """Run the jobs on the uploaders' threads (logged in already: a login is no upload);
    each thread's failure is re-raised here."""
    errors: list[BaseException] = []

    def client(uploader: Uploader, mine: list[tuple[str, bytes]]) -> None:
        uploader.give_up_at = time.monotonic() + PHASE_SECONDS
        try:
            for kind, data in mine:
                if kind == "form":
                    uploader.form(data)
                else:
                    uploader.chunk_rest = kind == "tus"
                    uploader.tus(data)
        except BaseException as error:  # noqa: BLE001 (re-raised in the test's thread)
            errors.append(error)

    count = len(uploaders)
    threads = [
        threading.Thread(target=client, args=(uploader, jobs[n::count]))
        for n, uploader in enumerate(uploaders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PHASE_SECONDS + 30)
    if errors:
        raise errors[0]


def _killer(server: Gunicorn, rng: random.Random, done: threading.Event, kills: list[str]) -> None:
    """At random moments, kill -9 one worker (the master replaces it) or the master and
    every worker (then start gunicorn again): the first kill is of everything; 4 kills
    at most, none once the uploads are done."""
    modes = ["all", *rng.sample(["worker", "all", "worker"], 3)]
    for mode in modes:
        if done.wait(rng.uniform(0.4, 1.2)):
            return
        kills.append(mode)
        if mode == "worker":
            server.kill_worker(rng.randrange(8))
        else:
            server.kill_all()
            server.start()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[dict[str, str], Gunicorn]]:
    env = server_env(
        tmp_path,
        free_port(),
        GUNICORN_WORKERS="2",
        TUS_PATCH_LEASE_SECONDS="2",  # a killed PATCH holds its upload this long
        TUS_MAX_UNFINISHED="50",  # creations whose answer was lost stay unfinished
        LOG_LEVEL="WARNING",
    )
    database = postgres_url("crash")
    if database:
        env["DATABASE_URL"] = database
    with serving(env, tmp_path / "gunicorn.log", "alice", PASSWORD) as server:
        yield env, server


def _jobs(rng: random.Random) -> list[tuple[str, bytes]]:
    """20 uploads of 2-4 MiB and a few bytes: form, tus in one PATCH, tus in 1 MiB PATCHes."""
    kinds = ["form", "tus", "tus-chunked"] * 7
    return [(kinds[n], rng.randbytes(rng.randint(2 * MiB, 4 * MiB))) for n in range(UPLOADS)]


def test_kill_9_during_uploads_and_key_commands_loses_nothing(site) -> None:
    env, server = site
    rng = random.Random(SEED)
    outcome = Outcome()
    before = Uploader(server.base, outcome, time.monotonic() + 30)
    for n in range(3):  # complete before anything is killed
        before.form(rng.randbytes(MiB + n))
    # Enough files that the key commands are still busy when they are killed.
    outcome.files.update(small_files(env, "alice", SMALL_FILES))

    uploaders = [Uploader(server.base, outcome, 0) for _ in range(4)]
    done, kills = threading.Event(), []
    killer = threading.Thread(target=_killer, args=(server, rng, done, kills))
    killer.start()
    try:
        _upload_all(uploaders, _jobs(rng))
    finally:
        done.set()
        killer.join(60)
    assert len(outcome.files) == 3 + SMALL_FILES + UPLOADS
    assert outcome.lost_offsets == []
    assert "all" in kills and outcome.interrupted > 0  # the kills did break requests

    # One upload left unfinished on purpose: cleanup_storage must keep its blob.
    unfinished_data = rng.randbytes(3 * MiB + 5)
    unfinished = Uploader(server.base, outcome, time.monotonic() + 30)
    unfinished.chunk_rest = False
    location = unfinished._create(len(unfinished_data))
    assert unfinished._patch(location, 0, unfinished_data).status_code == 204

    _kill_key_commands(env, server, rng)
    _check_storage(env, server, outcome)

    unfinished.chunk_rest = True
    assert unfinished._patch(location, MiB, unfinished_data).status_code == 204
    outcome.files[location.rstrip("/").rsplit("/", 1)[1]] = unfinished_data
    session = logged_in(server.base, "alice", PASSWORD)
    for file_id, data in outcome.files.items():
        assert hashlib.sha256(download(session, server.base, file_id)).digest() == (
            hashlib.sha256(data).digest()
        ), file_id


def _kill_key_commands(env: dict[str, str], server: Gunicorn, rng: random.Random) -> None:
    """rotate_keys and reencrypt_files, each kill -9'd after a random number of files and
    run again to its end; gunicorn is restarted with the new primary key first."""
    old = env["ENCRYPTION_KEYS"]
    env["ENCRYPTION_KEYS"] = f"{generate_key_entry('crash2')},{old}"
    server.kill_all()
    server.start()
    kill_command_after(env, rng.randint(2, 8), "re-wrapped:", "rotate_keys", "-v", "2")
    finished = run_command(env, "rotate_keys")
    assert finished.returncode == 0, finished.stdout + finished.stderr

    seen = kill_command_after(
        env, rng.randint(2, 8), "re-encrypted:", "reencrypt_files", "-v", "2", "--batch-size", "2"
    )
    checkpoints = [line.rsplit(" ", 1)[1].rstrip(")") for line in seen if "checkpoint" in line]
    resumed = run_command(env, "reencrypt_files", "--after", checkpoints[-1])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


def _check_storage(env: dict[str, str], server: Gunicorn, outcome: Outcome) -> None:
    """No row without its blob; cleanup_storage deletes exactly the orphans; verify_* clean."""
    state = site_state(env)
    assert state["key_ids"] == ["crash2"]  # the interrupted rotation was completed
    in_use = set(state["files"].values()) | {blob for blob, _, _ in state["uploads"].values()}
    on_disk = blobs_on_disk(env)
    assert in_use <= on_disk  # no row without its blob
    orphans = on_disk - in_use
    assert orphans  # killed uploads and the killed re-encryption left some
    aged = time.time() - 3 * 3600  # past the grace period, every blob alike
    for name in on_disk:
        os.utime(Path(env["MEDIA_ROOT"]) / name, (aged, aged))

    cleaned = run_command(env, "cleanup_storage", "--grace-hours", "1")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert blobs_on_disk(env) == in_use
    assert f"deleted {len(orphans)} orphan blobs" in cleaned.stdout
    with ThreadPoolExecutor(2) as pool:  # two processes, side by side
        for result in pool.map(partial(run_command, env), ("verify_files", "verify_audit_log")):
            assert result.returncode == 0, result.stdout + result.stderr
