"""The README's backup procedure and restore drill, performed on a copy (PostgreSQL).

Back up as the README says: record the audit head, pg_dump the database, then copy the
storage (after the dump, so every row dumped has its blob in the copy); the master keys
are kept apart, in the test's memory. A file uploaded between the dump and the copy shows
why the order matters: its blob is in the copy, its row is not, and it comes back as an
orphan blob that cleanup_storage removes. Restore into another database and folder, start
gunicorn with the kept keys: verify_files and verify_audit_log (with the recorded head)
pass, and every file of the dump downloads byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crash_site import (
    Gunicorn,
    blobs_on_disk,
    download,
    logged_in,
    postgres_url,
    run_command,
    serving,
    site_state,
    small_files,
)
from tests.live_gunicorn import free_port, server_env

pytestmark = [
    pytest.mark.database_url,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres")
        or shutil.which("pg_dump") is None,
        reason="the drill dumps and restores PostgreSQL (run the suite with DATABASE_URL)",
    ),
]

PASSWORD = "Drill-Harbor-4-Lantern"
KEPT_APART = ("SECRET_KEY", "ENCRYPTION_KEYS", "AUDIT_LOG_KEY")


def _major(text: str) -> int:
    return int(re.search(r"(\d+)\.\d+", text).group(1))  # type: ignore[union-attr]


def _server_major(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return _major(str(conn.execute("SHOW server_version").fetchone()[0]))  # type: ignore[index]


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[dict[str, str], Gunicorn]]:
    env = server_env(tmp_path, free_port(), AUDIT_LOG_KEY=os.urandom(32).hex(), LOG_LEVEL="WARNING")
    env["DATABASE_URL"] = postgres_url("backup") or ""
    with serving(env, tmp_path / "source.log", "alice", PASSWORD) as server:
        yield env, server


def _upload(session, base: str, data: bytes) -> str:  # type: ignore[no-untyped-def]
    answer = session.post(
        f"{base}/files/upload/",
        files={"file": ("drill.bin", data)},
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Accept": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["files"][0]["id"]


def _pg(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert result.returncode == 0, result.stderr


def test_a_restored_copy_verifies_and_serves_every_file(source, tmp_path: Path) -> None:
    env, server = source
    assert _major(subprocess.check_output(["pg_dump", "--version"], text=True)) == (  # noqa: S607
        _server_major(env["DATABASE_URL"])
    ), "pg_dump must match the server's major version"
    session = logged_in(server.base, "alice", PASSWORD)
    files = {_upload(session, server.base, os.urandom(3 * 1024 * 1024 + n)): b"" for n in range(2)}
    files = {file_id: download(session, server.base, file_id) for file_id in files}
    files.update(small_files(env, "alice", 5))

    # 1. The audit head, kept apart; 2. the database; 3. the storage, after the dump.
    head = run_command(env, "verify_audit_log").stdout.split("head: ")[1].strip()
    dump = tmp_path / "securefiles.dump"
    _pg("pg_dump", "--format=custom", "--file", str(dump), env["DATABASE_URL"])
    late = _upload(session, server.base, b"uploaded while the storage was being copied")
    copy = tmp_path / "media-copy"
    shutil.copytree(env["MEDIA_ROOT"], copy)  # keeps modification times, as cp -a does
    kept = {name: env[name] for name in KEPT_APART}

    restored_db = postgres_url("restore") or ""
    _pg("pg_restore", "--no-owner", "--exit-on-error", "--dbname", restored_db, str(dump))
    restored = server_env(tmp_path / "restored", free_port(), LOG_LEVEL="WARNING", **kept)
    restored.update(DATABASE_URL=restored_db, MEDIA_ROOT=str(copy))

    state = site_state(restored)
    assert set(state["files"]) == set(files)  # the late upload is not in the dump
    orphans = blobs_on_disk(restored) - set(state["files"].values())
    assert len(orphans) == 1  # ... but its blob is in the copy
    aged = time.time() - 25 * 3600  # a backup a day old: past cleanup_storage's grace
    for name in blobs_on_disk(restored):
        os.utime(copy / name, (aged, aged))
    cleaned = run_command(restored, "cleanup_storage")
    assert cleaned.returncode == 0 and "deleted 1 orphan blobs" in cleaned.stdout, cleaned.stdout
    for command in (("verify_files",), ("verify_audit_log", "--expect-head", head)):
        result = run_command(restored, *command)
        assert result.returncode == 0, result.stdout + result.stderr

    server.stop()  # the original is gone; the restored copy answers alone
    copy_server = Gunicorn(restored, tmp_path / "restored.log")
    copy_server.start()
    try:
        session = logged_in(copy_server.base, "alice", PASSWORD)
        for file_id, data in files.items():
            got = download(session, copy_server.base, file_id)
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), file_id
        missing = session.get(f"{copy_server.base}/files/{late}/download/", timeout=30)
        assert missing.status_code == 404
    finally:
        copy_server.stop()
