"""Attacks on logging in, over HTTP against a live server, as an attacker runs them.

- Interleaving one's own successful login with guesses against another account must not
  clear the failures counted against that account (django-axes resets on success).
- Failures against an account from other addresses must not lock its owner out of the
  browser they always use; guessing one account from many addresses stays limited.
- A session that logged in with the password alone, before the account enrolled a second
  factor in another session, must pass that factor before it can do anything.
"""

from __future__ import annotations

import re

import pytest
import requests
from django.contrib.auth.models import User
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "Sunlit-Harbour-Quartz-81"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PROXY = "127.0.0.1"  # the live server sees the test as this address


def _user(username: str, **extra: object) -> User:
    return User.objects.create_user(username, password=PASSWORD, **extra)


def _csrf(session: requests.Session, url: str) -> str:
    page = session.get(url, allow_redirects=False)
    match = CSRF_RE.search(page.text)
    assert match, (page.status_code, page.text[:300])
    return match.group(1)


def _login(
    session: requests.Session, base: str, username: str, password: str, **headers: str
) -> requests.Response:
    token = _csrf(session, f"{base}/accounts/login/")
    data = {"username": username, "password": password, "csrfmiddlewaretoken": token}
    return session.post(
        f"{base}/accounts/login/",
        data=data,
        headers={"Referer": f"{base}/accounts/login/", **headers},
        allow_redirects=False,
    )


def _logout(session: requests.Session, base: str) -> None:
    token = _csrf(session, f"{base}/accounts/2fa/")
    session.post(
        f"{base}/accounts/logout/",
        data={"csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/"},
        allow_redirects=False,
    )


def _logged_in(session: requests.Session, base: str) -> bool:
    return session.get(f"{base}/", allow_redirects=False).status_code == 200


# ---------------------------------------------------------------------------- finding 1


def test_it_keeps_counting_guesses_against_an_account_across_the_attackers_own_logins(
    live_server,
) -> None:
    _user("erin")
    _user("mallory")
    base = live_server.url
    attacker = requests.Session()

    outcomes = []
    for _round in range(4):
        for guess in range(9):
            outcomes.append(_login(attacker, base, "erin", f"guess-{_round}-{guess}").status_code)
        assert _login(attacker, base, "mallory", PASSWORD).status_code == 302
        _logout(attacker, base)

    # The tenth failure for erin from this address locks her account here (django-axes
    # answers it with the lockout page); the attacker's own logins in between did not
    # clear the first nine, so 27 of the 36 guesses were refused unchecked.
    assert outcomes[:9] == [200] * 9
    assert set(outcomes[9:]) == {429}
    refused = _login(attacker, base, "erin", PASSWORD)
    assert refused.status_code == 429
    assert not _logged_in(attacker, base)
    assert AuditEntry.objects.filter(event="login.failure", detail="username=erin").count() >= 10


def test_it_clears_an_accounts_failures_when_that_account_signs_in(live_server) -> None:
    _user("erin")
    base = live_server.url
    erin = requests.Session()
    for guess in range(9):
        _login(erin, base, "erin", f"typo-{guess}")
    assert _login(erin, base, "erin", PASSWORD).status_code == 302
    _logout(erin, base)

    for guess in range(9):
        assert _login(erin, base, "erin", f"typo-again-{guess}").status_code == 200
    assert _login(erin, base, "erin", PASSWORD).status_code == 302


# ---------------------------------------------------------------------------- issue 10, 24


def test_it_does_not_lock_a_user_out_of_their_usual_browser_from_elsewhere(
    live_server, settings
) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    _user("erin")
    base = live_server.url
    usual = requests.Session()
    office = {"X-Forwarded-For": "198.51.100.7"}
    assert _login(usual, base, "erin", PASSWORD, **office).status_code == 302
    _logout(usual, base)

    # Many addresses, each below the per-address limit, past the account-wide one.
    attacker = requests.Session()
    for n in range(settings.LOGIN_ACCOUNT_FAILURE_LIMIT + 5):
        hop = {"X-Forwarded-For": f"203.0.113.{n % 250 + 1}"}
        _login(attacker, base, "erin", f"guess-{n}", **hop)

    # A new browser at a new address is refused even with the right password...
    stranger = requests.Session()
    elsewhere = {"X-Forwarded-For": "192.0.2.44"}
    assert _login(stranger, base, "erin", PASSWORD, **elsewhere).status_code == 429
    assert not _logged_in(stranger, base)
    # ...erin, in the browser she always uses at her usual address, signs in.
    assert _login(usual, base, "erin", PASSWORD, **office).status_code == 302
    assert _logged_in(usual, base)


def test_it_limits_one_address_guessing_across_many_accounts(live_server, settings) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    _user("erin")
    base = live_server.url
    spray = {"X-Forwarded-For": "203.0.113.9"}
    attacker = requests.Session()
    for n in range(settings.LOGIN_ADDRESS_FAILURE_LIMIT):
        _login(attacker, base, f"user{n}", "Winter2026!", **spray)

    assert _login(attacker, base, "erin", PASSWORD, **spray).status_code == 429
    assert AuditEntry.objects.filter(event="login.locked_out", detail__contains="address").exists()


# ---------------------------------------------------------------------------- finding 3


def _code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = totp.time + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def _enrol(session: requests.Session, base: str, user: User) -> TOTPDevice:
    before = set(TOTPDevice.objects.filter(user=user).values_list("pk", flat=True))
    token = _csrf(session, f"{base}/accounts/2fa/")
    device = TOTPDevice.objects.exclude(pk__in=before).get(user=user, confirmed=False)
    response = session.post(
        f"{base}/accounts/2fa/",
        data={"code": _code(device), "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/2fa/"},
        allow_redirects=False,
    )
    assert response.status_code == 200 and "recovery" in response.text.lower()
    device.refresh_from_db()
    assert device.confirmed
    return device


def test_it_sends_a_password_only_session_to_the_code_step_once_a_factor_exists(
    live_server,
) -> None:
    staff = _user("sam", is_staff=True)
    base = live_server.url
    session_b = requests.Session()  # the attacker, who knows only the password
    assert _login(session_b, base, "sam", PASSWORD).status_code == 302
    session_a = requests.Session()  # the owner
    assert _login(session_a, base, "sam", PASSWORD).status_code == 302
    device = _enrol(session_a, base, staff)

    for path in ("/", "/accounts/2fa/", "/admin/", "/files/upload/"):
        response = session_b.get(f"{base}{path}", allow_redirects=False)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/accounts/login/code/"), path

    # Removing the owner's factor with the password alone, or enrolling another: refused.
    token = session_b.cookies.get("csrftoken")
    removal = session_b.post(
        f"{base}/accounts/2fa/remove/",
        data={"password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/2fa/"},
        allow_redirects=False,
    )
    assert removal.headers["Location"].startswith("/accounts/login/code/")
    enrolment = session_b.post(
        f"{base}/accounts/2fa/",
        data={"code": "123456", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/2fa/"},
        allow_redirects=False,
    )
    assert enrolment.headers["Location"].startswith("/accounts/login/code/")
    assert list(TOTPDevice.objects.filter(user=staff).values_list("pk", "confirmed")) == [
        (device.pk, True)
    ]
    assert session_a.get(f"{base}/admin/", allow_redirects=False).status_code == 200

    # With a code from the factor, the same session goes on.
    code_page = f"{base}/accounts/login/code/?next=/admin/"
    passed = session_b.post(
        code_page,
        data={
            "code": _code(device, steps_ahead=1),
            "csrfmiddlewaretoken": _csrf(session_b, code_page),
        },
        headers={"Referer": code_page},
        allow_redirects=False,
    )
    assert passed.status_code == 302 and passed.headers["Location"] == "/admin/"
    assert session_b.get(f"{base}/admin/", allow_redirects=False).status_code == 200


def test_it_gives_each_session_its_own_secret_to_enrol(live_server) -> None:
    staff = _user("sam", is_staff=True)
    base = live_server.url
    first, second = requests.Session(), requests.Session()
    for session in (first, second):
        assert _login(session, base, "sam", PASSWORD).status_code == 302
        _csrf(session, f"{base}/accounts/2fa/")

    keys = set(TOTPDevice.objects.filter(user=staff).values_list("key", flat=True))

    assert len(keys) == 2
