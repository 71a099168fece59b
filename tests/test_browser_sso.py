"""Single sign-on in Chromium against the test OpenID provider (tests/oidc_provider/):
the login page's button, the provider's login form, back signed in; and an expired ID
token refused with a page that says so. Fixtures from test_sso."""

from __future__ import annotations

import pytest

from tests.helpers import BROWSER_TESTS, Watch
from tests.test_sso import PROVIDER_PASSWORD, _linked, provider, sso  # noqa: F401 (fixtures)

pytestmark = [*BROWSER_TESTS, pytest.mark.django_db(transaction=True)]


def _through_the_provider(page, base: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/accounts/login/")
    page.click("a.sso")
    page.wait_for_selector("text=Test identity provider")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PROVIDER_PASSWORD)
    page.click("button[type=submit]")


def test_it_signs_in_through_the_provider(browser, live_server, sso) -> None:  # noqa: F811
    _linked("dora", sso)
    ctx = Watch(browser, live_server.url)

    _through_the_provider(ctx.page, live_server.url, "dora")

    ctx.page.wait_for_url(f"{live_server.url}/")
    assert "dora" in ctx.page.locator("header").inner_text()
    assert all(sso.url in failed for failed in ctx.failed), ctx.failed  # its favicon


def test_it_shows_why_an_expired_token_was_refused(browser, live_server, sso) -> None:  # noqa: F811
    _linked("dora", sso)
    sso.misbehave("expired")
    ctx = Watch(browser, live_server.url)

    _through_the_provider(ctx.page, live_server.url, "dora")

    ctx.page.wait_for_selector("text=Single sign-on failed")
    assert "token has expired" in ctx.page.locator("main").inner_text()
    ctx.page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in ctx.page.url
