"""Resumable uploads from the "My files" page in a real browser (Chromium through
Playwright, as tests/test_browser_upload.py): the page speaks tus to /files/uploads/ through
the vendored tus-js-client. Paused and resumed, cut by a reload and resumed, or cut by a
network drop, a file is stored byte for byte; a cancelled one leaves nothing behind. The
upload is slowed down with Chromium's network throttling (CDP) so that it can be caught
mid-way."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sharing.models import ResumableUpload, StoredFile
from tests.helpers import BROWSER_TESTS, MiB, Watch, client_for, files_on_disk, log_in, streamed

pytestmark = BROWSER_TESTS  # the ``browser`` and ``users`` fixtures are in conftest

# Chromium logs a request cut by the network going away to the console.
OFFLINE_LOGS = ("ERR_INTERNET_DISCONNECTED", "ERR_NETWORK_CHANGED", "ERR_CONNECTION")


@pytest.fixture
def alice_page(browser, live_server, users):
    ctx = Watch(browser, live_server.url)
    log_in(ctx.page, live_server.url, "alice")
    yield ctx
    ctx.close()


def throttle(page, upload_bytes_per_second: int, *, offline: bool = False) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": offline,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": upload_bytes_per_second,
        },
    )


def patch_offsets(page) -> list[int]:
    """The Upload-Offset of every PATCH the page sends, as it sends them."""
    offsets: list[int] = []

    def seen(request) -> None:
        if request.method == "PATCH" and "/files/uploads/" in request.url:
            offsets.append(int(request.headers["upload-offset"]))

    page.on("request", seen)
    return offsets


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def percent(page) -> float:
    """How far the row's progress bar is, 0 to 1."""
    return page.locator(".upload-item progress").evaluate("bar => bar.value / bar.max")


def stored_bytes(stored: StoredFile) -> bytes:
    response = client_for(stored.owner).get(f"/files/{stored.id}/download/")
    assert response.status_code == 200
    return streamed(response)


def tus_entries(page) -> list[str]:
    return page.evaluate("Object.keys(localStorage).filter(key => key.startsWith('tus::'))")


def test_an_upload_paused_and_resumed_is_stored_byte_for_byte(alice_page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = alice_page.page
    offsets = patch_offsets(page)
    throttle(page, 1_000_000)
    data = os.urandom(4 * MiB + 12345)
    chosen = tmp_path / "scan.bin"
    chosen.write_bytes(data)

    page.fill("#id_expires_in_days", "5")
    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")
    row = page.locator(".upload-item")
    expect(row.locator("progress")).to_be_visible()
    # Speed in IEC units (about 976.6 KiB/s here) and the time left.
    expect(row.locator(".upload-status")).to_have_text(
        re.compile(r"^\d+% · \d+\.\d\xa0[KM]iB/s · \d+ s left$"), timeout=20_000
    )
    wait_for(lambda: percent(page) > 0.5)
    page.click(".upload-pause")

    expect(row).to_have_class("upload-item paused")
    expect(row.locator(".upload-status")).to_contain_text("Paused")
    expect(page.locator("#id_expires_in_days")).to_be_enabled()  # nothing is being sent
    # What reached the server before the pause is kept there, in whole 1 MiB segments.
    wait_for(lambda: ResumableUpload.objects.filter(offset__gt=0).exists())
    kept = ResumableUpload.objects.get().offset
    assert kept % MiB == 0 and 0 < kept < len(data)
    assert StoredFile.objects.count() == 0

    page.click(".upload-resume")
    expect(page.locator(".upload-item.done")).to_contain_text(
        "Deleted automatically: ", timeout=60_000
    )
    stored = StoredFile.objects.get()
    assert stored.name == "scan.bin"
    assert stored_bytes(stored) == data
    assert offsets[0] == 0 and kept in offsets[1:]  # resumed where the server stood
    assert not ResumableUpload.objects.exists()
    expect(page.locator("#my-files")).to_contain_text("scan.bin")
    assert tus_entries(page) == []  # nothing left to resume
    alice_page.expect_clean()


def test_after_a_reload_mid_upload_the_page_offers_to_resume_it(
    alice_page, live_server, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = alice_page.page
    offsets = patch_offsets(page)
    throttle(page, 1_000_000)
    data = os.urandom(4 * MiB + 777)
    chosen = tmp_path / "minutes.pdf"
    chosen.write_bytes(data)

    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")
    expect(page.locator(".upload-item progress")).to_be_visible()
    wait_for(lambda: percent(page) > 0.5)
    page.reload()
    wait_for(lambda: ResumableUpload.objects.filter(offset__gt=0).exists())
    kept = ResumableUpload.objects.get().offset

    # The page names the unfinished upload, and resumes it when the file is chosen again.
    unfinished = page.locator("#upload-unfinished .upload-item")
    expect(unfinished).to_contain_text("minutes.pdf")
    expect(unfinished).to_contain_text("Choose the same file again")
    page.set_input_files("#id_file", [str(chosen)])
    offer = page.locator("#upload-list .upload-item.resumable")
    expect(offer).to_contain_text("did not finish")
    expect(page.locator("#upload-unfinished")).to_be_hidden()
    offer.locator(".upload-resume").click()

    expect(page.locator(".upload-item.done")).to_have_count(1, timeout=60_000)
    stored = StoredFile.objects.get()
    assert stored_bytes(stored) == data
    assert kept in offsets and offsets[-1] >= kept  # not from the start again
    assert not ResumableUpload.objects.exists()
    expect(page.locator("#my-files")).to_contain_text("minutes.pdf")
    assert tus_entries(page) == []
    page.goto(f"{live_server.url}/")
    expect(page.locator("#upload-unfinished")).to_be_hidden()
    alice_page.expect_clean()


def test_a_cancelled_upload_leaves_nothing(alice_page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = alice_page.page
    throttle(page, 500_000)
    chosen = tmp_path / "draft.bin"
    chosen.write_bytes(os.urandom(3 * MiB))

    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")
    expect(page.locator(".upload-item progress")).to_be_visible()
    wait_for(lambda: ResumableUpload.objects.exists() and percent(page) > 0.1)
    page.click(".upload-cancel")

    expect(page.locator(".upload-item.error")).to_contain_text("Cancelled", timeout=20_000)
    expect(page.locator(".upload-item progress")).to_have_count(0)
    expect(page.locator("#id_expires_in_days")).to_be_enabled()
    assert not ResumableUpload.objects.exists()
    assert StoredFile.objects.count() == 0
    wait_for(lambda: files_on_disk() == [])  # the cut PATCH may still be closing its blob
    assert tus_entries(page) == []
    alice_page.expect_clean()


def test_a_network_drop_is_retried_by_itself(alice_page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = alice_page.page
    throttle(page, 1_000_000)
    data = os.urandom(3 * MiB + 5)
    chosen = tmp_path / "ledger.bin"
    chosen.write_bytes(data)

    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")
    expect(page.locator(".upload-item progress")).to_be_visible()
    wait_for(lambda: percent(page) > 0.3)
    throttle(page, 1_000_000, offline=True)
    time.sleep(2)
    throttle(page, 1_000_000)

    expect(page.locator(".upload-item.done")).to_have_count(1, timeout=60_000)
    assert stored_bytes(StoredFile.objects.get()) == data
    assert not ResumableUpload.objects.exists()
    alice_page.expect_clean(allowed_errors=OFFLINE_LOGS)


def test_without_resumable_uploads_on_the_server_the_page_falls_back_to_the_form(
    alice_page, tmp_path: Path
) -> None:
    """Storage that cannot hold resumable uploads (S3, for now) answers creation 501: the
    page sends the file as a form upload instead, with the options shown."""
    from playwright.sync_api import expect

    page = alice_page.page
    page.route(
        "**/files/uploads/",
        lambda route: route.fulfill(status=501, headers={"Tus-Resumable": "1.0.0"}),
    )
    chosen = tmp_path / "plain.txt"
    chosen.write_text("sent as a form")

    page.fill("#id_expires_in_days", "2")
    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")

    expect(page.locator(".upload-item.done")).to_contain_text(
        "Deleted automatically: ", timeout=20_000
    )
    stored = StoredFile.objects.get()
    assert stored_bytes(stored) == b"sent as a form"
    assert stored.expires_at is not None
    alice_page.expect_clean(allowed_errors=("status of 501",))


@pytest.mark.parametrize("how", ["button", "answer only"])
def test_logging_out_forgets_the_names_of_unfinished_uploads(
    alice_page, live_server, tmp_path: Path, how: str
) -> None:
    """The page keeps an unfinished upload's name in localStorage to offer resuming it;
    on a shared computer, logging out must not leave it for the next person. "answer
    only": form.submit() fires no submit event, so site.js does nothing and the logout
    answer's Clear-Site-Data header alone clears it (127.0.0.1 is a secure origin)."""
    from playwright.sync_api import expect

    page = alice_page.page
    throttle(page, 500_000)
    chosen = tmp_path / "patient-hiv-results.pdf"
    chosen.write_bytes(os.urandom(3 * MiB))
    page.set_input_files("#id_file", [str(chosen)])
    page.click("#upload-submit")
    expect(page.locator(".upload-item progress")).to_be_visible()
    wait_for(lambda: percent(page) > 0.1)
    page.reload()  # cut mid-upload: the page now offers to resume it, by name
    expect(page.locator("#upload-unfinished")).to_contain_text("patient-hiv-results.pdf")
    assert len(tus_entries(page)) == 1

    if how == "button":
        page.click("header form[data-logout] button")
    else:
        page.evaluate("document.querySelector('header form[data-logout]').submit()")
    expect(page.locator("input[name=password]")).to_be_visible()

    assert tus_entries(page) == []
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert "patient-hiv-results" not in stored
    # Logging in again (the same person, or the next one) is not offered it either.
    log_in(page, live_server.url, "alice")
    expect(page.locator("#upload-unfinished")).to_be_hidden()
    alice_page.expect_clean()
