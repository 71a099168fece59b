"""Who gets what from every file URL: owner, another user, anonymous, and made-up ids."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponseBase
from django.test import Client

from sharing.models import StoredFile
from tests.conftest import blob_path, make_file

pytestmark = pytest.mark.django_db

# (method, URL template, what the owner gets)
FILE_URLS = [
    ("get", "/files/{id}/", 200),
    ("get", "/files/{id}/download/", 200),
    ("head", "/files/{id}/download/", 200),
    ("post", "/files/{id}/delete/", 302),
]
CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"')


def _call(client: Client, method: str, url: str) -> HttpResponseBase:
    return getattr(client, method)(url)


def _page(response: HttpResponseBase) -> bytes:
    # The masked CSRF token in the logout form is fresh random bytes on every render;
    # everything else on the page must be identical.
    return CSRF_INPUT.sub(b"csrf", response.content)


@pytest.fixture
def alices_file(alice: User) -> StoredFile:
    return make_file(alice, b"alice's secret", name="plan.txt")


@pytest.mark.parametrize(("method", "template", "status"), FILE_URLS)
def test_it_answers_the_owner(alice_client, alices_file, method, template, status) -> None:
    response = _call(alice_client, method, template.format(id=alices_file.id))

    assert response.status_code == status


@pytest.mark.parametrize(("method", "template", "status"), FILE_URLS)
def test_it_answers_404_to_another_user(bob_client, alices_file, method, template, status) -> None:
    response = _call(bob_client, method, template.format(id=alices_file.id))
    unknown = _call(bob_client, method, template.format(id=uuid.uuid4()))

    assert response.status_code == 404
    assert unknown.status_code == 404
    assert _page(response) == _page(unknown)
    assert b"plan.txt" not in response.content
    assert StoredFile.objects.filter(pk=alices_file.pk).exists()
    assert blob_path(alices_file).exists()


@pytest.mark.parametrize(("method", "template", "status"), FILE_URLS)
def test_it_redirects_anonymous_to_login(client, alices_file, method, template, status) -> None:
    url = template.format(id=alices_file.id)

    response = _call(client, method, url)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={quote(url)}"
    assert StoredFile.objects.filter(pk=alices_file.pk).exists()


@pytest.mark.parametrize(("method", "template", "status"), FILE_URLS)
def test_it_answers_404_for_an_unknown_id(alice_client, method, template, status) -> None:
    assert _call(alice_client, method, template.format(id=uuid.uuid4())).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/files/not-a-uuid/",
        "/files/not-a-uuid/download/",
        "/files/12345/delete/",
        "/files/../etc/passwd/download/",
        "/files/%2e%2e%2fsettings.py/download/",
    ],
)
def test_it_answers_404_for_a_path_that_is_not_a_uuid(alice_client, url) -> None:
    assert alice_client.get(url).status_code == 404
    assert alice_client.post(url).status_code == 404


def test_it_redirects_anonymous_home_to_login(client) -> None:
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_it_lists_only_my_files_newest_first(alice, bob, alice_client) -> None:
    older = make_file(alice, b"1", name="older-alpha.txt")
    newer = make_file(alice, b"2", name="newer-beta.txt")
    make_file(bob, b"3", name="bobs-gamma.txt")

    response = alice_client.get("/")

    assert response.status_code == 200
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    html = response.content.decode()
    assert "bobs-gamma.txt" not in html
    assert html.index("newer-beta.txt") < html.index("older-alpha.txt")
    for stored in (older, newer):
        assert f'href="/files/{stored.id}/download/"' in html
    assert len(re.findall(r'href="/files/[0-9a-f-]{36}/download/"', html)) == 2


def test_it_shows_an_empty_listing(alice_client) -> None:
    response = alice_client.get("/")

    assert response.status_code == 200
    assert b"No files yet." in response.content


def _download_links(response: HttpResponseBase) -> list[str]:
    return re.findall(r'href="/files/([0-9a-f-]{36})/download/"', response.content.decode())


def test_it_paginates_the_listing(alice, alice_client) -> None:
    created = [make_file(alice, b"", name=f"f{i:03}.txt") for i in range(53)]
    newest_first = [str(f.id) for f in reversed(created)]

    first = alice_client.get("/")
    second = alice_client.get("/?page=2")

    assert _download_links(first) == newest_first[:50]
    assert _download_links(second) == newest_first[50:]
    assert b"?page=2" in first.content


def test_it_refuses_a_nul_in_the_query_string(alice, alice_client) -> None:
    # PostgreSQL cannot take a NUL in a parameter: refused up front, never a 500.
    for query in ("?page=%00", "?q=a%00b", "?sort=%00"):
        assert alice_client.get(f"/{query}").status_code == 400


@pytest.mark.parametrize("page", ["abc", "0", "-1", "999999", "1e9", "2" * 400])
def test_it_does_not_fail_on_a_bogus_page_number(alice, alice_client, page) -> None:
    make_file(alice, b"x", name="only.txt")

    response = alice_client.get(f"/?page={page}")

    assert response.status_code == 200
    assert b"only.txt" in response.content


def test_it_refuses_get_on_upload(alice_client) -> None:
    assert alice_client.get("/files/upload/").status_code == 405


def test_it_refuses_get_on_delete(alice_client, alices_file) -> None:
    response = alice_client.get(f"/files/{alices_file.id}/delete/")

    assert response.status_code == 405
    assert StoredFile.objects.filter(pk=alices_file.pk).exists()


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_it_refuses_writes_on_download(alice_client, alices_file, method) -> None:
    response = getattr(alice_client, method)(f"/files/{alices_file.id}/download/")

    assert response.status_code == 405
    assert not response.streaming
