"""Smaller findings of the attack on the running portal, as a client observes them.

- File names never travel in a client-side cookie (Django's cookie message storage is
  signed, not encrypted).
- Every response, errors a middleware answers by itself included, carries the security
  headers; every page for a logged-in user is ``Cache-Control: no-store``.
"""

from __future__ import annotations

import base64

import pytest
from django.test import Client

from tests.helpers import MiB, upload

pytestmark = pytest.mark.django_db

SECRET_NAME = "Patient-Jane-Doe-HIV-results.pdf"
SECURITY_HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Permissions-Policy",
)


def test_it_keeps_upload_messages_off_the_client(alice_client) -> None:
    response = upload(alice_client, (SECRET_NAME, b"results"), HTTP_ACCEPT="text/html")

    assert response.status_code in (200, 201, 302)
    assert "messages" not in response.cookies
    page = alice_client.get("/")
    assert SECRET_NAME in page.content.decode()  # the message is shown, from the session
    for morsel in list(response.cookies.values()) + list(page.cookies.values()):
        raw = morsel.value
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)) if raw else b""
        assert b"Jane-Doe" not in decoded and "Jane-Doe" not in raw


@pytest.mark.parametrize(
    ("method", "path", "extra", "status"),
    [
        ("get", "/?q=%00", {}, 400),
        ("get", "/files/00000000-0000-0000-0000-000000000000/", {}, 404),
        ("put", "/accounts/login/", {}, 405),
        ("post", "/accounts/login/", {"CONTENT_LENGTH": str(4 * MiB)}, 413),
    ],
)
def test_it_sends_the_security_headers_on_every_error(
    alice_client, method, path, extra, status
) -> None:
    response = getattr(alice_client, method)(path, **extra)

    assert response.status_code == status
    for header in SECURITY_HEADERS:
        assert header in response, (header, status)


def test_it_sends_the_security_headers_on_a_csrf_refusal(alice) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post("/files/upload/")

    assert response.status_code == 403
    for header in SECURITY_HEADERS:
        assert header in response, header


@pytest.mark.parametrize(
    "path", ["/", "/accounts/password_change/", "/accounts/2fa/", "/files/upload/"]
)
def test_it_forbids_caching_of_every_page_for_a_logged_in_user(alice_client, path) -> None:
    response = alice_client.get(path)

    assert "no-store" in response["Cache-Control"], path


@pytest.mark.parametrize(
    "path",
    [
        "/admin/sharing/share/",
        "/admin/sharing/sharelink/",
        "/admin/otp_totp/totpdevice/",
        "/admin/sharing/storedfile/",
        "/admin/audit/auditentry/",
        "/admin/auth/user/",
        "/admin/axes/accessattempt/",
    ],
)
@pytest.mark.parametrize("query", ["created_at__year=99999", "date_joined__year=99999"])
def test_it_answers_an_impossible_admin_filter_without_an_error(admin_client, path, query) -> None:
    response = admin_client.get(f"{path}?{query}")

    assert response.status_code in (200, 302)
    if response.status_code == 302:
        assert response["Location"].endswith("?e=1")
