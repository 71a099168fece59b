"""The jobs' own tasks (django-tasks): one batch of a maintenance run."""

from __future__ import annotations

from django_tasks import task

from jobs import services


@task()
def run_batch(batch_id: int) -> bool:
    """Work through one JobBatch (see jobs.services.batch_run)."""
    return services.batch_run(batch_id)
