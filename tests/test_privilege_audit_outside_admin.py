"""Privileges changed outside the admin (createsuperuser, a shell, a script) land in the
audit chain too (issue 15: every change of privilege is recorded), once per change; the
admin's own paths are not recorded twice."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from audit.models import AuditEntry
from sharing import services

pytestmark = pytest.mark.django_db


def _changes() -> list[str]:
    return list(
        AuditEntry.objects.filter(event="user.changed")
        .order_by("seq")
        .values_list("detail", flat=True)
    )


def test_createsuperuser_is_recorded(monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long enough pass phrase 1")
    call_command(
        "createsuperuser", "--noinput", username="root2", email="root2@example.org", verbosity=0
    )

    [detail] = _changes()
    assert detail.startswith("user=root2; created; ")
    assert "is_staff: False -> True" in detail and "is_superuser: False -> True" in detail
    assert AuditEntry.objects.get(event="user.changed").actor == "system"


def test_a_shell_granting_and_removing_staff_is_recorded(alice: User) -> None:
    alice.is_staff = True
    alice.save()
    alice.is_staff = False
    alice.is_active = False
    alice.save(update_fields=["is_staff", "is_active"])

    assert _changes() == [
        "user=alice; is_staff: False -> True",
        "user=alice; is_staff: True -> False; is_active: True -> False",
    ]


def test_saves_that_change_no_privilege_record_nothing(alice: User) -> None:
    alice.first_name = "Alice"
    alice.save()
    alice.set_password("another long pass phrase")
    alice.save(update_fields=["password"])
    User.objects.create_user("plain", password="a long enough pass phrase 2")

    assert _changes() == []


def test_deactivating_through_the_service_is_recorded_once(alice: User) -> None:
    from audit.actors import SYSTEM

    services.user_deactivate(user=alice, actor=SYSTEM)

    assert _changes() == []
    assert AuditEntry.objects.filter(event="user.deactivated").count() == 1
