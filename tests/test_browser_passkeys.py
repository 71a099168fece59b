"""Passkeys in Chromium with a virtual authenticator (the DevTools protocol's WebAuthn
domain through Playwright's CDP session): register one, use it as the second factor and
to sign in without a password, a wrong authenticator refused, a cloned credential's
counter regression refused, and staff satisfying the second-factor rule with a passkey."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.models import Passkey
from audit.models import AuditEntry
from tests.helpers import BROWSER_PASSWORD, BROWSER_TESTS, Watch, log_in

pytestmark = BROWSER_TESTS


@pytest.fixture(autouse=True)
def site(settings, live_server) -> None:
    # The relying party is the portal's public address: the live server's here.
    settings.SITE_URL = live_server.url


def _authenticator(ctx: Watch) -> tuple[object, str]:
    """A virtual platform authenticator (resident keys, user verification) on the page."""
    cdp = ctx.context.new_cdp_session(ctx.page)
    cdp.send("WebAuthn.enable")
    answer = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, answer["authenticatorId"]


def _register(ctx: Watch, base: str, name: str = "laptop") -> None:
    page = ctx.page
    page.goto(f"{base}/accounts/passkeys/")
    page.fill("#passkey-name", name)
    page.click("button[data-passkey=register]")
    page.wait_for_selector(f"input[value='{name}']")


def _log_out(ctx: Watch) -> None:
    ctx.page.click("header form button")
    ctx.page.wait_for_url("**/accounts/login/**")


def _password_step(ctx: Watch, base: str, lands_on: str = "/accounts/login/code/**") -> None:
    page = ctx.page
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", BROWSER_PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(f"{base}{lands_on}")


def _alice_with_a_passkey_logged_out(browser, base: str) -> Watch:  # type: ignore[no-untyped-def]
    ctx = Watch(browser, base)
    _authenticator(ctx)
    log_in(ctx.page, base, "alice")
    _register(ctx, base)
    _log_out(ctx)
    return ctx


def test_it_registers_a_passkey_and_uses_it_as_the_second_factor(
    browser, live_server, users
) -> None:
    base = live_server.url
    ctx = Watch(browser, base)
    _authenticator(ctx)
    log_in(ctx.page, base, "alice")

    _register(ctx, base)

    passkey = Passkey.objects.get(user__username="alice")
    assert passkey.name == "laptop"
    assert AuditEntry.objects.filter(event="passkey.added").count() == 1
    _log_out(ctx)
    _password_step(ctx, base)  # now asked for a second factor
    ctx.page.click("button[data-passkey=authenticate]")
    ctx.page.wait_for_url(f"{base}/")
    passkey.refresh_from_db()
    assert passkey.last_used_at is not None


def test_it_signs_in_with_a_passkey_and_no_password(browser, live_server, users) -> None:
    base = live_server.url
    ctx = _alice_with_a_passkey_logged_out(browser, base)

    ctx.page.click("button:text('Sign in with a passkey')")

    ctx.page.wait_for_url(f"{base}/")
    assert "alice" in ctx.page.locator("header").inner_text()


def test_it_refuses_a_wrong_authenticator(browser, live_server, users) -> None:
    base = live_server.url
    ctx = Watch(browser, base)
    cdp, first = _authenticator(ctx)
    log_in(ctx.page, base, "alice")
    _register(ctx, base)
    _log_out(ctx)
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": first})  # type: ignore[attr-defined]
    _authenticator(ctx)  # another authenticator, without alice's credential

    _password_step(ctx, base)
    ctx.page.click("button[data-passkey=authenticate]")

    status = ctx.page.locator("[data-passkey-status]")
    status.wait_for(state="visible")
    assert "No passkey was used" in status.inner_text()
    assert ctx.page.url.startswith(f"{base}/accounts/login/code/")
    assert ctx.page.goto(f"{base}/").url.startswith(f"{base}/accounts/login")


def test_it_refuses_a_credential_whose_counter_went_backwards(browser, live_server, users):
    base = live_server.url
    ctx = _alice_with_a_passkey_logged_out(browser, base)
    # The server saw this credential count higher than the authenticator now does: a
    # clone used elsewhere, as far as the server can tell.
    Passkey.objects.update(sign_count=1_000_000)

    ctx.page.click("button:text('Sign in with a passkey')")

    status = ctx.page.locator("[data-passkey-status]")
    status.wait_for(state="visible")
    assert "counter went backwards" in status.inner_text()
    assert ctx.page.goto(f"{base}/").url.startswith(f"{base}/accounts/login")
    [entry] = AuditEntry.objects.filter(event="passkey.counter_regression")
    assert "user=alice" in entry.detail
    assert Passkey.objects.get().sign_count == 1_000_000


def test_staff_meet_the_second_factor_rule_with_a_passkey(browser, live_server, users) -> None:
    User.objects.filter(username="alice").update(is_staff=True, is_superuser=True)
    base = live_server.url
    ctx = Watch(browser, base)
    _authenticator(ctx)
    page = ctx.page
    _password_step(ctx, base, lands_on="/accounts/2fa/?reason=staff")

    _register(ctx, base, name="security key")

    assert page.goto(f"{base}/").url == f"{base}/"
    assert page.goto(f"{base}/admin/").url == f"{base}/admin/"
