"""File requests and malware scanning together: a visitor's files go through the same
scan as a user's (the form's handler streams to clamd; tus is scanned at completion) under
the visitors' policy (CLAMD_FAIL_OPEN_VISITORS, CLAMD_OVER_LIMIT_VISITORS), and the owner
is told by e-mail, naming the request, not the file."""

from __future__ import annotations

import secrets

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from audit.models import AuditEntry
from filerequests.models import ReceivedFile
from sharing.models import ResumableUpload, StoredFile
from tests.clamd import SIGNATURE, STREAM_MAX_BYTES, Clamd
from tests.helpers import MiB, files_on_disk, streamed
from tests.helpers_requests import make_request, send_form, tus_create, tus_patch, visitor
from tests.test_malware_scanning import infected

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def scanning(settings, clamd_daemon: Clamd) -> Clamd:  # type: ignore[no-untyped-def]
    settings.CLAMD_SOCKET = clamd_daemon.socket_path
    return clamd_daemon


def _nothing_stored() -> None:
    assert not StoredFile.objects.exists()
    assert not ResumableUpload.objects.exists()
    assert not ReceivedFile.objects.exists()
    assert files_on_disk() == []


def _owner_told(title: str) -> None:
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert SIGNATURE in message.body
    assert title in message.body or title in message.subject


def test_eicar_sent_through_a_request_form_is_refused_and_the_owner_told(
    alice: User, alice_client: Client, scanning: Clamd
) -> None:
    token, _ = make_request(alice_client, title="Tax papers")
    mail.outbox.clear()
    response = send_form(visitor(token), token, ("return.pdf", infected()), **JSON)
    assert response.status_code == 422
    assert SIGNATURE in response.content.decode()
    _nothing_stored()
    assert AuditEntry.objects.filter(event="file.malware_refused").count() == 1
    _owner_told("Tax papers")


def test_eicar_sent_through_a_request_by_tus_is_refused_and_leaves_nothing(
    alice: User, alice_client: Client, scanning: Clamd
) -> None:
    token, _ = make_request(alice_client, title="Scans")
    mail.outbox.clear()
    client = visitor(token)
    data = infected(2 * MiB)
    created = tus_create(client, token, len(data))
    assert created.status_code == 201
    assert tus_patch(client, created["Location"], 0, data[:MiB]).status_code == 204
    refused = tus_patch(client, created["Location"], MiB, data[MiB:])
    assert refused.status_code == 422
    assert SIGNATURE in refused.content.decode()
    _nothing_stored()
    assert AuditEntry.objects.filter(event="file.malware_refused").count() == 1
    assert len(mail.outbox) == 1 and SIGNATURE in mail.outbox[0].body


def test_a_clean_file_sent_through_a_request_arrives_marked_clean(
    alice: User, alice_client: Client, scanning: Clamd
) -> None:
    token, _ = make_request(alice_client)
    data = secrets.token_bytes(300_000)
    assert send_form(visitor(token), token, ("clean.pdf", data)).status_code == 302
    stored = StoredFile.objects.get()
    assert stored.scan_state == "clean"
    assert stored.owner == alice
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data


def test_visitors_are_refused_while_clamd_is_down_even_when_users_are_fail_open(
    alice: User, alice_client: Client, settings, own_clamd: Clamd
) -> None:  # type: ignore[no-untyped-def]
    settings.CLAMD_SOCKET = own_clamd.socket_path
    settings.CLAMD_FAIL_OPEN = True
    token, _ = make_request(alice_client)
    client = visitor(token)
    own_clamd.stop()
    response = send_form(client, token, ("a.pdf", b"plain text, nothing wrong\n" * 100), **JSON)
    assert response.status_code == 503
    assert response["Retry-After"]
    _nothing_stored()


def test_a_visitors_file_past_clamds_limit_is_refused_by_default(
    alice: User, alice_client: Client, scanning: Clamd
) -> None:
    token, _ = make_request(alice_client)
    big = secrets.token_bytes(STREAM_MAX_BYTES + MiB)
    response = send_form(visitor(token), token, ("big.bin", big), **JSON)
    assert response.status_code == 413
    _nothing_stored()
