"""An administrator cannot impersonate a user, and whatever they do to a user is recorded.

The finding: a verified administrator read a user's TOTP secret (and QR code) in
django-otp's device admin, set the user's password in the user admin's password form, logged
in as the user and downloaded their files; the audit chain showed only the user's own login
and download. These tests look at the admin over HTTP as that administrator would: no page
shows a second-factor secret, no page sets another user's password, new users choose their
own password from an e-mailed link, and every change to a user lands in the audit chain with
the administrator as its actor.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.http import HttpResponseBase
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import RecoveryCode
from audit.models import AuditEntry
from audit.selectors import verify_chain
from sharing.models import StorageQuota
from tests.helpers import ALICE_PASSWORD

pytestmark = pytest.mark.django_db

USERS = "/admin/auth/user/"
DEVICES = "/admin/otp_totp/totpdevice/"
ADMIN = "root"  # the conftest superuser
INVITATION_LINK = re.compile(r"(https?://\S+?)/accounts/invitation/([\w-]{43})/")
RESET_LINK = re.compile(r"(https?://\S+?)/accounts/reset/([\w-]+)/([\w-]+)/")
NEW_PASSWORD = "Velvet-Compass-42-Orchard"


def _action(client: Client, url: str, action: str, selected: list) -> HttpResponseBase:
    """Run an admin action from the changelist, as its "Go" button does."""
    data = {"action": action, "_selected_action": [str(pk) for pk in selected], "index": "0"}
    return client.post(url, data)


def _enrolled(user: User) -> TOTPDevice:
    """A confirmed authenticator with its recovery codes, as enrolment leaves them."""
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    for n in range(2):
        digest = hashlib.sha256(f"{user.username}-{n}".encode()).hexdigest()
        RecoveryCode.objects.create(user=user, code_digest=digest)
    return device


def _secrets_of(device: TOTPDevice) -> list[bytes]:
    """Every spelling of the device's secret an admin page could leak."""
    b32 = base64.b32encode(device.bin_key)
    return [device.key.encode(), device.key.upper().encode(), b32, b32.rstrip(b"=")]


def _entries(event: str) -> list[AuditEntry]:
    # The admin fixture's own creation as a superuser is recorded by the system (a
    # privilege change outside the admin); these tests are about what the admin records.
    entries = AuditEntry.objects.filter(event=event).exclude(actor="system")
    return list(entries.order_by("seq"))


# ---------------------------------------------------------------------------- second factor


def test_it_never_shows_a_second_factor_secret(admin_client, alice) -> None:
    device = _enrolled(alice)
    base = f"{DEVICES}{device.pk}/"

    pages = {
        url: admin_client.get(url)
        for url in (
            DEVICES,
            f"{base}change/",
            f"{base}history/",
            f"{base}delete/",
            f"{base}config/",
            f"{base}qrcode/",
            f"{USERS}{alice.pk}/change/",
        )
    }

    assert pages[DEVICES].status_code == 200
    assert pages[f"{base}change/"].status_code == 200
    for url, response in pages.items():
        content = response.content
        for secret in _secrets_of(device):
            assert secret not in content, url
        assert b"otpauth" not in content.lower(), url
        assert b"qrcode" not in content.lower() and b"qr code" not in content.lower(), url
        assert b"image/svg" not in response.get("Content-Type", "").encode(), url
    change = pages[f"{base}change/"].content
    assert b"alice" in change and b"phone" in change
    for internal in (b"throttling", b"drift", b"tolerance", b'name="key"', b"last_used_at"):
        assert internal not in change.lower()


def test_it_lets_no_admin_add_or_edit_an_authenticator(admin_client, alice) -> None:
    device = _enrolled(alice)
    key = device.key

    add = admin_client.get(f"{DEVICES}add/")
    add_post = admin_client.post(f"{DEVICES}add/", {"user": alice.pk, "name": "mine", "key": "00"})
    change = admin_client.post(
        f"{DEVICES}{device.pk}/change/", {"user": alice.pk, "name": "x", "key": "00" * 20}
    )

    assert [add.status_code, add_post.status_code, change.status_code] == [403, 403, 403]
    assert b'value="delete_selected"' not in admin_client.get(DEVICES).content
    assert list(TOTPDevice.objects.filter(user=alice).values_list("key", "name")) == [
        (key, "phone")
    ]
    assert not TOTPDevice.objects.filter(name="mine").exists()


def test_it_resets_a_second_factor_from_the_device_delete_page(admin_client, alice) -> None:
    device = _enrolled(alice)
    TOTPDevice.objects.create(user=alice, name="being enrolled", confirmed=False)

    response = admin_client.post(f"{DEVICES}{device.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=alice).exists()
    assert not RecoveryCode.objects.filter(user=alice).exists()
    [entry] = _entries("2fa.reset")
    assert (entry.actor, entry.actor_user_id, entry.detail) == (
        ADMIN,
        User.objects.get(username=ADMIN).pk,
        "user=alice",
    )
    assert verify_chain().intact


def test_it_resets_second_factors_from_the_device_list(admin_client, alice, bob) -> None:
    devices = [_enrolled(alice), _enrolled(bob)]

    response = _action(admin_client, DEVICES, "second_factor_reset", [d.pk for d in devices])

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user__in=[alice, bob]).exists()
    assert not RecoveryCode.objects.exists()
    assert sorted(e.detail for e in _entries("2fa.reset")) == ["user=alice", "user=bob"]
    assert {e.actor for e in _entries("2fa.reset")} == {ADMIN}


def test_it_resets_a_second_factor_from_the_user_list(admin_client, alice, bob) -> None:
    _enrolled(alice)
    bobs = _enrolled(bob)

    response = _action(admin_client, USERS, "second_factor_reset", [alice.pk])

    assert response.status_code == 302
    assert list(TOTPDevice.objects.filter(user__in=[alice, bob])) == [bobs]
    assert not RecoveryCode.objects.filter(user=alice).exists()
    assert RecoveryCode.objects.filter(user=bob).count() == 2
    [entry] = _entries("2fa.reset")
    assert (entry.actor, entry.detail) == (ADMIN, "user=alice")


def test_it_registers_no_recovery_code_admin(admin_client, alice) -> None:
    _enrolled(alice)
    digests = RecoveryCode.objects.values_list("code_digest", flat=True)

    assert admin_client.get("/admin/sharing/recoverycode/").status_code == 404
    page = admin_client.get(f"{USERS}{alice.pk}/change/").content
    assert not [digest for digest in digests if digest.encode() in page]


# ---------------------------------------------------------------------------- passwords


@pytest.mark.parametrize("method", ["get", "post"])
def test_it_lets_no_admin_set_a_users_password(admin_client, alice_with_password, method) -> None:
    alice = alice_with_password
    before = User.objects.get(pk=alice.pk).password
    data = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}

    response = getattr(admin_client, method)(f"{USERS}{alice.pk}/password/", data)

    assert response.status_code in (403, 404)
    assert User.objects.get(pk=alice.pk).password == before
    assert User.objects.get(pk=alice.pk).check_password(ALICE_PASSWORD)
    assert not _entries("user.changed")


def test_it_has_no_link_to_a_password_form(admin_client, alice_with_password) -> None:
    alice = alice_with_password

    page = admin_client.get(f"{USERS}{alice.pk}/change/")

    assert page.status_code == 200
    content = page.content.decode()
    assert "../password/" not in content and f"{alice.pk}/password/" not in content
    assert "Reset password" not in content and "Set password" not in content
    assert "Set by the user." in content and "Administrators neither see nor set" in content
    assert alice.password not in content  # nor the hash, nor its salt
    assert alice.password.split("$")[-2] not in content


def test_it_asks_no_password_when_adding_a_user(admin_client) -> None:
    page = admin_client.get(f"{USERS}add/")

    assert page.status_code == 200
    fields = set(page.context["adminform"].form.fields)
    assert fields == {"username", "email"}
    for name in (b"password1", b"password2", b"usable_password", b'type="password"'):
        assert name not in page.content


def test_it_invites_a_new_user_to_choose_a_password(
    admin_client, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SITE_URL = "https://files.example.org/"
    chosen_by_admin = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"{USERS}add/", {"username": "dora", "email": "dora@example.com", **chosen_by_admin}
        )

    assert response.status_code == 302, response.context["adminform"].form.errors
    dora = User.objects.get(username="dora")
    assert not dora.has_usable_password()
    assert not dora.check_password(NEW_PASSWORD)
    [message] = mail.outbox
    assert message.to == ["dora@example.com"]
    [(site, token)] = INVITATION_LINK.findall(message.body)
    assert site == "https://files.example.org"
    [entry] = _entries("user.created")
    assert (entry.actor, entry.detail) == (ADMIN, "user=dora email=dora@example.com")
    assert token not in entry.detail
    assert verify_chain().intact
    # The link works once, for dora alone: she chooses her password.
    visitor = Client()
    form = visitor.get(f"/accounts/invitation/{token}/", follow=True)
    assert form.status_code == 200
    visitor.post(
        form.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert User.objects.get(username="dora").check_password(NEW_PASSWORD)


def test_it_requires_an_email_address_for_a_new_user(admin_client) -> None:
    response = admin_client.post(f"{USERS}add/", {"username": "dora", "email": ""})

    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    assert not User.objects.filter(username="dora").exists()


def test_it_sends_a_password_reset_from_the_user_list(
    admin_client, alice_with_password, bob, django_capture_on_commit_callbacks
) -> None:
    alice = alice_with_password
    bob.email = ""
    bob.save()
    before = User.objects.get(pk=alice.pk).password

    with django_capture_on_commit_callbacks(execute=True):
        response = _action(admin_client, USERS, "send_password_reset", [alice.pk, bob.pk])

    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert RESET_LINK.search(message.body)
    assert User.objects.get(pk=alice.pk).password == before
    [entry] = _entries("user.password_reset_sent")
    assert (entry.actor, entry.detail) == (ADMIN, "user=alice")
    assert verify_chain().intact


def test_it_builds_links_from_the_configured_site(settings) -> None:
    from securefiles.lib import site

    settings.SITE_URL = "https://files.example.org/"
    assert site.site_url() == "https://files.example.org"

    settings.SITE_URL = ""
    settings.ALLOWED_HOSTS = ["*", ".example.net", "files.example.com"]
    settings.HTTPS = True
    assert site.site_url() == "https://example.net"

    settings.ALLOWED_HOSTS = ["files.example.com"]
    settings.HTTPS = False
    assert site.site_url() == "http://files.example.com"


# ---------------------------------------------------------------------------- changes


def _change(client: Client, user: User, **changes: object) -> HttpResponseBase:
    """Submit the user's change form as the admin page shows it, with ``changes`` made.

    Booleans are check boxes (left out when False); groups and user_permissions are lists
    of ids; quota_mb fills the storage quota inline (None: no override).
    """
    url = f"{USERS}{user.pk}/change/"
    form = client.get(url).context["adminform"].form
    quota = StorageQuota.objects.filter(user=user).first()
    state = {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "groups": [g.pk for g in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
        "quota_mb": quota.quota_mb if quota else None,
        **changes,
    }
    data: dict[str, object] = {
        "date_joined_0": form.initial["date_joined"].strftime("%Y-%m-%d"),
        "date_joined_1": form.initial["date_joined"].strftime("%H:%M:%S"),
        "storage_quota-TOTAL_FORMS": "1" if quota or state["quota_mb"] is not None else "0",
        "storage_quota-INITIAL_FORMS": "1" if quota else "0",
        "storage_quota-MIN_NUM_FORMS": "0",
        "storage_quota-MAX_NUM_FORMS": "1",
    }
    if quota or state["quota_mb"] is not None:
        data["storage_quota-0-user"] = str(user.pk)
        data["storage_quota-0-quota_mb"] = str(state["quota_mb"] or "")
        if quota:
            data["storage_quota-0-id"] = str(quota.pk)
            if state["quota_mb"] is None:
                data["storage_quota-0-DELETE"] = "on"
                data["storage_quota-0-quota_mb"] = str(quota.quota_mb)
    for name in ("username", "email", "first_name", "last_name"):
        data[name] = state[name]
    for name in ("is_active", "is_staff", "is_superuser"):
        if state[name]:
            data[name] = "on"
    data["groups"] = [str(pk) for pk in state["groups"]]
    data["user_permissions"] = [str(pk) for pk in state["user_permissions"]]
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    return response


@pytest.fixture
def editors(db: None) -> Group:
    return Group.objects.create(name="editors")


@pytest.fixture
def with_quota(alice: User) -> User:
    StorageQuota.objects.create(user=alice, quota_mb=100)
    return alice


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"is_staff": True}, "is_staff: False -> True"),
        ({"is_superuser": True}, "is_superuser: False -> True"),
        ({"is_active": False}, "is_active: True -> False"),
        ({"email": "mallory@evil.example"}, "email: 'alice@example.com' -> 'mallory@evil.example'"),
        ({"username": "alice2"}, "username: 'alice' -> 'alice2'"),
        ({"first_name": "Al\nice"}, "first_name: '' -> 'Al\\nice'"),
        ({"quota_mb": 5}, "quota_mb: none -> 5"),
    ],
)
def test_it_records_each_change_to_a_user(admin_client, admin_user, alice, changes, expected):
    _change(admin_client, alice, **changes)

    [entry] = _entries("user.changed")
    assert entry.actor == ADMIN and entry.actor_user_id == admin_user.pk
    assert entry.detail.startswith("user=")
    assert expected in entry.detail
    assert entry.detail.count(" -> ") == 1  # only what changed
    for hash_prefix in ("argon2", "pbkdf2", "md5", "!"):  # no password hash, usable or not
        assert hash_prefix not in entry.detail
    assert verify_chain().intact


def test_it_records_groups_and_permissions(admin_client, alice, editors) -> None:
    permission = Permission.objects.get(codename="view_auditentry")

    _change(admin_client, alice, groups=[editors.pk], user_permissions=[permission.pk])

    [entry] = _entries("user.changed")
    assert entry.actor == ADMIN
    assert "groups: [] -> ['editors']" in entry.detail
    assert "user_permissions: [] -> ['audit.view_auditentry']" in entry.detail


def test_it_records_a_group_removed(admin_client, alice, editors) -> None:
    alice.groups.add(editors)

    _change(admin_client, alice, groups=[])

    [entry] = _entries("user.changed")
    assert "groups: ['editors'] -> []" in entry.detail


@pytest.mark.parametrize(("quota", "expected"), [(7, "100 -> 7"), (None, "100 -> none")])
def test_it_records_a_quota_changed_or_removed(admin_client, with_quota, quota, expected) -> None:
    _change(admin_client, with_quota, quota_mb=quota)

    kept = StorageQuota.objects.filter(user=with_quota).values_list("quota_mb", flat=True)
    assert kept.first() == quota
    [entry] = _entries("user.changed")
    assert (entry.actor, entry.detail) == (ADMIN, f"user=alice; quota_mb: {expected}")


def test_it_records_nothing_when_nothing_changed(admin_client, alice) -> None:
    _change(admin_client, alice)

    assert not _entries("user.changed")
    assert not _entries("user.deactivated")


def test_it_offboards_once_as_the_admin(admin_client, alice) -> None:
    _change(admin_client, alice, is_active=False, is_staff=True)

    alice.refresh_from_db()
    assert not alice.is_active and alice.is_staff
    [changed] = _entries("user.changed")
    [deactivated] = _entries("user.deactivated")
    assert changed.detail == "user=alice; is_active: True -> False; is_staff: False -> True"
    assert (deactivated.actor, deactivated.seq) == (ADMIN, changed.seq + 1)


def test_it_records_a_user_deleted(admin_client, alice) -> None:
    response = admin_client.post(f"{USERS}{alice.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(username="alice").exists()
    [entry] = _entries("user.deleted")
    assert (entry.actor, entry.detail) == (ADMIN, "user=alice")
    assert verify_chain().intact


def test_it_records_what_an_impersonation_attempt_needs(
    admin_client, alice_with_password, django_capture_on_commit_callbacks
) -> None:
    """The only road left (redirect the user's mail, reset their password and factor)
    leaves three entries with the administrator as actor, before any login as them."""
    alice = alice_with_password
    _enrolled(alice)

    _change(admin_client, alice, email="root@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        _action(admin_client, USERS, "send_password_reset", [alice.pk])
    _action(admin_client, USERS, "second_factor_reset", [alice.pk])

    events = list(
        AuditEntry.objects.filter(actor=ADMIN)
        .exclude(event="login.success")  # the administrator's own
        .order_by("seq")
        .values_list("event", "detail")
    )
    assert events == [
        ("user.changed", "user=alice; email: 'alice@example.com' -> 'root@example.com'"),
        ("user.password_reset_sent", "user=alice"),
        ("2fa.reset", "user=alice"),
    ]
    assert verify_chain().intact
