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
    # With --workers and no worker running, the first run plans, queues and waits: it
    # holds the lock for as long as we like.
    with started("reencrypt_files", "--workers", "--batch-size", "1") as first:
        wait_for(lambda: JobLock.objects.filter(run__isnull=False).exists(), "first run locked")

        with pytest.raises(CommandError, match="reencrypt_files is already running"):
            command("reencrypt_files")
        assert blobs() == before  # the refused run did nothing

        first.kill()
        first.wait()

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
