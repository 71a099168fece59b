"""The API's docs page in Chromium: Swagger UI renders the OpenAPI document from files the
portal serves itself, under the portal's CSP, with no console error (a CSP violation is
one) and no request to another origin."""

from __future__ import annotations

from tests.helpers import BROWSER_TESTS, Watch

pytestmark = BROWSER_TESTS


def test_the_docs_page_renders_under_the_csp(browser, live_server) -> None:  # type: ignore[no-untyped-def]
    ctx = Watch(browser, live_server.url)

    ctx.page.goto(f"{live_server.url}/api/v1/docs")
    ctx.page.wait_for_selector("text=/api/v1/files/{file_id}/content/", timeout=15_000)

    assert "securefiles API" in ctx.page.inner_text(".info")
    ctx.expect_clean()
    ctx.close()
