"""Sharing a file with a named colleague: POST /files/<id>/shares/ and its revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from sharing.models import Share, StoredFile
from tests.helpers import make_file, make_link, make_share, streamed
from throttle.models import ThrottleCounter

pytestmark = pytest.mark.django_db

DATA = b"quarterly figures, confidential"


@pytest.fixture
def stored(alice: User) -> StoredFile:
    return make_file(alice, DATA, name="Q3 figures.xlsx")


def _share(client: Client, stored: StoredFile, username: str):  # type: ignore[no-untyped-def]
    return client.post(f"/files/{stored.id}/shares/", {"username": username})


def test_it_shares_by_username(alice_client, bob, bob_client, stored) -> None:
    response = _share(alice_client, stored, "bob")

    assert response.status_code == 302
    assert response["Location"] == f"/files/{stored.id}/"
    assert list(Share.objects.values_list("file_id", "colleague__username")) == [(stored.id, "bob")]
    assert streamed(bob_client.get(f"/files/{stored.id}/download/")) == DATA


def test_it_shares_by_email_in_any_case(alice_client, bob, stored) -> None:
    response = _share(alice_client, stored, "  Bob@Example.COM ")

    assert response.status_code == 302
    assert Share.objects.get().colleague == bob


def test_it_mails_the_colleague_a_link_to_the_page_but_not_the_name(
    alice_client, bob, bob_client, stored, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SITE_URL = "https://files.example.org"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "evil.example"]  # a Host it accepts
    token, _ = make_link(alice_client, stored)  # a link exists: it must not leak into the mail

    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(
            f"/files/{stored.id}/shares/", {"username": "bob"}, HTTP_HOST="evil.example"
        )

    [message] = mail.outbox
    assert message.to == ["bob@example.com"]
    assert "alice" in message.subject
    page = f"https://files.example.org/files/{stored.id}/"
    assert page in message.body
    assert "evil.example" not in message.body
    for text in (message.subject, message.body):
        assert "Q3 figures" not in text
        assert token not in text
        assert "/s/" not in text
    opened = bob_client.get(page.removeprefix("https://files.example.org"))
    assert opened.status_code == 200
    assert b"Q3 figures.xlsx" in opened.content


def test_it_names_the_file_in_the_mail_only_when_the_operator_allows_it(
    alice_client, bob, stored, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SHARE_EMAIL_INCLUDES_NAME = True

    with django_capture_on_commit_callbacks(execute=True):
        _share(alice_client, stored, "bob")

    [message] = mail.outbox
    assert '"Q3 figures.xlsx"' in message.body
    assert "Q3 figures" not in message.subject
    assert f"/files/{stored.id}/" in message.body


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("invoice\u202efdp.exe", "invoice fdp.exe"),
        ("plan.txt\n\nUrgent: confirm your password at evil.example", "plan.txt Urgent:"),
    ],
)
def test_it_names_the_file_in_the_mail_as_the_pages_do(
    alice, alice_client, bob, settings, django_capture_on_commit_callbacks, name, shown
) -> None:
    # No bidi override to disguise the extension, no line break to forge a paragraph.
    settings.SHARE_EMAIL_INCLUDES_NAME = True
    stored = make_file(alice, b"x", name=name)

    with django_capture_on_commit_callbacks(execute=True):
        _share(alice_client, stored, "bob")

    [message] = mail.outbox
    assert shown in message.body
    assert "\u202e" not in message.body
    assert "\n\nUrgent" not in message.body


def test_it_mails_only_after_the_share_committed(
    alice_client, bob, stored, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _share(alice_client, stored, "bob")

    assert mail.outbox == []
    assert len(callbacks) == 1


def test_it_skips_the_mail_for_a_colleague_without_address(
    alice_client, stored, django_capture_on_commit_callbacks
) -> None:
    User.objects.create_user("noaddress")

    with django_capture_on_commit_callbacks(execute=True):
        response = _share(alice_client, stored, "noaddress")

    assert response.status_code == 302
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("nobody", "No active user with that username or e-mail."),
        ("nobody@example.com", "No active user with that username or e-mail."),
        ("inactive", "No active user with that username or e-mail."),
        ("inactive@example.com", "No active user with that username or e-mail."),
        ("alice", "You already own this file."),
        ("ALICE@example.com", "You already own this file."),
    ],
)
def test_it_refuses_a_share_it_cannot_grant(
    alice_client, stored, django_capture_on_commit_callbacks, username, message
) -> None:
    User.objects.create_user("inactive", email="inactive@example.com", is_active=False)

    with django_capture_on_commit_callbacks(execute=True):
        response = _share(alice_client, stored, username)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Share.objects.exists()
    assert mail.outbox == []
    assert not AuditEntry.objects.filter(event="share.granted").exists()


def test_it_refuses_an_email_that_several_users_have(alice_client, bob, stored) -> None:
    # Sign-up does not verify addresses: a second account may claim bob's.
    User.objects.create_user("mallory", email="BOB@example.com")

    response = _share(alice_client, stored, "bob@example.com")

    assert response.status_code == 400
    assert "Several users have that e-mail address" in response.content.decode()
    assert not Share.objects.exists()
    assert _share(alice_client, stored, "bob").status_code == 302


def test_it_refuses_a_duplicate_share(
    alice_client, bob, stored, django_capture_on_commit_callbacks
) -> None:
    make_share(alice_client, stored, "bob")

    with django_capture_on_commit_callbacks(execute=True):
        response = _share(alice_client, stored, "bob@example.com")

    assert response.status_code == 400
    assert "This file is already shared with that user." in response.content.decode()
    assert Share.objects.count() == 1
    assert mail.outbox == []
    assert AuditEntry.objects.filter(event="share.granted").count() == 1


@pytest.mark.parametrize("username", ["", "   ", "x" * 300, "a\x00b"])
def test_it_answers_400_to_a_malformed_username(alice_client, stored, username) -> None:
    response = _share(alice_client, stored, username)

    assert response.status_code == 400
    assert not Share.objects.exists()


def test_it_does_not_match_a_username_by_prefix_or_case(alice_client, bob, stored) -> None:
    assert _share(alice_client, stored, "bo").status_code == 400
    assert _share(alice_client, stored, "%").status_code == 400
    assert not Share.objects.exists()


def test_it_shows_the_owner_who_has_access(alice_client, bob, charlie, stored) -> None:
    make_share(alice_client, stored, "bob")
    make_share(alice_client, stored, "charlie")

    page = alice_client.get(f"/files/{stored.id}/").content.decode()

    for share in Share.objects.all():
        assert f"/files/{stored.id}/shares/{share.pk}/revoke/" in page
    assert "bob" in page and "charlie" in page


def test_it_revokes_a_share(alice_client, bob, bob_client, stored) -> None:
    share = make_share(alice_client, stored, "bob")

    response = alice_client.post(f"/files/{stored.id}/shares/{share.pk}/revoke/")

    assert response.status_code == 302
    assert not Share.objects.exists()
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 404
    page = alice_client.get(f"/files/{stored.id}/").content.decode()
    assert f"/shares/{share.pk}/revoke/" not in page
    entry = AuditEntry.objects.get(event="share.revoked")
    assert (entry.actor, entry.file_id, entry.detail) == ("alice", stored.id, "colleague=bob")


def test_it_answers_404_to_revoking_a_share_twice(alice_client, bob, stored) -> None:
    share = make_share(alice_client, stored, "bob")
    alice_client.post(f"/files/{stored.id}/shares/{share.pk}/revoke/")

    again = alice_client.post(f"/files/{stored.id}/shares/{share.pk}/revoke/")

    assert again.status_code == 404
    assert AuditEntry.objects.filter(event="share.revoked").count() == 1


def test_it_refuses_get_on_state_changing_urls(alice_client, bob, stored) -> None:
    share = make_share(alice_client, stored, "bob")

    assert alice_client.get(f"/files/{stored.id}/shares/").status_code == 405
    assert alice_client.get(f"/files/{stored.id}/shares/{share.pk}/revoke/").status_code == 405
    assert Share.objects.filter(pk=share.pk).exists()


def test_it_deletes_the_shares_with_the_file(alice_client, bob, bob_client, stored) -> None:
    make_share(alice_client, stored, "bob")

    alice_client.post(f"/files/{stored.id}/delete/", {"confirm": "on"})

    assert not Share.objects.exists()
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 404
    assert "Q3 figures.xlsx" not in bob_client.get("/").content.decode()


def test_it_requires_csrf_to_share(alice, stored) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    User.objects.create_user("bob", email="bob@example.com")

    response = _share(client, stored, "bob")

    assert response.status_code == 403
    assert not Share.objects.exists()


# ---------------------------------------------------------------------------- enumeration
# Sharing by name tells the owner that a colleague's account exists (that is its point);
# lookups that match no account are limited per user, so it is no way to list accounts.

LOOKUP_LIMIT = 10


def _miss(client: Client, stored: StoredFile, times: int) -> None:
    for attempt in range(times):
        response = _share(client, stored, f"guess{attempt}@example.com")
        assert response.status_code == 400
        assert "No active user with that username or e-mail." in response.content.decode()


def test_it_pauses_sharing_by_name_after_ten_lookups_that_match_nobody(
    alice_client, bob, stored, django_capture_on_commit_callbacks
) -> None:
    _miss(alice_client, stored, LOOKUP_LIMIT)

    with django_capture_on_commit_callbacks(execute=True):
        refused = _share(alice_client, stored, "bob")

    assert refused.status_code == 429
    page = refused.content.decode()
    assert "10 names or addresses that match no account within 1\xa0hour" in page
    assert "try again in" in page
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "No active user" not in page  # nothing was looked up
    assert not Share.objects.exists()
    assert mail.outbox == []
    assert not AuditEntry.objects.filter(event="share.granted").exists()
    # Audited once, with the limit, however often the user tries again.
    assert _share(alice_client, stored, "guess-more").status_code == 429
    entry = AuditEntry.objects.get(event="share.lookup_throttled")
    assert (entry.actor, entry.detail) == ("alice", "failures=10 window=3600s")


def test_it_counts_failed_lookups_per_user(alice_client, bob, charlie, charlie_client, stored):
    _miss(alice_client, stored, LOOKUP_LIMIT)
    charlies = make_file(charlie, b"charlie's notes")

    response = _share(charlie_client, charlies, "bob")

    assert response.status_code == 302
    assert Share.objects.get().file == charlies


def test_it_does_not_count_lookups_that_find_someone(alice_client, bob, stored) -> None:
    _miss(alice_client, stored, LOOKUP_LIMIT - 1)
    assert _share(alice_client, stored, "bob").status_code == 302
    assert _share(alice_client, stored, "bob").status_code == 400  # already shared: found
    assert _share(alice_client, stored, "alice").status_code == 400  # the owner: found

    last_miss = _share(alice_client, stored, "nobody")

    assert last_miss.status_code == 400
    assert _share(alice_client, stored, "charlie").status_code == 429


def test_it_counts_an_address_several_users_have_as_a_miss(alice_client, bob, stored) -> None:
    User.objects.create_user("mallory", email="BOB@example.com")
    _miss(alice_client, stored, LOOKUP_LIMIT - 1)

    assert _share(alice_client, stored, "bob@example.com").status_code == 400

    assert _share(alice_client, stored, "bob").status_code == 429


def test_it_shares_by_name_again_once_the_window_is_over(alice, alice_client, bob, stored):
    _miss(alice_client, stored, LOOKUP_LIMIT)
    assert _share(alice_client, stored, "bob").status_code == 429

    window = timedelta(seconds=3600)
    ThrottleCounter.objects.filter(key=f"share-lookup:{alice.pk}").update(
        window_start=timezone.now() - window
    )

    assert _share(alice_client, stored, "bob").status_code == 302
    assert Share.objects.get().colleague == bob


def test_it_follows_the_configured_lookup_limit(alice_client, bob, stored, settings) -> None:
    settings.SHARE_LOOKUP_FAILURES = 2
    settings.SHARE_LOOKUP_WINDOW_SECONDS = 600
    _miss(alice_client, stored, 2)

    refused = _share(alice_client, stored, "bob")

    assert refused.status_code == 429
    assert "2 names or addresses that match no account within 10\xa0minutes" in (
        refused.content.decode()
    )
    assert 0 < int(refused["Retry-After"]) <= 600


def test_sharing_again_and_again_emails_the_colleague_once(
    alice_client, bob, charlie, stored, django_capture_on_commit_callbacks
) -> None:
    for _round in range(3):  # share, revoke, share again...
        with django_capture_on_commit_callbacks(execute=True):
            assert alice_client.post(
                f"/files/{stored.id}/shares/", {"username": "bob"}
            ).status_code in (200, 302)
        share = Share.objects.get(file=stored, colleague=bob)
        alice_client.post(f"/files/{stored.id}/shares/{share.pk}/revoke/")
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]
    # Another colleague is told as before.
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(f"/files/{stored.id}/shares/", {"username": "charlie"})
    assert len(mail.outbox) == 2
