"""E-mail leaves the request path: queued in the database, sent by a real `db_worker`
process with EMAIL_TIMEOUT, retried with a doubling delay, failed for good after
MAIL_ATTEMPTS; the queue table never holds an address, subject or link in clear."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from jobs import selectors as job_selectors
from tests.helpers import make_file, make_share
from tests.jobs_live import DATABASE_QUEUE, HungSMTPServer, TinySMTPServer, worker_batch

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def database_queue(settings) -> None:
    settings.TASKS = DATABASE_QUEUE


@pytest.fixture
def hung_smtp() -> Iterator[HungSMTPServer]:
    server = HungSMTPServer()
    yield server
    server.close()


@pytest.fixture
def smtp() -> Iterator[TinySMTPServer]:
    server = TinySMTPServer()
    yield server
    server.close()


def deliveries() -> list[DBTaskResult]:
    return list(
        DBTaskResult.objects.filter(task_path="securefiles.lib.mail.deliver").order_by(
            "enqueued_at"
        )
    )


def test_sharing_with_a_hung_mail_server_answers_at_once_and_the_worker_retries(
    database_queue, settings, alice, alice_client, bob, hung_smtp
):
    # The portal itself points at the hung server: nothing in the request may touch it.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", hung_smtp.port
    stored = make_file(alice, b"x", name="merger-draft.pdf")

    make_share(alice_client, stored, "bob")  # asserts the 302

    assert hung_smtp.connections == 0
    [queued] = deliveries()
    assert queued.status == "READY"
    row = str(queued.args_kwargs)
    for clear in ("bob@example.com", "alice", "shared a file", "merger-draft", str(stored.id)):
        assert clear not in row

    smtp_env = {"EMAIL_URL": f"smtp://127.0.0.1:{hung_smtp.port}", "EMAIL_TIMEOUT": "1"}
    result = worker_batch(**smtp_env, MAIL_ATTEMPTS="2", MAIL_RETRY_SECONDS="600")

    assert result.returncode == 0, result.stdout + result.stderr
    assert hung_smtp.connections == 1
    first, retry = deliveries()
    assert first.status == "SUCCESSFUL" and first.return_value == "retrying"
    assert retry.status == "READY"
    assert retry.run_after > timezone.now() + timedelta(seconds=590)  # backed off
    assert retry.args_kwargs["args"][2] == 2  # the second attempt
    assert job_selectors.queue_depth() == 1

    # Time passes; the second (last) attempt meets the same hung server: failed for good.
    DBTaskResult.objects.filter(pk=retry.pk).update(run_after=timezone.now())
    result = worker_batch(**smtp_env, MAIL_ATTEMPTS="2")

    assert result.returncode == 0, result.stdout + result.stderr
    assert hung_smtp.connections == 2
    retry.refresh_from_db()
    assert retry.status == "FAILED"
    assert retry.exception_class_path == "securefiles.lib.mail.MailNotSent"
    assert "bob@example.com" not in retry.traceback
    assert len(deliveries()) == 2  # no third attempt queued
    assert job_selectors.failed_count() == 1
    assert job_selectors.queue_depth() == 0
    assert job_selectors.queue_reachable()
    assert mail.outbox == []


def test_the_worker_delivers_share_and_password_reset_mail(
    database_queue, client, alice_with_password, alice_client, bob, smtp
):
    stored = make_file(alice_with_password, b"x")
    make_share(alice_client, stored, "bob")
    response = client.post("/accounts/password_reset/", {"email": "alice@example.com"})
    assert response.status_code == 302
    assert len(deliveries()) == 2 and smtp.messages == []

    result = worker_batch(EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}", EMAIL_TIMEOUT="5")

    assert result.returncode == 0, result.stdout + result.stderr
    assert all(row.status == "SUCCESSFUL" for row in deliveries())
    received = {tuple(to): email.message_from_bytes(raw) for to, raw in smtp.messages}
    assert set(received) == {("bob@example.com",), ("alice@example.com",)}
    share_mail = received[("bob@example.com",)]
    assert share_mail["Subject"] == "alice shared a file with you"
    assert f"/files/{stored.id}/" in share_mail.get_payload(decode=True).decode()
    reset = received[("alice@example.com",)].get_payload(decode=True).decode()
    assert "/accounts/reset/" in reset
    assert job_selectors.failed_count() == 0


def test_a_queued_message_that_was_tampered_with_is_not_sent(database_queue, alice, bob, smtp):
    from securefiles.lib.mail import send_later

    send_later(subject="s", body="b", to=["bob@example.com"], reason="test")
    [queued] = deliveries()
    args = queued.args_kwargs
    sealed = bytearray(args["args"][0].encode())
    sealed[20] = ord("A") if sealed[20] != ord("A") else ord("B")
    args["args"][0] = sealed.decode()
    DBTaskResult.objects.filter(pk=queued.pk).update(args_kwargs=args)

    result = worker_batch(EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}")

    assert result.returncode == 0, result.stdout + result.stderr
    queued.refresh_from_db()
    assert queued.status == "FAILED"
    assert smtp.messages == []


def test_mail_queued_before_a_secret_key_rotation_is_still_sent(
    database_queue, alice, bob, smtp, settings
):
    from securefiles.lib.mail import send_later

    old_key = settings.SECRET_KEY
    send_later(subject="s", body="b", to=["bob@example.com"], reason="test")
    new_key = old_key + "-rotated"

    # Django's rotation: the new key, the old one kept as a fallback while mail drains.
    result = worker_batch(
        EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}",
        SECRET_KEY=new_key,
        SECRET_KEY_FALLBACKS=old_key,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert [row.status for row in deliveries()] == ["SUCCESSFUL"]
    assert [to for to, _raw in smtp.messages] == [["bob@example.com"]]


def test_mail_sealed_under_a_key_no_longer_configured_fails_and_says_why(
    database_queue, alice, bob, smtp, settings
):
    from securefiles.lib.mail import send_later

    send_later(subject="s", body="b", to=["bob@example.com"], reason="invitation")

    result = worker_batch(
        EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}", SECRET_KEY=settings.SECRET_KEY + "-new"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert [row.status for row in deliveries()] == ["FAILED"]
    assert smtp.messages == []
    log = result.stdout + result.stderr
    assert "e-mail not sent reason=invitation error=SealBroken" in log
    assert "bob@example.com" not in log
