"""Every change of privilege lands in the audit chain with the acting administrator:
staff and superuser status, groups (created, members and permissions changed, deleted),
quotas and second factors reset. The chain stays intact (verify_audit_log exits 0).

The user change form's entries are tested field by field in test_admin_no_impersonation;
here, the group admin and one walk through all of them.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.http import HttpResponseBase
from django.test import Client

from audit.models import AuditEntry
from sharing.models import Share, StorageQuota
from tests.helpers import make_file
from tests.test_admin_no_impersonation import _change, _enrolled

pytestmark = pytest.mark.django_db

GROUPS = "/admin/auth/group/"
ADMIN = "root"


def _details(event: str) -> list[str]:
    return list(
        AuditEntry.objects.filter(event=event).order_by("seq").values_list("detail", flat=True)
    )


def _save_group(
    client: Client, group: Group | None, *, name: str, members: list[User], permissions=()
) -> HttpResponseBase:
    url = f"{GROUPS}add/" if group is None else f"{GROUPS}{group.pk}/change/"
    data = {
        "name": name,
        "members": [str(user.pk) for user in members],
        "permissions": [str(permission.pk) for permission in permissions],
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    return response


def _verify_audit_log() -> str:
    out = StringIO()
    call_command("verify_audit_log", stdout=out)  # raises CommandError (exit 1) if broken
    return out.getvalue()


def test_it_records_a_group_created_with_its_members(admin_client, alice, bob) -> None:
    permission = Permission.objects.get(codename="view_auditentry")

    _save_group(
        admin_client, None, name="Litigation", members=[bob, alice], permissions=[permission]
    )

    group = Group.objects.get(name="Litigation")
    assert set(group.user_set.values_list("username", flat=True)) == {"alice", "bob"}
    entry = AuditEntry.objects.get(event="group.created")
    assert entry.actor == ADMIN
    assert entry.detail == (
        "group=Litigation; permissions: [] -> ['audit.view_auditentry']; "
        "members: [] -> ['alice', 'bob']"
    )


def test_it_records_members_added_and_removed(admin_client, alice, bob, charlie) -> None:
    group = Group.objects.create(name="Litigation")
    group.user_set.add(alice, bob)

    _save_group(admin_client, group, name="Litigation", members=[alice, charlie])

    assert set(group.user_set.values_list("username", flat=True)) == {"alice", "charlie"}
    assert _details("group.changed") == [
        "group=Litigation; members: ['alice', 'bob'] -> ['alice', 'charlie']"
    ]


def test_it_records_nothing_when_a_group_did_not_change(admin_client, alice) -> None:
    group = Group.objects.create(name="Litigation")
    group.user_set.add(alice)

    _save_group(admin_client, group, name="Litigation", members=[alice])

    assert not AuditEntry.objects.filter(event__startswith="group.").exists()


def test_it_shows_the_members_on_the_group_page(admin_client, alice, bob) -> None:
    group = Group.objects.create(name="Litigation")
    group.user_set.add(alice)

    page = admin_client.get(f"{GROUPS}{group.pk}/change/").content.decode()

    assert f'<option value="{alice.pk}" selected>alice</option>' in page
    assert f'<option value="{bob.pk}">bob</option>' in page


def test_a_member_removed_in_the_admin_loses_access(admin_client, alice, bob, bob_client) -> None:
    group = Group.objects.create(name="Litigation")
    group.user_set.add(alice, bob)
    stored = make_file(alice, b"privileged", name="brief.pdf")
    Share.objects.create(file=stored, group=group)
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 200

    _save_group(admin_client, group, name="Litigation", members=[alice])

    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 404


@pytest.mark.parametrize("how", ["delete_page", "bulk_action"])
def test_it_records_a_group_deleted(admin_client, alice, bob, bob_client, how) -> None:
    group = Group.objects.create(name="Litigation")
    group.user_set.add(alice, bob)
    stored = make_file(alice, b"privileged", name="brief.pdf")
    Share.objects.create(file=stored, group=group)

    if how == "delete_page":
        response = admin_client.post(f"{GROUPS}{group.pk}/delete/", {"post": "yes"})
    else:
        data = {"action": "delete_selected", "_selected_action": [str(group.pk)], "post": "yes"}
        response = admin_client.post(GROUPS, data)

    assert response.status_code == 302
    assert not Group.objects.exists() and not Share.objects.exists()
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 404
    [entry] = AuditEntry.objects.filter(event="group.deleted")
    assert (entry.actor, entry.detail) == (ADMIN, "group=Litigation; members: ['alice', 'bob']")


def test_it_records_every_privilege_change_and_keeps_the_chain_intact(
    admin_client, alice, bob
) -> None:
    group = Group.objects.create(name="Litigation")
    StorageQuota.objects.create(user=alice, quota_mb=100)
    _enrolled(bob)

    _change(admin_client, alice, is_staff=True, is_superuser=True)
    alice.refresh_from_db()
    _change(admin_client, alice, is_superuser=False, groups=[group.pk], quota_mb=5)
    _save_group(admin_client, group, name="Litigation", members=[bob])
    admin_client.post(
        "/admin/auth/user/",
        {"action": "second_factor_reset", "_selected_action": [str(bob.pk)], "index": "0"},
    )

    # (The admin fixture's own creation as a superuser is recorded too: not counted here.)
    assert [d for d in _details("user.changed") if d.startswith("user=alice")] == [
        "user=alice; is_staff: False -> True; is_superuser: False -> True",
        "user=alice; is_superuser: True -> False; groups: [] -> ['Litigation']; quota_mb: 100 -> 5",
    ]
    assert _details("group.changed") == ["group=Litigation; members: ['alice'] -> ['bob']"]
    assert _details("2fa.reset") == ["user=bob"]
    staff_made = AuditEntry.objects.filter(detail__startswith="user=root; created; ")
    assert set(staff_made.values_list("actor", flat=True)) == {"system"}  # the fixture's
    assert set(AuditEntry.objects.exclude(pk__in=staff_made).values_list("actor", flat=True)) == {
        ADMIN
    }
    assert "audit log intact" in _verify_audit_log()
