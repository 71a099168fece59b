"""Passkeys over HTTP (the ceremonies themselves run in Chromium, test_browser_passkeys):
naming, removing under the same rules as turning TOTP off, a passkey counting as the
account's second factor at login, and bad requests answered with a clear JSON error."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Passkey
from accounts.selectors import PASSKEY_VERIFIED_AT_KEY, PASSKEY_VERIFIED_ID_KEY
from audit.models import AuditEntry
from tests.helpers import ALICE_PASSWORD, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def passkey(alice_with_password: User) -> Passkey:
    return Passkey.objects.create(
        user=alice_with_password, name="laptop", credential_id="AAAA", public_key=b"\x00"
    )


@pytest.fixture
def alice_client(alice_with_password: User, passkey: Passkey) -> Client:
    client = client_for(alice_with_password)
    _prove_passkey(client, seconds_ago=3600)  # passed the factor at login, an hour ago
    return client


def _prove_passkey(client: Client, *, seconds_ago: float) -> None:
    """The session proved the account's first passkey ``seconds_ago``."""
    session = client.session
    session[PASSKEY_VERIFIED_AT_KEY] = time.time() - seconds_ago
    session[PASSKEY_VERIFIED_ID_KEY] = Passkey.objects.filter(
        user_id=session["_auth_user_id"]
    ).values_list("pk", flat=True)[0]
    session.save()


def _remove(client: Client, passkey: Passkey, password: str = ALICE_PASSWORD):  # type: ignore[no-untyped-def]
    return client.post(
        f"/accounts/passkeys/{passkey.pk}/remove/", {"password": password}, follow=True
    )


def test_it_lists_and_renames_passkeys(alice_client, passkey) -> None:
    alice_client.post(f"/accounts/passkeys/{passkey.pk}/rename/", {"name": "YubiKey 5"})

    page = alice_client.get("/accounts/passkeys/").content.decode()
    assert 'value="YubiKey 5"' in page
    assert Passkey.objects.get().name == "YubiKey 5"


def test_it_keeps_a_passkey_on_a_wrong_password(alice_client, passkey) -> None:
    page = _remove(alice_client, passkey, password="wrong")

    assert "Wrong password" in page.content.decode()
    assert Passkey.objects.exists()


def test_it_asks_for_the_passkey_before_removing_the_last_factor(alice_client, passkey) -> None:
    page = _remove(alice_client, passkey)

    assert "confirm with your passkey first" in page.content.decode()
    assert Passkey.objects.exists()
    assert not AuditEntry.objects.filter(event="passkey.removed").exists()


def test_it_removes_the_last_factor_after_a_fresh_passkey_proof(alice_client, passkey) -> None:
    _prove_passkey(alice_client, seconds_ago=10)

    page = _remove(alice_client, passkey)

    assert "Passkey removed." in page.content.decode()
    assert not Passkey.objects.exists()
    entry = AuditEntry.objects.get(event="passkey.removed")
    assert entry.detail == "user=alice passkey='laptop'"


def test_it_removes_a_passkey_with_the_password_when_totp_remains(
    alice_client, alice_with_password, passkey
) -> None:
    TOTPDevice.objects.create(user=alice_with_password, name="phone", confirmed=True)

    _remove(alice_client, passkey)

    assert not Passkey.objects.exists()


def test_it_answers_404_for_another_users_passkey(bob, passkey) -> None:
    client = client_for(bob)

    assert (
        client.post(f"/accounts/passkeys/{passkey.pk}/remove/", {"password": "x"}).status_code
        == 404
    )
    assert client.post(f"/accounts/passkeys/{passkey.pk}/rename/", {"name": "x"}).status_code == 404
    assert Passkey.objects.get().name == "laptop"


def test_a_passkey_makes_login_ask_for_a_second_factor(passkey) -> None:
    response = Client().post("/accounts/login/", {"username": "alice", "password": ALICE_PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/code/"


MALFORMED_ANSWERS = [
    b"",
    b"not json",
    b"\xff\xfe",
    b"[]",
    b'"a string"',
    b'{"credential": {"rawId": "AAAA"}}',
    b'{"credential": 5}',
    b'{"credential": []}',
    b'{"credential": {"rawId": 5}}',
    b'{"credential": {"rawId": "!!!"}}',
    b'{"credential": {"rawId": "AAAA", "id": "AAAA", "type": "public-key", "response": []}}',
    b'{"credential": {"rawId": "AAAA", "id": "AAAA", "type": "public-key", "response": '
    b'{"clientDataJSON": 5, "authenticatorData": [], "signature": null}}}',
    b'{"credential": {"rawId": "AAAA", "id": "AAAA", "type": "public-key", "response": '
    b'{"clientDataJSON": "AAAA", "authenticatorData": "AAAA", "signature": "AAAA"}}}',
    b"[" * 30000,  # the json module's RecursionError
    b'{"credential": {"rawId": "AAAA", "response": ' + b"[" * 500 + b"]" * 500 + b"}}",
    b'{"credential": {"rawId": "AAAA"}, "name": ' + b"[" * 900 + b"]" * 900 + b"}",
]


@pytest.mark.parametrize("body", MALFORMED_ANSWERS)
def test_it_answers_a_bad_passkey_answer_with_a_json_error(client, passkey, body) -> None:
    client.post("/accounts/passkeys/authenticate/options/")

    response = client.post(
        "/accounts/passkeys/authenticate/", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"]
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("body", MALFORMED_ANSWERS)
def test_it_answers_a_bad_registration_with_a_json_error(alice_client, body) -> None:
    alice_client.post("/accounts/passkeys/register/options/")

    response = alice_client.post(
        "/accounts/passkeys/register/", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"]
    assert Passkey.objects.count() == 1  # the fixture's, no other


def test_it_refuses_an_answer_without_a_challenge(client, passkey) -> None:
    response = client.post(
        "/accounts/passkeys/authenticate/",
        b'{"credential": {"rawId": "AAAA", "id": "AAAA"}}',
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "expired" in response.json()["error"]


def test_an_administrators_second_factor_reset_removes_passkeys(
    admin_client, alice_with_password, passkey
) -> None:
    data = {
        "action": "second_factor_reset",
        "_selected_action": [str(alice_with_password.pk)],
        "index": "0",
    }

    admin_client.post("/admin/auth/user/", data)

    assert not Passkey.objects.exists()
    assert AuditEntry.objects.get(event="2fa.reset").detail == "user=alice"


def test_the_code_step_offers_only_the_passkey_to_a_passkey_only_account(passkey) -> None:
    client = Client()
    client.post("/accounts/login/", {"username": "alice", "password": ALICE_PASSWORD})

    page = client.get("/accounts/login/code/").content.decode()

    assert 'data-passkey="authenticate"' in page
    assert 'name="code"' not in page
    assert 'name="csrfmiddlewaretoken"' in page


def test_the_admin_lists_passkeys_and_changes_none(admin_client, passkey) -> None:
    listing = admin_client.get("/admin/accounts/passkey/")
    page = admin_client.get(f"/admin/accounts/passkey/{passkey.pk}/change/")
    delete = admin_client.post(f"/admin/accounts/passkey/{passkey.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200 and b"laptop" in listing.content
    assert page.status_code == 200 and b"public_key" not in page.content
    assert delete.status_code == 403
    assert Passkey.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/passkeys/register/options/",
        "/accounts/passkeys/register/",
        "/accounts/passkeys/authenticate/options/",
        "/accounts/passkeys/authenticate/",
        "/accounts/passkeys/{pk}/rename/",
        "/accounts/passkeys/{pk}/remove/",
    ],
)
def test_every_passkey_endpoint_refuses_a_cross_site_post(alice_with_password, passkey, path):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice_with_password)
    _prove_passkey(client, seconds_ago=0)

    response = client.post(
        path.format(pk=passkey.pk),
        {"name": "renamed", "password": ALICE_PASSWORD},
        HTTP_ORIGIN="https://evil.example",
    )

    assert response.status_code == 403
    passkey.refresh_from_db()
    assert passkey.name == "laptop"


# An account without a usable password (single sign-on users, invitees who signed in
# through the provider) cannot give one: a passkey proved in the last five minutes stands
# in for it, as for the last factor.


@pytest.fixture
def sso_user_client(alice: User) -> tuple[Client, list[Passkey]]:
    keys = [
        Passkey.objects.create(user=alice, name=name, credential_id=cid, public_key=b"\x00")
        for name, cid in (("laptop", "AAAA"), ("phone", "BBBB"))
    ]
    return client_for(alice), keys


def test_an_account_without_a_password_removes_a_passkey_after_a_fresh_proof(
    sso_user_client,
) -> None:
    client, (laptop, phone) = sso_user_client
    _prove_passkey(client, seconds_ago=10)

    response = client.post(f"/accounts/passkeys/{laptop.pk}/remove/", {}, follow=True)

    assert b"Passkey removed." in response.content
    assert list(Passkey.objects.values_list("name", flat=True)) == ["phone"]
    assert AuditEntry.objects.filter(event="passkey.removed").count() == 1


def test_an_account_without_a_password_keeps_its_passkey_without_a_fresh_proof(
    sso_user_client,
) -> None:
    client, (laptop, phone) = sso_user_client
    _prove_passkey(client, seconds_ago=3600)

    response = client.post(f"/accounts/passkeys/{laptop.pk}/remove/", {}, follow=True)

    assert b"confirm with your passkey" in response.content
    assert Passkey.objects.count() == 2
    assert not AuditEntry.objects.filter(event="passkey.removed").exists()


def test_the_page_asks_an_account_without_a_password_for_none(sso_user_client) -> None:
    client, _keys = sso_user_client
    _prove_passkey(client, seconds_ago=3600)

    response = client.get("/accounts/passkeys/")

    assert response.status_code == 200
    assert 'name="password"' not in response.content.decode()


def test_a_second_factor_reset_ends_what_a_passkey_proved_in_open_sessions(
    alice_with_password, passkey, settings
) -> None:
    # As for TOTP (django-otp's verification names a device that must still exist): a
    # session that proved a passkey since taken away has passed no second factor.
    from accounts import services
    from audit.actors import Actor

    settings.STAFF_REQUIRE_2FA = True
    alice_with_password.is_staff = True
    alice_with_password.save()
    client = client_for(alice_with_password)
    _prove_passkey(client, seconds_ago=10)
    assert client.get("/admin/").status_code == 200

    services.second_factor_reset(user=alice_with_password, actor=Actor(label="root"))

    admin = client.get("/admin/")
    assert admin.status_code == 302 and "/accounts/2fa/" in admin["Location"]
    home = client.get("/")
    assert home.status_code == 302 and "reason=staff" in home["Location"]


def test_removing_the_passkey_a_session_proved_asks_it_for_a_factor_again(
    alice_with_password, passkey
) -> None:
    other = Passkey.objects.create(
        user=alice_with_password, name="phone", credential_id="BBBB", public_key=b"\x00"
    )
    client = client_for(alice_with_password)
    _prove_passkey(client, seconds_ago=10)  # the laptop's
    assert client.get("/").status_code == 200

    Passkey.objects.filter(pk=passkey.pk).delete()  # e.g. by the user, in another session

    home = client.get("/")
    assert home.status_code == 302 and "/accounts/login/code/" in home["Location"]
    assert Passkey.objects.filter(pk=other.pk).exists()


def test_a_passkey_only_account_creates_a_token_only_with_a_fresh_passkey(
    alice_client: Client,
) -> None:
    """Issue 14: a token needs a fresh second factor; without TOTP, that is a passkey
    proved in the last five minutes (an hour-old proof from the login is not enough)."""
    from accounts.models import AccessToken

    form = {"name": "nightly", "scopes": ["read"], "expires_in_days": "7"}
    stale = alice_client.post("/accounts/tokens/", form)
    assert stale.status_code == 400
    assert b"Confirm with your passkey first" in stale.content
    assert not AccessToken.objects.exists()

    _prove_passkey(alice_client, seconds_ago=10)
    fresh = alice_client.post("/accounts/tokens/", form)
    assert fresh.status_code == 201
    assert AccessToken.objects.count() == 1


def test_the_api_refuses_a_session_that_has_not_passed_its_passkey(
    alice_with_password: User, passkey: Passkey
) -> None:
    """The API answers the second-factor rule itself (the middleware leaves /api/ to it):
    a passkey-only account's session that has not proved its passkey gets 403, exactly
    as a TOTP account's unverified session does; once proved, it is served."""
    client = client_for(alice_with_password)

    refused = client.get("/api/v1/me/")
    assert refused.status_code == 403
    assert refused.json()["type"] == "/api/v1/problems/second-factor-required"

    _prove_passkey(client, seconds_ago=3600)
    assert client.get("/api/v1/me/").status_code == 200
