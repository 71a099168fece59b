"""The sharing app's background jobs (django-tasks): thin entry points to services.bulk."""

from __future__ import annotations

from django_tasks import task


@task()
def user_delete_job(user_id: int, actor: str, run_id: int) -> None:
    """Delete a user's files one by one, then the user (services.bulk.user_delete_run);
    ``actor`` sealed by services.bulk.actor_seal."""
    from sharing.services import bulk

    if (who := bulk.actor_for_run(actor, run_id)) is not None:
        bulk.user_delete_run(user_id=user_id, actor=who, run_id=run_id)


@task()
def files_transfer_job(ids: list[str], new_owner_id: int, actor: str, run_id: int) -> None:
    """Transfer files to another user (services.bulk.files_transfer_run); ``actor`` sealed
    by services.bulk.actor_seal."""
    from sharing.services import bulk

    if (who := bulk.actor_for_run(actor, run_id)) is not None:
        bulk.files_transfer_run(ids=ids, new_owner_id=new_owner_id, actor=who, run_id=run_id)
