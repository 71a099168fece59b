"""The file list (sort, search, pagination at scale) and the file page's details."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sharing import services
from sharing.models import StoredFile
from tests.helpers import make_file, make_link, upload

pytestmark = pytest.mark.django_db


def names_listed(response) -> list[str]:
    table = response.content.decode().split('id="my-files"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'class="filename">([^<]+)</a>', table)


def test_it_sorts_by_name_size_and_date(alice, alice_client):
    make_file(alice, b"x" * 30, name="b.txt")
    make_file(alice, b"x" * 10, name="c.txt")
    make_file(alice, b"x" * 20, name="a.txt")
    assert names_listed(alice_client.get("/")) == ["a.txt", "c.txt", "b.txt"]
    assert names_listed(alice_client.get("/?sort=name")) == ["a.txt", "b.txt", "c.txt"]
    assert names_listed(alice_client.get("/?sort=-name")) == ["c.txt", "b.txt", "a.txt"]
    assert names_listed(alice_client.get("/?sort=size")) == ["c.txt", "a.txt", "b.txt"]
    assert names_listed(alice_client.get("/?sort=-size")) == ["b.txt", "a.txt", "c.txt"]
    assert names_listed(alice_client.get("/?sort=date")) == ["b.txt", "c.txt", "a.txt"]
    assert names_listed(alice_client.get("/?sort=bogus")) == ["a.txt", "c.txt", "b.txt"]


def test_a_file_committed_after_the_count_is_still_listed(alice, alice_client):
    from sharing.models import StorageUsage

    make_file(alice, b"1", name="older.txt")
    make_file(alice, b"2", name="newer.txt")
    # As if the second upload committed between the usage row's read and the rows' read.
    StorageUsage.objects.filter(user=alice).update(files=1)
    assert names_listed(alice_client.get("/")) == ["newer.txt", "older.txt"]


def test_it_searches_by_name_within_own_and_shared_files(alice, bob, alice_client):
    make_file(alice, b"1", name="Quarterly report.pdf")
    make_file(alice, b"2", name="holiday.jpg")
    make_file(bob, b"3", name="bob's report.pdf")  # not shared: never listed for alice
    assert names_listed(alice_client.get("/?q=REPORT")) == ["Quarterly report.pdf"]
    assert names_listed(alice_client.get("/?q=nothing-like-this")) == []


def test_it_lists_10000_files_with_a_constant_number_of_queries(alice, alice_client):
    now = timezone.now()
    StoredFile.objects.bulk_create(
        StoredFile(
            id=uuid.uuid4(),
            owner=alice,
            name=f"file-{i:05}.txt",
            size=i,
            digest=b"",
            blob=f"blobs/xx/{i:032x}",
            wrapped_key=b"",
            key_id="test1",
            created_at=now,
        )
        for i in range(10_000)
    )
    services.usage_recount(user_id=alice.pk)
    counts = []
    for query in ("/", "/?page=100", "/?page=200&sort=size", "/?q=file-09&sort=name"):
        with CaptureQueriesContext(connection) as captured:
            response = alice_client.get(query)
        assert response.status_code == 200
        assert len(names_listed(response)) == 50
        counts.append(len(captured))
    # A search counts its matches: one query more than a list the usage row counts.
    assert counts == [counts[0]] * 3 + [counts[0] + 1], counts
    assert counts[0] <= 13, counts  # 12, and one for the file-requests panel


def test_it_shows_the_sha256_that_a_download_can_be_checked_against(alice_client):
    data = os.urandom(300_000)
    upload(alice_client, ("evidence.bin", data))
    stored = StoredFile.objects.get()
    page = alice_client.get(f"/files/{stored.id}/").content.decode()
    plain_sha = hashlib.sha256(data).hexdigest()
    assert plain_sha in page
    # The row keeps it sealed: the database alone does not hold the plain hash.
    row = StoredFile.objects.filter(pk=stored.pk).values().get()
    for value in row.values():
        raw = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
        assert bytes.fromhex(plain_sha) not in raw and plain_sha.encode() not in raw


def test_it_answers_the_upload_script_with_json(alice_client):
    response = upload(alice_client, ("a.txt", b"hello"), HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    [item] = json.loads(response.content)["files"]
    stored = StoredFile.objects.get()
    assert item["id"] == str(stored.id)
    assert item["download_url"] == f"/files/{stored.id}/download/"
    assert item["size"] == 5


def test_it_answers_the_upload_script_with_a_json_error(alice_client, small_upload_limit):
    body_too_big = os.urandom(small_upload_limit + 1)
    response = upload(alice_client, ("big.bin", body_too_big), HTTP_ACCEPT="application/json")
    assert response.status_code == 413
    assert "limit" in json.loads(response.content)["error"]
    assert StoredFile.objects.count() == 0


def test_it_suggests_only_colleagues_already_known(alice, bob, alice_client, django_user_model):
    django_user_model.objects.create_user("mallory")
    stored = make_file(alice, b"x")
    page = alice_client.get(f"/files/{stored.id}/").content.decode()
    assert 'value="bob"' not in page and 'value="mallory"' not in page
    alice_client.post(f"/files/{stored.id}/shares/", {"username": "bob"})
    page = alice_client.get(f"/files/{stored.id}/").content.decode()
    assert '<option value="bob">' in page
    assert 'value="mallory"' not in page


def test_it_pages_the_files_shared_with_me(alice, bob, bob_client):
    from sharing.models import Share

    files = [make_file(alice, b"x", name=f"shared-{i:02}.txt") for i in range(53)]
    Share.objects.bulk_create(Share(file=f, colleague=bob) for f in files)

    def shared_names(response) -> list[str]:
        section = response.content.decode().split('id="shared-title"', 1)[1]
        return re.findall(r'class="filename">([^<]+)</a>', section.split("</table>", 1)[0])

    first = bob_client.get("/")
    second = bob_client.get("/?shared_page=2")
    assert len(shared_names(first)) == 50
    assert shared_names(second) == ["shared-02.txt", "shared-01.txt", "shared-00.txt"]
    assert "?shared_page=2" in first.content.decode()


def _sha256_line(response) -> str:
    page = response.content.decode()
    return page.split("SHA-256</dt><dd>", 1)[1].split("</dd>", 1)[0]


def test_the_file_page_shows_the_sha256_and_tells_a_damaged_seal_from_an_old_row(
    alice, alice_client
):
    data = b"contract v3"
    good = make_file(alice, data, name="good.txt")
    damaged = make_file(alice, data, name="damaged.txt")
    old = make_file(alice, data, name="old.txt")
    sealed = bytearray(damaged.sha256_sealed)
    sealed[-1] ^= 0x01
    StoredFile.objects.filter(pk=damaged.pk).update(sha256_sealed=bytes(sealed))
    StoredFile.objects.filter(pk=old.pk).update(sha256_sealed=b"")

    def line(stored):
        return _sha256_line(alice_client.get(f"/files/{stored.id}/"))

    assert hashlib.sha256(data).hexdigest() in line(good)
    assert "the SHA-256 could not be verified" in line(damaged)
    assert hashlib.sha256(data).hexdigest() not in line(damaged)
    assert "not recorded" in line(old)
    assert "could not be verified" not in line(old)


# ---------------------------------------------------------------------------- pages of the list


def _download_links(response) -> list[str]:
    return re.findall(r'href="/files/([0-9a-f-]{36})/download/"', response.content.decode())


def test_it_shows_an_empty_listing(alice_client) -> None:
    response = alice_client.get("/")

    assert response.status_code == 200
    assert b"No files yet." in response.content


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


def test_the_revoke_forms_post_to_the_share_and_link_they_name(alice, alice_client, bob):
    from django.urls import reverse

    from sharing.models import Share

    stored = make_file(alice, b"x")
    share = Share.objects.create(file=stored, colleague=bob)
    make_link(alice_client, stored)
    link = stored.links.get()

    page = alice_client.get(f"/files/{stored.id}/").content.decode()

    assert f'action="{reverse("sharing:share_revoke", args=[stored.id, share.id])}"' in page
    assert f'action="{reverse("sharing:link_revoke", args=[stored.id, link.id])}"' in page
    assert f'href="{reverse("sharing:download", args=[stored.id])}"' in page
