"""What a write that loses a race answers: 404 for a file deleted meanwhile, a bounded
retry for a deadlock victim, then 503 with Retry-After, never a 500.

The races themselves run against PostgreSQL in tests/test_file_writes_concurrency.py;
here each outcome is forced, so these run on SQLite too.
"""

from __future__ import annotations

import psycopg.errors
import pytest
from django.db import OperationalError, transaction

from audit.actors import SYSTEM
from audit.models import AuditEntry
from securefiles.lib import transactions
from securefiles.lib.transactions import TryAgain, retry_on_deadlock
from sharing import selectors, services
from sharing.models import StoredFile
from tests.helpers import files_on_disk, make_file, upload

pytestmark = pytest.mark.django_db


def _deadlock() -> OperationalError:
    # How Django surfaces it: its own OperationalError, caused by psycopg's.
    error = OperationalError("deadlock detected")
    error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
    return error


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transactions, "BACKOFF_SECONDS", 0)


# ---------------------------------------------------------------------------- retries


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_victim_is_run_again(no_backoff) -> None:
    calls: list[int] = []

    @retry_on_deadlock
    def service() -> str:
        calls.append(1)
        if len(calls) < transactions.ATTEMPTS:
            raise _deadlock()
        return "done"

    assert service() == "done"
    assert len(calls) == transactions.ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_victim_gives_up_after_the_last_attempt(no_backoff) -> None:
    calls: list[int] = []

    @retry_on_deadlock
    def service() -> None:
        calls.append(1)
        raise _deadlock()

    with pytest.raises(TryAgain):
        service()
    assert len(calls) == transactions.ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_other_database_errors_are_not_retried(no_backoff) -> None:
    calls: list[int] = []

    @retry_on_deadlock
    def service() -> None:
        calls.append(1)
        raise OperationalError("disk I/O error")

    with pytest.raises(OperationalError, match="disk I/O"):
        service()
    assert len(calls) == 1


def test_a_service_inside_a_callers_transaction_is_not_retried(no_backoff) -> None:
    # Half of the caller's unit of work would be repeated: the caller decides.
    calls: list[int] = []

    @retry_on_deadlock
    def service() -> None:
        calls.append(1)
        raise _deadlock()

    with transaction.atomic(), pytest.raises(TryAgain):
        service()
    assert len(calls) == 1


# ---------------------------------------------------------------------------- 503


def test_a_write_given_up_answers_503_with_retry_after(alice, alice_client, monkeypatch) -> None:
    stored = make_file(alice, b"contract")

    def gives_up(**kwargs: object) -> None:
        raise TryAgain

    monkeypatch.setattr(services, "link_create", gives_up)
    response = alice_client.post(
        f"/files/{stored.id}/links/", {"expires_in_hours": "24", "max_downloads": "1"}
    )

    assert response.status_code == 503
    assert response["Retry-After"] == str(transactions.RETRY_AFTER_SECONDS)
    assert b"try again" in response.content.lower()


def test_an_upload_given_up_answers_503_and_keeps_no_blob(alice, alice_client, monkeypatch):
    def gives_up(**kwargs: object) -> None:
        raise TryAgain

    monkeypatch.setattr(services, "file_create_many", gives_up)
    response = upload(alice_client, ("notes.txt", b"some notes"), HTTP_ACCEPT="application/json")

    assert response.status_code == 503
    assert response["Retry-After"] == str(transactions.RETRY_AFTER_SECONDS)
    assert "error" in response.json()
    assert files_on_disk() == []
    assert not StoredFile.objects.exists()


# ---------------------------------------------------------------------------- file gone


def _stale(stored: StoredFile) -> StoredFile:
    """The file as a request that looked it up just before a parallel delete holds it."""
    stale = StoredFile.objects.get(pk=stored.pk)
    services.file_delete(file=stored, actor=SYSTEM)
    return stale


def test_writes_on_a_file_deleted_meanwhile_raise_file_gone(alice, bob) -> None:
    stale = _stale(make_file(alice, b"contract"))

    with pytest.raises(services.FileGone):
        services.file_delete(file=stale, actor=SYSTEM)
    with pytest.raises(services.FileGone):
        services.link_create(
            file=stale,
            actor=SYSTEM,
            created_by=alice,
            expires_in_hours=1,
            max_downloads=None,
            password="",
        )
    with pytest.raises(services.FileGone):
        services.share_grant(file=stale, query="bob", actor=SYSTEM)
    with pytest.raises(services.FileGone):
        services.file_transfer(file=stale, new_owner=bob, actor=SYSTEM)
    # Still a DoesNotExist for callers that catch that.
    assert issubclass(services.FileGone, StoredFile.DoesNotExist)
    assert AuditEntry.objects.filter(event="file.delete", file_id=stale.id).count() == 1


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("delete/", {}),
        ("links/", {"expires_in_hours": "24"}),
        ("shares/", {"username": "bob"}),
    ],
)
def test_a_file_deleted_after_the_lookup_answers_404(
    alice, bob, alice_client, monkeypatch, path, data
) -> None:
    stored = make_file(alice, b"contract")
    stale = _stale(stored)
    monkeypatch.setattr(selectors, "file_get_for_owner", lambda **kwargs: stale)

    response = alice_client.post(f"/files/{stored.id}/{path}", data)

    assert response.status_code == 404
    assert AuditEntry.objects.filter(file_id=stored.id).exclude(event="file.upload").count() == 1
