"""File requests (issue 13): people without an account send files into a user's space.

The lifecycle (create, visit, upload by form and by tus, receipt, expire, revoke, full),
one identical 404 for every dead request, limits, the owner's e-mail, the audit entries,
no plaintext on disk, and the owner's byte-identical download.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.events import Event
from audit.models import AuditEntry
from filerequests.models import FileRequest, ReceivedFile, RequestUpload
from sharing import selectors
from sharing.models import ResumableUpload, StoredFile
from tests.helpers import MiB, files_on_disk, streamed
from tests.helpers_requests import (
    NEW_REQUEST_URL,
    make_request,
    send_form,
    tus_create,
    tus_patch,
    tus_send,
    visitor,
)
from tests.test_no_plaintext_on_disk import BLOCK, PERIOD, scan_for_plaintext

pytestmark = pytest.mark.django_db

DATA = b"%PDF-1.7 signed contract of the client\n" * 500


def _entries(event: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(event=event).order_by("seq"))


# -- the owner creates


def test_it_creates_a_request_and_shows_its_link_once(alice: User, alice_client: Client) -> None:
    token, found = make_request(alice_client, message="Please sign page 3", max_files="3")
    assert found.owner == alice and found.max_files == 3 and found.message == "Please sign page 3"
    assert found.token_digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in alice_client.get(f"/requests/{found.pk}/").content.decode()
    [created] = _entries(Event.REQUEST_CREATED)
    assert created.actor == "alice" and f"request={found.pk}" in created.detail


def test_it_lists_requests_on_the_home_page(alice_client: Client) -> None:
    make_request(alice_client, title="Prior scans")
    page = alice_client.get("/").content.decode()
    assert "Prior scans" in page and 'action="/requests/"' in page


@pytest.mark.parametrize(
    "fields",
    [
        {"title": ""},
        {"title": "x", "expires_in_hours": str(31 * 24)},
        {"title": "x", "max_files": "0"},
    ],
)
def test_it_refuses_a_bad_request_form(alice_client: Client, fields: dict) -> None:
    response = alice_client.post("/requests/", fields)
    assert response.status_code == 400
    assert not FileRequest.objects.exists()


def test_it_caps_expiry_at_the_setting(alice_client: Client, settings) -> None:
    settings.FILE_REQUEST_MAX_DAYS = 2
    assert (
        alice_client.post("/requests/", {"title": "x", "expires_in_hours": "49"}).status_code == 400
    )
    _token, found = make_request(alice_client, expires_in_hours="48")
    assert found.expires_at - timezone.now() <= timedelta(hours=48)


def test_it_hides_one_owners_requests_from_others(
    alice_client: Client, bob_client: Client, client: Client
) -> None:
    _token, found = make_request(alice_client)
    assert bob_client.get(f"/requests/{found.pk}/").status_code == 404
    assert bob_client.post(f"/requests/{found.pk}/revoke/").status_code == 404
    assert client.get(f"/requests/{found.pk}/").status_code == 302
    assert FileRequest.objects.get().revoked_at is None


def test_it_emails_the_link_to_a_recipient(alice_client: Client) -> None:
    token, found = make_request(alice_client)
    response = alice_client.post(
        f"/requests/{found.pk}/email/", {"token": token, "email": "client@example.org"}
    )
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["client@example.org"] and f"/r/{token}/" in message.body
    forged = alice_client.post(
        f"/requests/{found.pk}/email/", {"token": "A" * 43, "email": "x@example.org"}
    )
    assert forged.status_code == 400 and len(mail.outbox) == 1


@pytest.mark.argon2
def test_the_emailed_link_of_a_locked_request_says_nothing_of_it(alice_client: Client) -> None:
    token, found = make_request(
        alice_client, password="correct horse 9", message="Scans for patient Okafor"
    )
    response = alice_client.post(
        f"/requests/{found.pk}/email/", {"token": token, "email": "client@example.org"}
    )
    assert response.status_code == 302
    [message] = mail.outbox
    assert f"/r/{token}/" in message.body and "password" in message.body
    for text in (message.subject, message.body):
        assert "Signed contract" not in text and "Okafor" not in text


def test_it_limits_how_many_links_a_user_emails(
    alice_client: Client, bob_client: Client, settings
) -> None:
    settings.FILE_REQUEST_EMAILS_PER_USER = 2
    token, found = make_request(alice_client)
    url = f"/requests/{found.pk}/email/"
    forged = alice_client.post(url, {"token": "A" * 43, "email": "x@example.org"})
    assert forged.status_code == 400  # not counted
    for n in range(2):
        sent = alice_client.post(url, {"token": token, "email": f"c{n}@example.org"})
        assert sent.status_code == 302
    refused = alice_client.post(url, {"token": token, "email": "c3@example.org"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert [m.to for m in mail.outbox] == [["c0@example.org"], ["c1@example.org"]]
    # The limit is alice's, not everyone's.
    bob_token, bob_found = make_request(bob_client)
    sent = bob_client.post(
        f"/requests/{bob_found.pk}/email/", {"token": bob_token, "email": "d@example.org"}
    )
    assert sent.status_code == 302 and len(mail.outbox) == 3


# -- the visitor's page


def test_it_shows_the_visitor_the_request_and_nothing_else(
    alice: User, alice_client: Client
) -> None:
    alice.first_name, alice.last_name = "Alice", "Lawyer"
    alice.save()
    StoredFile.objects.all().delete()
    from tests.helpers import make_file

    make_file(alice, b"secret", name="other-client-file.txt")
    token, _found = make_request(alice_client, message="Sign page 3", max_files="2", max_mb="5")
    page = Client().get(f"/r/{token}/")
    body = page.content.decode()
    assert page.status_code == 200 and page["Cache-Control"] == "private, no-store"
    assert "Signed contract" in body and "Sign page 3" in body and "Alice Lawyer" in body
    assert "other-client-file" not in body and "alice@example.com" not in body
    assert 'data-tus-endpoint="/r/' in body


# -- sending by the plain form


def test_it_takes_files_by_the_plain_form_and_gives_a_receipt(
    alice: User, alice_client: Client
) -> None:
    token, found = make_request(alice_client)
    sender = visitor(token)
    response = send_form(sender, token, ("contract.pdf", DATA), ("annex.pdf", b"annex"))
    assert response.status_code == 302 and response["Location"] == f"/r/{token}/receipt/"
    stored = StoredFile.objects.get(name="contract.pdf")
    assert stored.owner == alice
    assert ReceivedFile.objects.get(file=stored).request == found
    assert selectors.usage_of(user=alice) == len(DATA) + 5
    receipt = sender.get(f"/r/{token}/receipt/").content.decode()
    assert "contract.pdf" in receipt and "annex.pdf" in receipt
    assert hashlib.sha256(DATA).hexdigest() in receipt and f"{len(DATA)} bytes" in receipt
    assert "contract.pdf" not in Client().get(f"/r/{token}/receipt/").content.decode()
    found.refresh_from_db()
    assert (found.received_files, found.received_bytes) == (2, len(DATA) + 5)
    assert not RequestUpload.objects.exists()


def test_the_owner_downloads_what_arrived_byte_identical(alice_client: Client) -> None:
    token, found = make_request(alice_client)
    send_form(visitor(token), token, ("contract.pdf", DATA))
    [row] = ReceivedFile.objects.filter(request=found)
    page = alice_client.get(f"/requests/{found.pk}/").content.decode()
    assert "contract.pdf" in page
    assert streamed(alice_client.get(f"/files/{row.file_id}/download/")) == DATA


def test_it_requires_name_and_email_when_asked(alice_client: Client, media_root) -> None:
    token, found = make_request(alice_client, require_sender="on")
    sender = Client()
    assert 'name="email"' in sender.get(f"/r/{token}/").content.decode()
    refused = send_form(sender, token, ("contract.pdf", DATA), name="Carol")
    assert refused.status_code == 400
    assert not StoredFile.objects.exists() and files_on_disk() == []
    accepted = send_form(
        sender, token, ("contract.pdf", DATA), name="Carol Client", email="carol@example.org"
    )
    assert accepted.status_code == 302
    row = ReceivedFile.objects.get()
    assert (row.sender_name, row.sender_email) == ("Carol Client", "carol@example.org")
    page = alice_client.get(f"/requests/{found.pk}/").content.decode()
    assert "Carol Client" in page and "carol@example.org" in page


def test_it_leaves_no_plaintext_on_disk(alice_client: Client) -> None:
    since = time.time() - 2
    data = (BLOCK * (3 * MiB // PERIOD + 1))[: 3 * MiB]
    token, _found = make_request(alice_client)
    sender = visitor(token)
    send_form(sender, token, ("payroll.xlsx", data))
    tus_send(sender, token, data, name="payroll2.xlsx")
    assert StoredFile.objects.count() == 2
    assert scan_for_plaintext(since) == []


# -- sending by tus


def test_it_takes_files_by_tus_into_the_owners_space(alice: User, alice_client: Client) -> None:
    token, found = make_request(alice_client)
    sender = visitor(token)
    location = tus_send(sender, token, DATA)
    assert location.startswith(f"http://testserver/r/{token}/uploads/")
    file_id = location.rstrip("/").split("/")[-1]
    row = ReceivedFile.objects.get(file_id=file_id)
    assert row.request == found and row.file.owner == alice and row.file.name == "scan.pdf"
    assert hashlib.sha256(DATA).hexdigest() in sender.get(f"/r/{token}/receipt/").content.decode()
    assert streamed(alice_client.get(f"/files/{file_id}/download/")) == DATA


def test_a_visitor_reaches_only_their_own_uploads(alice_client: Client) -> None:
    token, _found = make_request(alice_client)
    first, second = visitor(token), visitor(token)
    location = tus_create(first, token, len(DATA))["Location"]
    assert second.head(location, HTTP_TUS_RESUMABLE="1.0.0").status_code == 404
    assert tus_patch(second, location, 0, DATA).status_code == 404
    deleted = second.delete(location, HTTP_TUS_RESUMABLE="1.0.0")
    assert deleted.status_code == 404 and ResumableUpload.objects.count() == 1
    # Nor through the portal's own tus URL, which wants an account.
    upload_id = location.rstrip("/").split("/")[-1]
    assert first.head(f"/files/uploads/{upload_id}/", HTTP_TUS_RESUMABLE="1.0.0").status_code == 403


def test_a_visitor_cancels_their_unfinished_upload(alice_client: Client) -> None:
    token, _found = make_request(alice_client)
    sender = visitor(token)
    location = tus_create(sender, token, 3 * MiB)["Location"]
    assert tus_patch(sender, location, 0, b"x" * MiB).status_code == 204
    assert sender.delete(location, HTTP_TUS_RESUMABLE="1.0.0").status_code == 204
    assert not ResumableUpload.objects.exists() and files_on_disk() == []
    # The cancelled upload's declared details go with the request's next upload.
    again = tus_create(sender, token, 10)["Location"].rstrip("/").split("/")[-1]
    assert [str(pk) for pk in RequestUpload.objects.values_list("id", flat=True)] == [again]


def test_tus_needs_the_page_first(alice_client: Client) -> None:
    token, _found = make_request(alice_client, password="open sesame 42")
    response = tus_create(Client(), token, 10)
    assert response.status_code == 403 and not ResumableUpload.objects.exists()


# -- one 404 for every dead request


def _dead(kind: str, alice_client: Client) -> str:
    token, found = make_request(alice_client, max_files="1")
    if kind == "expired":
        FileRequest.objects.filter(pk=found.pk).update(expires_at=timezone.now())
    elif kind == "revoked":
        assert alice_client.post(f"/requests/{found.pk}/revoke/").status_code == 302
    elif kind == "full":
        send_form(visitor(token), token, ("a.pdf", b"a"))
    elif kind == "unknown":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    return token


@pytest.mark.parametrize("kind", ["unknown", "expired", "revoked", "full"])
def test_it_answers_one_identical_404_for_a_dead_request(
    alice_client: Client, client: Client, kind: str
) -> None:
    token = _dead(kind, alice_client)
    reference = client.get("/r/" + "Z" * 43 + "/")
    page = client.get(f"/r/{token}/")
    assert page.status_code == 404 and page.content == reference.content
    posted = send_form(client, token, ("b.pdf", b"b"))
    assert posted.status_code == 404 and posted.content == reference.content
    assert tus_create(client, token, 10).status_code == 404
    assert StoredFile.objects.count() == (1 if kind == "full" else 0)
    # The receipt and an upload's URL tell a stranger no more: a full request's receipt
    # is only for the browser that sent into it.
    receipt = client.get(f"/r/{token}/receipt/")
    assert receipt.status_code == 404 and receipt.content == reference.content
    upload_url = f"/r/{token}/uploads/00000000-0000-4000-8000-000000000000/"
    assert client.head(upload_url, HTTP_TUS_RESUMABLE="1.0.0").status_code == 404


HALF = b"y" * MiB


def _half_sent(alice_client: Client) -> tuple[FileRequest, Client, str]:
    """A request, and a visitor's 2 MiB tus upload into it with its first MiB stored."""
    token, found = make_request(alice_client)
    sender = visitor(token)
    location = tus_create(sender, token, 2 * MiB)["Location"]
    assert tus_patch(sender, location, 0, HALF).status_code == 204
    return found, sender, location


def _nothing_left() -> None:
    assert not StoredFile.objects.exists() and not ReceivedFile.objects.exists()
    assert not ResumableUpload.objects.exists() and files_on_disk() == []


def test_revoking_cancels_the_uploads_in_flight(alice_client: Client) -> None:
    found, sender, location = _half_sent(alice_client)
    alice_client.post(f"/requests/{found.pk}/revoke/")
    assert tus_patch(sender, location, MiB, HALF).status_code == 404
    _nothing_left()


def test_an_upload_finishing_after_the_expiry_is_not_committed(alice_client: Client) -> None:
    # The check at commit, under the request's lock: here the upload is finished by its
    # owner's own tus URL (which no request gate stands in front of) after the expiry.
    found, _sender, location = _half_sent(alice_client)
    FileRequest.objects.filter(pk=found.pk).update(expires_at=timezone.now())
    own_url = "/files/uploads/" + location.rstrip("/").split("/")[-1] + "/"
    assert tus_patch(alice_client, own_url, MiB, HALF).status_code == 404
    _nothing_left()


def test_a_full_request_refuses_more_and_keeps_the_receipt(alice_client: Client) -> None:
    token, found = make_request(alice_client, max_files="2")
    sender = visitor(token)
    too_many = send_form(sender, token, ("a", b"a"), ("b", b"b"), ("c", b"c"))
    assert too_many.status_code == 413 and files_on_disk() == []
    assert send_form(sender, token, ("a", b"a"), ("b", b"b")).status_code == 302
    assert sender.get(f"/r/{token}/").status_code == 404
    assert sender.get(f"/r/{token}/receipt/").status_code == 200


def test_it_refuses_an_upload_over_the_requests_bytes(alice_client: Client) -> None:
    token, _found = make_request(alice_client, max_mb="1")
    sender = visitor(token)
    response = send_form(sender, token, ("big.bin", b"z" * (MiB + 1)))
    assert response.status_code == 413
    assert tus_create(sender, token, MiB + 1).status_code == 413
    assert not StoredFile.objects.exists() and files_on_disk() == []


def test_it_counts_against_the_owners_quota(alice: User, alice_client: Client, settings) -> None:
    from sharing.models import StorageQuota

    StorageQuota.objects.create(user=alice, quota_mb=1)
    token, _found = make_request(alice_client)
    response = send_form(visitor(token), token, ("big.bin", b"q" * (MiB + 10)))
    assert response.status_code == 413
    assert not StoredFile.objects.exists() and files_on_disk() == []


def test_a_senders_unfinished_upload_does_not_block_the_owners_own(
    alice: User, alice_client: Client, settings
) -> None:
    from tests.test_tus import create, patch

    settings.USER_QUOTA_MB = 10
    token, _found = make_request(alice_client)
    stranger = visitor(token)
    held = tus_create(stranger, token, 8 * MiB)  # started, never finished
    assert held.status_code == 201
    # Strangers together cannot promise past the quota...
    assert tus_create(visitor(token), token, 5 * MiB).status_code == 413
    # ...but the owner's own upload is not blocked by theirs.
    own = os.urandom(5 * MiB)
    status, location = create(alice_client, len(own), filename="mine.bin")
    assert status == 201
    assert patch(alice_client, location, 0, own).status_code == 204
    assert StoredFile.objects.get(owner=alice).name == "mine.bin"
    # The room is the owner's now: the stranger's upload is refused when it completes.
    late = tus_patch(stranger, held["Location"], 0, os.urandom(8 * MiB))
    assert late.status_code == 413
    assert StoredFile.objects.count() == 1
    assert not ResumableUpload.objects.exists()


# -- passwords and rate limits


@pytest.mark.argon2
def test_it_asks_for_the_password_and_throttles_wrong_ones(alice_client: Client, settings) -> None:
    settings.LINK_PASSWORD_ATTEMPTS = 2
    token, found = make_request(alice_client, password="correct horse 9")
    assert found.password_hash.startswith("argon2")
    sender = Client()
    page = sender.get(f"/r/{token}/").content.decode()
    assert 'type="password"' in page and 'id="upload-form"' not in page
    assert send_form(sender, token, ("a", b"a"), password="wrong").status_code == 403
    other = Client()  # another browser, the same request: the count is the request's
    assert send_form(other, token, ("a", b"a"), password="wrong").status_code == 403
    throttled = send_form(sender, token, ("a", b"a"), password="correct horse 9")
    assert throttled.status_code == 429 and throttled["Retry-After"]
    assert not StoredFile.objects.exists() and files_on_disk() == []
    assert len(_entries(Event.REQUEST_PASSWORD_DENIED)) == 2
    assert _entries(Event.REQUEST_THROTTLED)


@pytest.mark.argon2
def test_the_right_password_opens_the_upload_area(alice_client: Client) -> None:
    token, _found = make_request(
        alice_client, password="correct horse 9", message="Scans for patient Okafor"
    )
    sender = Client()
    locked = sender.get(f"/r/{token}/").content.decode()
    assert "Signed contract" not in locked and "Okafor" not in locked
    assert 'id="id_password"' in locked
    wrong = send_form(sender, token, password="wrong horse").content.decode()
    assert "Signed contract" not in wrong and "Okafor" not in wrong
    assert send_form(sender, token, password="correct horse 9").status_code == 302
    opened = sender.get(f"/r/{token}/").content.decode()
    assert 'id="upload-form"' in opened
    assert "Signed contract" in opened and "Okafor" in opened
    assert tus_send(sender, token, DATA)


@pytest.mark.argon2
def test_a_locked_requests_receipt_and_refusals_say_nothing_of_it(alice_client: Client) -> None:
    token, _found = make_request(
        alice_client, password="correct horse 9", message="Scans for patient Okafor", max_mb=3
    )
    stranger = Client()  # has the link, not the password
    receipt = stranger.get(f"/r/{token}/receipt/")
    assert "Signed contract" not in receipt.content.decode()
    assert "Okafor" not in receipt.content.decode()
    # A body bigger than the password form is refused unread before the password is
    # checked: the refusal must not tell how much room the request has left.
    over = stranger.generic(
        "POST",
        f"/r/{token}/",
        b"x",
        content_type="multipart/form-data; boundary=b",
        CONTENT_LENGTH=str(50 * MiB),
    )
    assert over.status_code == 403
    assert "MiB" not in over.content.decode() and "Okafor" not in over.content.decode()
    # Once the password is given, both tell.
    assert send_form(stranger, token, password="correct horse 9").status_code == 302
    assert "Signed contract" in stranger.get(f"/r/{token}/receipt/").content.decode()


@pytest.mark.argon2
def test_files_from_a_browser_without_the_password_are_never_encrypted(
    alice_client: Client,
) -> None:
    token, _found = make_request(alice_client, password="correct horse 9")
    stranger = Client()
    assert 'type="file"' not in stranger.get(f"/r/{token}/").content.decode()
    big = send_form(stranger, token, ("junk.bin", os.urandom(8 * MiB)), password="guess")
    assert big.status_code == 403 and files_on_disk() == []
    # Even with the right password, files in the same post are not taken (the page asks
    # for the password first), and a small one is not written either.
    small = send_form(stranger, token, ("note.txt", b"hi"), password="correct horse 9")
    assert small.status_code == 403
    assert files_on_disk() == [] and not StoredFile.objects.exists()
    # The password was accepted: the upload area is open now.
    assert send_form(stranger, token, ("note.txt", b"hi")).status_code == 302
    assert StoredFile.objects.get().name == "note.txt"


def test_it_rate_limits_uploads_per_address(alice_client: Client, settings) -> None:
    settings.FILE_REQUEST_UPLOADS_PER_IP = 2
    token, _found = make_request(alice_client)
    sender = visitor(token)
    assert tus_create(sender, token, 10).status_code == 201
    assert send_form(sender, token, ("a", b"a")).status_code == 302
    refused = tus_create(visitor(token), token, 10)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert send_form(sender, token, ("b", b"b")).status_code == 429
    assert StoredFile.objects.count() == 1


def test_the_per_address_limit_counts_an_ipv6_sender_by_the_64(
    alice_client: Client, settings
) -> None:
    settings.FILE_REQUEST_UPLOADS_PER_IP = 2
    token, _found = make_request(alice_client)
    for host in (1, 2):
        sender = visitor(token, REMOTE_ADDR=f"2001:db8:5:9::{host}")
        assert send_form(sender, token, (f"f{host}", b"x")).status_code == 302
    refused = send_form(visitor(token, REMOTE_ADDR="2001:db8:5:9::3"), token, ("f3", b"x"))
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    other = visitor(token, REMOTE_ADDR="2001:db8:5:a::1")
    assert send_form(other, token, ("f4", b"x")).status_code == 302
    assert StoredFile.objects.count() == 3


# -- e-mail to the owner


def test_it_emails_the_owner_once_per_batch_naming_the_request(
    alice_client: Client, django_capture_on_commit_callbacks
) -> None:
    token, found = make_request(alice_client, title="Prior scans")
    sender = visitor(token)
    with django_capture_on_commit_callbacks(execute=True):
        send_form(sender, token, ("mri-secret-name.dcm", b"a"), ("ct.dcm", b"b"))
    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and "Prior scans" in message.subject
    assert f"/requests/{found.pk}/" in message.body and "mri-secret-name" not in message.body
    # Files sent together by tus (the page starts them at once): one e-mail, by the last.
    first = tus_create(sender, token, 100, "x1.dcm")["Location"]
    second = tus_create(sender, token, 100, "x2.dcm")["Location"]
    with django_capture_on_commit_callbacks(execute=True):
        assert tus_patch(sender, first, 0, b"c" * 100).status_code == 204
    assert len(mail.outbox) == 1  # the batch is not complete yet
    with django_capture_on_commit_callbacks(execute=True):
        assert tus_patch(sender, second, 0, b"d" * 100).status_code == 204
    assert len(mail.outbox) == 2 and "2 file(s)" in mail.outbox[1].body
    # A batch left unfinished (an upload abandoned) is told when the visitor is done.
    tus_create(sender, token, 100, "x3.dcm")
    with django_capture_on_commit_callbacks(execute=True):
        tus_send(sender, token, b"e" * 100, name="x4.dcm")
    assert len(mail.outbox) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert sender.post(f"/r/{token}/receipt/").status_code == 302
    assert len(mail.outbox) == 3 and "1 file(s)" in mail.outbox[2].body
    with django_capture_on_commit_callbacks(execute=True):
        sender.post(f"/r/{token}/receipt/")
    assert len(mail.outbox) == 3  # nothing new: no e-mail


# -- the audit log


def test_it_audits_the_lifecycle(alice_client: Client) -> None:
    token, found = make_request(alice_client, require_sender="on")
    sender = Client(REMOTE_ADDR="203.0.113.9")
    send_form(sender, token, ("contract.pdf", b"c"), name="Carol", email="carol@example.org")
    [received] = _entries(Event.REQUEST_FILE_RECEIVED)
    assert received.ip == "203.0.113.9" and received.file_name == "contract.pdf"
    assert f"request={found.pk}" in received.detail and "carol@example.org" in received.detail
    alice_client.post(f"/requests/{found.pk}/revoke/")
    [revoked] = _entries(Event.REQUEST_REVOKED)
    assert revoked.actor == "alice" and revoked.detail == f"request={found.pk}"


def test_it_audits_an_expiry_once_when_first_seen(alice_client: Client, client: Client) -> None:
    token, found = make_request(alice_client)
    FileRequest.objects.filter(pk=found.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/r/{token}/").status_code == 404
    assert client.get(f"/r/{token}/").status_code == 404
    assert alice_client.get(f"/requests/{found.pk}/").status_code == 200
    [expired] = _entries(Event.REQUEST_EXPIRED)
    assert expired.detail == f"request={found.pk}"


# -- the admin


def test_the_admin_lists_requests_and_revokes_them(
    alice_client: Client, admin_client: Client
) -> None:
    _token, found = make_request(alice_client, title="Supplier records")
    listing = admin_client.get("/admin/filerequests/filerequest/")
    assert listing.status_code == 200 and "Supplier records" in listing.content.decode()
    page = admin_client.get(f"/admin/filerequests/filerequest/{found.pk}/change/")
    assert page.status_code == 200 and "open" in page.content.decode()
    response = admin_client.post(
        "/admin/filerequests/filerequest/",
        {"action": "revoke_requests", "_selected_action": [found.pk]},
    )
    assert response.status_code == 302
    assert FileRequest.objects.get().revoked_at is not None
    [revoked] = _entries(Event.REQUEST_REVOKED)
    assert revoked.actor == "root"


# -- accessibility, as tests/test_accessibility.py checks the portal's pages


def test_every_request_page_labels_its_controls(alice_client: Client) -> None:
    from tests.test_accessibility import PageAudit

    created = alice_client.post("/requests/", {"title": "Records", "require_sender": "on"})
    token = NEW_REQUEST_URL.search(created.content.decode()).group(1)  # type: ignore[union-attr]
    found = FileRequest.objects.get()
    sender = Client()
    asking = sender.get(f"/r/{token}/").content
    send_form(sender, token, ("a.pdf", b"a"), name="Carol", email="carol@example.org")
    pages = {
        "home": alice_client.get("/").content,
        "list": alice_client.get("/requests/").content,
        "created": created.content,
        "detail": alice_client.get(f"/requests/{found.pk}/").content,
        "visitor asked for details": asking,
        "visitor ready": sender.get(f"/r/{token}/").content,
        "receipt": sender.get(f"/r/{token}/receipt/").content,
    }
    for name, html in pages.items():
        audit = PageAudit()
        audit.feed(html.decode())
        assert audit.unlabelled() == [], name
        assert audit.inline == [], name


def test_the_page_script_gets_json_from_the_plain_form(alice_client: Client) -> None:
    # upload.js falls back on the form where tus is missing: JSON in, JSON out.
    token, _found = make_request(alice_client, max_files="1")
    sender = visitor(token)
    json = {"HTTP_ACCEPT": "application/json"}
    sent = send_form(sender, token, ("a.pdf", b"a"), **json)
    assert sent.status_code == 201
    assert sent.json() == {
        "files": [{"name": "a.pdf", "size": 1, "expires_display": ""}],
        "receipt": f"/r/{token}/receipt/",
    }
    token2, _found2 = make_request(alice_client, max_files="1")
    refused = send_form(visitor(token2), token2, ("a", b"a"), ("b", b"b"), **json)
    assert refused.status_code == 413 and "at most 1 more file" in refused.json()["error"]


def test_visitors_cannot_fill_the_owners_unfinished_upload_cap(
    alice_client: Client, settings
) -> None:  # type: ignore[no-untyped-def]
    # A link holder who starts uploads and never finishes them uses up the request's
    # own cap of unfinished uploads, not the owner's: the owner still uploads by tus.
    settings.TUS_MAX_UNFINISHED = 2
    token, _found = make_request(alice_client)
    sender = visitor(token)
    assert [tus_create(sender, token, 10).status_code for _n in range(3)] == [201, 201, 429]
    from tests.test_tus import create

    assert create(alice_client, 10)[0] == 201
    assert create(alice_client, 10)[0] == 201
    assert create(alice_client, 10)[0] == 429  # the owner's own cap still holds
    assert ResumableUpload.objects.count() == 4


def test_a_title_with_line_breaks_cannot_add_mail_headers_nor_stop_the_mail(
    alice_client: Client, django_capture_on_commit_callbacks
) -> None:
    # A title pasted with a line break (or crafted): the owner is still told, and the
    # break never becomes a header of the message.
    token, found = make_request(alice_client, title="Scans\r\nBcc: eve@example.net")
    assert (
        alice_client.post(
            f"/requests/{found.pk}/email/", {"token": token, "email": "client@example.org"}
        ).status_code
        == 302
    )
    with django_capture_on_commit_callbacks(execute=True):
        send_form(visitor(token), token, ("a.dcm", b"a"))
    assert [m.to for m in mail.outbox] == [["client@example.org"], ["alice@example.com"]]
    for message in mail.outbox:
        headers = message.message().as_bytes().split(b"\n\n", 1)[0]
        assert b"\nBcc:" not in headers and message.bcc == [] and "\n" not in message.subject
        assert "Scans Bcc: eve@example.net" in message.subject


def test_a_visitor_learns_the_owners_display_name_never_the_login_name(
    alice: User, alice_client: Client
) -> None:
    # The login name is half of what the login page asks for: a link holder (or whoever
    # the link was e-mailed to) is shown the owner's name, and nothing without one.
    alice.username = "alice.login-7731"
    alice.save()
    token, found = make_request(alice_client)
    alice_client.post(f"/requests/{found.pk}/email/", {"token": token, "email": "c@example.org"})
    assert "alice.login-7731" not in visitor(token).get(f"/r/{token}/").content.decode()
    [message] = mail.outbox
    assert "alice.login-7731" not in message.subject + message.body
    alice.first_name, alice.last_name = "Alice", "Martin"
    alice.save()
    page = visitor(token).get(f"/r/{token}/").content.decode()
    assert "Requested by Alice Martin" in page and "alice.login-7731" not in page


@pytest.mark.parametrize(
    "field, value",
    [("max_files", "2147483648"), ("max_mb", str(2**63 // MiB + 1)), ("max_mb", "9" * 30)],
)
def test_limits_beyond_what_the_database_holds_are_a_form_error(
    alice_client: Client, field: str, value: str
) -> None:
    response = alice_client.post("/requests/", {"title": "Scans", field: value})
    assert response.status_code == 400 and b"less than or equal to" in response.content
    assert not FileRequest.objects.exists()


def test_a_sender_address_longer_than_the_column_is_a_form_error(
    alice_client: Client,
) -> None:
    # 312 characters: valid to Django's EmailField (up to 320), over the 254 that fit.
    email = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"
    token, _found = make_request(alice_client, require_sender="on")
    sender = visitor(token)
    response = send_form(sender, token, ("a.pdf", b"a"), name="Carol", email=email)
    assert response.status_code == 400 and not StoredFile.objects.exists()
    assert files_on_disk() == []
