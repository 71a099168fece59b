"""The admin's bulk work leaves the request: deleting a user and transferring files are
queued, shown on the Job runs page, and carried out by a real `db_worker` process with one
audit entry per file."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from jobs.models import JobRun
from sharing.models import StoredFile
from tests.helpers import make_file
from tests.jobs_live import DATABASE_QUEUE, worker_batch

pytestmark = pytest.mark.django_db(transaction=True)

USERS = "/admin/auth/user/"
FILES = "/admin/sharing/storedfile/"


@pytest.fixture(autouse=True)
def database_queue(settings) -> None:
    settings.TASKS = DATABASE_QUEUE


def test_deleting_a_user_is_queued_then_done_file_by_file(admin_client, alice, bob):
    ids = {str(make_file(bob, f"{n}".encode(), name=f"b{n}.txt").id) for n in range(4)}
    make_file(alice, b"kept")

    response = admin_client.post(f"{USERS}{bob.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert StoredFile.objects.filter(owner=bob).count() == 4  # nothing done in the request
    run = JobRun.objects.get(name="user_delete")
    assert (run.status, run.total, run.done, run.params) == ("running", 4, 0, {"user": "bob"})
    page = admin_client.get("/admin/jobs/jobrun/")
    assert b"user_delete" in page.content and b"0/4 (0%)" in page.content

    result = worker_batch()

    assert result.returncode == 0, result.stdout + result.stderr
    assert not StoredFile.objects.filter(pk__in=ids).exists()
    assert StoredFile.objects.count() == 1  # alice's
    deletes = AuditEntry.objects.filter(event="file.delete")
    assert sorted(str(e.file_id) for e in deletes) == sorted(ids)
    assert {e.actor for e in deletes} == {"root"}
    assert AuditEntry.objects.filter(event="user.deleted", detail="user=bob").count() == 1
    run.refresh_from_db()
    assert (run.status, run.done, run.counts) == ("succeeded", 4, {"done": 4})
    assert not type(bob).objects.filter(username="bob").exists()


def test_transferring_files_is_queued_then_done_by_the_worker(admin_client, alice, bob):
    files = [make_file(alice, f"{n}".encode(), name=f"a{n}.txt") for n in range(3)]
    selected = [str(stored.pk) for stored in files]

    response = admin_client.post(
        FILES,
        {"action": "transfer_files", "_selected_action": selected, "new_owner": str(bob.pk)},
    )

    assert response.status_code == 302
    assert set(StoredFile.objects.values_list("owner__username", flat=True)) == {"alice"}
    result = worker_batch()
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(StoredFile.objects.values_list("owner__username", flat=True)) == {"bob"}
    transfers = AuditEntry.objects.filter(event="file.transfer")
    assert sorted(str(e.file_id) for e in transfers) == sorted(selected)
    run = JobRun.objects.get(name="files_transfer")
    assert (run.status, run.total, run.done) == ("succeeded", 3, 3)


def _hold_file_against_delete(stored: StoredFile) -> None:
    """A database trigger that refuses to delete this one file's row: a real failure in
    the worker process (as a lost connection or a deadlock given up on would be)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "CREATE TRIGGER hold BEFORE DELETE ON sharing_storedfile "
                f"WHEN old.id = '{stored.pk.hex}' BEGIN SELECT RAISE(ABORT, 'held'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION hold() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'held'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER hold BEFORE DELETE ON sharing_storedfile FOR EACH ROW "
                f"WHEN (old.id = '{stored.pk}') EXECUTE FUNCTION hold()"
            )


def _release_hold() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER IF EXISTS hold"
            + ("" if connection.vendor == "sqlite" else " ON sharing_storedfile")
        )
        if connection.vendor != "sqlite":
            cursor.execute("DROP FUNCTION IF EXISTS hold()")


def test_the_queue_holds_no_administrator_name_address_or_browser_in_clear(
    admin_client, alice, bob, charlie
):
    from django_tasks_db.models import DBTaskResult

    stored = make_file(alice, b"x", name="a.txt")
    admin_client.post(f"{USERS}{bob.pk}/delete/", {"post": "yes"}, HTTP_USER_AGENT="AdminAgent/1")
    admin_client.post(
        FILES,
        {
            "action": "transfer_files",
            "_selected_action": [str(stored.pk)],
            "new_owner": str(charlie.pk),
        },
        HTTP_USER_AGENT="AdminAgent/1",
    )

    queued = [repr(row.args_kwargs) for row in DBTaskResult.objects.all()]
    assert len(queued) == 2
    for args in queued:
        assert "root" not in args and "127.0.0.1" not in args and "AdminAgent" not in args

    result = worker_batch()

    assert result.returncode == 0, result.stdout + result.stderr
    entries = AuditEntry.objects.filter(event__in=["user.deleted", "file.transfer"])
    assert {(e.event, e.actor, e.ip) for e in entries} == {
        ("user.deleted", "root", "127.0.0.1"),
        ("file.transfer", "root", "127.0.0.1"),
    }


def test_a_user_being_deleted_is_locked_out_while_the_job_waits(admin_client, bob, bob_client):
    assert bob_client.get("/").status_code == 200

    admin_client.post(f"{USERS}{bob.pk}/delete/", {"post": "yes"})

    bob.refresh_from_db()
    assert not bob.is_active
    assert bob_client.get("/").status_code == 302  # to the login page: the session is refused
    assert AuditEntry.objects.filter(
        event="user.deactivated", detail__startswith="user=bob "
    ).exists()


def test_a_file_that_cannot_be_deleted_ends_the_run_with_problems_and_keeps_the_user(
    admin_client, bob
):
    held = make_file(bob, b"held", name="held.txt")
    other = make_file(bob, b"other", name="other.txt")
    _hold_file_against_delete(held)
    try:
        admin_client.post(f"{USERS}{bob.pk}/delete/", {"post": "yes"})
        result = worker_batch()
    finally:
        _release_hold()

    assert result.returncode == 0, result.stdout + result.stderr
    run = JobRun.objects.get(name="user_delete")
    assert (run.status, run.done, run.counts) == ("failed", 2, {"done": 1, "failed": 1})
    assert "1 of 2 file(s) could not be deleted" in run.summary
    assert StoredFile.objects.filter(pk=held.pk).exists()
    assert not StoredFile.objects.filter(pk=other.pk).exists()
    assert type(bob).objects.filter(pk=bob.pk, is_active=False).exists()
    assert not AuditEntry.objects.filter(event="user.deleted").exists()
    log = result.stdout + result.stderr
    assert f"bulk job file failed run={run.pk} file={held.pk}" in log
    assert "held.txt" not in log


def test_a_bulk_job_queued_before_secret_key_changed_ends_failed_and_changes_nothing(
    admin_client, bob, settings
):
    stored = make_file(bob, b"x", name="b.txt")
    admin_client.post(f"{USERS}{bob.pk}/delete/", {"post": "yes"})

    result = worker_batch(SECRET_KEY=settings.SECRET_KEY + "-new")  # no fallback kept

    assert result.returncode == 0, result.stdout + result.stderr
    run = JobRun.objects.get(name="user_delete")
    assert run.status == "failed" and "SECRET_KEY changed?" in run.summary
    assert StoredFile.objects.filter(pk=stored.pk).exists()
    assert type(bob).objects.filter(pk=bob.pk, is_active=False).exists()
    assert f"bulk job not run run={run.pk} error=SealBroken" in result.stdout + result.stderr
