"""An administrator's bulk work on many files, carried out by the job worker: deleting a
user (their files one by one, then the account) and transferring files to another user.

The request only queues the job and a progress run (jobs.models.JobRun, shown on the
admin's "Job runs" page); the worker does each file in its own transaction with its own
audit entry, exactly as the admin did inside the request before, and counts it on the run.

The queue is a database table: the actor (the administrator's name, IP address and
browser, for the audit entries) goes into it sealed (securefiles.lib.sealed), never in
clear. A file whose work fails is counted "failed" and logged by id; the run still ends
(as "finished with problems"), and a user with a file left is not deleted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from audit.actors import Actor
from jobs import services as job_services
from jobs.models import JobRun
from securefiles.lib.auth_types import User
from securefiles.lib.sealed import SealBroken, seal, unseal
from sharing.models import StoredFile
from sharing.services.files import FileGone, file_delete, file_transfer
from sharing.services.users import user_deactivate, user_delete

logger = logging.getLogger(__name__)

_ACTOR_PURPOSE = b"securefiles bulk job actor v1"


def actor_seal(actor: Actor) -> str:
    """The actor as a queued job carries it (sealed: see the module's docstring)."""
    return seal(dataclasses.asdict(actor), purpose=_ACTOR_PURPOSE)


def actor_for_run(sealed: Any, run_id: int) -> Actor | None:
    """The actor a queued job carries; None, with its run closed as failed and a log line,
    when it was sealed under a SECRET_KEY that is neither SECRET_KEY nor a fallback (the
    job then does nothing: an administrator starts it again)."""
    try:
        return Actor(**unseal(sealed, purpose=_ACTOR_PURPOSE))
    except SealBroken:
        logger.error("bulk job not run run=%s error=SealBroken (SECRET_KEY changed?)", run_id)
        summary = "not run: its queued details did not open (SECRET_KEY changed?); start it again"
        job_services.progress_run_finish(run_id, summary=summary, failed=True)
        return None


def user_delete_later(*, user: User, actor: Actor) -> JobRun:
    """Queue the deletion of a user: the worker deletes their files one by one (each a
    ``file.delete`` entry), then the account (``user.deleted``), as user_delete does.

    An active user is deactivated at once (user_deactivate: sessions refused, links and
    shares revoked, ``user.deactivated``), so nothing they do while the job waits in the
    queue outlives the deletion. Returns the progress run (total: the user's files now).
    Queued in the caller's transaction: rolled back, nothing happens.
    """
    from sharing import tasks

    with transaction.atomic():
        if user.is_active:
            user_deactivate(user=user, actor=actor)
        total = StoredFile.objects.filter(owner=user).count()
        run = job_services.progress_run_start(
            name="user_delete", params={"user": user.get_username()}, total=total
        )
        tasks.user_delete_job.enqueue(user.pk, actor_seal(actor), run.pk)
    return run


def user_delete_run(*, user_id: int, actor: Actor, run_id: int) -> None:
    """The worker's side of user_delete_later (nothing to do if the user is gone)."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        job_services.progress_run_finish(run_id, summary="the user was already deleted")
        return
    ids = list(StoredFile.objects.filter(owner=user).values_list("pk", flat=True))
    failed = _each_file(ids, run_id, lambda stored: file_delete(file=stored, actor=actor))
    if failed:
        summary = (
            f"{failed} of {len(ids)} file(s) could not be deleted (see the worker's log); "
            f"user {user.get_username()} is kept, deactivated: delete them again to retry"
        )
        job_services.progress_run_finish(run_id, summary=summary)
        return
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
        tasks.files_transfer_job.enqueue(ids, new_owner.pk, actor_seal(actor), run.pk)
    return run


def files_transfer_run(*, ids: list[str], new_owner_id: int, actor: Actor, run_id: int) -> None:
    """The worker's side of files_transfer_later."""
    new_owner = get_user_model().objects.filter(pk=new_owner_id).first()
    if new_owner is None:
        job_services.progress_run_finish(run_id, summary="the new owner was deleted")
        return
    failed = _each_file(
        ids, run_id, lambda stored: file_transfer(file=stored, new_owner=new_owner, actor=actor)
    )
    summary = f"transferred files to {new_owner.get_username()}"
    if failed:
        summary += f"; {failed} file(s) failed (see the worker's log): select them again"
    job_services.progress_run_finish(run_id, summary=summary)


def _each_file(ids: list, run_id: int, work: Callable[[StoredFile], None]) -> int:
    """Do ``work`` on each file still there, counting "done", "gone" or "failed" on the
    run; returns how many failed. A failure is logged by file id and error type only (a
    message could quote a file name)."""
    failed = 0
    for file_id in ids:
        stored = StoredFile.objects.filter(pk=file_id).first()
        outcome = "gone"
        if stored is not None:
            try:
                work(stored)
                outcome = "done"
            except FileGone:
                pass  # deleted meanwhile: nothing left to do
            except Exception as exc:  # noqa: BLE001  (one file's failure must not stop the run)
                logger.error(
                    "bulk job file failed run=%s file=%s error=%s",
                    run_id,
                    file_id,
                    type(exc).__name__,
                )
                outcome, failed = "failed", failed + 1
        job_services.progress_advance(run_id, outcome=outcome)
    return failed
