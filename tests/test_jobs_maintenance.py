"""Maintenance commands as jobs: a lock in the database keeps two runs of one job apart,
checkpoints let a run killed with SIGKILL resume where it stopped (each file done once),
and --workers splits the files across real `db_worker` processes."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from audit.events import Event
from audit.models import AuditEntry
from jobs import services as job_services
from jobs.models import JobBatch, JobLock, JobRun
from sharing.models import StoredFile
from tests.helpers import make_file
from tests.jobs_live import DATABASE_QUEUE, manage, started

pytestmark = pytest.mark.django_db(transaction=True)


def expired_files(owner, count: int) -> list[str]:
    ids = [str(make_file(owner, f"file {n}".encode(), name=f"f{n}.txt").id) for n in range(count)]
    StoredFile.objects.update(expires_at=timezone.now() - timedelta(days=1))
    return ids


def delete_entries() -> Counter[str]:
    entries = AuditEntry.objects.filter(event=Event.DELETE).values_list("file_id", flat=True)
    return Counter(str(file_id) for file_id in entries)


def wait_for(condition, what: str, seconds: float = 60) -> None:
    """Poll until ``condition()`` (another process's commit) holds; fail after ``seconds``
    (a bound on a hang, not an assertion about speed)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


KILLED_MID_BATCH = """
import os, signal
from django.utils import timezone
from jobs import services as j
from sharing import services as s
from sharing.services import maintenance as m
now = timezone.now()
plan = j.RunPlan(
    name="purge_expired", params={},
    handler="sharing.services.maintenance.files_purge_batch",
    ids=lambda: (str(pk) for pk in s.expired_files(now=now).values_list("pk", flat=True)),
    batch_size=2,
)
run, _ = j.run_begin(plan)
j.batch_finish(batch := j.batch_claim(run), m.files_purge_batch(batch.ids, {}))
second = j.batch_claim(run)
m.files_purge_batch(second.ids[:1], {})  # one file of the second batch deleted, committed
os.kill(os.getpid(), signal.SIGKILL)  # before its checkpoint
"""


def test_purge_killed_mid_batch_resumes_and_deletes_each_file_once(alice):
    ids = expired_files(alice, 5)

    killed = manage("shell", "-c", KILLED_MID_BATCH)

    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert StoredFile.objects.count() == 2  # 2 + 1 deleted before the kill
    run = JobRun.objects.get()
    assert run.status == "running" and run.done == 2
    assert JobLock.objects.get().run == run  # the dead process's lock is still there

    out = command("purge_expired", "--batch-size", "2")

    assert f"resuming run {run.pk}: 2 of 5 already done" in out
    assert StoredFile.objects.count() == 0
    assert delete_entries() == Counter(ids)  # every file, exactly once
    run.refresh_from_db()
    assert run.status == "succeeded" and run.done == 5
    assert run.counts == {"deleted": 4, "gone": 1}
    assert not JobLock.objects.exists()
    assert JobBatch.objects.filter(status="done").count() == 3
    call_command("verify_audit_log", stdout=StringIO())


def test_a_second_purge_refuses_while_one_runs_and_a_killed_one_is_resumed(alice, settings):
    settings.TASKS = DATABASE_QUEUE
    ids = expired_files(alice, 3)
    # With --workers and no worker running, the first run plans, queues and waits: it
    # holds the lock for as long as we like.
    with started("purge_expired", "--workers", "--batch-size", "1") as first:
        wait_for(lambda: JobLock.objects.filter(run__isnull=False).exists(), "first run locked")

        with pytest.raises(CommandError, match="purge_expired is already running"):
            command("purge_expired")
        assert StoredFile.objects.count() == 3  # the refused run did nothing

        first.kill()  # kill -9 mid-run: planned, queued, nothing done yet
        first.wait()

    out = command("purge_expired")

    assert "resuming run" in out
    assert "deleted 3 expired file(s)" in out
    assert delete_entries() == Counter(ids)
    assert JobRun.objects.get().status == "succeeded"
    # The dead run's queued batches find nothing left to do in a worker later.
    result = manage("db_worker", "--batch", "--no-reload", "--no-startup-delay")
    assert result.returncode == 0, result.stdout + result.stderr
    assert delete_entries() == Counter(ids)


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="SQLite has one writer at a time: two runs cannot start at the same moment",
)
def test_two_runs_started_at_the_same_moment_one_refuses(alice):
    expired_files(alice, 2)
    plan = job_services.RunPlan(
        name="purge_expired",
        params={},
        handler="sharing.services.maintenance.files_purge_batch",
        ids=lambda: [str(pk) for pk in StoredFile.objects.values_list("pk", flat=True)],
    )
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def begin(holder: str) -> None:
        try:
            barrier.wait()
            job_services.run_begin(plan, holder=holder)
            outcomes.append("started")
        except job_services.JobBusy:
            outcomes.append("refused")
        finally:
            connections.close_all()

    # Two holders that both look alive (this process, so its pid exists).
    threads = [threading.Thread(target=begin, args=(f"other-host-{n}:1",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["refused", "started"]
    assert JobRun.objects.count() == 1
    assert JobBatch.objects.count() == 1


def test_verify_files_split_across_two_real_workers(alice, settings):
    settings.TASKS = DATABASE_QUEUE
    for n in range(6):
        make_file(alice, f"content {n}".encode() * 100, name=f"v{n}.txt")
    worker = ("db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.2")
    with started(*worker) as one, started(*worker) as two:
        out = command("verify_files", "--workers", "--batch-size", "2")
        assert one.poll() is None and two.poll() is None

    assert "verified 6 files: 6 ok, 0 missing, 0 corrupt" in out
    run = JobRun.objects.get(name="verify_files")
    assert run.status == "succeeded" and run.done == 6 and run.counts == {"ok": 6}
    holders = set(JobBatch.objects.values_list("claimed_by", flat=True))
    assert len(JobBatch.objects.all()) == 3
    assert all(not holder.endswith(f":{os.getpid()}") for holder in holders)  # the workers


def test_verify_files_inline_is_a_locked_checkpointed_run(alice):
    make_file(alice, b"hello")
    out = command("verify_files")
    assert "verified 1 files: 1 ok" in out
    run = JobRun.objects.get()
    assert (run.status, run.total, run.done) == ("succeeded", 1, 1)
    assert not JobLock.objects.exists()


def test_job_runs_admin_page_shows_progress_read_only(admin_client, alice_client, alice):
    make_file(alice, b"hello")
    command("verify_files")
    page = admin_client.get("/admin/jobs/jobrun/")
    assert page.status_code == 200
    assert b"verify_files" in page.content and b"1/1 (100%)" in page.content
    run = JobRun.objects.get()
    assert admin_client.get(f"/admin/jobs/jobrun/{run.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/jobs/jobrun/add/").status_code == 403
    refused = alice_client.get("/admin/jobs/jobrun/", follow=True)  # not staff
    assert refused.status_code == 403 and b"verify_files" not in refused.content


def hold_lock(name: str, holder: str) -> JobRun:
    plan = job_services.RunPlan(name=name, params={}, handler="", ids=list)
    run, _resumed = job_services.run_begin(plan, holder=holder)
    return run


@pytest.mark.parametrize(
    "name,args",
    [
        ("reencrypt_files", ()),
        ("cleanup_storage", ("--grace-hours", "1")),
        ("verify_files", ()),
        ("purge_expired", ()),
    ],
)
def test_each_maintenance_command_refuses_while_another_machine_runs_it(alice, name, args):
    stored = make_file(alice, b"hello")
    hold_lock(name, "other-machine:4242")  # heard of just now: alive

    with pytest.raises(CommandError, match=f"{name} is already running.*other-machine:4242"):
        command(name, *args)

    assert StoredFile.objects.get().blob == stored.blob  # nothing re-encrypted or deleted
    assert JobLock.objects.get(name=name).holder == "other-machine:4242"


def test_a_dead_pid_under_the_same_host_name_elsewhere_is_not_taken_over(alice):
    # Another container given this one's hostname (or another machine of the same name):
    # its pids are not ours to look up, so only the heartbeat can free the lock.
    make_file(alice, b"hello")
    gone = manage("shell", "-c", "import os; print(os.getpid())")  # no such pid here now
    elsewhere = f"{socket.gethostname()}@00000000.4026531836:{gone.stdout.split()[-1]}"
    hold_lock("verify_files", elsewhere)

    with pytest.raises(CommandError, match="verify_files is already running"):
        command("verify_files")
    assert JobLock.objects.get(name="verify_files").holder == elsewhere


def test_a_lock_not_heard_of_for_too_long_is_taken_over(alice, settings):
    make_file(alice, b"hello")
    stale = hold_lock("reencrypt_files", "other-machine:4242")
    JobLock.objects.update(heartbeat_at=timezone.now() - timedelta(seconds=601))
    settings.JOB_LOCK_STALE_SECONDS = 600

    out = command("reencrypt_files")

    assert "re-encrypted 1 files, 0 failed" in out
    stale.refresh_from_db()
    assert stale.status == "failed" and "abandoned" in stale.summary  # other params
    assert not JobLock.objects.exists()


def test_a_batch_whose_worker_died_is_queued_again_and_finished(alice, settings):
    settings.TASKS = DATABASE_QUEUE
    for n in range(2):
        make_file(alice, f"content {n}".encode(), name=f"w{n}.txt")
    plan = job_services.RunPlan(
        name="verify_files",
        params={"owner": "", "since": ""},
        handler="sharing.services.maintenance.files_verify_batch",
        ids=lambda: [str(pk) for pk in StoredFile.objects.values_list("pk", flat=True)],
    )
    run, _resumed = job_services.run_begin(plan)
    gone = manage("shell", "-c", "import os; print(os.getpid())")  # a process that exited
    dead = f"{job_services.host_id()}:{gone.stdout.split()[-1]}"
    batch = job_services.batch_claim(run, holder=dead)  # its worker then died (kill -9)

    assert job_services.run_requeue_orphans(run) == 1

    batch.refresh_from_db()
    assert batch.status == "pending"
    result = manage("db_worker", "--batch", "--no-reload", "--no-startup-delay")
    assert result.returncode == 0, result.stdout + result.stderr
    run.refresh_from_db()
    assert (run.done, run.counts) == (2, {"ok": 2})
    assert job_services.run_requeue_orphans(run) == 0


class _Terminal(StringIO):
    """Output that says it is a terminal, as an operator's shell is."""

    def isatty(self) -> bool:
        return True


def test_cleanup_storage_shows_its_sweep_on_the_terminal_and_the_job_runs_page(admin_client, alice):
    from tests.helpers_keys import orphan_blob

    make_file(alice, b"kept")
    for n in range(3):
        orphan_blob(f"orphan {n}".encode())
    terminal = _Terminal()

    call_command("cleanup_storage", "--grace-hours", "1", stdout=StringIO(), stderr=terminal)

    assert "\rsweeping storage (folders of blobs/): 256/256" in terminal.getvalue()
    run = JobRun.objects.get(name="cleanup_storage")
    assert (run.status, run.done, run.total) == ("succeeded", 256, 256)
    assert run.counts == {"young": 3, "referenced": 1}  # orphans just made: kept
    assert b"256/256 (100%)" in admin_client.get("/admin/jobs/jobrun/").content


def test_a_worker_runs_only_the_project_s_batch_handlers(alice, settings):
    """A run row written straight into the database (by someone with database access but
    no code) cannot make a worker call an arbitrary function with the batch's ids."""
    settings.TASKS = DATABASE_QUEUE
    run = JobRun.objects.create(name="verify_files", handler="builtins.print", total=1)
    batch = JobBatch.objects.create(run=run, seq=0, ids=["injected-marker-7f3a"])
    from jobs.tasks import run_batch

    run_batch.enqueue(batch.pk)
    result = manage("db_worker", "--batch", "--no-reload", "--no-startup-delay")

    output = result.stdout + result.stderr
    assert "injected-marker-7f3a" not in output.replace("not a batch handler", "")
    assert "not a batch handler: 'builtins.print'" in output
    batch.refresh_from_db()
    assert batch.status == "pending"
