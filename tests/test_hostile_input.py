"""Hostile input at every endpoint: an exact status, nothing changed, never a 500.

"Nothing changed" is checked against a populated portal (alice and bob each own a file,
each shared it with the other and made a link), not an empty one: the rows of StoredFile,
Share and ShareLink (download counts and revocations included) and every blob under
MEDIA_ROOT must be exactly as before. Upload-specific refusals (size limits, truncated
bodies, CSRF on the upload view) are in test_upload.py; here the upload view only gets the
cases that test needs a populated portal for.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.http import HttpResponseBase
from django.test import Client

from audit.actors import SYSTEM
from sharing import selectors, services
from sharing.models import Share, ShareLink, StoredFile
from tests.helpers import (
    ALICE_PASSWORD,
    BOUNDARY,
    MULTIPART,
    UPLOAD_URL,
    client_for,
    field_part,
    file_part,
    files_body,
    files_on_disk,
    make_file,
    multipart,
    post_body,
    streamed,
)

pytestmark = pytest.mark.django_db

LINK_PASSWORD = "link-password-123"
LONG = "x" * 10_000


@dataclass
class Portal:
    alice: User
    bob: User
    file: StoredFile  # alice's, shared with bob
    share: Share
    link: ShareLink  # on alice's file, without a password
    token: str
    bobs_file: StoredFile  # shared with alice
    bobs_share: Share
    bobs_link: ShareLink


def _link(file: StoredFile, owner: User, password: str = "") -> tuple[ShareLink, str]:
    return services.link_create(
        file=file,
        actor=SYSTEM,
        created_by=owner,
        expires_in_hours=24,
        max_downloads=5,
        password=password,
    )


@pytest.fixture
def portal(alice, bob) -> Portal:
    file = make_file(alice, b"alice's plaintext", name="alice.txt")
    bobs_file = make_file(bob, b"bob's plaintext", name="bob.txt")
    share = services.share_grant(file=file, query="bob", actor=SYSTEM)
    bobs_share = services.share_grant(file=bobs_file, query="alice", actor=SYSTEM)
    link, token = _link(file, alice)
    bobs_link, _ = _link(bobs_file, bob)
    mail.outbox.clear()
    return Portal(alice, bob, file, share, link, token, bobs_file, bobs_share, bobs_link)


@pytest.fixture
def password_token(portal: Portal) -> str:
    """The token of a second link on alice's file, with a password."""
    return _link(portal.file, portal.alice, LINK_PASSWORD)[1]


def snapshot() -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    return (
        sorted(StoredFile.objects.values_list("id", "name", "size", "owner_id")),
        sorted(Share.objects.values_list("id", "file_id", "colleague_id")),
        sorted(ShareLink.objects.values_list("id", "file_id", "download_count", "revoked_at")),
        [(path, path.stat().st_size, path.read_bytes()[:64]) for path in files_on_disk()],
    )


@pytest.fixture
def unchanged(portal: Portal) -> Callable[[], None]:
    """Call it after the request: asserts the portal is exactly as before the test."""
    before = snapshot()

    def check() -> None:
        assert snapshot() == before

    return check


# Every URL under /files/<id>/ with the method that does something there.
FILE_URLS = {
    "detail": ("GET", "/files/{file}/"),
    "download": ("GET", "/files/{file}/download/"),
    "delete": ("POST", "/files/{file}/delete/"),
    "share": ("POST", "/files/{file}/shares/"),
    "share revoke": ("POST", "/files/{file}/shares/{share}/revoke/"),
    "link": ("POST", "/files/{file}/links/"),
    "link revoke": ("POST", "/files/{file}/links/{link}/revoke/"),
}
# What a real form sends to each: the request would succeed but for the hostile part.
VALID_DATA = {
    "delete": {"confirm": "on"},
    "share": {"username": "charlie"},
    "link": {"expires_in_hours": "1", "max_downloads": "", "password": ""},
}


def _url(portal: Portal, name: str, **ids: object) -> str:
    values = {"file": portal.file.id, "share": portal.share.id, "link": portal.link.id, **ids}
    return FILE_URLS[name][1].format(**values)


def _send(client: Client, method: str, url: str, data: dict | None = None) -> HttpResponseBase:
    if method == "GET":
        return client.get(url)
    return client.post(url, data or {})


def _with_password(user: User) -> None:
    user.set_password(ALICE_PASSWORD)
    user.save()


# ---------------------------------------------------------------------------- ids

BAD_FILE_IDS = {
    "integer": "1",
    "word": "not-a-uuid",
    "uppercase uuid": "0E8A1C2D-3B4F-4A5B-8C6D-7E8F9A0B1C2D",
    "uuid without dashes": "0e8a1c2d3b4f4a5b8c6d7e8f9a0b1c2d",
    "uuid with a suffix": "0e8a1c2d-3b4f-4a5b-8c6d-7e8f9a0b1c2dx",
    "sql": "' OR '1'='1",
    "traversal": "..%2F..%2Fetc%2Fpasswd",
    "nul": "%00",
    "arabic digits": "١٢٣",
}


@pytest.mark.parametrize("url_name", FILE_URLS)
@pytest.mark.parametrize("bad_id", BAD_FILE_IDS.values(), ids=BAD_FILE_IDS.keys())
def test_it_answers_404_to_a_file_id_that_is_not_a_uuid(
    portal, unchanged, url_name, bad_id
) -> None:
    method = FILE_URLS[url_name][0]
    url = _url(portal, url_name, file=bad_id)

    response = _send(client_for(portal.alice), method, url, VALID_DATA.get(url_name))

    assert response.status_code == 404
    unchanged()


@pytest.mark.parametrize("url_name", FILE_URLS)
def test_it_answers_404_to_an_unknown_file_id(portal, unchanged, url_name) -> None:
    method = FILE_URLS[url_name][0]
    url = _url(portal, url_name, file=uuid.uuid4())

    response = _send(client_for(portal.alice), method, url, VALID_DATA.get(url_name))

    assert response.status_code == 404
    unchanged()


BAD_NUMBERS = {
    "word": "abc",
    "negative": "-1",
    "zero": "0",
    "beyond 64 bits": "9" * 30,
    "unknown": "987654",
}


@pytest.mark.parametrize("url_name", ["share revoke", "link revoke"])
@pytest.mark.parametrize("bad_id", BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
def test_it_answers_404_to_a_bad_share_or_link_id(portal, unchanged, url_name, bad_id) -> None:
    url = _url(portal, url_name, share=bad_id, link=bad_id)

    response = client_for(portal.alice).post(url)

    assert response.status_code == 404
    unchanged()


@pytest.mark.parametrize("url_name", FILE_URLS)
def test_it_answers_404_to_a_colleague_on_every_owner_url(portal, unchanged, url_name) -> None:
    # bob may read alice's file (it is shared with him: its read-only page and download)
    # but manage nothing about it.
    method = FILE_URLS[url_name][0]
    expected = 200 if url_name in ("download", "detail") else 404

    response = _send(
        client_for(portal.bob), method, _url(portal, url_name), VALID_DATA.get(url_name)
    )

    assert response.status_code == expected
    unchanged()


@pytest.mark.parametrize("url_name", FILE_URLS)
def test_it_answers_404_to_an_outsider_on_every_url(portal, unchanged, url_name) -> None:
    charlie = User.objects.create_user("charlie")
    method = FILE_URLS[url_name][0]

    response = _send(client_for(charlie), method, _url(portal, url_name), VALID_DATA.get(url_name))

    assert response.status_code == 404
    unchanged()


def test_it_answers_404_to_another_users_share_and_link_under_my_file(portal, unchanged) -> None:
    alice = client_for(portal.alice)
    file = portal.file.id

    # bob's share and link ids, under alice's own file.
    share = alice.post(f"/files/{file}/shares/{portal.bobs_share.id}/revoke/")
    link = alice.post(f"/files/{file}/links/{portal.bobs_link.id}/revoke/")
    # alice's share and link ids, under bob's file (shared with her: readable, not hers).
    theirs = portal.bobs_file.id
    share_there = alice.post(f"/files/{theirs}/shares/{portal.share.id}/revoke/")
    link_there = alice.post(f"/files/{theirs}/links/{portal.link.id}/revoke/")

    assert [r.status_code for r in (share, link, share_there, link_there)] == [404] * 4
    unchanged()


# ---------------------------------------------------------------------------- methods

# Every URL of the portal, as alice (logged in) would reach it.
ALL_URLS = {
    "home": "/",
    "upload": UPLOAD_URL,
    **{name: template for name, (_, template) in FILE_URLS.items()},
    "link page": "/s/{token}/",
    "login": "/accounts/login/",
    "login code": "/accounts/login/code/",
    "logout": "/accounts/logout/",
    "2fa": "/accounts/2fa/",
    "2fa remove": "/accounts/2fa/remove/",
    "signup": "/accounts/signup/",
    "password change": "/accounts/password_change/",
    "password reset": "/accounts/password_reset/",
}


def _any_url(portal: Portal, name: str) -> str:
    values = {"file": portal.file.id, "share": portal.share.id, "link": portal.link.id}
    return ALL_URLS[name].format(token=portal.token, **values)


METHOD_CASES = [
    pytest.param(
        method,
        url_name,
        id=f"{method}-{url_name}",
    )
    for method in ("PUT", "PATCH", "DELETE")
    for url_name in ALL_URLS
]


@pytest.mark.parametrize(("method", "url_name"), METHOD_CASES)
def test_it_answers_405_to_a_method_not_allowed(portal, unchanged, url_name, method) -> None:
    client = client_for(portal.alice)

    response = client.generic(method, _any_url(portal, url_name), b"username=charlie")

    assert response.status_code == 405
    assert "Allow" in response
    unchanged()


POST_ONLY = ["upload", "delete", "share", "share revoke", "link", "link revoke", "logout"]


@pytest.mark.parametrize("url_name", [*POST_ONLY, "2fa remove"])
def test_it_answers_405_to_get_on_a_post_only_url(portal, unchanged, url_name) -> None:
    response = client_for(portal.alice).get(_any_url(portal, url_name))

    assert response.status_code == 405
    unchanged()


# ---------------------------------------------------------------------------- CSRF


def _csrf_client(user: User | None) -> Client:
    client = (
        client_for(user, enforce_csrf_checks=True) if user else Client(enforce_csrf_checks=True)
    )
    client.get("/accounts/login/")  # a CSRF cookie, as any visit to the portal sets
    assert client.cookies["csrftoken"].value
    return client


def _token_of(client: Client) -> str:
    return client.cookies["csrftoken"].value


# Every POST that acts for a session, with the data that would make it succeed.
CSRF_POSTS = {
    "delete": ("/files/{file}/delete/", {"confirm": "on"}),
    "share": ("/files/{file}/shares/", {"username": "charlie"}),
    "share revoke": ("/files/{file}/shares/{share}/revoke/", {}),
    "link": ("/files/{file}/links/", {"expires_in_hours": "1"}),
    "link revoke": ("/files/{file}/links/{link}/revoke/", {}),
    "logout": ("/accounts/logout/", {}),
    "2fa": ("/accounts/2fa/", {"code": "123456"}),
    "2fa remove": ("/accounts/2fa/remove/", {"password": ALICE_PASSWORD}),
    "password change": (
        "/accounts/password_change/",
        {"old_password": ALICE_PASSWORD, "new_password1": "Zz-9" * 4, "new_password2": "Zz-9" * 4},
    ),
}


@pytest.fixture
def charlie(db: None) -> User:
    return User.objects.create_user("charlie", email="charlie@example.com")


@pytest.mark.parametrize("url_name", CSRF_POSTS)
@pytest.mark.parametrize("token", ["", "x" * 64], ids=["missing token", "wrong token"])
def test_it_answers_403_to_a_post_without_the_csrf_token(
    portal, unchanged, charlie, url_name, token
) -> None:
    if url_name in ("2fa remove", "password change"):
        _with_password(portal.alice)
    template, data = CSRF_POSTS[url_name]
    url = template.format(file=portal.file.id, share=portal.share.id, link=portal.link.id)
    client = _csrf_client(portal.alice)
    if token:
        data = {**data, "csrfmiddlewaretoken": token}

    response = client.post(url, data)

    assert response.status_code == 403
    assert b"Form expired" in response.content
    unchanged()
    assert client.get("/").status_code == 200  # still logged in: logout was refused too
    if url_name == "password change":
        portal.alice.refresh_from_db()
        assert portal.alice.check_password(ALICE_PASSWORD)


ANONYMOUS_POSTS = {
    "login": ("/accounts/login/", {"username": "alice", "password": ALICE_PASSWORD}),
    "login code": ("/accounts/login/code/", {"code": "123456"}),
    "password reset": ("/accounts/password_reset/", {"email": "alice@example.com"}),
    "signup": (
        "/accounts/signup/",
        {
            "username": "eve",
            "email": "e@example.com",
            "password1": "Zz-9" * 4,
            "password2": "Zz-9" * 4,
        },
    ),
}


@pytest.mark.parametrize("url_name", ANONYMOUS_POSTS)
@pytest.mark.parametrize("token", ["", "x" * 64], ids=["missing token", "wrong token"])
def test_it_answers_403_to_an_anonymous_post_without_the_csrf_token(
    portal, unchanged, settings, url_name, token
) -> None:
    settings.SIGNUP_ENABLED = True
    if url_name in ("login", "password reset"):
        _with_password(portal.alice)
    url, data = ANONYMOUS_POSTS[url_name]
    client = _csrf_client(None)
    if token:
        data = {**data, "csrfmiddlewaretoken": token}

    response = client.post(url, data)

    assert response.status_code == 403
    unchanged()
    assert client.get("/").status_code == 302  # not logged in
    assert mail.outbox == []
    assert not User.objects.filter(username="eve").exists()


def test_it_answers_403_to_a_cross_origin_post_with_a_valid_token(portal, unchanged) -> None:
    client = _csrf_client(portal.alice)
    response = client.post(
        f"/files/{portal.file.id}/delete/",
        {"confirm": "on", "csrfmiddlewaretoken": _token_of(client)},
        HTTP_ORIGIN="https://evil.example",
    )

    assert response.status_code == 403
    unchanged()


# ---------------------------------------------------------------------------- form values


def _post_as_alice(portal: Portal, url_name: str, data: dict) -> HttpResponseBase:
    return client_for(portal.alice).post(_url(portal, url_name), data)


def test_it_answers_400_to_a_10000_character_username_on_the_share_form(portal, unchanged) -> None:
    response = _post_as_alice(portal, "share", {"username": LONG})

    assert response.status_code == 400
    assert b"at most 254 characters" in response.content
    unchanged()


@pytest.mark.parametrize(
    "username", ["", "   ", "\x00", "nobody", "alice", "bob", "%", "bob\x00"], ids=repr
)
def test_it_answers_400_to_a_share_that_cannot_be_granted(portal, unchanged, username) -> None:
    # Empty, unknown, the owner herself, someone already shared with: all refused alike.
    response = _post_as_alice(portal, "share", {"username": username})

    assert response.status_code == 400
    unchanged()


def test_it_answers_400_to_a_10000_character_link_password(portal, unchanged) -> None:
    response = _post_as_alice(portal, "link", {"expires_in_hours": "1", "password": LONG})

    assert response.status_code == 400
    unchanged()


HOURS = {
    "beyond 64 bits": "9" * 30,
    "2**63": str(2**63),
    "over the maximum": "721",
    "zero": "0",
    "negative": "-1",
    "exponent": "1e9",
    "infinity": "inf",
    "nan": "NaN",
    "fraction": "1.5",
    "word": "soon",
    "10000 digits": "9" * 10_000,
}


@pytest.mark.parametrize("hours", HOURS.values(), ids=HOURS.keys())
def test_it_answers_400_to_a_bad_link_lifetime(portal, unchanged, hours) -> None:
    response = _post_as_alice(portal, "link", {"expires_in_hours": hours})

    assert response.status_code == 400
    assert b"Share links" in response.content
    unchanged()


@pytest.mark.parametrize("limit", ["0", "-5", "1000001", "9" * 30, "many", "1e3"])
def test_it_answers_400_to_a_bad_download_limit(portal, unchanged, limit) -> None:
    data = {"expires_in_hours": "1", "max_downloads": limit}

    response = _post_as_alice(portal, "link", data)

    assert response.status_code == 400
    unchanged()


def test_it_answers_403_to_a_10000_character_password_on_a_link(
    portal, password_token, unchanged
) -> None:
    response = Client().post(f"/s/{password_token}/", {"password": LONG})

    assert response.status_code == 403
    assert b"Wrong password" in response.content
    unchanged()


def test_it_answers_403_to_a_link_password_sent_as_a_list(
    portal, password_token, unchanged
) -> None:
    response = Client().post(f"/s/{password_token}/", {"password": [LINK_PASSWORD, "x"]})

    assert response.status_code == 403
    unchanged()


@pytest.mark.parametrize(
    "data",
    [
        {"username": LONG, "password": "x"},
        {"username": "alice", "password": LONG},
        {"username": "alice\x00", "password": "x"},
        {"username": ["alice", "bob"], "password": "x"},
        {},
    ],
    ids=["long username", "long password", "nul", "list", "empty"],
)
def test_it_answers_200_with_errors_to_a_hostile_login(portal, unchanged, data) -> None:
    client = Client()

    response = client.post("/accounts/login/", data)

    assert response.status_code == 200
    assert response.context["form"].errors
    assert client.get("/").status_code == 302
    unchanged()


def test_it_answers_200_to_a_failed_login_with_huge_headers(portal) -> None:
    client = Client(HTTP_USER_AGENT=LONG, HTTP_ACCEPT=LONG, HTTP_ACCEPT_LANGUAGE=LONG)

    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors()


def test_it_answers_an_over_long_username_like_a_wrong_password(alice_with_password) -> None:
    wrong = Client().post("/accounts/login/", {"username": "alice", "password": "wrong"})

    response = Client().post("/accounts/login/", {"username": LONG, "password": ALICE_PASSWORD})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == wrong.context["form"].non_field_errors()


LIST_QUERIES = {
    "long search": (f"?q={LONG}", 200),
    "long sort": ("?sort=-" + LONG, 200),
    "huge page": ("?page=" + "9" * 30, 200),
    "negative page": ("?page=-1", 200),
    "non-utf-8 search": ("?q=%FF%FE", 200),
    "nul in search": ("?q=a%00b", 400),  # PostgreSQL cannot hold NUL: refused up front
    "nul in sort": ("?sort=%00", 400),
}


@pytest.mark.parametrize(("query", "status"), LIST_QUERIES.values(), ids=LIST_QUERIES.keys())
def test_it_answers_hostile_list_parameters(portal, query, status) -> None:
    response = client_for(portal.alice).get(f"/{query}")

    assert response.status_code == status


# ---------------------------------------------------------------------------- link tokens

BAD_TOKENS = {
    "one short": lambda t: t[:-1],
    "one long": lambda t: t + "A",
    "plus": lambda t: "+" + t[1:],
    "padding": lambda t: t[:-1] + "=",
    "dot": lambda t: "." + t[1:],
    "non-ascii": lambda t: "é" + t[1:],
    "nul": lambda t: "%00" + t[3:],
    "space": lambda t: "%20" + t[3:],
    "uppercased": lambda t: t.upper() if t.upper() != t else t.lower(),
    "its sha-256 digest": lambda t: selectors.link_token_digest(t),
    "10000 characters": lambda t: "A" * 10_000,
}


@pytest.mark.parametrize("mangle", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_it_answers_404_to_a_malformed_link_token(portal, unchanged, mangle, method) -> None:
    url = f"/s/{mangle(portal.token)}/"

    response = _send(Client(), method, url)

    assert response.status_code == 404
    assert response["Referrer-Policy"] == "no-referrer"
    unchanged()


# ---------------------------------------------------------------------------- bodies

# Broken multipart bodies, sent to endpoints that take forms (not files).
BROKEN_BODIES = {
    "missing boundary": (multipart([field_part("username", "charlie")]), "multipart/form-data"),
    "garbage": (bytes(range(256)) * 16, MULTIPART),
    "header over 1 KiB": (multipart([file_part("x" * 2000, b"data")]), MULTIPART),
}
FORM_POSTS = {
    "share": "/files/{file}/shares/",
    "link": "/files/{file}/links/",
    "delete": "/files/{file}/delete/",
    "share revoke": "/files/{file}/shares/{share}/revoke/",
    "logout": "/accounts/logout/",
}


@pytest.mark.parametrize("endpoint", FORM_POSTS)
@pytest.mark.parametrize(("body", "content_type"), BROKEN_BODIES.values(), ids=BROKEN_BODIES.keys())
def test_it_answers_400_to_a_broken_multipart_body(
    portal, unchanged, endpoint, body, content_type
) -> None:
    # With CSRF enforced, as in production: the token comes in its header, and the CSRF
    # check is what parses the body first.
    client = _csrf_client(portal.alice)
    url = FORM_POSTS[endpoint].format(file=portal.file.id, share=portal.share.id)

    response = client.generic(
        "POST", url, body, content_type=content_type, HTTP_X_CSRFTOKEN=_token_of(client)
    )

    assert response.status_code == 400
    unchanged()
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("cut", [30, 90, -10], ids=["in headers", "in the value", "in the end"])
def test_it_answers_400_to_a_truncated_share_form(portal, unchanged, charlie, cut) -> None:
    # Django's parser takes a truncated body for what it holds; the form then lacks its
    # required field. (Where no field is needed, as for logout or a link with the default
    # lifetime, the request goes through: its CSRF token came in the header.)
    body = multipart([field_part("username", "charlie")])[:cut]
    client = _csrf_client(portal.alice)

    response = client.generic(
        "POST",
        _url(portal, "share"),
        body,
        content_type=MULTIPART,
        HTTP_X_CSRFTOKEN=_token_of(client),
    )

    assert response.status_code == 400
    unchanged()


@pytest.mark.parametrize(("body", "content_type"), BROKEN_BODIES.values(), ids=BROKEN_BODIES.keys())
def test_it_answers_400_to_a_broken_body_for_a_link_password(
    portal, password_token, unchanged, body, content_type
) -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.generic("POST", f"/s/{password_token}/", body, content_type=content_type)

    assert response.status_code == 400
    unchanged()


def test_it_drops_a_file_posted_to_a_form_endpoint(portal, unchanged, charlie) -> None:
    # Only the upload view stores files; anywhere else a file part is ignored, unread.
    body = multipart([field_part("username", "charlie"), file_part("x.bin", b"x" * 100_000)])

    client = _csrf_client(portal.alice)

    response = client.generic(
        "POST",
        f"/files/{portal.file.id}/shares/",
        body,
        content_type=MULTIPART,
        HTTP_X_CSRFTOKEN=_token_of(client),
    )

    assert response.status_code == 302
    assert Share.objects.filter(file=portal.file, colleague=charlie).exists()
    assert len(files_on_disk()) == 2


class CountingInput(io.RawIOBase):
    """A wsgi.input that records the bytes read from it and the largest single read."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self.bytes_read = 0
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        self.bytes_read += len(chunk)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def _post_counting(
    client: Client, url: str, body: bytes, content_type: str
) -> tuple[HttpResponseBase, CountingInput]:
    wsgi_input = CountingInput(body)
    environ = {"CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type}
    response = client.generic("POST", url, b"", **environ, **{"wsgi.input": wsgi_input})
    return response, wsgi_input


BIG = 3 * 1024 * 1024  # over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB)


def _big_multipart(client: Client) -> bytes:
    return multipart(
        [
            field_part("csrfmiddlewaretoken", _token_of(client)),
            field_part("username", "alice"),
            file_part("big.bin", b"x" * BIG),
        ]
    )


@pytest.mark.parametrize("url", ["/accounts/login/", "/accounts/password_reset/", "/s/{token}/"])
def test_it_reads_nothing_of_a_big_anonymous_body(portal, unchanged, url) -> None:
    # Anyone can get a CSRF cookie; the body must still not be buffered whole while the
    # CSRF check looks for its token in it.
    client = _csrf_client(None)
    body = _big_multipart(client)

    response, wsgi_input = _post_counting(client, url.format(token=portal.token), body, MULTIPART)

    assert response.status_code == 413
    assert wsgi_input.bytes_read == 0
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    unchanged()


@pytest.mark.parametrize("url_name", ["share", "link", "delete", "share revoke"])
@pytest.mark.parametrize("form", ["multipart", "urlencoded"])
def test_it_answers_413_to_a_big_body_on_a_form_endpoint(portal, unchanged, url_name, form) -> None:
    client = _csrf_client(portal.alice)
    if form == "multipart":
        body, content_type = _big_multipart(client), MULTIPART
    else:
        body = f"csrfmiddlewaretoken={_token_of(client)}&username={'a' * BIG}".encode()
        content_type = "application/x-www-form-urlencoded"

    response, wsgi_input = _post_counting(client, _url(portal, url_name), body, content_type)

    assert response.status_code == 413
    assert wsgi_input.bytes_read == 0
    unchanged()


# ---------------------------------------------------------------------------- uploads

# Django's parser keeps the last path part and drops non-printable characters (U+202E
# included); what is left is stored as is and sanitised again on the way out.
STORED_NAMES = {
    "traversal": ("../../secret.txt", "secret.txt"),
    "control characters": ("bell\x07\x1b.txt", "bell.txt"),
    "rtl override": ("evil\u202etxt.exe", "eviltxt.exe"),
    "nul": ("a\x00b.txt", "ab.txt"),
}


@pytest.mark.parametrize(("sent", "stored_as"), STORED_NAMES.values(), ids=STORED_NAMES.keys())
def test_it_stores_a_hostile_name_beside_existing_files(portal, sent, stored_as) -> None:
    before = len(files_on_disk())

    response = post_body(client_for(portal.alice), files_body((sent, b"payload")))

    assert response.status_code == 302
    new = StoredFile.objects.exclude(pk__in=[portal.file.pk, portal.bobs_file.pk]).get()
    assert new.name == stored_as
    assert len(files_on_disk()) == before + 1
    download = client_for(portal.alice).get(f"/files/{new.id}/download/")
    assert streamed(download) == b"payload"
    assert download["Content-Disposition"].startswith("attachment; filename=")


def test_it_refuses_a_name_in_raw_latin_1_bytes(portal, unchanged) -> None:
    # A client that sends the name as ISO-8859-1 bytes, not UTF-8 ("café.txt"): Django's
    # parser skips a part header it cannot decode, so the request holds no file.
    part = (
        b'Content-Disposition: form-data; name="file"; filename="caf\xe9.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nlatin"
    )

    response = post_body(client_for(portal.alice), multipart([part]))

    assert response.status_code == 400
    assert b"Choose at least one file" in response.content
    unchanged()


def test_it_round_trips_an_empty_file_through_a_link(portal) -> None:
    assert post_body(client_for(portal.alice), files_body(("empty.txt", b""))).status_code == 302
    empty = StoredFile.objects.get(name="empty.txt")
    _, token = _link(empty, portal.alice)

    response = Client().post(f"/s/{token}/")

    assert response.status_code == 200
    assert response["Content-Length"] == "0"
    assert streamed(response) == b""


def test_it_keeps_both_files_of_a_duplicate_name_beside_existing_ones(portal) -> None:
    client = client_for(portal.alice)

    post_body(client, files_body(("alice.txt", b"second")))
    post_body(client, files_body(("alice.txt", b"third")))

    copies = StoredFile.objects.filter(owner=portal.alice, name="alice.txt")
    assert copies.count() == 3
    contents = {streamed(client.get(f"/files/{c.id}/download/")) for c in copies}
    assert contents == {b"alice's plaintext", b"second", b"third"}


REFUSED_UPLOADS = {
    "missing boundary": (files_body(("a.txt", b"abc")), "multipart/form-data", 400),
    "truncated": (files_body(("a.txt", b"a" * 300_000))[:150_000], MULTIPART, 400),
    "no filename": (
        multipart([b'Content-Disposition: form-data; name="file"; filename=""\r\n\r\nabc']),
        MULTIPART,
        400,
    ),
    "only the closing boundary": (f"--{BOUNDARY}--\r\n".encode(), MULTIPART, 400),
}


@pytest.mark.parametrize(
    ("body", "content_type", "status"), REFUSED_UPLOADS.values(), ids=REFUSED_UPLOADS.keys()
)
def test_it_refuses_a_broken_upload_and_keeps_existing_files(
    portal, unchanged, body, content_type, status
) -> None:
    response = post_body(client_for(portal.alice), body, content_type=content_type)

    assert response.status_code == status
    unchanged()


def test_it_refuses_an_over_size_upload_and_keeps_existing_files(
    portal, unchanged, small_upload_limit
) -> None:
    body = files_body(("big.bin", b"x" * (small_upload_limit + 1)))

    response = post_body(client_for(portal.alice), body)

    assert response.status_code == 413
    unchanged()


# ---------------------------------------------------------------------------- headers, cookies


@pytest.mark.parametrize(
    "cookie",
    [
        "sessionid=" + "a" * 10_000,
        "sessionid=abcdefgh\x00ij",
        'sessionid="\\000\\000\\000\\000\\000\\000\\000\\000"',  # ASCII; NUL once unquoted
        "sessionid=\u00e9\u00e9",
        "sessionid=",
    ],
    ids=["long", "nul", "octal-escaped nul", "non-ascii", "empty"],
)
def test_it_treats_a_forged_session_cookie_as_no_session(portal, unchanged, cookie) -> None:
    response = Client(HTTP_COOKIE=cookie).get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"
    unchanged()


@pytest.mark.parametrize("host", ["evil.example", "a" * 300, "[::1", "localhost\x00"])
def test_it_answers_400_to_a_host_it_does_not_serve(portal, host) -> None:
    response = Client().get("/accounts/login/", HTTP_HOST=host)

    assert response.status_code == 400


@pytest.mark.parametrize(
    "email", [LONG + "@example.com", "alice\x00@example.com", "not an address"], ids=repr
)
def test_it_answers_200_with_errors_to_a_hostile_reset_address(portal, email) -> None:
    response = Client().post("/accounts/password_reset/", {"email": email})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert mail.outbox == []


@pytest.mark.parametrize(
    "code", [LONG, "12\x0034", "", "١٢٣٤٥٦"], ids=["long", "nul", "empty", "arabic"]
)
def test_it_answers_200_with_errors_to_a_hostile_second_factor_code(portal, code) -> None:
    client = client_for(portal.alice)
    client.get("/accounts/2fa/")

    response = client.post("/accounts/2fa/", {"code": code})

    assert response.status_code == 200
    assert response.context["form"].errors
