"""Offboarding: a deactivated user's links stop working and the shares they granted go,
whether an administrator unticks "Active" in the admin or code saves the user."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.actors import SYSTEM
from audit.models import AuditEntry
from audit.selectors import verify_chain
from sharing import services
from sharing.models import Share, ShareLink, StoredFile
from tests.helpers import client_for, make_file, make_link, make_share, streamed

pytestmark = pytest.mark.django_db

DATA = b"handover notes"


@pytest.fixture
def alices_world(alice, alice_client, bob) -> dict:
    """alice's file shared with bob, a file of bob's shared with alice, and two links."""
    stored = make_file(alice, DATA, name="handover.txt")
    make_share(alice_client, stored, "bob")
    first, _ = make_link(alice_client, stored)
    second, _ = make_link(alice_client, stored, max_downloads="3")
    bobs = make_file(bob, b"bob's", name="bobs.txt")
    bob_client = client_for(bob)
    make_share(bob_client, bobs, "alice")
    bobs_token, _ = make_link(bob_client, bobs)
    return {"file": stored, "tokens": [first, second], "bobs_token": bobs_token, "bobs": bobs}


def _deactivate_in_admin(admin_client: Client, user: User) -> None:
    url = f"/admin/auth/user/{user.pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    data = {
        "username": user.username,
        "email": user.email,
        "first_name": "",
        "last_name": "",
        "date_joined_0": form.initial["date_joined"].strftime("%Y-%m-%d"),
        "date_joined_1": form.initial["date_joined"].strftime("%H:%M:%S"),
        "storage_quota-TOTAL_FORMS": "0",
        "storage_quota-INITIAL_FORMS": "0",
        "storage_quota-MIN_NUM_FORMS": "0",
        "storage_quota-MAX_NUM_FORMS": "1",
        # "is_active" left out: the box is unticked.
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors


def _assert_offboarded(alices_world: dict, bob_client: Client) -> None:
    stored = alices_world["file"]
    assert ShareLink.objects.filter(created_by__username="alice", revoked_at=None).count() == 0
    assert ShareLink.objects.filter(created_by__username="alice").count() == 2
    for token in alices_world["tokens"]:
        assert Client().get(f"/s/{token}/").status_code == 404
        assert Client().post(f"/s/{token}/").status_code == 404
    assert not Share.objects.filter(file__owner__username="alice").exists()
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 404
    # What alice did not grant is untouched: bob's share with her, bob's own link.
    assert Share.objects.filter(file=alices_world["bobs"], colleague__username="alice").exists()
    assert streamed(Client().post(f"/s/{alices_world['bobs_token']}/")) == b"bob's"
    # Her files stay, for an administrator to transfer.
    assert StoredFile.objects.filter(pk=stored.pk).exists()
    assert verify_chain().intact


def test_it_offboards_a_user_deactivated_in_the_admin(
    admin_client, alice, bob_client, alices_world
) -> None:
    _deactivate_in_admin(admin_client, alice)

    alice.refresh_from_db()
    assert alice.is_active is False
    _assert_offboarded(alices_world, bob_client)
    entry = AuditEntry.objects.get(event="user.deactivated")
    assert entry.actor == "root"
    assert entry.detail == "user=alice links_revoked=2 shares_revoked=1"


def test_it_offboards_a_user_deactivated_in_code(alice, bob_client, alices_world) -> None:
    services.user_deactivate(user=alice, actor=SYSTEM)

    _assert_offboarded(alices_world, bob_client)
    entry = AuditEntry.objects.get(event="user.deactivated")
    assert (entry.actor, entry.detail) == ("system", "user=alice links_revoked=2 shares_revoked=1")


def test_it_logs_out_a_deactivated_user(alice, alice_client, alices_world) -> None:
    stored = alices_world["file"]
    assert alice_client.get(f"/files/{stored.id}/").status_code == 200

    alice.is_active = False
    alice.save()

    response = alice_client.get(f"/files/{stored.id}/download/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_does_not_offboard_on_other_saves(alice, bob_client, alices_world) -> None:
    alice.first_name = "Alice"
    alice.save()
    inactive = User.objects.create_user("dora", is_active=False)
    inactive.last_name = "Explorer"
    inactive.save()

    assert not AuditEntry.objects.filter(event="user.deactivated").exists()
    assert ShareLink.objects.filter(revoked_at=None).count() == 3
    assert streamed(bob_client.get(f"/files/{alices_world['file'].id}/download/")) == DATA


def test_it_keeps_links_revoked_after_reactivation(alice, alices_world) -> None:
    services.user_deactivate(user=alice, actor=SYSTEM)

    alice.is_active = True
    alice.save()

    for token in alices_world["tokens"]:
        assert Client().get(f"/s/{token}/").status_code == 404
    assert AuditEntry.objects.filter(event="user.deactivated").count() == 1


def test_it_lets_an_admin_hand_the_files_on(
    admin_client, alice, bob, bob_client, alices_world
) -> None:
    stored = alices_world["file"]
    _deactivate_in_admin(admin_client, alice)

    admin_client.post(
        "/admin/sharing/storedfile/",
        {
            "action": "transfer_files",
            "_selected_action": [str(stored.pk)],
            "new_owner": str(bob.pk),
        },
    )

    assert StoredFile.objects.get(pk=stored.pk).owner == bob
    assert streamed(bob_client.get(f"/files/{stored.id}/download/")) == DATA
    entry = AuditEntry.objects.get(event="file.transfer")
    assert (entry.actor, entry.detail) == ("root", "from=alice to=bob")
