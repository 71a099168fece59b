"""Share-link tokens never reach a log line, whatever logs the request path."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from securefiles.log_filters import RedactLinkTokens, redact
from tests.helpers import make_file

pytestmark = pytest.mark.django_db

TOKEN = "A" * 20 + "b-_" + "9" * 20  # 43 URL-safe characters, like a real token


def test_it_redacts_link_paths_in_text():
    assert redact(f"Not Found: /s/{TOKEN}/") == "Not Found: /s/<token>/"
    assert redact(f'"GET /s/{TOKEN}/?x=1 HTTP/1.1" 404') == '"GET /s/<token>/?x=1 HTTP/1.1" 404'
    assert redact("GET /files/abc/ 200") == "GET /files/abc/ 200"


@pytest.mark.parametrize(
    "spelling",
    [f"/s%2F{TOKEN}/", f"/s%2f{TOKEN}/", f"/%73/{TOKEN}/", f"/%73%2F{TOKEN}/", f"/s%252F{TOKEN}/"],
)
def test_it_redacts_link_paths_by_what_they_decode_to(spelling) -> None:
    # The server decodes the path before routing: these spellings reach the link view.
    line = f'"GET {spelling} HTTP/1.1" 404'

    assert TOKEN not in redact(line)
    assert "/s/<token>/" in redact(line)
    assert redact("GET /files/a%20b/ 200") == "GET /files/a%20b/ 200"


def test_it_never_decodes_control_characters_into_a_log_line() -> None:
    # A newline would forge a whole access-log line; ESC and NUL reach terminals and grep.
    forged = '203.0.113.7 - root "POST /admin/auth/user/1/delete/ HTTP/1.1" 302'
    path = "/s/x%0a" + forged.replace(" ", "%20").replace('"', "%22") + "%1b[2K%00/"
    line = f'127.0.0.1 - - "GET {path} HTTP/1.1" 404 1072'

    redacted = redact(line)

    assert "\n" not in redacted and "\x1b" not in redacted and "\x00" not in redacted
    assert redacted.count('"') == line.count('"')
    assert redacted.startswith('127.0.0.1 - - "GET /s/<token>')


@pytest.fixture
def django_log() -> Iterator[io.StringIO]:
    """What the configured console handlers of Django's loggers write, captured."""
    stream = io.StringIO()
    handlers = [
        handler
        for name in ("django", "django.request", "django.server")
        for handler in logging.getLogger(name).handlers
        if type(handler) is logging.StreamHandler  # ours, not pytest's capture handlers
    ]
    assert handlers, "Django's loggers have no console handler"
    previous = [handler.stream for handler in handlers]
    for handler in handlers:
        handler.setStream(stream)
    yield stream
    for handler, old in zip(handlers, previous, strict=True):
        handler.setStream(old)


def test_it_keeps_a_refused_link_token_out_of_djangos_log(client, django_log):
    assert client.get(f"/s/{TOKEN}/").status_code == 404
    assert client.post(f"/s/{TOKEN}/").status_code == 404
    logged = django_log.getvalue()
    assert logged.count("Not Found: /s/<token>/") == 2  # both requests were logged, redacted
    assert TOKEN not in logged


def test_it_keeps_a_live_token_out_of_the_log_on_a_wrong_password(alice, client, django_log):
    from audit.actors import Actor
    from sharing import services

    stored = make_file(alice, b"secret")
    _, token = services.link_create(
        file=stored,
        actor=Actor(label="alice"),
        created_by=alice,
        expires_in_hours=1,
        max_downloads=None,
        password="right one",
    )
    assert client.post(f"/s/{token}/", {"password": "wrong"}).status_code == 403
    logged = django_log.getvalue()
    assert "Forbidden: /s/<token>/" in logged
    assert token not in logged


def test_every_django_console_handler_redacts():
    for name in ("django", "django.server", "sharing"):
        ours = [h for h in logging.getLogger(name).handlers if type(h) is logging.StreamHandler]
        assert ours, name
        for handler in ours:
            assert any(isinstance(f, RedactLinkTokens) for f in handler.filters), name


def test_it_redacts_invitation_and_password_reset_tokens_in_text() -> None:
    # Each opens an account to whoever reads it first: an access log must not carry it.
    line = f'"GET /accounts/invitation/{TOKEN}/ HTTP/1.1" 302'
    assert redact(line) == '"GET /accounts/invitation/<token>/ HTTP/1.1" 302'
    reset = f'"GET /accounts/reset/MQ/cz8qk2-{TOKEN}/ HTTP/1.1" 302'
    assert TOKEN not in redact(reset) and "/accounts/reset/<token>/" in redact(reset)
    escaped = f'"GET /accounts/invitation%2F{TOKEN}/ HTTP/1.1" 404'
    assert TOKEN not in redact(escaped)
    # The pages the links redirect to hold no secret and stay readable.
    for kept in ("GET /accounts/invitation/accept/ 200", "GET /accounts/reset/done/ 200"):
        assert redact(kept) == kept


def test_it_keeps_a_refused_invitation_token_out_of_djangos_log(client, django_log) -> None:
    assert client.get(f"/accounts/invitation/{TOKEN}/").status_code == 404
    logged = django_log.getvalue()
    assert "Not Found: /accounts/invitation/<token>/" in logged
    assert TOKEN not in logged


# A personal access token (accounts.selectors.TOKEN_RE): "sf_" + 8 of prefix + 43 of secret.
ACCESS_TOKEN = "sf_AbCd1234" + "Zz9-_" * 8 + "xyz"


@pytest.mark.parametrize(
    "spelling",
    [
        f"/api/v1/me/?access_token={ACCESS_TOKEN}",
        f"/api/v1/files/?q={ACCESS_TOKEN}&page=1",
        f"/api/v1/me/?t=sf%5F{ACCESS_TOKEN[3:]}",
        f"/files/uploads/{ACCESS_TOKEN}/",
    ],
)
def test_it_redacts_an_access_token_a_client_put_in_the_url(spelling) -> None:
    # A misconfigured client sending its token in the query string is refused (401), but
    # the request line still reaches gunicorn's access log and Django's: only the public
    # prefix may stay, never the secret.
    line = f'127.0.0.1 - - "GET {spelling} HTTP/1.1" 401 122'

    redacted = redact(line)

    assert ACCESS_TOKEN[11:] not in redacted
    assert "sf_AbCd1234<secret>" in redacted
    assert redact("GET /api/v1/files/?q=sf_short 200") == "GET /api/v1/files/?q=sf_short 200"


def test_it_keeps_an_access_token_in_a_query_out_of_djangos_log(client, django_log):
    # Django logs the 401 ("Unauthorized: /api/v1/me/") without the query; a 404 under a
    # token-shaped path logs the path itself.
    assert client.get(f"/api/v1/files/{ACCESS_TOKEN}/").status_code in (401, 404)
    assert client.get(f"/files/uploads/{ACCESS_TOKEN}/").status_code in (403, 404)
    logged = django_log.getvalue()
    assert ACCESS_TOKEN[11:] not in logged


def test_it_keeps_a_file_request_token_out_of_djangos_log(alice_client, client, django_log):
    from tests.helpers_requests import make_request, tus_create

    token, found = make_request(alice_client)
    FileRequest = type(found)
    FileRequest.objects.filter(pk=found.pk).update(revoked_at=found.created_at)
    assert client.get(f"/r/{token}/").status_code == 404
    assert tus_create(client, token, 10).status_code == 404
    assert redact(f"GET /r/{TOKEN}/receipt/ 200") == "GET /r/<token>/receipt/ 200"
    logged = django_log.getvalue()
    assert "Not Found: /r/<token>/" in logged and "/r/<token>/uploads/" in logged
    assert token not in logged
