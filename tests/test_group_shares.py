"""Shares with a group and shares that expire: POST /files/<id>/shares/ with ``group`` or
``username`` and an optional ``expires_on``.

alice owns the file; alice and bob are in "Litigation"; charlie is in no group. A group
share reaches whoever is a member at the time of each request; an expired share answers
exactly like a revoked one.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEntry
from sharing.models import Share, StoredFile
from tests.helpers import make_file, streamed

pytestmark = pytest.mark.django_db

DATA = b"witness statements, privileged\n" * 50


@pytest.fixture
def litigation(alice: User, bob: User) -> Group:
    group = Group.objects.create(name="Litigation")
    group.user_set.add(alice, bob)
    return group


@pytest.fixture
def stored(alice: User) -> StoredFile:
    return make_file(alice, DATA, name="statements.pdf")


def _share(client: Client, stored: StoredFile, **fields: str):  # type: ignore[no-untyped-def]
    return client.post(f"/files/{stored.id}/shares/", fields)


def _shared_section(client: Client) -> str:
    home = client.get("/").content.decode()
    return home[home.index('id="shared-title"') :]


def _day(offset: int) -> date:
    return timezone.localdate() + timedelta(days=offset)


# ---------------------------------------------------------------------------- groups


def test_it_shares_with_a_group_the_owner_belongs_to(alice_client, litigation, stored) -> None:
    response = _share(alice_client, stored, group="Litigation")

    assert response.status_code == 302
    share = Share.objects.get()
    assert (share.file_id, share.group, share.colleague, share.expires_on) == (
        stored.id,
        litigation,
        None,
        None,
    )
    entry = AuditEntry.objects.get(event="share.granted")
    assert entry.detail == "group=Litigation"
    assert entry.actor == "alice"


def test_it_lets_a_member_see_and_download(alice_client, bob_client, litigation, stored) -> None:
    _share(alice_client, stored, group="Litigation")

    assert "statements.pdf" in _shared_section(bob_client)
    assert bob_client.get(f"/files/{stored.id}/").status_code == 200
    assert streamed(bob_client.get(f"/files/{stored.id}/download/")) == DATA
    entry = AuditEntry.objects.filter(event="file.download").get()
    assert (entry.actor, entry.detail) == ("bob", "via=group:Litigation")


def test_it_names_the_colleague_share_before_the_group_in_the_audit(
    alice_client, bob_client, litigation, stored
) -> None:
    _share(alice_client, stored, group="Litigation")
    _share(alice_client, stored, username="bob")

    streamed(bob_client.get(f"/files/{stored.id}/download/"))

    assert AuditEntry.objects.get(event="file.download").detail == "via=colleague"
    # Listed once, though two shares reach bob.
    assert _shared_section(bob_client).count("statements.pdf</a>") == 1


def test_it_gives_a_new_member_access(alice_client, charlie, charlie_client, litigation, stored):
    _share(alice_client, stored, group="Litigation")
    assert charlie_client.get(f"/files/{stored.id}/download/").status_code == 404

    litigation.user_set.add(charlie)

    assert streamed(charlie_client.get(f"/files/{stored.id}/download/")) == DATA


def test_it_takes_access_from_a_member_who_left(
    alice_client, bob, bob_client, litigation, stored
) -> None:
    _share(alice_client, stored, group="Litigation")
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 200

    litigation.user_set.remove(bob)

    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 404
    assert bob_client.get(f"/files/{stored.id}/").status_code == 404
    assert "statements.pdf" not in _shared_section(bob_client)


def test_it_takes_access_away_when_the_group_is_deleted(
    alice_client, bob_client, litigation, stored
) -> None:
    _share(alice_client, stored, group="Litigation")

    litigation.delete()

    assert Share.objects.count() == 0
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 404
    assert "statements.pdf" not in _shared_section(bob_client)


def test_it_refuses_a_group_the_owner_is_not_in(alice_client, charlie, stored) -> None:
    outsiders = Group.objects.create(name="Outsiders")
    outsiders.user_set.add(charlie)

    not_mine = _share(alice_client, stored, group="Outsiders")
    unknown = _share(alice_client, stored, group="No such group")

    assert not_mine.status_code == unknown.status_code == 400
    message = "You are not a member of a group of that name."
    assert message in not_mine.content.decode() and message in unknown.content.decode()
    assert Share.objects.count() == 0
    assert not AuditEntry.objects.filter(event="share.granted").exists()


def test_it_refuses_a_second_share_with_the_same_group(alice_client, litigation, stored) -> None:
    _share(alice_client, stored, group="Litigation")

    again = _share(alice_client, stored, group="Litigation")

    assert again.status_code == 400
    assert "already shared with that group" in again.content.decode()
    assert Share.objects.count() == 1


def test_it_refuses_both_a_colleague_and_a_group(alice_client, litigation, stored) -> None:
    both = _share(alice_client, stored, group="Litigation", username="bob")
    neither = _share(alice_client, stored, expires_on=_day(3).isoformat())

    assert both.status_code == neither.status_code == 400
    assert "Name either a colleague or a group." in both.content.decode()
    assert Share.objects.count() == 0


def test_it_keeps_the_owners_file_out_of_their_shared_list(alice_client, litigation, stored):
    _share(alice_client, stored, group="Litigation")

    assert "statements.pdf" not in _shared_section(alice_client)


def test_it_revokes_a_group_share(alice_client, bob_client, litigation, stored) -> None:
    _share(alice_client, stored, group="Litigation")
    share = Share.objects.get()

    response = alice_client.post(f"/files/{stored.id}/shares/{share.pk}/revoke/")

    assert response.status_code == 302
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 404
    assert AuditEntry.objects.get(event="share.revoked").detail == "group=Litigation"


def test_it_offers_only_the_owners_groups(alice_client, charlie, litigation, stored) -> None:
    Group.objects.create(name="Board").user_set.add(charlie)

    page = alice_client.get(f"/files/{stored.id}/").content.decode()

    assert '<option value="Litigation">' in page
    assert "Board" not in page


# ---------------------------------------------------------------------------- expiry


def test_it_records_the_last_day_of_access(alice_client, bob, stored) -> None:
    day = _day(7)

    response = _share(alice_client, stored, username="bob", expires_on=day.isoformat())

    assert response.status_code == 302
    assert Share.objects.get().expires_on == day
    entry = AuditEntry.objects.get(event="share.granted")
    assert entry.detail == f"colleague=bob expires_on={day.isoformat()}"
    page = alice_client.get(f"/files/{stored.id}/").content.decode()
    assert f"until {day.isoformat()}" in page


def test_it_works_until_the_end_of_the_last_day(alice_client, bob_client, stored) -> None:
    _share(alice_client, stored, username="bob", expires_on=_day(0).isoformat())

    assert streamed(bob_client.get(f"/files/{stored.id}/download/")) == DATA


@pytest.mark.parametrize("recipient", [{"username": "bob"}, {"group": "Litigation"}])
def test_it_treats_an_expired_share_like_a_revoked_one(
    alice_client, bob_client, charlie_client, litigation, stored, recipient
) -> None:
    _share(alice_client, stored, **recipient)
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 200

    Share.objects.update(expires_on=_day(-1))  # the day has passed

    for url in (f"/files/{stored.id}/", f"/files/{stored.id}/download/"):
        expired = bob_client.get(url)
        stranger = charlie_client.get(url)
        assert expired.status_code == stranger.status_code == 404
    assert bob_client.head(f"/files/{stored.id}/download/").status_code == 404
    assert "statements.pdf" not in _shared_section(bob_client)
    page = alice_client.get(f"/files/{stored.id}/").content.decode()
    assert f"expired after {_day(-1).isoformat()}" in page


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "01/12/2030", "x" * 300])
def test_it_refuses_a_bad_or_past_expiry(alice_client, bob, stored, value) -> None:
    value = _day(-1).isoformat() if value == "yesterday" else value

    response = _share(alice_client, stored, username="bob", expires_on=value)

    assert response.status_code == 400
    assert Share.objects.count() == 0
    assert not AuditEntry.objects.filter(event="share.granted").exists()


def test_it_refuses_a_past_expiry_in_the_service(alice, bob, stored) -> None:
    from audit.actors import Actor
    from sharing import services

    with pytest.raises(services.ShareError):
        services.share_grant(
            file=stored, query="bob", actor=Actor(label="alice"), expires_on=_day(-1)
        )
    assert Share.objects.count() == 0


# ---------------------------------------------------------------------------- queries


def test_it_lists_group_shares_with_a_constant_number_of_queries(
    alice, bob, bob_client, litigation
) -> None:
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert bob_client.get("/").status_code == 200
        return len(captured)

    Share.objects.create(file=make_file(alice, b"1", name="one.txt"), group=litigation)
    few = count_queries()
    for i in range(30):
        stored = make_file(alice, b"x", name=f"file-{i}.txt")
        Share.objects.create(file=stored, group=litigation, expires_on=_day(1))
        Share.objects.create(file=stored, colleague=bob)

    assert count_queries() == few


def test_it_pages_shares_by_name_and_by_group_together_newest_first_each_file_once(
    alice, bob, bob_client, litigation, settings
) -> None:
    # 60 files from alice, shared with bob alternately by name and through two groups,
    # some both ways; one of bob's own files shared with his group. The list is read from
    # two indexes and merged (sharing.selectors.SharesWithMe): across its two pages every
    # file must appear once, newest share first, and the count must agree.
    paralegals = Group.objects.create(name="Paralegals")
    paralegals.user_set.add(alice, bob)
    start = timezone.now() - timedelta(days=1)
    expected = []
    for i in range(60):
        stored = make_file(alice, b"x", name=f"doc-{i:02}.txt")
        if i % 3 == 0:
            share = Share.objects.create(file=stored, colleague=bob)
        else:
            share = Share.objects.create(
                file=stored, group=litigation if i % 3 == 1 else paralegals
            )
        Share.objects.filter(pk=share.pk).update(created_at=start + timedelta(minutes=i))
        if i % 10 == 0:  # the same file reaches bob a second, later way: still listed once
            other_way = {"group": paralegals} if i % 3 == 0 else {"colleague": bob}
            later = Share.objects.create(file=stored, **other_way)
            Share.objects.filter(pk=later.pk).update(created_at=start + timedelta(minutes=90))
        expected.append(f"doc-{i:02}.txt")
    own = make_file(bob, b"mine", name="bobs-own.txt")
    Share.objects.create(file=own, group=litigation)

    home = bob_client.get("/").content.decode()
    listed = _names_in_shared(home) + _names_in_shared(
        bob_client.get("/?shared_page=2").content.decode()
    )
    assert listed == expected[::-1]
    assert "Page 1 of 2" in home[home.index('id="shared-title"') :]


def _names_in_shared(page: str) -> list[str]:
    return re.findall(r'class="filename">([^<]+)</a>', page[page.index('id="shared-title"') :])
