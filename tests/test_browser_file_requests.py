"""A file request's visitor in a real browser (Chromium through Playwright, as
tests/test_browser_tus.py): with no account, they give their name and e-mail, send a file
through the page's tus uploader (tus-js-client, with its progress bar) to the request's own
tus URL, see it delivered, and get a receipt with its SHA-256; it lands in the owner's
space byte for byte, and the owner is e-mailed once for the batch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from django.core import mail

from audit.actors import SYSTEM
from filerequests import services
from filerequests.models import FileRequest, ReceivedFile
from sharing.models import ResumableUpload
from tests.helpers import BROWSER_TESTS, MiB, Watch, client_for, streamed

pytestmark = BROWSER_TESTS  # the ``browser`` and ``users`` fixtures are in conftest


@pytest.fixture
def request_token(users) -> str:
    alice, _bob = users
    _found, token = services.request_create(
        owner=alice,
        title="Prior scans",
        message="Your MRI from 2024, please.",
        expires_in_hours=24,
        max_files=5,
        max_mb=50,
        password="",
        require_sender=True,
        actor=SYSTEM,
    )
    return token


def test_a_visitor_sends_a_file_with_progress_and_gets_a_receipt(
    browser, live_server, users, request_token: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    ctx = Watch(browser, live_server.url)
    page = ctx.page
    patches: list[str] = []
    page.on("request", lambda r: r.method == "PATCH" and patches.append(r.url))
    page.goto(f"{live_server.url}/r/{request_token}/")
    expect(page.locator("h1")).to_have_text("Prior scans")
    expect(page.locator(".request-message")).to_contain_text("Your MRI from 2024")
    page.fill("#id_name", "Carol Patient")
    page.fill("#id_email", "carol@example.org")
    page.click("#sender-form button[type=submit]")

    data = os.urandom(3 * MiB + 4321)
    chosen = tmp_path / "mri-2024.dcm"
    chosen.write_bytes(data)
    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")
    expect(page.locator(".upload-item progress")).to_be_attached()
    expect(page.locator(".upload-item.done")).to_contain_text(
        "Encrypted and delivered", timeout=60_000
    )
    assert patches and all(f"/r/{request_token}/uploads/" in url for url in patches)

    page.click("#done")
    expect(page.locator("#receipt")).to_contain_text("mri-2024.dcm")
    expect(page.locator("#receipt .sha256")).to_have_text(hashlib.sha256(data).hexdigest())

    row = ReceivedFile.objects.select_related("file").get()
    assert (row.sender_name, row.sender_email) == ("Carol Patient", "carol@example.org")
    owner_copy = client_for(row.file.owner).get(f"/files/{row.file_id}/download/")
    assert streamed(owner_copy) == data
    assert not ResumableUpload.objects.exists()
    [message] = mail.outbox
    assert "Prior scans" in message.subject and "mri-2024" not in message.body
    ctx.expect_clean()
    ctx.close()


def test_the_request_pages_fit_phones_and_desktops(
    browser, live_server, users, request_token: str
) -> None:
    from tests.helpers import log_in
    from tests.test_browser import WIDTHS, _layout_problems

    base = live_server.url
    visitor_ctx, owner_ctx = Watch(browser, base), Watch(browser, base)
    log_in(owner_ctx.page, base, "alice")
    request_id = FileRequest.objects.get().pk
    problems: list[str] = []
    for width in WIDTHS:
        for url in (f"{base}/r/{request_token}/", f"{base}/r/{request_token}/receipt/"):
            problems += _layout_problems(visitor_ctx.page, url, width)
        for url in (f"{base}/requests/", f"{base}/requests/{request_id}/"):
            problems += _layout_problems(owner_ctx.page, url, width)
    assert problems == [], "\n".join(problems)
    for ctx in (visitor_ctx, owner_ctx):
        ctx.expect_clean()
        ctx.close()
