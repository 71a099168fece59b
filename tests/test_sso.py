"""Single sign-on against a real OpenID provider on 127.0.0.1: django-oauth-toolkit with
OIDC on and an RS256 key made at start-up (tests/oidc_provider/), in its own process.

The whole authorization-code flow with PKCE through ``requests`` (and in Chromium, in
test_browser_sso.py): users matched by ``sub``, created when allowed, groups from a claim,
a disabled account refused, the provider's MFA counted for staff only when the setting
says so; and each of a tampered state, a wrong nonce, an expired ID token, a wrong
audience and a wrong issuer refused with a page that says so.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from django.contrib.auth.models import Group, User

from accounts.models import Invitation, OIDCIdentity
from audit.models import AuditEntry
from audit.selectors import verify_chain
from sharing.models import Share
from tests.helpers import make_file

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
PROVIDER_PASSWORD = "provider-password-1"  # noqa: S105 (the test provider's)
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Provider:
    url: str  # http://127.0.0.1:PORT
    issuer: str

    def misbehave(self, mode: str = "", **body: object) -> None:
        """What the next ID tokens get wrong, users to create, claims to add."""
        payload = {"mode": mode, **body}
        response = requests.post(
            f"{self.url}/test/misbehave/", data=json.dumps(payload), timeout=10
        )
        response.raise_for_status()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def provider(live_server) -> Iterator[Provider]:  # type: ignore[no-untyped-def]
    port = _free_port()
    callback = f"{live_server.url}/accounts/oidc/callback/"
    process = subprocess.Popen(  # noqa: S603 (our own test provider)
        [sys.executable, "-m", "tests.oidc_provider.serve", str(port), callback],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        yield Provider(url=url, issuer=f"{url}/o")
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sso(settings, live_server, provider: Provider) -> Provider:  # type: ignore[no-untyped-def]
    """The portal configured for the test provider (as OIDC_* in the environment would)."""
    settings.SITE_URL = live_server.url  # the redirect URI registered at the provider
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = "securefiles-test"
    settings.OIDC_RP_CLIENT_SECRET = "test-secret"  # noqa: S105
    settings.OIDC_OP_ISSUER = provider.issuer
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{provider.issuer}/authorize/"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{provider.issuer}/token/"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{provider.issuer}/.well-known/jwks.json"
    settings.OIDC_OP_USER_ENDPOINT = f"{provider.issuer}/userinfo/"
    settings.OIDC_CREATE_USER = False
    settings.OIDC_GROUPS_CLAIM = ""
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "accounts.oidc.PortalOIDCBackend",
    ]
    provider.misbehave("", users={"dora": PROVIDER_PASSWORD, "erin": PROVIDER_PASSWORD})
    return provider


def _linked(username: str, provider: Provider, **fields: object) -> User:
    user = User.objects.create_user(username, email=f"{username}@example.com", **fields)
    OIDCIdentity.objects.create(user=user, issuer=provider.issuer, subject=f"sub-{username}")
    return user


def _to_callback(session: requests.Session, start: str, username: str) -> str:
    """From the portal's sign-in URL through the provider's login: the callback URL the
    provider sends the browser back to (not followed yet)."""
    login_page = session.get(start, timeout=10)  # portal -> provider authorize -> login
    assert "Test identity provider" in login_page.text, login_page.url
    form = {
        "csrfmiddlewaretoken": CSRF.search(login_page.text).group(1),  # type: ignore[union-attr]
        "username": username,
        "password": PROVIDER_PASSWORD,
        "next": parse_qs(urlsplit(login_page.url).query)["next"][0],
    }
    answer = session.post(login_page.url, data=form, allow_redirects=False, timeout=10)
    authorize = session.get(
        urlunsplit(urlsplit(login_page.url)._replace(path="", query=""))
        + answer.headers["Location"],
        allow_redirects=False,
        timeout=10,
    )
    callback = authorize.headers["Location"]
    assert "/accounts/oidc/callback/?" in callback, callback
    return callback


def _sign_in(live_server, username: str, *, start: str = "") -> requests.Response:  # type: ignore[no-untyped-def]
    session = requests.Session()
    callback = _to_callback(
        session, start or f"{live_server.url}/accounts/oidc/authenticate/", username
    )
    response = session.get(callback, timeout=10)
    response.session = session  # type: ignore[attr-defined]
    return response


def _refusal(response: requests.Response, reason: str) -> None:
    assert response.status_code == 403, (response.status_code, response.url)
    assert "Single sign-on failed" in response.text
    assert reason in response.text.replace("&#x27;", "'")
    home = response.session.get(response.url.split("/accounts/")[0] + "/", allow_redirects=False)  # type: ignore[attr-defined]
    assert home.status_code == 302 and "/accounts/login/" in home.headers["Location"]


# ---------------------------------------------------------------------------- the flow


def test_it_signs_in_a_linked_user(live_server, sso) -> None:
    dora = _linked("dora", sso)

    response = _sign_in(live_server, "dora")

    assert response.status_code == 200
    assert response.url == f"{live_server.url}/"
    assert "dora" in response.text
    login = AuditEntry.objects.filter(event="login.success").get()
    assert (login.actor, login.actor_user_id) == ("dora", dora.pk)
    assert verify_chain().intact


def test_it_sends_pkce_and_a_nonce(live_server, sso) -> None:
    start = requests.get(
        f"{live_server.url}/accounts/oidc/authenticate/", allow_redirects=False, timeout=10
    )

    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["nonce"][0]) >= 32 and len(query["state"][0]) >= 32
    assert query["redirect_uri"] == [f"{live_server.url}/accounts/oidc/callback/"]


def test_it_builds_the_redirect_uri_from_site_url_not_the_host(live_server, sso) -> None:
    start = requests.get(
        f"{live_server.url}/accounts/oidc/authenticate/",
        headers={"Host": "127.0.0.1"},  # an allowed host, but not the public address
        allow_redirects=False,
        timeout=10,
    )

    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["redirect_uri"] == [f"{live_server.url}/accounts/oidc/callback/"]


def test_it_matches_by_sub_not_by_email(live_server, sso) -> None:
    # Same e-mail address as the provider's dora, but no link: not dora's account.
    User.objects.create_user("impostor", email="dora@idp.example")

    response = _sign_in(live_server, "dora")

    _refusal(response, "is not linked to an account here")
    assert not OIDCIdentity.objects.exists()


def test_it_creates_an_account_when_allowed_with_groups_from_a_claim(
    live_server, sso, settings
) -> None:
    settings.OIDC_CREATE_USER = True
    settings.OIDC_GROUPS_CLAIM = "groups"
    sso.misbehave("", claims={"erin": {"groups": ["Litigation", "Tax"]}})

    response = _sign_in(live_server, "erin")

    assert response.status_code == 200
    erin = User.objects.get(username="erin")
    assert not erin.has_usable_password()
    assert erin.email == "erin@idp.example"
    identity = OIDCIdentity.objects.get(user=erin)
    assert (identity.issuer, identity.subject) == (sso.issuer, "sub-erin")
    assert sorted(erin.groups.values_list("name", flat=True)) == ["Litigation", "Tax"]
    created = AuditEntry.objects.get(event="user.created")
    assert created.detail == "user=erin email=erin@idp.example via=sso"
    changed = AuditEntry.objects.get(event="user.changed")
    assert changed.detail == ("user=erin; groups: [] -> ['Litigation', 'Tax'] (from the provider)")


def test_a_member_the_provider_drops_from_a_group_loses_its_files(
    live_server, sso, settings, alice
) -> None:
    settings.OIDC_GROUPS_CLAIM = "groups"
    dora = _linked("dora", sso)
    litigation = Group.objects.create(name="Litigation")
    litigation.user_set.add(dora, alice)
    stored = make_file(alice, b"privileged", name="brief.pdf")
    Share.objects.create(file=stored, group=litigation)
    sso.misbehave("", claims={"dora": {"groups": ["Litigation"]}})
    first = _sign_in(live_server, "dora")
    download = f"{live_server.url}/files/{stored.id}/download/"
    assert first.session.get(download, timeout=10).content == b"privileged"  # type: ignore[attr-defined]

    sso.misbehave("", claims={"dora": {"groups": []}})
    second = _sign_in(live_server, "dora")

    assert second.session.get(download, timeout=10).status_code == 404  # type: ignore[attr-defined]
    assert list(dora.groups.all()) == []


def test_it_ends_the_sessions_of_a_user_disabled_after_signing_in(live_server, sso) -> None:
    dora = _linked("dora", sso)
    signed_in = _sign_in(live_server, "dora")
    assert signed_in.status_code == 200

    User.objects.filter(pk=dora.pk).update(is_active=False)

    home = signed_in.session.get(f"{live_server.url}/", allow_redirects=False, timeout=10)  # type: ignore[attr-defined]
    assert home.status_code == 302 and "/accounts/login/" in home.headers["Location"]


def test_it_refuses_a_user_disabled_in_the_portal(live_server, sso) -> None:
    _linked("dora", sso, is_active=False)

    _refusal(_sign_in(live_server, "dora"), "Your account here is disabled.")


def test_it_links_an_invited_user_who_signs_in_from_the_invitation(
    live_server, sso, admin_client, django_capture_on_commit_callbacks
) -> None:
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/auth/user/add/", {"username": "dora", "email": "d@example.com"})
    token = re.search(r"/accounts/invitation/([\w-]{43})/", mail.outbox[-1].body).group(1)  # type: ignore[union-attr]
    session = requests.Session()
    page = session.get(f"{live_server.url}/accounts/invitation/{token}/", timeout=10)
    assert "/accounts/oidc/authenticate/" in page.text

    callback = _to_callback(session, f"{live_server.url}/accounts/oidc/authenticate/", "dora")
    home = session.get(callback, timeout=10)

    assert home.status_code == 200 and home.url == f"{live_server.url}/"
    dora = User.objects.get(username="dora")
    assert OIDCIdentity.objects.get(user=dora).subject == "sub-dora"
    assert not Invitation.objects.exists()
    assert not dora.has_usable_password()
    accepted = AuditEntry.objects.get(event="user.invitation_accepted")
    assert accepted.detail == "user=dora via=sso"


def test_it_can_refuse_local_passwords_to_sso_users(live_server, sso, settings) -> None:
    settings.OIDC_DISABLE_PASSWORD_LOGIN = True
    _linked("dora", sso, password="Velvet-Compass-42-Orchard")
    session = requests.Session()
    page = session.get(f"{live_server.url}/accounts/login/", timeout=10)

    response = session.post(
        f"{live_server.url}/accounts/login/",
        data={
            "csrfmiddlewaretoken": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
            "username": "dora",
            "password": "Velvet-Compass-42-Orchard",
        },
        headers={"Referer": f"{live_server.url}/accounts/login/"},
        timeout=10,
    )

    assert response.status_code == 200
    assert "signs in through single sign-on" in response.text
    assert response.url == f"{live_server.url}/accounts/login/"


@pytest.mark.parametrize(("accepted", "lands_on"), [(True, "/"), (False, "/accounts/2fa/")])
def test_it_counts_the_providers_mfa_for_staff_only_if_configured(
    live_server, sso, settings, accepted, lands_on
) -> None:
    settings.OIDC_MFA_SATISFIES_2FA = accepted
    _linked("dora", sso, is_staff=True)
    sso.misbehave("", claims={"dora": {"amr": ["pwd", "mfa"]}})

    response = _sign_in(live_server, "dora")

    assert urlsplit(response.url).path == lands_on


def test_it_does_not_count_a_password_only_sign_in_for_staff(live_server, sso, settings) -> None:
    settings.OIDC_MFA_SATISFIES_2FA = True
    _linked("dora", sso, is_staff=True)
    sso.misbehave("", claims={"dora": {"amr": ["pwd"]}})

    response = _sign_in(live_server, "dora")

    assert urlsplit(response.url).path == "/accounts/2fa/"


# ---------------------------------------------------------------------------- refusals


def test_it_refuses_a_tampered_state(live_server, sso) -> None:
    _linked("dora", sso)
    session = requests.Session()
    callback = _to_callback(session, f"{live_server.url}/accounts/oidc/authenticate/", "dora")
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = query["state"][:-4] + "AAAA"

    response = session.get(urlunsplit(parts._replace(query=urlencode(query))), timeout=10)
    response.session = session  # type: ignore[attr-defined]

    _refusal(response, "This sign-in was not started from this browser")


def test_it_refuses_a_callback_replayed(live_server, sso) -> None:
    _linked("dora", sso)
    session = requests.Session()
    callback = _to_callback(session, f"{live_server.url}/accounts/oidc/authenticate/", "dora")
    assert session.get(callback, timeout=10).status_code == 200

    replay = session.get(callback, timeout=10)
    replay.session = session  # type: ignore[attr-defined]

    _refusal(replay, "not started from this browser, or it was used")


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("wrong_nonce", "does not match this sign-in"),
        ("expired", "token has expired"),
        ("wrong_audience", "was not issued for this portal"),
        ("wrong_issuer", "not issued by the configured provider"),
        ("bad_signature", "token is not valid"),
    ],
)
def test_it_refuses_a_bad_id_token(live_server, sso, mode, reason) -> None:
    _linked("dora", sso)
    sso.misbehave(mode)

    response = _sign_in(live_server, "dora")

    _refusal(response, reason)
    assert not AuditEntry.objects.filter(event="login.success").exists()
    failure = AuditEntry.objects.filter(event="login.failure").last()
    assert failure is not None and "sso" in failure.detail


def test_it_refuses_an_error_from_the_provider(live_server, sso) -> None:
    session = requests.Session()
    start = session.get(
        f"{live_server.url}/accounts/oidc/authenticate/", allow_redirects=False, timeout=10
    )
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]

    response = session.get(
        f"{live_server.url}/accounts/oidc/callback/?error=access_denied&state={state}", timeout=10
    )
    response.session = session  # type: ignore[attr-defined]

    _refusal(response, "did not sign you in")


def test_it_is_off_unless_configured(client) -> None:
    assert client.get("/accounts/oidc/authenticate/").status_code == 404
    assert client.get("/accounts/oidc/callback/?code=x&state=y").status_code == 404
    assert b"oidc" not in client.get("/accounts/login/").content


def test_an_administrator_unlinks_an_identity(admin_client, provider) -> None:
    identity = _linked("dora", provider).oidc_identities.get()

    response = admin_client.post(
        f"/admin/accounts/oidcidentity/{identity.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302
    assert not OIDCIdentity.objects.exists()
    entry = AuditEntry.objects.get(event="user.sso_unlinked")
    assert (entry.actor, entry.detail) == (
        "root",
        f"user=dora issuer={provider.issuer} sub=sub-dora",
    )


# ------------------------------------------------------------------ what an attacker tries


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/"])
def test_it_never_sends_the_browser_to_another_site_after_signing_in(
    live_server, sso, target
) -> None:
    _linked("dora", sso)

    start = f"{live_server.url}/accounts/oidc/authenticate/?" + urlencode({"next": target})
    response = _sign_in(live_server, "dora", start=start)

    assert response.status_code == 200
    assert response.url == f"{live_server.url}/"
    assert all("evil.example" not in r.headers.get("Location", "") for r in response.history)


def test_it_takes_a_safe_next_to_where_the_user_was_going(live_server, sso) -> None:
    _linked("dora", sso)

    start = f"{live_server.url}/accounts/oidc/authenticate/?next=/accounts/passkeys/"
    response = _sign_in(live_server, "dora", start=start)

    assert response.status_code == 200 and response.url == f"{live_server.url}/accounts/passkeys/"


def test_a_provider_user_named_and_addressed_like_a_local_one_gets_a_new_account(
    live_server, sso, settings, alice
) -> None:
    # The provider's "alice", with local alice's address: created beside her, never her.
    settings.OIDC_CREATE_USER = True
    sso.misbehave("", users={"alice": PROVIDER_PASSWORD}, claims={"alice": {"email": alice.email}})

    response = _sign_in(live_server, "alice")

    assert response.status_code == 200
    created = OIDCIdentity.objects.get(subject="sub-alice").user
    assert created.pk != alice.pk and created.username == "alice2"
    assert not OIDCIdentity.objects.filter(user=alice).exists()
    assert "alice2" in response.text


def test_the_same_sub_at_another_issuer_is_another_person(live_server, sso, settings) -> None:
    victim = User.objects.create_user("victim")
    OIDCIdentity.objects.create(user=victim, issuer="https://old-idp.example", subject="sub-dora")

    _refusal(_sign_in(live_server, "dora"), "is not linked to an account here")

    settings.OIDC_CREATE_USER = True
    response = _sign_in(live_server, "dora")
    assert response.status_code == 200
    assert OIDCIdentity.objects.get(issuer=sso.issuer, subject="sub-dora").user.pk != victim.pk
