"""The upload page in a real browser (Chromium through Playwright, as tests/test_browser.py):
the options shown when a file is stored are the ones it is stored with, the page shows the
server's state after every answer, and every refusal says why. With JavaScript the page
uploads through tus (/files/uploads/, tests/test_browser_tus.py for pause, resume and
cancel); the plain form (/files/upload/) is what the page falls back to."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from sharing import display
from sharing.models import StoredFile
from tests.helpers import BROWSER_TESTS, Watch, log_in

pytestmark = BROWSER_TESTS  # the ``browser`` and ``users`` fixtures are in conftest

# A refused upload is answered with an error status, which Chromium logs to the console.
REFUSAL_LOGS = ("status of 413", "status of 400", "status of 429", "status of 403")


@pytest.fixture
def alice_page(browser, live_server, users):
    ctx = Watch(browser, live_server.url)
    log_in(ctx.page, live_server.url, "alice")
    yield ctx
    ctx.close()


def upload_posts(page) -> list[str]:
    """The path of every POST the page sends from now on."""
    paths: list[str] = []
    page.on(
        "request",
        lambda request: request.method == "POST" and paths.append(urlsplit(request.url).path),
    )
    return paths


def test_retention_typed_after_choosing_a_file_is_the_one_it_is_stored_with(
    alice_page, live_server, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = alice_page.page
    posts = upload_posts(page)
    chosen = tmp_path / "minutes.txt"
    chosen.write_text("board minutes")

    page.set_input_files("#id_file", [str(chosen)])
    # Choosing sends nothing: the row waits for Upload, and the options stay editable.
    expect(page.locator(".upload-item.queued")).to_contain_text("press Upload")
    assert StoredFile.objects.count() == 0
    page.fill("#id_expires_in_days", "7")
    page.click("#upload-submit")

    done = page.locator(".upload-item.done")
    expect(done).to_contain_text("Deleted automatically: ", timeout=20_000)
    stored = StoredFile.objects.get()
    expect(done).to_contain_text(display.when(stored.expires_at))  # the page's zone, named
    assert stored.expires_at is not None
    assert abs(stored.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=5)
    assert posts == ["/files/uploads/"]  # resumable (tus), not the form
    page.goto(f"{live_server.url}/files/{stored.id}/")
    expect(page.locator("time[datetime]").first).to_be_visible()
    assert "never" not in page.locator("dl").inner_text()
    alice_page.expect_clean()


def test_the_options_are_locked_while_an_upload_runs(alice_page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = alice_page.page
    # Slow the upload down so that the page can be seen mid-way.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 256_000},
    )
    big = tmp_path / "scan.bin"
    big.write_bytes(os.urandom(1024 * 1024))
    page.fill("#id_expires_in_days", "3")
    page.set_input_files("#id_file", [str(big)])
    page.click("#upload-submit")

    expect(page.locator("#id_expires_in_days")).to_be_disabled()
    expect(page.locator(".upload-item.done")).to_have_count(1, timeout=30_000)
    expect(page.locator("#id_expires_in_days")).to_be_enabled()
    stored = StoredFile.objects.get()
    assert timedelta(days=2) < stored.expires_at - timezone.now() <= timedelta(days=3)
    alice_page.expect_clean()


def test_usage_and_the_file_list_follow_each_upload_without_a_reload(
    alice_page, settings, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    settings.USER_QUOTA_MB = 10
    page = alice_page.page
    page.reload()
    expect(page.locator("#usage-text")).to_have_text("Using 0\xa0bytes of 10.0\xa0MiB.")
    chosen = tmp_path / "ledger.csv"
    chosen.write_bytes(b"x" * 2048)

    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")

    expect(page.locator("#usage-text")).to_have_text(
        "Using 2.0\xa0KiB of 10.0\xa0MiB.", timeout=20_000
    )
    assert page.locator("#usage-meter").evaluate("meter => meter.value") == 2048
    expect(page.locator("#header-usage")).to_have_text("2.0\xa0KiB of 10.0\xa0MiB")
    expect(page.locator("#my-files")).to_contain_text("ledger.csv")
    alice_page.expect_clean()


def test_a_refused_upload_shows_its_reason_and_no_finished_progress_bar(
    alice_page, settings, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    settings.USER_QUOTA_MB = 1
    page = alice_page.page
    page.reload()
    big = tmp_path / "archive.bin"
    big.write_bytes(os.urandom(2 * 1024 * 1024))

    page.set_input_files("#id_file", [str(big)])
    page.click("#upload-submit")

    refused = page.locator(".upload-item.error")
    expect(refused).to_contain_text("quota of 1.0\xa0MiB", timeout=20_000)
    expect(refused.locator("progress")).to_have_count(0)
    expect(page.locator(".upload-item.done")).to_have_count(0)
    expect(page.locator("#usage-text")).to_have_text("Using 0\xa0bytes of 1.0\xa0MiB.")
    assert StoredFile.objects.count() == 0
    alice_page.expect_clean(allowed_errors=REFUSAL_LOGS)


def test_upload_with_nothing_chosen_says_choose_a_file_first(alice_page) -> None:
    from playwright.sync_api import expect

    page = alice_page.page
    message = page.locator("#upload-message")
    expect(message).to_be_hidden()

    page.click("#upload-submit")

    expect(message).to_be_visible()
    expect(message).to_have_text("Choose a file first.")
    assert StoredFile.objects.count() == 0
    alice_page.expect_clean()


def test_a_name_with_a_quote_is_shown_and_stored_as_on_the_users_disk(
    alice_page, live_server, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = alice_page.page
    chosen = tmp_path / 'my "final" draft.txt'
    chosen.write_text("draft")

    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")

    expect(page.locator(".upload-item.done")).to_have_count(1, timeout=20_000)
    assert StoredFile.objects.get().name == 'my "final" draft.txt'
    expect(page.locator("#my-files")).to_contain_text('my "final" draft.txt')
    page.goto(f"{live_server.url}/")
    expect(page.locator("#my-files")).to_contain_text('my "final" draft.txt')
    expect(page.locator("#my-files")).not_to_contain_text("%22")
    alice_page.expect_clean()


def test_too_many_unfinished_uploads_is_explained(alice_page, settings, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    settings.TUS_MAX_UNFINISHED = 0
    page = alice_page.page
    chosen = tmp_path / "notes.txt"
    chosen.write_text("notes")

    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")

    refused = page.locator(".upload-item.error")
    expect(refused).to_contain_text("too many unfinished uploads", timeout=20_000)
    expect(refused.locator("progress")).to_have_count(0)
    expect(page.locator("#id_expires_in_days")).to_be_enabled()
    assert StoredFile.objects.count() == 0
    alice_page.expect_clean(allowed_errors=REFUSAL_LOGS)


def test_an_ended_session_is_explained_and_the_upload_can_resume_after_a_new_login(
    alice_page, live_server, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = alice_page.page
    chosen = tmp_path / "notes.txt"
    chosen.write_text("notes")
    page.set_input_files("#id_file", [str(chosen)])
    page.context.clear_cookies()  # the session ended (expired, or logged out elsewhere)

    page.click("#upload-submit")

    row = page.locator(".upload-item")
    expect(row).to_contain_text("Your session has ended", timeout=20_000)
    assert StoredFile.objects.count() == 0
    other = alice_page.new_page()
    log_in(other, live_server.url, "alice")
    row.locator(".upload-resume").click()
    expect(page.locator(".upload-item.done")).to_have_count(1, timeout=20_000)
    assert StoredFile.objects.get().name == "notes.txt"
    alice_page.expect_clean(allowed_errors=REFUSAL_LOGS)
