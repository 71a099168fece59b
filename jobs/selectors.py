"""Read-only questions about the queue and job runs (metrics, readiness, the admin)."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError

from jobs.models import JobRun


def _database_queue() -> bool:
    return settings.TASKS["default"]["BACKEND"] == "django_tasks_db.DatabaseBackend"


def queue_depth() -> int:
    """Jobs waiting in the queue (ready or scheduled for later, not yet started).

    0 with the "immediate" backend, which has no queue.
    """
    if not _database_queue():
        return 0
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(status="READY").count()


def failed_count() -> int:
    """Jobs that failed for good (their last attempt raised), still in the result table,
    plus maintenance runs that finished with problems."""
    runs = JobRun.objects.filter(status=JobRun.Status.FAILED).count()
    if not _database_queue():
        return runs
    from django_tasks_db.models import DBTaskResult

    return runs + DBTaskResult.objects.filter(status="FAILED").count()


def queue_reachable() -> bool:
    """Whether the queue answers (one cheap query); False instead of raising."""
    if not _database_queue():
        return True
    from django_tasks_db.models import DBTaskResult

    try:
        DBTaskResult.objects.only("pk").first()
    except DatabaseError:
        return False
    return True


def run_unfinished(name: str) -> JobRun | None:
    """The job's run in progress, if any."""
    return JobRun.objects.filter(name=name, status=JobRun.Status.RUNNING).order_by("-pk").first()


def batches_in_queue() -> bool:
    """Whether a batch job is still waiting or running in the queue (never, with the
    immediate backend: it ran each batch as it was queued)."""
    if not _database_queue():
        return False
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(
        task_path="jobs.tasks.run_batch", status__in=["READY", "RUNNING"]
    ).exists()
