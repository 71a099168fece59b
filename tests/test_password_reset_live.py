"""Password reset over real HTTP against a live server (finding 6).

The link in the e-mail comes from SITE_URL (or, while it is unset, the first ALLOWED_HOSTS
entry), never from the request's Host header, whose port ALLOWED_HOSTS ignores. Requests
are throttled per client address (429) and per e-mail address typed (the usual answer, but
no e-mail). The live server runs in this process, so its mails land in mail.outbox
(pytest-django's locmem backend).
"""

from __future__ import annotations

import re

import pytest
import requests
from django.contrib.auth.models import User
from django.core import mail

pytestmark = pytest.mark.django_db(transaction=True)

RESET = "/accounts/password_reset/"
DONE = "/accounts/password_reset/done/"
EVIL_HOST = "127.0.0.1:31337"
TIMEOUT = 10
LINK = re.compile(r"(\S+)(/accounts/reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture
def alice_account(transactional_db: None) -> User:
    return User.objects.create_user("alice", email="alice@example.com", password="x" * 20)


@pytest.fixture
def portal(settings, live_server) -> str:  # type: ignore[no-untyped-def]
    """The live server's base URL; 127.0.0.1 (the forged Host's name) is an allowed host."""
    settings.ALLOWED_HOSTS = ["files.internal.test", "127.0.0.1", "localhost"]
    settings.HTTPS = False
    settings.SITE_URL = ""
    return live_server.url


class Browser:
    """A requests session that fetched the reset form once, for its CSRF cookie."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        form = self.session.get(f"{base}{RESET}", timeout=TIMEOUT)
        assert form.status_code == 200

    def reset(self, email: str, **headers: str) -> requests.Response:
        token = self.session.cookies["csrftoken"]
        # Spelled out: requests matches its cookie jar against a Host header, if one is given.
        headers["Cookie"] = f"csrftoken={token}"
        return self.session.post(
            f"{self.base}{RESET}",
            data={"email": email, "csrfmiddlewaretoken": token},
            headers=headers,
            allow_redirects=False,
            timeout=TIMEOUT,
        )


def _link(message: mail.EmailMessage) -> tuple[str, str]:
    """(scheme://host[:port], path) of the reset link in a mail."""
    match = LINK.search(message.body)
    assert match, message.body
    return match.group(1), match.group(2)


def _assert_done(response: requests.Response) -> None:
    assert response.status_code == 302, response.text[:300]
    assert response.headers["Location"] == DONE


def test_it_builds_the_link_from_site_url_not_the_host_header(
    portal, alice_account, settings
) -> None:
    settings.SITE_URL = "https://files.example.org:8443"

    response = Browser(portal).reset("alice@example.com", Host=EVIL_HOST)

    _assert_done(response)
    [message] = mail.outbox
    assert "31337" not in message.body
    origin, path = _link(message)
    assert origin == "https://files.example.org:8443"
    # The path is a working reset link on the portal.
    opened = requests.get(f"{portal}{path}", timeout=TIMEOUT)
    assert opened.status_code == 200
    assert 'name="new_password1"' in opened.text


@pytest.mark.parametrize(("https", "scheme"), [(False, "http"), (True, "https")])
def test_it_uses_the_first_allowed_host_while_site_url_is_unset(
    portal, alice_account, settings, https, scheme
) -> None:
    settings.HTTPS = https

    response = Browser(portal).reset("alice@example.com", Host=EVIL_HOST)

    _assert_done(response)
    [message] = mail.outbox
    assert "31337" not in message.body
    origin, _ = _link(message)
    assert origin == f"{scheme}://files.internal.test"


def test_it_sends_at_most_the_account_limit_and_answers_every_request_alike(
    portal, alice_account, settings
) -> None:
    settings.PASSWORD_RESET_LIMIT_PER_ADDRESS = 100
    settings.PASSWORD_RESET_LIMIT_PER_ACCOUNT = 3
    browser = Browser(portal)

    # The typed address counts in any case, as Django matches it.
    answers = [
        browser.reset("alice@example.com" if attempt % 2 else "ALICE@Example.COM")
        for attempt in range(25)
    ]

    for response in answers:
        _assert_done(response)
    assert len(mail.outbox) == 3
    assert {tuple(message.to) for message in mail.outbox} == {("alice@example.com",)}
    # An unknown address, under or over its own limit, gets the very same answer.
    for _ in range(5):
        _assert_done(browser.reset("mallory@example.com"))
    assert len(mail.outbox) == 3
    page = browser.session.get(f"{portal}{DONE}", timeout=TIMEOUT)
    assert "If the address belongs to an account" in page.text


def test_it_answers_429_past_the_limit_per_client_address(portal, alice_account, settings) -> None:
    settings.PASSWORD_RESET_LIMIT_PER_ADDRESS = 5
    settings.PASSWORD_RESET_WINDOW_SECONDS = 3600
    browser = Browser(portal)
    for attempt in range(5):
        _assert_done(browser.reset(f"someone{attempt}@example.com"))

    # A forged X-Forwarded-For (no trusted proxy) changes nothing; neither does the account.
    refused = browser.reset("alice@example.com", **{"X-Forwarded-For": "203.0.113.9"})

    assert refused.status_code == 429
    assert "Wait" in refused.text and "then try again" in refused.text
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert mail.outbox == []
