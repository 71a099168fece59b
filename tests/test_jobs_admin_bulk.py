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
