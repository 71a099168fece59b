"""The security headers as a real client sees them from gunicorn over loopback.

One gunicorn (the project's gunicorn.conf.py) per module, on a free port, with its own
SQLite file, MEDIA_ROOT and fresh keys. Everything after creating the user goes over HTTP:
log in, upload, create a link, open its landing page, download. About 5 seconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.helpers import assert_first_party_only, assert_security_headers
from tests.live_gunicorn import create_user, free_port, manage, running_gunicorn, server_env

# A real server process: still run by default, like the other slow tests.
pytestmark = pytest.mark.slow

PASSWORD = "Live-Server-Password-91"
CONTENT = b"live plaintext " * 1000
TIMEOUT = 10


SERVER_LOGS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running gunicorn with one user, alice."""
    tmp = tmp_path_factory.mktemp("live")
    env = server_env(tmp, free_port())
    manage(env, "migrate", "--noinput")
    create_user(env, "alice", PASSWORD)
    with running_gunicorn(env, tmp / "gunicorn.log") as base:
        SERVER_LOGS[base] = tmp / "gunicorn.log"
        yield base


def _csrf(session: requests.Session) -> str:
    return session.cookies["csrftoken"]


@dataclass
class Portal:
    base: str
    session: requests.Session
    file_id: str
    link_url: str


@pytest.fixture(scope="module")
def portal(server: str) -> Portal:
    """Logged in as alice, with one uploaded file and one share link, all over HTTP."""
    session = requests.Session()
    session.get(f"{server}/accounts/login/", timeout=TIMEOUT)
    login = session.post(
        f"{server}/accounts/login/",
        data={"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": _csrf(session)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert login.status_code == 302, login.text
    uploaded = session.post(
        f"{server}/files/upload/",
        files={"file": ("notes.txt", CONTENT, "text/plain")},
        headers={"X-CSRFToken": _csrf(session), "Accept": "application/json"},
        timeout=TIMEOUT,
    )
    assert uploaded.status_code == 201, uploaded.text
    [stored] = uploaded.json()["files"]
    created = session.post(
        f"{server}/files/{stored['id']}/links/",
        data={"expires_in_hours": "2", "csrfmiddlewaretoken": _csrf(session)},
        timeout=TIMEOUT,
    )
    assert created.status_code == 201
    link_url = re.search(r'value="(http://[^"]+/s/[A-Za-z0-9_-]{43}/)"', created.text).group(1)
    return Portal(server, session, stored["id"], link_url)


def _check(response: requests.Response, *, referrer: str = "same-origin") -> None:
    assert_security_headers(response.headers, referrer=referrer)


def test_it_sends_the_headers_on_the_login_page(server: str) -> None:
    response = requests.get(f"{server}/accounts/login/", timeout=TIMEOUT)

    assert response.status_code == 200
    _check(response)
    assert_first_party_only(response.content, host=urlsplit(response.url).netloc)


def test_it_sends_the_headers_on_the_file_list(portal: Portal) -> None:
    response = portal.session.get(f"{portal.base}/", timeout=TIMEOUT)

    assert response.status_code == 200
    assert b"notes.txt" in response.content
    _check(response)
    assert_first_party_only(response.content, host=urlsplit(response.url).netloc)


def test_it_sends_the_headers_on_a_share_landing_page(portal: Portal) -> None:
    response = requests.get(portal.link_url, timeout=TIMEOUT)

    assert response.status_code == 200
    assert b"notes.txt" in response.content
    _check(response, referrer="no-referrer")
    assert_first_party_only(response.content, host=urlsplit(response.url).netloc)


def test_it_sends_the_headers_on_a_download(portal: Portal) -> None:
    url = f"{portal.base}/files/{portal.file_id}/download/"

    response = portal.session.get(url, timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["Content-Length"] == str(len(CONTENT))
    assert response.headers["Content-Disposition"] == 'attachment; filename="notes.txt"'
    assert "sandbox" in response.headers["Content-Security-Policy"]
    _check(response)


def test_it_sends_the_headers_on_a_link_download(portal: Portal) -> None:
    visitor = requests.Session()
    visitor.get(portal.link_url, timeout=TIMEOUT)

    response = visitor.post(portal.link_url, timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["Content-Disposition"] == 'attachment; filename="notes.txt"'
    _check(response, referrer="no-referrer")


def test_it_sends_the_headers_on_a_not_found_page(server: str) -> None:
    response = requests.get(f"{server}/s/{'A' * 43}/", timeout=TIMEOUT)

    assert response.status_code == 404
    _check(response, referrer="no-referrer")


def test_it_does_not_serve_the_media_folder(server: str) -> None:
    for path in ("/media/", "/db.sqlite3", "/static/../manage.py", "/.env"):
        assert requests.get(f"{server}{path}", timeout=TIMEOUT).status_code == 404, path


def test_it_keeps_link_tokens_out_of_the_access_log(portal: Portal) -> None:
    token = portal.link_url.rstrip("/").rsplit("/", 1)[1]
    log_file = SERVER_LOGS[portal.base]
    lines_before = log_file.read_text().count("GET /s/<token>")  # the server is shared
    assert requests.get(portal.link_url, timeout=TIMEOUT).status_code == 200
    wrong = portal.link_url.replace(token, token[::-1])
    assert requests.get(wrong, timeout=TIMEOUT).status_code == 404

    # The access log line is written after the response: wait for both requests' lines.
    deadline = time.monotonic() + TIMEOUT
    while (log := log_file.read_text()).count("GET /s/<token>") < lines_before + 2:
        assert time.monotonic() < deadline, f"no access log line for the link requests:\n{log}"
        time.sleep(0.05)
    assert token not in log and token[::-1] not in log
