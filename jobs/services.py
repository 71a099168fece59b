"""Runs, batches and locks of background jobs: every write to the jobs tables goes here.

A maintenance command (or anything with a long list of ids to work through) calls
``run_begin`` once: it takes the job's lock (JobBusy if another live run holds it), then
resumes the unfinished run of that job or plans a new one into batches of ids. The batches
are then worked through in this process (``run_inline``) or by workers (``run_enqueue``
queues one job per batch). Each batch commits its outcome counts when it is done, so a run
killed at any moment resumes with the batches that were not done: at most one batch of
work is repeated, and per-file work that changes state checks that state again.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar, cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from jobs.models import JobBatch, JobLock, JobRun

logger = logging.getLogger(__name__)

BatchHandler = Callable[[list[str], dict], dict[str, int]]
_Handler = TypeVar("_Handler", bound=Callable[..., dict[str, int]])

_HANDLER_MARK = "_securefiles_batch_handler"


class NotABatchHandler(Exception):
    """A run names a handler that batch_handler did not mark (see batch_run)."""


def batch_handler(fn: _Handler) -> _Handler:
    """Mark ``fn`` as a handler a worker may run for a batch (decorator).

    A run's handler is a dotted path read back from the database: a worker runs only a
    function marked here, so a row someone wrote into ``jobs_jobrun`` (with database access
    but no code) cannot make a worker call anything else.
    """
    setattr(fn, _HANDLER_MARK, True)
    return fn


class JobBusy(Exception):
    """Another run of the same job is in progress (``holder``: holder_id)."""

    def __init__(self, name: str, holder: str, run_id: int | None) -> None:
        super().__init__(f"{name} is already running (run {run_id}, held by {holder})")
        self.name, self.holder, self.run_id = name, holder, run_id


def host_id() -> str:
    """Where this process runs, as far as its pids mean anything: the host name, the
    kernel's boot id (Linux ``/proc/sys/kernel/random/boot_id``; another machine, or this
    one rebooted, has another) and the pid namespace (a container of its own has
    another): ``name@boot8.pidns``. Two containers given the same ``hostname:`` differ
    in one of the last two, so neither mistakes the other's pid for one of its own."""
    boot = _read_id("/proc/sys/kernel/random/boot_id")[:8]
    return f"{socket.gethostname()}@{boot}.{_pid_namespace()}"


def _read_id(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return "-"  # not Linux: the host name alone, as before


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return "-"


def holder_id() -> str:
    """This process as a lock holder: ``host_id():pid``."""
    return f"{host_id()}:{os.getpid()}"


def holder_alive(holder: str, heartbeat_at: datetime | None) -> bool:
    """Whether a lock's holder may still be working.

    A holder in this pid namespace on this machine since its boot (host_id) is alive
    while its process exists (a kill -9 frees its lock at once); any other while it was
    heard of within JOB_LOCK_STALE_SECONDS.
    """
    stale = timezone.now() - timedelta(seconds=settings.JOB_LOCK_STALE_SECONDS)
    if heartbeat_at is None or heartbeat_at < stale:
        return False
    host, _sep, pid = holder.rpartition(":")
    if host != host_id() or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another account
    return True


@dataclass(frozen=True)
class RunPlan:
    """What a run works through: a job ``name``, its ``params`` (JSON; a run is resumed
    only by one with equal params), the dotted path of its per-batch ``handler``, and the
    ``ids`` to plan, read only when a new run starts."""

    name: str
    params: dict
    handler: str
    ids: Callable[[], Iterable[str]]
    batch_size: int = 200


def run_begin(plan: RunPlan, *, holder: str | None = None) -> tuple[JobRun, bool]:
    """Take the job's lock and return (run, resumed).

    The run is the job's unfinished one with the same params when its holder died (resumed:
    True), else a new one whose ids are planned into batches now. An unfinished run with
    other params is closed as failed ("abandoned"). Raises JobBusy, changing nothing, while
    another live process holds the lock.
    """
    holder = holder or holder_id()
    now = timezone.now()
    with transaction.atomic():
        _lock_take(plan.name, holder, now)
        unfinished = JobRun.objects.filter(name=plan.name, status=JobRun.Status.RUNNING)
        run: JobRun | None = None
        for candidate in unfinished.order_by("-pk"):
            if run is None and candidate.params == plan.params:
                run = candidate
            else:
                _run_close(candidate, summary="abandoned: a later run replaced it", failed=True)
        resumed = run is not None
        if run is None:
            run = _run_plan(plan, now)
        run.heartbeat_at = now
        run.save(update_fields=["heartbeat_at"])
        # A batch its dead holder was working on goes back to the queue.
        run.batches.filter(status=JobBatch.Status.RUNNING).exclude(claimed_by=holder).update(
            status=JobBatch.Status.PENDING, claimed_by=""
        )
        JobLock.objects.filter(name=plan.name).update(run=run)
    return run, resumed


def _lock_take(name: str, holder: str, now: datetime) -> None:
    lock = JobLock.objects.select_for_update().filter(name=name).first()
    if lock is None:
        try:
            with transaction.atomic():
                JobLock.objects.create(name=name, holder=holder, heartbeat_at=now)
        except IntegrityError:
            # Another run inserted it first (and committed): it is alive.
            taken = JobLock.objects.filter(name=name).first()
            raise JobBusy(
                name, taken.holder if taken else "?", taken.run_id if taken else None
            ) from None
        return
    if lock.holder != holder and holder_alive(lock.holder, lock.heartbeat_at):
        raise JobBusy(name, lock.holder, lock.run_id)
    lock.holder, lock.heartbeat_at = holder, now
    lock.save(update_fields=["holder", "heartbeat_at"])


def _run_plan(plan: RunPlan, now: datetime) -> JobRun:
    run = JobRun.objects.create(
        name=plan.name, params=plan.params, handler=plan.handler, heartbeat_at=now
    )
    batches: list[JobBatch] = []
    chunk: list[str] = []
    total = 0
    for file_id in plan.ids():
        chunk.append(file_id)
        if len(chunk) >= plan.batch_size:
            batches.append(JobBatch(run=run, seq=len(batches), ids=chunk))
            total, chunk = total + len(chunk), []
    if chunk:
        batches.append(JobBatch(run=run, seq=len(batches), ids=chunk))
        total += len(chunk)
    JobBatch.objects.bulk_create(batches, batch_size=500)
    run.total = total
    run.save(update_fields=["total"])
    return run


def batch_claim(run: JobRun, *, holder: str | None = None) -> JobBatch | None:
    """Claim the run's next pending batch for ``holder`` (None when none is left)."""
    holder = holder or holder_id()
    with transaction.atomic():
        pending = run.batches.select_for_update(skip_locked=True).filter(
            status=JobBatch.Status.PENDING
        )
        return _claimed(pending.order_by("seq").first(), holder)


def batch_claim_by_id(batch_id: int, *, holder: str | None = None) -> JobBatch | None:
    """Claim one batch (a worker's job); None if it is done or another process has it."""
    holder = holder or holder_id()
    with transaction.atomic():
        batch = (
            JobBatch.objects.select_for_update()
            .filter(pk=batch_id, status=JobBatch.Status.PENDING)
            .first()
        )
        return _claimed(batch, holder)


def _claimed(batch: JobBatch | None, holder: str) -> JobBatch | None:
    """Mark a batch (locked by the caller's transaction) as ``holder``'s."""
    if batch is None:
        return None
    batch.status, batch.claimed_by = JobBatch.Status.RUNNING, holder
    batch.claimed_at = timezone.now()
    batch.save(update_fields=["status", "claimed_by", "claimed_at"])
    return batch


def batch_finish(batch: JobBatch, counts: dict[str, int]) -> None:
    """Checkpoint: the batch is done with these outcome counts, added to its run's."""
    now = timezone.now()
    with transaction.atomic():
        run = JobRun.objects.select_for_update().get(pk=batch.run_id)
        updated = JobBatch.objects.filter(pk=batch.pk, status=JobBatch.Status.RUNNING).update(
            status=JobBatch.Status.DONE, counts=counts
        )
        if not updated:
            return  # done by someone else meanwhile: count it once
        merged = dict(run.counts)
        for outcome, number in counts.items():
            merged[outcome] = merged.get(outcome, 0) + number
        run.counts, run.done, run.heartbeat_at = merged, run.done + len(batch.ids), now
        run.save(update_fields=["counts", "done", "heartbeat_at"])
        JobLock.objects.filter(run=run).update(heartbeat_at=now)


def batch_release(batch: JobBatch) -> None:
    """Give a claimed batch back (its work failed): another attempt takes it again."""
    JobBatch.objects.filter(pk=batch.pk, status=JobBatch.Status.RUNNING).update(
        status=JobBatch.Status.PENDING, claimed_by=""
    )


def run_inline(
    run: JobRun,
    work: BatchHandler,
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Work through the run's pending batches in this process, each checkpointed."""
    while (batch := batch_claim(run)) is not None:
        _batch_work(batch, run, work)
        if progress is not None:
            progress(len(batch.ids))


def run_enqueue(run: JobRun) -> int:
    """Queue one job per pending batch for the workers; returns how many were queued."""
    from jobs.tasks import run_batch

    ids = list(run.batches.filter(status=JobBatch.Status.PENDING).values_list("pk", flat=True))
    for batch_id in ids:
        run_batch.enqueue(batch_id)
    return len(ids)


def run_requeue_orphans(run: JobRun) -> int:
    """Give back, and queue again, the run's batches whose worker died mid-batch (see
    holder_alive: its process is gone from this machine, or another machine's worker
    claimed it more than JOB_LOCK_STALE_SECONDS ago). Returns how many."""
    from jobs.tasks import run_batch

    running = run.batches.filter(status=JobBatch.Status.RUNNING)
    orphans = [b.pk for b in running if not holder_alive(b.claimed_by, b.claimed_at)]
    for batch_id in orphans:
        given_back = JobBatch.objects.filter(pk=batch_id, status=JobBatch.Status.RUNNING).update(
            status=JobBatch.Status.PENDING, claimed_by=""
        )
        if given_back:
            run_batch.enqueue(batch_id)
    return len(orphans)


def batch_run(batch_id: int) -> bool:
    """Run one batch with its run's handler (in a worker); False if it was not pending.

    Raises NotABatchHandler, running nothing and leaving the batch pending, when the run's
    handler is not a function marked with batch_handler.
    """
    handler = _handler(
        JobRun.objects.filter(batches__pk=batch_id).values_list("handler", flat=True).first()
    )
    batch = batch_claim_by_id(batch_id)
    if batch is None:
        return False
    run = batch.run
    _batch_work(batch, run, handler)
    return True


def _handler(path: str | None) -> BatchHandler:
    """The marked handler at ``path`` (NotABatchHandler for anything else)."""
    try:
        fn = import_string(path or "")
    except ImportError:
        fn = None
    if not getattr(fn, _HANDLER_MARK, False):
        raise NotABatchHandler(f"not a batch handler: {path!r}")
    return cast(BatchHandler, fn)


def _batch_work(batch: JobBatch, run: JobRun, work: BatchHandler) -> None:
    """Do a claimed batch's work and checkpoint it; on any error give the batch back."""
    try:
        counts = work(list(batch.ids), dict(run.params))
    except BaseException:
        batch_release(batch)
        raise
    batch_finish(batch, counts)


def run_heartbeat(run: JobRun) -> None:
    """Vouch for the run's lock (a command waiting for workers calls this while it waits)."""
    now = timezone.now()
    JobRun.objects.filter(pk=run.pk).update(heartbeat_at=now)
    JobLock.objects.filter(run=run).update(heartbeat_at=now)


def run_refresh(run: JobRun) -> JobRun:
    """The run as committed now (progress made by workers)."""
    return JobRun.objects.get(pk=run.pk)


def run_finish(run: JobRun, *, summary: str, failed: bool) -> None:
    """Close the run with its summary line and free the job's lock."""
    with transaction.atomic():
        _run_close(run, summary=summary, failed=failed)
        JobLock.objects.filter(name=run.name, run=run).delete()


def _run_close(run: JobRun, *, summary: str, failed: bool) -> None:
    run.status = JobRun.Status.FAILED if failed else JobRun.Status.SUCCEEDED
    run.summary, run.finished_at = summary, timezone.now()
    run.save(update_fields=["status", "summary", "finished_at"])


def run_release(run: JobRun) -> None:
    """Free the job's lock, leaving the run unfinished (resumed by the next run)."""
    JobLock.objects.filter(name=run.name, run=run).delete()


def progress_run_start(*, name: str, params: dict, total: int) -> JobRun:
    """A run with no batches, for one job that reports its own progress (an admin's bulk
    action carried out by a worker): shown on the admin's page of job runs."""
    return JobRun.objects.create(name=name, params=params, total=total, heartbeat_at=timezone.now())


def progress_advance(run_id: int, *, outcome: str, count: int = 1) -> None:
    """Count ``count`` items of a progress run as done with ``outcome``."""
    with transaction.atomic():
        run = JobRun.objects.select_for_update().get(pk=run_id)
        run.counts = {**run.counts, outcome: run.counts.get(outcome, 0) + count}
        run.done, run.heartbeat_at = F("done") + count, timezone.now()
        run.save(update_fields=["counts", "done", "heartbeat_at"])


def progress_run_finish(run_id: int, *, summary: str, failed: bool = False) -> None:
    """Close a progress run: failed if ``failed`` or any item's outcome was "failed"."""
    run = JobRun.objects.get(pk=run_id)
    _run_close(run, summary=summary, failed=failed or bool(run.counts.get("failed")))
