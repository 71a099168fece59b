"""An administrator's bulk work on many files, carried out by the job worker: deleting a
user (their files one by one, then the account) and transferring files to another user.

The request only queues the job and a progress run (jobs.models.JobRun, shown on the
admin's "Job runs" page); the worker does each file in its own transaction with its own
audit entry, exactly as the admin did inside the request before, and counts it on the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.db import transaction

from audit.actors import Actor
from jobs import services as job_services
from jobs.models import JobRun
from securefiles.lib.auth_types import User
from sharing.models import StoredFile
from sharing.services.files import FileGone, file_delete, file_transfer
from sharing.services.users import user_delete


def user_delete_later(*, user: User, actor: Actor) -> JobRun:
    """Queue the deletion of a user: the worker deletes their files one by one (each a
    ``file.delete`` entry), then the account (``user.deleted``), as user_delete does.

    Returns the progress run (total: the user's files now). Queued in the caller's
    transaction: rolled back, nothing happens.
    """
    from sharing import tasks

    with transaction.atomic():
        total = StoredFile.objects.filter(owner=user).count()
        run = job_services.progress_run_start(
            name="user_delete", params={"user": user.get_username()}, total=total
        )
        tasks.user_delete_job.enqueue(user.pk, dataclasses.asdict(actor), run.pk)
    return run


def user_delete_run(*, user_id: int, actor: Actor, run_id: int) -> None:
    """The worker's side of user_delete_later (nothing to do if the user is gone)."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        job_services.progress_run_finish(run_id, summary="the user was already deleted")
        return
    ids = list(StoredFile.objects.filter(owner=user).values_list("pk", flat=True))
    _each_file(ids, run_id, lambda stored: file_delete(file=stored, actor=actor))
    # Files uploaded meanwhile, and the account, in one transaction (user_delete).
    user_delete(user=user, actor=actor)
    summary = f"deleted user {user.get_username()} and {len(ids)} file(s)"
    job_services.progress_run_finish(run_id, summary=summary)


def files_transfer_later(*, files: list[StoredFile], new_owner: User, actor: Actor) -> JobRun:
    """Queue the transfer of ``files`` to ``new_owner`` (one ``file.transfer`` entry per
    file, by the worker); returns the progress run."""
    from sharing import tasks

    ids = [str(stored.pk) for stored in files]
    with transaction.atomic():
        run = job_services.progress_run_start(
            name="files_transfer", params={"to": new_owner.get_username()}, total=len(ids)
        )
        tasks.files_transfer_job.enqueue(ids, new_owner.pk, dataclasses.asdict(actor), run.pk)
    return run


def files_transfer_run(*, ids: list[str], new_owner_id: int, actor: Actor, run_id: int) -> None:
    """The worker's side of files_transfer_later."""
    new_owner = get_user_model().objects.filter(pk=new_owner_id).first()
    if new_owner is None:
        job_services.progress_run_finish(run_id, summary="the new owner was deleted")
        return
    _each_file(
        ids, run_id, lambda stored: file_transfer(file=stored, new_owner=new_owner, actor=actor)
    )
    job_services.progress_run_finish(
        run_id, summary=f"transferred files to {new_owner.get_username()}"
    )


def _each_file(ids: list, run_id: int, work: Callable[[StoredFile], None]) -> None:
    """Do ``work`` on each file still there, counting "done" or "gone" on the run."""
    for file_id in ids:
        stored = StoredFile.objects.filter(pk=file_id).first()
        outcome = "gone"
        if stored is not None:
            try:
                work(stored)
                outcome = "done"
            except FileGone:
                pass  # deleted meanwhile: nothing left to do
        job_services.progress_advance(run_id, outcome=outcome)
