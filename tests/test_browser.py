"""End to end in a real browser: Debian's Chromium driven by Playwright, against
pytest-django's live server. Skipped, with a message saying so, where Chromium is absent
(`apt-get install chromium`; .ci/run installs it). The ``browser`` and ``users`` fixtures
are in conftest."""

from __future__ import annotations

import os
from pathlib import Path

from django.contrib.auth.models import User

from sharing.models import ShareLink, StoredFile
from tests.helpers import BROWSER_PASSWORD as PASSWORD
from tests.helpers import BROWSER_TESTS, Watch, drop_file, log_in

pytestmark = BROWSER_TESTS


def test_it_shares_and_links_files_end_to_end(browser, live_server, users, tmp_path: Path):
    from playwright.sync_api import expect

    base = live_server.url
    alice_ctx = Watch(browser, base)
    page = alice_ctx.page
    log_in(page, base, "alice")

    # Two files through the picker, one by drag and drop; every progress bar completes.
    first, second = tmp_path / "contract.pdf", tmp_path / "notes.txt"
    first.write_bytes(b"%PDF-1.4 " + os.urandom(300_000))
    second.write_text("patient notes, confidential\n" * 1000)
    page.set_input_files("#id_file", [str(first), str(second)])
    drop_file(page, "dropped.txt", "dropped by drag and drop")
    expect(page.locator(".upload-item.queued")).to_have_count(3)
    page.click("#upload-submit")  # choosing only queues: Upload sends
    expect(page.locator(".upload-item.done")).to_have_count(3, timeout=20_000)
    expect(page.locator("#my-files")).to_contain_text("dropped.txt")
    progress = page.locator(".upload-item progress").first
    assert progress.get_attribute("value") == progress.get_attribute("max")
    assert StoredFile.objects.count() == 3

    # Open a file, share it with bob.
    page.goto(f"{base}/")
    page.click("text=Details >> nth=0")
    stored = StoredFile.objects.get(name=page.locator("h1").inner_text().strip())
    page.fill("#id_username", "bob")
    page.click("button:text-is('Share')")
    expect(page.locator(".shares")).to_contain_text("bob")

    # bob logs in elsewhere and downloads it.
    bob_ctx = Watch(browser, base)
    log_in(bob_ctx.page, base, "bob")
    expect(bob_ctx.page.locator("#shared-title + .table-scroll table")).to_contain_text(stored.name)
    with bob_ctx.page.expect_download() as download:
        bob_ctx.page.click(f"#shared-title + .table-scroll table >> text={stored.name}")
    expected = (tmp_path / stored.name).read_bytes() if (tmp_path / stored.name).exists() else None
    got = Path(download.value.path()).read_bytes()
    assert len(got) == stored.size
    if expected is not None:
        assert got == expected
    bob_ctx.expect_clean()
    bob_ctx.close()

    # A password link, used in a fresh browser context with no session at all.
    page.goto(f"{base}/files/{stored.id}/")
    page.fill("#id_password", "link password")
    page.click("button:text-is('Create link')")
    link_url = page.input_value("#new-link-url")
    assert "/s/" in link_url
    visitor = Watch(browser, base)
    visitor.page.goto(link_url)
    expect(visitor.page.locator("h1")).to_have_text("Protected file")  # no name before it
    visitor.page.fill("#id_password", "link password")
    with visitor.page.expect_download() as download:
        visitor.page.click("button:text-is('Download')")
    assert len(Path(download.value.path()).read_bytes()) == stored.size

    # Revoked: the same link now shows the not-found page.
    page.goto(f"{base}/files/{stored.id}/")
    page.click("button:text-is('Revoke')")
    assert ShareLink.objects.get().revoked_at is not None
    response = visitor.page.goto(link_url)
    assert response.status == 404
    expect(visitor.page.locator("h1")).to_have_text("Not found")
    # The 404 itself is the only console error a revoked link may cause.
    visitor.expect_clean(allowed_errors=("404",))
    visitor.close()

    # Delete a file behind its confirmation.
    page.goto(f"{base}/files/{stored.id}/")
    page.click("summary:has-text('Delete this file')")
    page.check("input[name=confirm]")
    page.click("button:text-is('Delete permanently')")
    page.wait_for_url(f"{base}/")
    assert not StoredFile.objects.filter(pk=stored.id).exists()
    expect(page.locator("#my-files")).not_to_contain_text(stored.name)

    alice_ctx.expect_clean()
    alice_ctx.close()


def test_it_shows_a_clear_error_for_a_file_over_the_limit(
    browser, live_server, users, settings, tmp_path: Path
):
    from playwright.sync_api import expect

    settings.MAX_UPLOAD_MB = 1
    settings.MAX_UPLOAD_BYTES = 1024 * 1024
    ctx = Watch(browser, live_server.url)
    log_in(ctx.page, live_server.url, "alice")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    ctx.page.set_input_files("#id_file", [str(big)])
    expect(ctx.page.locator(".upload-item.error")).to_contain_text("limit")
    assert StoredFile.objects.count() == 0
    ctx.expect_clean()
    ctx.close()


def test_it_works_without_javascript(browser, live_server, users, tmp_path: Path):
    ctx = Watch(browser, live_server.url, java_script_enabled=False)
    log_in(ctx.page, live_server.url, "alice")
    upload = tmp_path / "plain.txt"
    upload.write_text("uploaded by the plain form")
    ctx.page.set_input_files("#id_file", [str(upload)])
    ctx.page.click("#upload-submit")
    ctx.page.wait_for_url(f"{live_server.url}/")
    assert StoredFile.objects.filter(name="plain.txt").exists()
    assert "plain.txt" in ctx.page.locator("#my-files").inner_text()
    ctx.close()


def test_it_reaches_the_upload_picker_by_keyboard_with_a_visible_focus(browser, live_server, users):
    ctx = Watch(browser, live_server.url)
    page = ctx.page
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/")
    focused = []
    for _ in range(25):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("() => document.activeElement.id"))
        if focused[-1] == "id_file":
            break
    assert focused[-1] == "id_file", focused
    # The picker itself is visually hidden; its label shows the focus ring.
    outline = page.evaluate(
        "() => getComputedStyle(document.querySelector('label[for=id_file]')).outlineStyle"
    )
    assert outline not in ("", "none")
    ctx.expect_clean()
    ctx.close()


def test_staff_log_in_with_a_second_factor_and_use_the_admin(browser, live_server, users):
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.helpers import make_file

    admin = User.objects.create_superuser("root", "root@example.org", password=PASSWORD)
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    make_file(users[0], b"quarterly numbers", name="numbers.csv", content_type="text/csv")
    ctx = Watch(browser, live_server.url)
    page = ctx.page
    page.goto(f"{live_server.url}/accounts/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/accounts/login/code/")
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    page.fill("#id_code", f"{totp.token():06d}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    for path in ("sharing/storedfile/", "audit/auditentry/", "sharing/sharelink/", "auth/user/"):
        response = page.goto(f"{live_server.url}/admin/{path}")
        assert response.status == 200, path
    assert "numbers.csv" in page.goto(f"{live_server.url}/admin/sharing/storedfile/").text()
    ctx.expect_clean()
    ctx.close()


def test_a_password_link_shows_the_servers_state_after_each_step(browser, live_server, users):
    """Nothing about the file before the password; after a wrong then a right password the
    file downloads and the page shows the current count, with no stale "Wrong password."."""
    from playwright.sync_api import expect

    from audit.actors import SYSTEM
    from sharing import services
    from tests.helpers import make_file

    name = "HIV test result - J. Doe.pdf"
    stored = make_file(users[0], b"%PDF-1.4 result", name=name, content_type="application/pdf")
    _, token = services.link_create(
        file=stored,
        actor=SYSTEM,
        created_by=users[0],
        expires_in_hours=24,
        max_downloads=3,
        password="link password",
    )
    visitor = Watch(browser, live_server.url)
    page = visitor.page
    page.goto(f"{live_server.url}/s/{token}/")
    expect(page.locator("h1")).to_have_text("Protected file")
    assert name not in page.content() and name not in page.title()
    assert "alice" not in page.locator("main").inner_text()

    page.fill("#id_password", "not the password")
    page.click("button:text-is('Download')")
    expect(page.locator(".errors")).to_have_text("Wrong password.")
    assert name not in page.content()

    page.fill("#id_password", "link password")
    with page.expect_download() as download:
        page.click("button:text-is('Download')")
    assert Path(download.value.path()).read_bytes() == b"%PDF-1.4 result"
    expect(page.locator("h1")).to_have_text(name)
    expect(page.locator(".downloads-left")).to_have_text("2")
    expect(page.locator(".errors")).to_have_count(0)
    expect(page.locator("#id_password")).to_have_count(0)
    assert name in page.title()

    # Downloading again from the page: the count follows the server again.
    with page.expect_download():
        page.click("button:text-is('Download')")
    expect(page.locator(".downloads-left")).to_have_text("1")
    assert ShareLink.objects.get().download_count == 2
    visitor.expect_clean(allowed_errors=("403",))
    visitor.close()


def test_it_enrols_with_the_typed_key_and_saves_recovery_codes(browser, live_server, users):
    """A user types the Base32 key into their app, then copies, downloads and prints the
    recovery codes, which exist only on that page."""
    import base64

    from django_otp.oath import TOTP
    from playwright.sync_api import expect

    ctx = Watch(browser, live_server.url, permissions=["clipboard-read", "clipboard-write"])
    page = ctx.page
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/accounts/2fa/")
    typed = page.inner_text("#totp-secret").replace(" ", "")
    page.fill("#id_code", f"{TOTP(base64.b32decode(typed)).token():06d}")
    page.click("form.stacked button[type=submit]")
    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    codes = [code.strip() for code in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10

    with page.expect_download() as download_info:
        page.click("#download-codes")
    download = download_info.value
    assert download.suggested_filename == "securefiles-recovery-codes.txt"
    saved = Path(download.path()).read_text(encoding="utf-8")
    assert all(code in saved for code in codes)
    assert "alice" in saved

    page.click("#copy-codes")
    expect(page.locator("#recovery-status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").split() == codes

    expect(page.locator("#print-codes")).to_be_visible()
    page.emulate_media(media="print")  # what a printout shows: the codes, no buttons
    expect(page.locator("#recovery-codes")).to_be_visible()
    expect(page.locator("#recovery-actions")).to_be_hidden()
    expect(page.locator(".site-header")).to_be_hidden()
    ctx.expect_clean()
    ctx.close()


# Per page: the document never scrolls sideways, and no word is broken inside
# ("byte|s", "revoke|d"): every word of visible text sits on one line. Long tokens that
# may break anywhere by design (file names, hashes, link URLs) are left out.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) {
    problems.push(`page is ${doc.scrollWidth}px wide in a ${window.innerWidth}px window`);
  }
  const exempt = ".filename, .sha256, .link-url, code, .visually-hidden, script, style";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(exempt) || !parent.getClientRects().length) { continue; }
    const words = /\\S+/g;
    for (let match = words.exec(node.data); match; match = words.exec(node.data)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const lines = new Set(Array.from(range.getClientRects(), (r) => Math.round(r.top)));
      if (lines.size > 1) { problems.push(`"${match[0]}" broken inside, in <${parent.tagName}>`); }
    }
  }
  const results = document.querySelector("#result_list");
  if (results) {
    const box = results.parentElement;
    const scrolls = ["auto", "scroll"].includes(getComputedStyle(box).overflowX);
    // On a phone the table may scroll inside its box; on a desktop every column shows.
    if (results.offsetWidth > box.clientWidth && (!scrolls || window.innerWidth >= 1024)) {
      problems.push(`admin table ${results.offsetWidth}px in a ${box.clientWidth}px box`);
    }
  }
  return problems;
}"""

FORM_LINE_PROBLEMS = """() => {
  const problems = [];
  const box = document.querySelector(".new-link");
  if (box) {
    const style = getComputedStyle(box);
    const heading = box.querySelector("h2").getBoundingClientRect();
    const gap = heading.top - box.getBoundingClientRect().top;
    const expected = parseFloat(style.paddingTop) + parseFloat(style.borderTopWidth);
    if (gap > expected + 2) { problems.push(`${gap}px above the new link heading`); }
  }
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  document.querySelectorAll("label > input[type=checkbox]").forEach((box) => {
    const label = box.parentElement;
    const range = document.createRange();
    range.selectNodeContents(label);
    range.setStartAfter(box);
    const text = range.getBoundingClientRect(), mark = box.getBoundingClientRect();
    if (mark.bottom <= text.top || mark.top >= text.bottom || mark.right > text.left + 1) {
      problems.push(`checkbox not before its label's text: "${label.textContent.trim()}"`);
    }
  });
  return problems;
}"""

WIDTHS = (390, 1280)


def _layout_problems(page, url: str, width: int) -> list[str]:
    page.set_viewport_size({"width": width, "height": 844})
    page.goto(url)
    return [f"{width}px {url}: {problem}" for problem in page.evaluate(LAYOUT_PROBLEMS)]


def test_every_main_page_fits_phones_and_desktops_without_broken_words(browser, live_server, users):
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.helpers import make_file

    base = live_server.url
    alice = users[0]
    stored = make_file(alice, b"x" * 608, name="Incident timeline.csv", content_type="text/csv")
    make_file(alice, os.urandom(3 * 1024 * 1024), name="scan.pdf", content_type="application/pdf")
    problems: list[str] = []

    visitor = Watch(browser, base)
    for width in WIDTHS:
        problems += _layout_problems(visitor.page, f"{base}/accounts/login/", width)

    owner = Watch(browser, base)
    page = owner.page
    log_in(page, base, "alice")
    page.goto(f"{base}/files/{stored.id}/")
    page.click("form[action$='/links/'] button[type=submit]")  # the new-link box
    token_url = page.input_value("#new-link-url")
    page.click("form[action$='/links/'] button[type=submit]")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844})
        page.goto(f"{base}/files/{stored.id}/")
        page.click("form[action$='/links/'] button[type=submit]")
        page.wait_for_selector(".new-link")
        problems += [f"{width}px file page: {p}" for p in page.evaluate(LAYOUT_PROBLEMS)]
        problems += [f"{width}px file page: {p}" for p in page.evaluate(FORM_LINE_PROBLEMS)]
        for url in (f"{base}/", f"{base}/files/{stored.id}/", f"{base}/accounts/2fa/"):
            problems += _layout_problems(page, url, width)
        problems += _layout_problems(visitor.page, token_url, width)

    admin = User.objects.create_superuser("root", "root@example.org", password=PASSWORD)
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    staff = Watch(browser, base)
    staff.page.goto(f"{base}/accounts/login/?next=/admin/")
    staff.page.fill("#id_username", "root")
    staff.page.fill("#id_password", PASSWORD)
    staff.page.click("button[type=submit]")
    staff.page.wait_for_url("**/accounts/login/code/")
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    staff.page.fill("#id_code", f"{totp.token():06d}")
    staff.page.click("button[type=submit]")
    staff.page.wait_for_url(f"{base}/admin/")
    for width in WIDTHS:
        for path in ("sharing/sharelink/", "audit/auditentry/", "sharing/storedfile/"):
            problems += _layout_problems(staff.page, f"{base}/admin/{path}", width)

    assert problems == [], "\n".join(problems)
    for ctx in (visitor, owner, staff):
        ctx.expect_clean()
        ctx.close()
