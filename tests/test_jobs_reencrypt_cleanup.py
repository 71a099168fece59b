"""reencrypt_files and cleanup_storage as split, checkpointed jobs: real `db_worker`
processes share the batches, a run killed with SIGKILL resumes where it stopped (each file
re-encrypted once, each prefix swept once), and a second run is refused while one holds the
lock."""

from __future__ import annotations

import os
from collections import Counter
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.models import JobBatch, JobLock, JobRun
from sharing.models import StoredFile
from sharing.storage import get_encrypted_storage
from tests.helpers import make_file
from tests.helpers_keys import blob_names, orphan_blob
from tests.jobs_live import DATABASE_QUEUE, manage, started
from tests.test_jobs_maintenance import command, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = ("db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.2")


def files(owner, count: int) -> dict[str, bytes]:
    """``count`` files of distinct content: {file id: plaintext}."""
    made = {}
    for n in range(count):
        data = f"content {n} ".encode() * (50 + n)
        made[str(make_file(owner, data, name=f"r{n}.txt").pk)] = data
    return made


def blobs() -> dict[str, str]:
    return {str(pk): blob for pk, blob in StoredFile.objects.values_list("pk", "blob")}


def plaintext(file_id: str) -> bytes:
    from sharing import selectors

    stored = StoredFile.objects.get(pk=file_id)
    key = selectors.file_data_key(file=stored)
    with get_encrypted_storage().open_plaintext(stored.blob.name, key) as reader:
        return b"".join(reader.segments())


def second_refused_then_first_killed(name: str, *args: str) -> None:
    """Start ``name --workers`` with no worker running (it plans, queues and waits: it holds
    the lock as long as we like), check a second run is refused, then kill -9 the first."""
    with started(name, "--workers", *args) as first:
        wait_for(lambda: JobLock.objects.filter(run__isnull=False).exists(), "first run locked")
        with pytest.raises(CommandError, match=f"{name} is already running"):
            command(name)
        first.kill()
        first.wait()


def test_reencrypt_files_split_across_two_real_workers(alice, settings):
    settings.TASKS = DATABASE_QUEUE
    made = files(alice, 6)
    before = blobs()

    with started(*WORKER) as one, started(*WORKER) as two:
        out = command("reencrypt_files", "--workers", "--batch-size", "2")
        assert one.poll() is None and two.poll() is None

    assert "re-encrypted 6 files, 0 failed" in out
    after = blobs()
    assert all(after[pk] != before[pk] for pk in made)  # every file has a new blob
    storage = get_encrypted_storage()
    assert not any(storage.exists(old) for old in before.values())  # old blobs deleted
    assert all(plaintext(pk) == data for pk, data in made.items())
    run = JobRun.objects.get(name="reencrypt_files")
    assert (run.status, run.done, run.counts) == ("succeeded", 6, {"reencrypted": 6})
    holders = set(JobBatch.objects.values_list("claimed_by", flat=True))
    assert JobBatch.objects.count() == 3
    assert all(not holder.endswith(f":{os.getpid()}") for holder in holders)  # the workers
    assert not JobLock.objects.exists()
    assert "6 ok" in command("verify_files")


REENCRYPT_KILLED_MID_BATCH = """
import os, signal
from jobs import services as j
from sharing.models import StoredFile
from sharing.services import maintenance as m
ids = [m.reencrypt_plan_id(str(pk), blob) for pk, blob in
       StoredFile.objects.order_by("created_at", "id").values_list("pk", "blob")]
plan = j.RunPlan(
    name="reencrypt_files", params={"after": ""},
    handler="sharing.services.maintenance.files_reencrypt_batch",
    ids=lambda: ids, batch_size=2,
)
run, _ = j.run_begin(plan)
j.batch_finish(batch := j.batch_claim(run), m.files_reencrypt_batch(batch.ids, {}))
second = j.batch_claim(run)
m.files_reencrypt_batch(second.ids[:1], {})  # one file of the second batch switched, committed
os.kill(os.getpid(), signal.SIGKILL)  # before its checkpoint
"""


def test_reencrypt_killed_mid_batch_resumes_and_reencrypts_each_file_once(alice, settings):
    settings.TASKS = DATABASE_QUEUE
    made = files(alice, 5)
    before = blobs()

    killed = manage("shell", "-c", REENCRYPT_KILLED_MID_BATCH)

    assert killed.returncode == -9, killed.stdout + killed.stderr
    at_kill = blobs()
    switched = {pk for pk in made if at_kill[pk] != before[pk]}
    assert len(switched) == 3  # the first batch and one file of the second
    run = JobRun.objects.get()
    assert run.status == "running" and run.done == 2

    with started(*WORKER) as worker:  # the resumed run, split across a real worker
        out = command("reencrypt_files", "--workers", "--batch-size", "2")
        assert worker.poll() is None

    assert f"resuming run {run.pk}: 2 of 5 already done" in out
    # The whole run's counts: 2 before the kill, 2 after, 1 switched by the killed attempt.
    assert "re-encrypted 4 files, 0 failed, 1 already re-encrypted" in out
    after = blobs()
    for pk in switched:
        assert after[pk] == at_kill[pk]  # re-encrypted once: not again by the resumed run
    assert all(after[pk] != before[pk] for pk in made)
    assert all(plaintext(pk) == data for pk, data in made.items())
    run.refresh_from_db()
    assert run.status == "succeeded" and run.done == 5
    assert run.counts == {"reencrypted": 4, "already": 1}
    assert not JobLock.objects.exists()
    assert "5 ok" in command("verify_files")


def test_a_second_reencrypt_refuses_while_one_runs(alice, settings):
    settings.TASKS = DATABASE_QUEUE
    files(alice, 2)
    before = blobs()
    second_refused_then_first_killed("reencrypt_files", "--batch-size", "1")
    assert blobs() == before  # the refused run did nothing, the killed one not yet

    out = command("reencrypt_files", "--batch-size", "1")

    assert "resuming run" in out and "re-encrypted 2 files, 0 failed" in out
    assert JobRun.objects.get().status == "succeeded"
    # The killed run's queued batches find nothing left to do in a worker later.
    done = blobs()
    result = manage("db_worker", "--batch", "--no-reload", "--no-startup-delay")
    assert result.returncode == 0, result.stdout + result.stderr
    assert blobs() == done
    assert Counter(JobBatch.objects.values_list("status", flat=True)) == {"done": 2}


def test_reencrypt_inline_checkpoint_lines_name_file_ids_only(alice):
    made = files(alice, 3)
    out = StringIO()
    call_command("reencrypt_files", "--batch-size", "2", stdout=out, stderr=StringIO())
    last = list(made)[-1]
    assert f"checkpoint: done through file {last} (--after {last})" in out.getvalue()
    assert "blobs/" not in out.getvalue()


# -- cleanup_storage: one batch per folder of blobs/ (256)


def old_orphans(count: int) -> set[str]:
    """``count`` orphan blobs two days old (past the 24 h grace period)."""
    from tests.test_cleanup_storage import DAY, _age

    names = set()
    for n in range(count):
        name = orphan_blob(f"orphan {n}".encode())
        _age(name, 2 * DAY)
        names.add(name)
    return names


def folder(name: str) -> int:
    return int(name.split("/")[1], 16)


def test_cleanup_storage_split_across_two_real_workers(alice, settings):
    settings.TASKS = DATABASE_QUEUE
    kept = {make_file(alice, b"kept").blob.name, orphan_blob(b"young")}
    orphans = old_orphans(6)
    assert blob_names() == kept | orphans

    with started(*WORKER) as one, started(*WORKER) as two:
        out = command("cleanup_storage", "--workers")
        assert one.poll() is None and two.poll() is None

    assert "deleted 6 orphan blobs older than 24 h; kept 1 recent orphans and 1 blobs" in out
    assert blob_names() == kept
    run = JobRun.objects.get(name="cleanup_storage")
    assert (run.status, run.done, run.total) == ("succeeded", 256, 256)
    assert run.counts == {"deleted": 6, "young": 1, "referenced": 1}
    holders = set(JobBatch.objects.values_list("claimed_by", flat=True))
    assert all(not holder.endswith(f":{os.getpid()}") for holder in holders)  # the workers
    assert len(holders) == 2  # both workers took folders
    assert not JobLock.objects.exists()


CLEANUP_KILLED_MID_RUN = """
import os, signal
from jobs import services as j
from sharing.services import maintenance as m
from sharing.storage.encrypted import BLOB_FOLDERS
plan = j.RunPlan(
    name="cleanup_storage", params={"grace_hours": 24, "sweep": "folders"},
    handler="sharing.services.maintenance.blobs_sweep_batch",
    ids=lambda: BLOB_FOLDERS, batch_size=1,
)
run, _ = j.run_begin(plan)
for _ in range(128):  # folders 00..7f swept, each checkpointed
    j.batch_finish(batch := j.batch_claim(run), m.blobs_sweep_batch(batch.ids, run.params))
j.batch_claim(run)  # folder 80 claimed, then killed before its checkpoint
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_cleanup_storage_killed_mid_sweep_resumes_at_its_first_unfinished_folder(alice):
    stored = make_file(alice, b"kept")
    orphans = old_orphans(10)

    killed = manage("shell", "-c", CLEANUP_KILLED_MID_RUN)

    assert killed.returncode == -9, killed.stdout + killed.stderr
    left = {name for name in orphans if folder(name) >= 0x80}
    assert blob_names() == left | {stored.blob.name}  # the swept half is clean
    run = JobRun.objects.get()
    assert (run.status, run.done) == ("running", 128)
    # An orphan that appears in an already swept folder after the kill: the resumed run
    # must not sweep that folder again (a fresh run will).
    late = next(n for n in iter(lambda: orphan_blob(b"late"), None) if folder(n) < 0x80)
    from tests.test_cleanup_storage import DAY, _age

    _age(late, 2 * DAY)
    for name in blob_names() - orphans - {stored.blob.name, late}:
        get_encrypted_storage().delete(name)  # the tries that landed in unswept folders

    out = command("cleanup_storage")

    assert f"resuming run {run.pk}: 128 of 256 already done" in out
    assert blob_names() == {stored.blob.name, late}
    run.refresh_from_db()
    assert (run.status, run.done) == ("succeeded", 256)
    assert run.counts["deleted"] == len(orphans)  # each orphan deleted (and counted) once
    assert "deleted: orphan blob" in out and late not in out

    command("cleanup_storage")  # a new run sweeps every folder again
    assert blob_names() == {stored.blob.name}


def test_a_second_cleanup_refuses_while_one_runs(alice, settings):
    settings.TASKS = DATABASE_QUEUE
    orphans = old_orphans(2)
    second_refused_then_first_killed("cleanup_storage")
    assert blob_names() == orphans  # the refused run deleted nothing, the killed one not yet

    out = command("cleanup_storage")

    assert "resuming run" in out and "deleted 2 orphan blobs" in out
    assert blob_names() == set()


def test_an_interrupted_sweep_of_the_older_unbatched_kind_is_replaced_not_resumed(alice):
    """Such a run planned no batches: resumed, it would sweep nothing."""
    from jobs import services as job_services

    orphans = old_orphans(2)
    plan = job_services.RunPlan(
        name="cleanup_storage", params={"grace_hours": 24}, handler="", ids=list
    )
    older, _resumed = job_services.run_begin(plan)
    job_services.run_release(older)  # stopped (Ctrl-C) before its summary

    out = command("cleanup_storage")

    assert "resuming" not in out and "deleted 2 orphan blobs" in out
    assert not blob_names() & orphans
    older.refresh_from_db()
    assert older.status == "failed" and "abandoned" in older.summary
