"""Security headers on every kind of page, no third-party origin, inert downloads, and
`manage.py check --deploy` with production settings.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from django.conf import settings
from django.http import HttpResponseBase
from django.test import Client

from audit.actors import SYSTEM
from sharing import services
from sharing.crypto import generate_key_entry
from sharing.models import StoredFile
from tests.helpers import (
    assert_first_party_only,
    assert_security_headers,
    csp_directives,
    make_file,
    streamed,
    upload,
)

pytestmark = pytest.mark.django_db

# ---------------------------------------------------------------------------- pages


@pytest.fixture
def alices_file(alice) -> StoredFile:
    return make_file(alice, b"quarterly numbers\n", name="report.txt")


@pytest.fixture
def link_token(alice, alices_file) -> str:
    _, token = services.link_create(
        file=alices_file,
        actor=SYSTEM,
        created_by=alice,
        expires_in_hours=24,
        max_downloads=None,
        password="",
    )
    return token


def test_it_sends_the_headers_on_the_file_list(alice_client, alices_file) -> None:
    response = alice_client.get("/")

    assert response.status_code == 200
    assert_security_headers(response)
    assert_first_party_only(response.content)


def test_it_sends_the_headers_on_the_login_page(client) -> None:
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    assert_security_headers(response)
    assert_first_party_only(response.content)


def test_it_sends_the_headers_on_the_file_page(alice_client, alices_file) -> None:
    response = alice_client.get(f"/files/{alices_file.id}/")

    assert response.status_code == 200
    assert_security_headers(response)
    assert_first_party_only(response.content)


def test_it_sends_no_referrer_on_the_share_landing_page(client, link_token) -> None:
    response = client.get(f"/s/{link_token}/")

    assert response.status_code == 200
    assert b"report.txt" in response.content
    assert_security_headers(response, referrer="no-referrer")
    assert_first_party_only(response.content)
    assert "no-store" in response["Cache-Control"]


def test_it_sends_no_referrer_on_an_unknown_link(client) -> None:
    response = client.get(f"/s/{'A' * 43}/")

    assert response.status_code == 404
    assert_security_headers(response, referrer="no-referrer")


@pytest.mark.parametrize(
    "url,status",
    [("/no-such-page/", 404), ("/accounts/password_reset/", 200), ("/accounts/logout/", 405)],
)
def test_it_sends_the_headers_on_other_pages(client, url, status) -> None:
    response = client.get(url)

    assert response.status_code == status
    assert_security_headers(response)


def test_it_sends_the_headers_on_a_download(alice_client, alices_file) -> None:
    response = alice_client.get(f"/files/{alices_file.id}/download/")

    assert response.status_code == 200
    assert streamed(response) == b"quarterly numbers\n"
    assert_security_headers(response)
    assert response["Content-Disposition"] == 'attachment; filename="report.txt"'


def test_it_sends_the_headers_on_a_link_download(client, link_token) -> None:
    response = client.post(f"/s/{link_token}/")

    assert response.status_code == 200
    assert streamed(response) == b"quarterly numbers\n"
    assert_security_headers(response, referrer="no-referrer")
    assert response["Content-Disposition"].startswith("attachment;")


# ---------------------------------------------------------------------------- downloads

ACTIVE_CONTENT = {
    "page.html": ("text/html", b"<script>alert(document.cookie)</script>"),
    "drawing.svg": (
        "image/svg+xml",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    ),
    "page.xhtml": ("application/xhtml+xml", b"<html xmlns='http://www.w3.org/1999/xhtml'/>"),
    "note.txt": ("text/plain", b"<script>alert(1)</script>"),
}


def _downloads(client: Client, stored: StoredFile, token: str) -> Iterator[HttpResponseBase]:
    yield client.get(f"/files/{stored.id}/download/")
    yield client.head(f"/files/{stored.id}/download/")
    yield Client().post(f"/s/{token}/")


@pytest.mark.parametrize("name", ACTIVE_CONTENT)
def test_it_never_serves_active_content_inline(alice, alice_client, name) -> None:
    content_type, data = ACTIVE_CONTENT[name]
    assert upload(alice_client, (name, data, content_type)).status_code == 302
    stored = StoredFile.objects.get()
    _, token = services.link_create(
        file=stored,
        actor=SYSTEM,
        created_by=alice,
        expires_in_hours=1,
        max_downloads=None,
        password="",
    )

    for response in _downloads(alice_client, stored, token):
        assert response.status_code == 200
        assert response["Content-Disposition"] == f'attachment; filename="{name}"'
        assert response["Content-Type"] == content_type  # the stored type, as the brief says
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in csp_directives(response)
        assert csp_directives(response)["default-src"] == ["'none'"]


HOSTILE_NAMES = {
    "../../etc/passwd": "passwd",
    "..\\..\\boot.ini": "_.._boot.ini",
    'evil"; filename="x.html': "evil_; filename=_x.html",
    "line\r\nSet-Cookie: a=b.txt": "line Set-Cookie_ a=b.txt",
    "invoice\u202efdp.exe": "invoice fdp.exe",
    "nul\x00byte.txt": "nulbyte.txt",
    "tab\tand\x07bell.txt": "tab and bell.txt",
}


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_it_sends_a_sanitised_attachment_name(alice, alice_client, name) -> None:
    stored = make_file(alice, b"x", name=name, content_type="text/html")

    response = alice_client.get(f"/files/{stored.id}/download/")

    disposition = response["Content-Disposition"]
    quoted, _, star = disposition.partition("; filename*=utf-8''")
    assert quoted == f'attachment; filename="{HOSTILE_NAMES[name]}"'
    # filename*, where present, is percent-encoded: its name decodes to one safe line.
    assert not any(c in disposition for c in "\r\n\x00\u202e/\\")
    assert not any(c in unquote(star) for c in "\r\n\x00\u202e/\\")


# ---------------------------------------------------------------------------- check --deploy


def _production_env(**overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "HSTS_", "SECURE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="securefiles.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        ENCRYPTION_KEYS=generate_key_entry("k1"),
        DEBUG="False",
        HTTPS="True",
        ALLOWED_HOSTS="files.example.org",
        SITE_URL="https://files.example.org",
        AUDIT_LOG_KEY=secrets.token_urlsafe(50),
        DATABASE_URL="sqlite:///:memory:",
    )
    env.update(overrides)
    return env


def _check_deploy(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603  (our own interpreter and manage.py, no shell)
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=Path(settings.BASE_DIR),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_it_passes_check_deploy_with_production_settings() -> None:
    production = _check_deploy(_production_env())
    plain_http = _check_deploy(_production_env(HTTPS="False"))
    no_site_url = _check_deploy(_production_env(SITE_URL=""))
    no_audit_key = _check_deploy(_production_env(AUDIT_LOG_KEY=""))

    output, _ = production.communicate(timeout=120)
    assert production.returncode == 0, output
    assert "no issues" in output
    # The same check does fail when the transport settings are off: it is not vacuous.
    output, _ = plain_http.communicate(timeout=120)
    assert plain_http.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output
    # Without SITE_URL, e-mail links fall back to ALLOWED_HOSTS: deploy check warns.
    output, _ = no_site_url.communicate(timeout=120)
    assert no_site_url.returncode != 0
    assert "sharing.W002" in output and "SITE_URL is not set" in output
    # Without AUDIT_LOG_KEY, the audit log's key hangs on SECRET_KEY: deploy check warns.
    output, _ = no_audit_key.communicate(timeout=120)
    assert no_audit_key.returncode != 0
    assert "sharing.W003" in output and "AUDIT_LOG_KEY is not set" in output
