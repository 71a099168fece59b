"""Accounts: password hashing and rules, login lockout, password change and reset, logout,
session cookies and idle timeout, optional sign-up.

Everything goes through the real views at /accounts/…, as a browser would.
"""

from __future__ import annotations

import re
from datetime import timedelta
from http.cookies import Morsel

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.management import call_command
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from tests.helpers import ALICE_PASSWORD, client_for

pytestmark = pytest.mark.django_db

LOGIN_URL = "/accounts/login/"
FAILURE_LIMIT = 10
NEW_PASSWORD = "Copper-Meadow-42-Violin"


def _login(client: Client, username: str, password: str, **extra: str) -> HttpResponseBase:
    return client.post(LOGIN_URL, {"username": username, "password": password}, **extra)


def _logged_in_as(client: Client) -> str | None:
    """The username the client's session belongs to, as the portal sees it (None: nobody)."""
    response = client.get("/")
    if response.status_code != 200:
        assert response.status_code == 302
        assert response["Location"].startswith(LOGIN_URL)
        return None
    return response.context["user"].get_username()


def _assert_locked_out(response: HttpResponseBase) -> None:
    assert response.status_code == 429
    assert b"Too many attempts" in response.content
    assert "sessionid" not in response.cookies or not response.cookies["sessionid"].value


@pytest.fixture
def tight_limits(settings) -> None:
    """The account-wide and address-wide limits at ten, as the pair limit, so each of the
    three can be reached in a few attempts (their defaults are higher: README)."""
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = FAILURE_LIMIT
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = FAILURE_LIMIT


def _fail(client: Client, times: int, *, usernames: list[str] | None = None, **extra: str) -> None:
    for attempt in range(times):
        username = usernames[attempt] if usernames else "alice"
        _login(client, username, f"wrong-password-{attempt}", **extra)


# ---------------------------------------------------------------------------- hashing, rules


@pytest.mark.argon2
def test_it_lists_argon2_first(settings) -> None:
    assert settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


@pytest.mark.argon2
def test_it_hashes_a_new_password_with_argon2() -> None:
    user = User.objects.create_user("carol", password=ALICE_PASSWORD)

    assert user.password.startswith("argon2$argon2id$")
    assert ALICE_PASSWORD not in user.password


def _change_password(client: Client, old: str, new: str) -> HttpResponseBase:
    data = {"old_password": old, "new_password1": new, "new_password2": new}
    return client.post("/accounts/password_change/", data)


@pytest.mark.parametrize(
    "weak",
    [
        "Xk3#pQ9!wLm",  # 11 characters
        "password1234",  # common
        "804217936512",  # only digits
        "alice-example",  # too close to the username
    ],
)
def test_it_refuses_a_weak_new_password(alice_with_password, weak) -> None:
    client = client_for(alice_with_password)

    response = _change_password(client, ALICE_PASSWORD, weak)

    assert response.status_code == 200
    assert response.context["form"].errors["new_password2"]
    alice_with_password.refresh_from_db()
    assert alice_with_password.check_password(ALICE_PASSWORD)


@pytest.mark.argon2
def test_it_changes_the_password_to_a_strong_one(alice_with_password) -> None:
    client = client_for(alice_with_password)

    response = _change_password(client, ALICE_PASSWORD, "Xk3#pQ9!wLm2")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_change/done/"
    alice_with_password.refresh_from_db()
    assert alice_with_password.check_password("Xk3#pQ9!wLm2")
    assert alice_with_password.password.startswith("argon2")
    assert _logged_in_as(client) == "alice"  # the changing session stays valid


def test_it_ends_other_sessions_when_the_password_changes(alice_with_password) -> None:
    client = client_for(alice_with_password)
    elsewhere = client_for(alice_with_password)  # e.g. a forgotten session on another machine

    _change_password(client, ALICE_PASSWORD, NEW_PASSWORD)

    assert _logged_in_as(client) == "alice"
    assert _logged_in_as(elsewhere) is None


def test_it_requires_the_old_password_to_change_it(alice_with_password) -> None:
    client = client_for(alice_with_password)

    response = _change_password(client, "not-the-old-password", NEW_PASSWORD)

    assert response.status_code == 200
    assert response.context["form"].errors["old_password"]
    alice_with_password.refresh_from_db()
    assert alice_with_password.check_password(ALICE_PASSWORD)


def test_it_redirects_anonymous_away_from_password_change(client) -> None:
    response = client.get("/accounts/password_change/")

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)


# ---------------------------------------------------------------------------- login


def test_it_logs_in_through_the_login_page(alice_with_password, client) -> None:
    response = _login(client, "alice", ALICE_PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert _logged_in_as(client) == "alice"
    assert AuditEntry.objects.filter(event="login.success", actor="alice").count() == 1


def test_it_refuses_a_wrong_password(alice_with_password, client) -> None:
    response = _login(client, "alice", "wrong-password")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert _logged_in_as(client) is None
    assert AuditEntry.objects.filter(event="login.failure", detail="username=alice").exists()


def test_it_rotates_the_session_key_at_login(alice_with_password, client) -> None:
    # A session that exists before login (one an attacker could have planted).
    session = client.session
    session["before-login"] = True
    session.save()
    before = client.cookies["sessionid"].value

    _login(client, "alice", ALICE_PASSWORD)

    after = client.cookies["sessionid"].value
    assert after and after != before
    assert not Session.objects.filter(session_key=before).exists()
    fixated = Client()
    fixated.cookies["sessionid"] = before
    assert _logged_in_as(fixated) is None


def test_it_follows_a_same_site_next_after_login(alice_with_password, client) -> None:
    response = client.post(
        f"{LOGIN_URL}?next=/accounts/2fa/",
        {"username": "alice", "password": ALICE_PASSWORD, "next": "/accounts/2fa/"},
    )

    assert response["Location"] == "/accounts/2fa/"


def test_it_does_not_follow_an_off_site_next_after_login(alice_with_password, client) -> None:
    data = {"username": "alice", "password": ALICE_PASSWORD, "next": "https://evil.example/"}

    response = client.post(LOGIN_URL, data)

    assert response.status_code == 302
    assert response["Location"] == "/"


# ---------------------------------------------------------------------------- lockout


def test_it_locks_an_account_to_new_browsers_after_failures_from_many_addresses(
    alice_with_password,
    tight_limits,
) -> None:
    usual = Client(REMOTE_ADDR="198.51.100.23")
    assert _login(usual, "alice", ALICE_PASSWORD).status_code == 302
    usual.post("/accounts/logout/")
    # Every failure from another address: the account-wide limit is what is reached.
    for attempt in range(FAILURE_LIMIT):
        _login(Client(), "alice", "wrong", REMOTE_ADDR=f"192.0.2.{attempt + 1}")

    stranger = Client(REMOTE_ADDR="192.0.2.200")
    _assert_locked_out(_login(stranger, "alice", ALICE_PASSWORD))
    assert _logged_in_as(stranger) is None
    assert AuditEntry.objects.filter(
        event="login.locked_out", detail="username=alice limit=account"
    ).exists()
    # alice's own browser, which signed in before, is not locked out by them.
    assert _login(usual, "alice", ALICE_PASSWORD).status_code == 302
    assert _logged_in_as(usual) == "alice"


def test_it_locks_an_account_at_one_address_even_with_the_right_password(
    alice_with_password,
) -> None:
    client = Client(REMOTE_ADDR="192.0.2.10")
    assert _login(client, "alice", ALICE_PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    _fail(client, FAILURE_LIMIT)

    _assert_locked_out(_login(client, "alice", ALICE_PASSWORD))
    assert _logged_in_as(client) is None
    assert AuditEntry.objects.filter(event="login.locked_out", detail="username=alice").exists()


def test_it_lets_the_user_in_again_once_an_admin_clears_the_lockout(
    alice_with_password,
) -> None:
    client = Client(REMOTE_ADDR="192.0.2.10")
    _fail(client, FAILURE_LIMIT)
    _assert_locked_out(_login(client, "alice", ALICE_PASSWORD))

    call_command("axes_reset", verbosity=0)

    response = _login(client, "alice", ALICE_PASSWORD)
    assert response.status_code == 302
    assert _logged_in_as(client) == "alice"


def test_it_lets_an_admin_clear_a_lockout_in_the_admin(alice_with_password, admin_client) -> None:
    client = Client(REMOTE_ADDR="192.0.2.11")
    _fail(client, FAILURE_LIMIT)
    attempts = list(AccessAttempt.objects.values_list("pk", flat=True))
    assert attempts

    response = admin_client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )

    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert _login(client, "alice", ALICE_PASSWORD).status_code == 302
    assert _logged_in_as(client) == "alice"


def test_it_keeps_another_account_open_while_one_is_locked(alice_with_password, bob) -> None:
    bob.set_password(ALICE_PASSWORD)
    bob.save()
    for attempt in range(FAILURE_LIMIT):
        _login(Client(), "alice", "wrong", REMOTE_ADDR=f"192.0.2.{attempt + 1}")

    client = Client(REMOTE_ADDR="198.51.100.1")
    assert _login(client, "bob", ALICE_PASSWORD).status_code == 302
    assert _logged_in_as(client) == "bob"


def test_it_locks_an_address_after_ten_failures_across_usernames(
    alice_with_password, tight_limits
) -> None:
    attacker = Client(REMOTE_ADDR="203.0.113.66")
    _fail(attacker, FAILURE_LIMIT, usernames=[f"user{n}" for n in range(FAILURE_LIMIT)])

    _assert_locked_out(_login(attacker, "alice", ALICE_PASSWORD))
    assert _logged_in_as(attacker) is None
    # alice herself, from her own address, is not locked out.
    elsewhere = Client(REMOTE_ADDR="198.51.100.23")
    assert _login(elsewhere, "alice", ALICE_PASSWORD).status_code == 302


def test_it_ignores_x_forwarded_for_from_an_untrusted_peer(
    alice_with_password, tight_limits, settings
) -> None:
    settings.TRUSTED_PROXIES = []
    attacker = Client(REMOTE_ADDR="203.0.113.66")
    for attempt in range(FAILURE_LIMIT):
        # A fresh forged address each time does not reset the count for the real one.
        forged = f"198.51.100.{attempt + 1}"
        _login(attacker, f"user{attempt}", "wrong", HTTP_X_FORWARDED_FOR=forged)

    response = _login(attacker, "alice", ALICE_PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99")

    _assert_locked_out(response)
    failure = AuditEntry.objects.filter(event="login.failure").first()
    assert failure.ip == "203.0.113.66"


@pytest.mark.parametrize(
    ("attempt_from", "then_from", "neighbour_from"),
    [
        # Each attempt from another address of one /64 (what a host or subscriber holds);
        # the next /64 over is someone else.
        ("2001:db8:6:7::{n:x}", "2001:db8:6:7:ffff::1", "2001:db8:6:8::1"),
        # 192.0.2.1's 6to4 /48 holds 65536 /64s, all of them that one IPv4 address;
        # 192.0.2.2's is someone else.
        ("2002:c000:201:{n:x}::1", "2002:c000:201:ffff::1", "2002:c000:202::1"),
    ],
)
def test_an_ipv6_attacker_is_counted_by_the_64_whatever_address_of_it_they_use(
    alice_with_password, tight_limits, attempt_from: str, then_from: str, neighbour_from: str
) -> None:
    for n in range(FAILURE_LIMIT):
        _login(Client(REMOTE_ADDR=attempt_from.format(n=n + 1)), f"user{n}", "wrong")

    _assert_locked_out(_login(Client(REMOTE_ADDR=then_from), "alice", ALICE_PASSWORD))
    neighbour = Client(REMOTE_ADDR=neighbour_from)
    assert _login(neighbour, "alice", ALICE_PASSWORD).status_code == 302
    assert _logged_in_as(neighbour) == "alice"


PROXY = "10.0.0.5"


def test_it_locks_the_forwarded_client_behind_a_trusted_proxy(
    alice_with_password, tight_limits, settings
) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    attacker = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.66")
    _fail(attacker, FAILURE_LIMIT, usernames=[f"user{n}" for n in range(FAILURE_LIMIT)])

    _assert_locked_out(_login(attacker, "alice", ALICE_PASSWORD))
    # Someone else behind the same load balancer still gets in.
    colleague = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert _login(colleague, "alice", ALICE_PASSWORD).status_code == 302
    assert _logged_in_as(colleague) == "alice"
    # Every failure, and the refused eleventh attempt, is logged under the client's IP.
    assert AuditEntry.objects.filter(event="login.failure", ip="203.0.113.66").count() == 10
    assert AuditEntry.objects.filter(event="login.locked_out", ip="203.0.113.66").count() == 1
    assert not AuditEntry.objects.filter(ip=PROXY).exists()


def test_it_believes_only_the_hop_the_trusted_proxy_added(alice_with_password, settings) -> None:
    # The client prepends a forged hop; the proxy appends the address it saw.
    settings.TRUSTED_PROXIES = [PROXY]
    chain = "198.51.100.7, 203.0.113.66"
    attacker = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=chain)

    _login(attacker, "nobody", "wrong")

    assert AuditEntry.objects.get(event="login.failure").ip == "203.0.113.66"


# ---------------------------------------------------------------------------- password reset


def _reset_link(message: mail.EmailMessage) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_it_mails_a_reset_link_that_sets_a_new_password_once(alice_with_password, client) -> None:
    response = client.post("/accounts/password_reset/", {"email": "alice@example.com"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_reset/done/"
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    link = _reset_link(message)

    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    assert form_page.context["validlink"] is True
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert done.status_code == 302
    assert done["Location"] == "/accounts/reset/done/"
    alice_with_password.refresh_from_db()
    assert alice_with_password.check_password(NEW_PASSWORD)
    # Setting the password does not log in: the second factor, if any, still stands.
    assert _logged_in_as(client) is None
    again = Client().get(link, follow=True)
    assert again.context["validlink"] is False
    assert b"invalid or has been used" in again.content
    assert b"new_password1" not in again.content


def test_it_ends_existing_sessions_after_a_reset(alice_with_password, client) -> None:
    stolen = client_for(alice_with_password)
    client.post("/accounts/password_reset/", {"email": "alice@example.com"})
    form_page = client.get(_reset_link(mail.outbox[0]), follow=True)

    client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert _logged_in_as(stolen) is None


def test_it_refuses_a_weak_password_through_the_reset_link(alice_with_password, client) -> None:
    client.post("/accounts/password_reset/", {"email": "alice@example.com"})
    form_page = client.get(_reset_link(mail.outbox[0]), follow=True)

    response = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": "short", "new_password2": "short"}
    )

    assert response.status_code == 200
    alice_with_password.refresh_from_db()
    assert alice_with_password.check_password(ALICE_PASSWORD)


def test_it_answers_an_unknown_address_the_same_and_sends_nothing(alice_with_password) -> None:
    known = Client().post("/accounts/password_reset/", {"email": "alice@example.com"})
    mail.outbox.clear()

    unknown = Client().post("/accounts/password_reset/", {"email": "mallory@example.com"})

    assert unknown.status_code == known.status_code == 302
    assert unknown["Location"] == known["Location"] == "/accounts/password_reset/done/"
    assert mail.outbox == []
    page = Client().get(unknown["Location"])
    assert b"If the address belongs to an account" in page.content


# ---------------------------------------------------------------------------- logout


def test_it_refuses_logout_by_get(alice_client) -> None:
    response = alice_client.get("/accounts/logout/")

    assert response.status_code == 405
    assert _logged_in_as(alice_client) == "alice"


def test_it_logs_out_by_post_and_ends_the_session(alice_client) -> None:
    session_key = alice_client.cookies["sessionid"].value

    response = alice_client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN_URL}?logged_out=1"
    assert not response.cookies["sessionid"].value  # no session left behind
    assert not Session.objects.filter(session_key=session_key).exists()
    assert _logged_in_as(alice_client) is None
    replayed = Client()
    replayed.cookies["sessionid"] = session_key
    assert _logged_in_as(replayed) is None


def test_logging_out_clears_the_sites_storage_but_not_its_cookies(alice_client) -> None:
    # W3C Clear Site Data: "storage" (the upload page's resume data, which names unfinished
    # uploads); not "cookies", which would take the known-device cookie with the session.
    response = alice_client.post("/accounts/logout/")

    assert response["Clear-Site-Data"] == '"storage"'


def test_it_says_on_the_login_page_that_the_user_logged_out(alice_client) -> None:
    response = alice_client.post("/accounts/logout/", follow=True)

    assert response.redirect_chain == [(f"{LOGIN_URL}?logged_out=1", 302)]
    assert response.content.decode().count("You have been logged out.") == 1
    assert b'name="password"' in response.content
    assert _logged_in_as(alice_client) is None
    assert b"You have been logged out." not in alice_client.get(LOGIN_URL).content


def test_it_says_why_the_login_page_was_shown_instead_of_a_page(client) -> None:
    response = client.get("/files/upload/", follow=True)

    assert response.redirect_chain[-1][0].startswith(f"{LOGIN_URL}?next=")
    assert b"Log in to see that page." in response.content
    assert b"Log in to see that page." not in client.get(LOGIN_URL).content


# ---------------------------------------------------------------------------- cookies, timeout


def _session_cookie_after_login(client: Client) -> Morsel:
    response = _login(client, "alice", ALICE_PASSWORD)
    assert response.status_code == 302
    return response.cookies["sessionid"]


def test_it_sets_an_httponly_samesite_lax_session_cookie(alice_with_password, client) -> None:
    cookie = _session_cookie_after_login(client)

    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # plain HTTP in development: HTTPS=False


def test_it_marks_the_session_cookie_secure_under_https(alice_with_password, settings) -> None:
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    client = Client()

    cookie = _session_cookie_after_login(client)

    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert client.get(LOGIN_URL).cookies["csrftoken"]["secure"] is True


def test_it_ends_the_session_after_the_idle_timeout(alice_with_password, client, settings) -> None:
    cookie = _session_cookie_after_login(client)

    assert cookie["max-age"] == settings.SESSION_IDLE_MINUTES * 60 == 3600


def test_it_moves_the_session_expiry_forward_with_each_request(alice_with_password, client) -> None:
    key = _session_cookie_after_login(client).value
    # Pretend the last request was 55 minutes ago: 5 idle minutes are left.
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() + timedelta(minutes=5)
    )

    response = client.get("/")

    assert response.status_code == 200
    assert response.cookies["sessionid"]["max-age"] == 3600
    expiry = Session.objects.get(session_key=key).expire_date
    assert expiry > timezone.now() + timedelta(minutes=59)


def test_it_logs_out_a_session_idle_for_too_long(alice_with_password, client) -> None:
    key = _session_cookie_after_login(client).value
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )

    assert _logged_in_as(client) is None


# ---------------------------------------------------------------------------- sign-up

SIGNUP = {
    "username": "dora",
    "email": "dora@example.com",
    "password1": NEW_PASSWORD,
    "password2": NEW_PASSWORD,
}


def test_it_has_no_sign_up_by_default(client) -> None:
    assert client.get("/accounts/signup/").status_code == 404
    assert client.post("/accounts/signup/", SIGNUP).status_code == 404
    assert not User.objects.filter(username="dora").exists()
    assert b"/accounts/signup/" not in client.get(LOGIN_URL).content


@pytest.mark.argon2
def test_it_creates_an_account_when_sign_up_is_on(client, settings) -> None:
    settings.SIGNUP_ENABLED = True
    assert b"/accounts/signup/" in client.get(LOGIN_URL).content

    response = client.post("/accounts/signup/", SIGNUP)

    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    dora = User.objects.get(username="dora")
    assert dora.email == "dora@example.com"
    assert dora.password.startswith("argon2")
    assert not dora.is_staff and not dora.is_superuser
    entry = AuditEntry.objects.get(event="user.signed_up")
    assert (entry.actor, entry.actor_user_id) == ("dora", dora.pk)
    assert _login(client, "dora", NEW_PASSWORD).status_code == 302


def test_it_refuses_a_weak_password_at_sign_up(client, settings) -> None:
    settings.SIGNUP_ENABLED = True

    response = client.post(
        "/accounts/signup/", {**SIGNUP, "password1": "short", "password2": "short"}
    )

    assert response.status_code == 200
    assert not User.objects.filter(username="dora").exists()


def test_it_refuses_an_e_mail_address_already_in_use_at_sign_up(client, settings) -> None:
    # Files are shared by e-mail: a newcomer must not claim a colleague's address.
    settings.SIGNUP_ENABLED = True
    User.objects.create_user("carol", email="Dora@Example.com")

    response = client.post("/accounts/signup/", SIGNUP)

    assert response.status_code == 200
    assert b"e-mail address exists" in response.content
    assert not User.objects.filter(username="dora").exists()
