"""What a new user meets first: how sizes and times read, and what `make run` serves.

Sizes are binary units with IEC names (KiB, MiB) everywhere; every time names its zone,
the browser's when it told us (the `tz` cookie), else UTC; `make run` serves with DEBUG off
(the plain 404, not Django's debug page listing every URL) and its CSS loads; the suite
reads no developer's `.env`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zoneinfo
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils.dateformat import format as date_format

from audit.models import AuditEntry
from sharing.display import human_size
from sharing.models import StoredFile
from tests.helpers import make_file, make_link, upload
from tests.live_gunicorn import free_port

ROOT = Path(settings.BASE_DIR)
NBSP = "\u00a0"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def _page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# ---------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (608, "608 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (199_970_234, "190.7 MiB"),
        (5 * 1024**3, "5.0 GiB"),
    ],
)
def test_sizes_are_binary_units_named_as_such(size: int, shown: str) -> None:
    assert human_size(size) == shown.replace(" ", NBSP)


def test_the_file_page_says_a_small_size_once(alice, alice_client) -> None:
    stored = make_file(alice, b"x" * 608)

    html = _page(alice_client, f"/files/{stored.id}/")

    assert f"<dd>608{NBSP}bytes</dd>" in html
    assert html.count("608") == 1


def test_the_file_page_gives_the_binary_size_and_the_exact_bytes(alice, alice_client) -> None:
    stored = make_file(alice, b"x" * 1536)

    html = _page(alice_client, f"/files/{stored.id}/")

    assert f"1.5{NBSP}KiB (1,536{NBSP}bytes)" in html


def test_the_file_list_the_upload_answer_and_the_header_use_iec_units(
    alice, alice_client, settings
) -> None:
    settings.USER_QUOTA_MB = 500
    response = upload(alice_client, ("a.txt", b"y" * 2048), HTTP_ACCEPT="application/json")
    assert response.status_code in (200, 201), response.status_code
    assert response.json()["files"][0]["size_display"] == f"2.0{NBSP}KiB"

    html = _page(alice_client, "/")

    assert f"<td>2.0{NBSP}KiB</td>" in html
    assert f"2.0{NBSP}KiB of 500.0{NBSP}MiB" in html  # header and usage line
    assert f"{settings.MAX_UPLOAD_MB} MiB" in html
    for wrong in (f"{NBSP}KB", f"{NBSP}MB", " MB ", " MB)"):
        assert wrong not in html


def test_the_link_landing_page_uses_iec_units(alice, alice_client) -> None:
    stored = make_file(alice, b"z" * 3 * 1024)
    token, _link = make_link(alice_client, stored, expires_in_hours=24)

    html = _page(Client(), f"/s/{token}/")

    assert f"3.0{NBSP}KiB" in html


def test_the_admin_shows_human_sizes_with_the_exact_bytes_in_a_title(admin_client, alice) -> None:
    stored = make_file(alice, b"q" * 1536)

    listing = _page(admin_client, "/admin/sharing/storedfile/")
    detail = _page(admin_client, f"/admin/sharing/storedfile/{stored.id}/change/")

    assert f'<span title="1,536{NBSP}bytes">1.5{NBSP}KiB</span>' in listing
    assert f"1.5{NBSP}KiB (1,536{NBSP}bytes)" in detail


# ---------------------------------------------------------------------------- times


def _shown(moment, zone: zoneinfo.ZoneInfo, abbreviation: str) -> str:
    return date_format(moment.astimezone(zone), "j M Y, H:i") + f" {abbreviation}"


@pytest.fixture
def file_with_link(alice, alice_client) -> tuple[StoredFile, str]:
    stored = make_file(alice, b"t" * 100)
    # A winter expiry: Berlin is then CET, whatever today's date.
    token, link = make_link(alice_client, stored, expires_in_hours=24)
    link.expires_at = datetime(2026, 12, 15, 13, 5, tzinfo=UTC)
    link.save(update_fields=["expires_at"])
    return stored, token


def test_times_are_in_the_browsers_zone_and_name_it(alice_client, file_with_link) -> None:
    stored, token = file_with_link
    alice_client.cookies["tz"] = "Europe/Berlin"

    html = _page(alice_client, f"/files/{stored.id}/")

    assert "15 Dec 2026, 14:05 CET" in html  # the link's expiry, 13:05 UTC
    uploaded = _shown(stored.created_at, BERLIN, stored.created_at.astimezone(BERLIN).tzname())
    assert uploaded in html
    assert " UTC" not in html


def test_the_link_landing_page_shows_expiry_in_the_visitors_zone(file_with_link) -> None:
    _stored, token = file_with_link
    visitor = Client()
    visitor.cookies["tz"] = "America/New_York"

    html = _page(visitor, f"/s/{token}/")

    assert "15 Dec 2026, 08:05 EST" in html


@pytest.mark.parametrize(
    "cookie", [None, "", "Mars/Olympus", "../../etc/passwd", "Europe/Berlin" * 10, "utc"]
)
def test_without_a_known_zone_times_are_utc_and_say_so(alice_client, file_with_link, cookie):
    stored, _token = file_with_link
    if cookie is not None:
        alice_client.cookies["tz"] = cookie

    html = _page(alice_client, f"/files/{stored.id}/")

    assert "15 Dec 2026, 13:05 UTC" in html


def test_the_admin_names_the_zone_of_every_time(admin_client, file_with_link) -> None:
    admin_client.cookies["tz"] = "Europe/Berlin"
    AuditEntry.objects.update(created_at=datetime(2026, 12, 1, 0, 30, tzinfo=UTC))

    links = _page(admin_client, "/admin/sharing/sharelink/")
    audit = _page(admin_client, "/admin/audit/auditentry/")

    assert "15 Dec 2026, 14:05 CET" in links
    assert "1 Dec 2026, 01:30 CET" in audit
    assert "a.m." not in audit and "p.m." not in audit


def test_pages_load_the_script_that_reports_the_zone(alice_client, admin_client) -> None:
    assert "/static/js/tz.js" in _page(alice_client, "/")
    assert "/static/js/tz.js" in _page(admin_client, "/admin/")
    script = Client().get("/static/js/tz.js")
    assert script.status_code == 200
    assert b"resolvedOptions().timeZone" in b"".join(script.streaming_content)


# ---------------------------------------------------------------------------- make run


def _fake_bin(tmp_path: Path) -> Path:
    """A BIN folder for the Makefile whose python is this interpreter, marked installed,
    so `make` runs the project's real recipes without creating or changing a virtualenv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    for name in ("requirements.txt", "requirements-dev.txt"):
        (tmp_path / name).symlink_to(ROOT / name)
    return bin_dir


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(ROOT / "Makefile"),
            "-C",
            str(tmp_path),
            f"BIN={tmp_path / 'bin'}",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


needs_make = pytest.mark.skipif(not shutil.which("make"), reason="no make on this machine")


@needs_make
def test_make_run_installs_only_what_serving_needs(tmp_path: Path) -> None:
    _fake_bin(tmp_path)

    run = _make(tmp_path, "-n", "run").stdout
    test = _make(tmp_path, "-n", "test").stdout

    assert "-r requirements.txt" in run
    assert "requirements-dev.txt" not in run
    assert "-r requirements-dev.txt" in test
    assert ".installed-dev" in test and ".installed-dev" not in run


def _get(url: str, host: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def _wait_for(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1]
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"runserver did not answer at {url}")


@needs_make
@pytest.mark.slow
def test_make_run_serves_with_debug_off_the_plain_404_and_its_css(tmp_path: Path) -> None:
    bin_dir = _fake_bin(tmp_path)
    (bin_dir / ".installed").touch()
    made = _make(tmp_path, ".env")
    assert made.returncode == 0, made.stderr
    dotenv = (tmp_path / ".env").read_text()
    assert "DEBUG" not in dotenv and "SECRET_KEY=" in dotenv and "ENCRYPTION_KEYS=" in dotenv

    # What `make run` does, with the .env it wrote and nothing from this test run's settings.
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("SECRET_KEY", "ENCRYPTION_KEYS", "DEBUG", "DATABASE_TEST_NAME", "ALLOWED_HOSTS")
    }
    env.update(
        SECUREFILES_ENV_FILE=str(tmp_path / ".env"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        MEDIA_ROOT=str(tmp_path / "media"),
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    migrated = subprocess.run(
        [*manage, "migrate", "--noinput"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/accounts/login/", server)

        status, _type, body = _get(f"{base}/no-such-page/")
        css_status, css_type, css = _get(f"{base}/static/css/site.css")
        hosts = [
            _get(f"{base}/accounts/login/", host)[0]
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}")
        ]
    finally:
        server.terminate()
        server.communicate(timeout=30)

    assert status == 404
    assert b"URLconf" not in body and b"DEBUG = True" not in body
    assert b"<!doctype html>" in body.lower()
    assert (css_status, css_type.split(";")[0]) == (200, "text/css")
    assert b".details" in css
    assert hosts == [200, 200, 200]


def test_the_suite_reads_no_developer_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("DEBUG=True\nHTTPS=True\nSIGNUP_ENABLED=True\n")
    show = "from django.conf import settings; print(settings.DEBUG, settings.HTTPS)"
    command = [sys.executable, "-c", f"import django; django.setup(); {show}"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "securefiles.settings"}
    del env["DEBUG"]  # set by tests/testenv.py, and the environment wins over a file

    as_tests_run = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    opted_in = subprocess.run(
        command,
        env={**env, "SECUREFILES_ENV_FILE": str(dotenv)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert os.environ["SECUREFILES_ENV_FILE"] == ""
    assert (settings.DEBUG, settings.HTTPS, settings.SIGNUP_ENABLED) == (False, False, False)
    assert as_tests_run.stdout.split() == ["False", "False"]
    assert opted_in.stdout.split() == ["True", "True"]


def test_html_format_escapes_each_value_and_keeps_safe_markup() -> None:
    from django.utils.safestring import SafeString

    from sharing.display import html_format

    made = html_format('<a title="{}">{}</a>{}', "\"'&<>", "<b>", SafeString("<i>kept</i>"))

    assert isinstance(made, SafeString)
    assert made == '<a title="&quot;&#x27;&amp;&lt;&gt;">&lt;b&gt;</a><i>kept</i>'


@pytest.mark.django_db
def test_a_shared_row_escapes_the_file_name_and_the_owner(alice, alice_client) -> None:
    from django.contrib.auth import get_user_model

    from sharing.models import Share

    mallory = get_user_model().objects.create_user("<b>mallory</b>", "m@example.com", "x")
    stored = make_file(mallory, b"x", name='<img src=x onerror="alert(1)">.txt')
    Share.objects.create(file=stored, colleague=alice)

    shared = alice_client.get("/").content.decode().split('id="shared-title"', 1)[1]

    assert "<img" not in shared and "<b>mallory" not in shared
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.txt" in shared
    assert "&lt;b&gt;mallory&lt;/b&gt;" in shared
