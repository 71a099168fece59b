"""Per-user storage quota: refused before or while streaming, nothing left stored."""

from __future__ import annotations

import pytest

from sharing.models import StorageQuota, StoredFile
from tests.helpers import MiB, files_on_disk, make_file, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def quota_2mb(settings):
    settings.USER_QUOTA_MB = 2
    return 2 * MiB


def test_it_accepts_uploads_within_the_quota(alice, alice_client, quota_2mb):
    assert upload(alice_client, ("a.bin", b"a" * MiB)).status_code == 302
    assert StoredFile.objects.filter(owner=alice).count() == 1


def test_it_refuses_an_upload_over_the_quota_while_streaming(alice, alice_client, quota_2mb):
    make_file(alice, b"x" * MiB, name="old.bin")
    before = files_on_disk()
    response = upload(alice_client, ("big.bin", b"y" * (MiB + 10)))
    assert response.status_code == 413
    assert b"quota" in response.content
    assert StoredFile.objects.filter(owner=alice).count() == 1
    assert files_on_disk() == before


def test_it_refuses_every_file_of_a_request_that_ends_over_quota(alice, alice_client, quota_2mb):
    response = upload(alice_client, ("one.bin", b"1" * MiB), ("two.bin", b"2" * (MiB + 1)))
    assert response.status_code == 413
    assert StoredFile.objects.count() == 0
    assert files_on_disk() == []


def test_it_refuses_before_reading_when_no_space_is_left(alice, alice_client, quota_2mb):
    make_file(alice, b"x" * (2 * MiB), name="full.bin")
    before = files_on_disk()
    response = upload(alice_client, ("more.txt", b"z"))
    assert response.status_code == 413
    assert files_on_disk() == before


def test_it_uses_the_admins_per_user_override(alice, bob, alice_client, bob_client, quota_2mb):
    StorageQuota.objects.create(user=alice, quota_mb=0)  # unlimited for alice
    StorageQuota.objects.create(user=bob, quota_mb=1)
    assert upload(alice_client, ("a.bin", b"a" * (3 * MiB))).status_code == 302
    assert upload(bob_client, ("b.bin", b"b" * (MiB + 1))).status_code == 413
    assert not StoredFile.objects.filter(owner=bob).exists()


def test_it_shows_usage_against_quota(alice, alice_client, quota_2mb):
    make_file(alice, b"x" * MiB)
    page = alice_client.get("/").content.decode()
    assert "Using 1.0\xa0MiB of 2.0\xa0MiB" in page


def test_the_header_shows_usage_against_the_quota_on_every_page(alice, alice_client, quota_2mb):
    make_file(alice, b"x" * MiB)
    StorageQuota.objects.create(user=alice, quota_mb=3)

    responses = [alice_client.get(url) for url in ("/", "/?q=x", "/accounts/tokens/")]
    pages = [response.content.decode() for response in responses]

    assert [response.status_code for response in responses] == [200, 200, 200]

    assert all('id="header-usage">1.0\xa0MiB of 3.0\xa0MiB<' in page for page in pages)
    assert 'max="3145728"' in pages[0]  # the file list's meter: the same quota


def test_no_quota_shows_no_header_usage_and_no_meter(alice, alice_client):
    page = alice_client.get("/").content.decode()

    assert "header-usage" not in page and "usage-meter" not in page
    assert "Using 0" in page


def test_it_frees_quota_when_a_file_is_deleted(alice, alice_client, quota_2mb):
    stored = make_file(alice, b"x" * (2 * MiB))
    assert upload(alice_client, ("more.txt", b"z")).status_code == 413
    alice_client.post(f"/files/{stored.id}/delete/")
    assert upload(alice_client, ("more.txt", b"z")).status_code == 302


def test_it_has_no_quota_by_default(alice_client):
    assert upload(alice_client, ("a.bin", b"a" * (3 * MiB))).status_code == 302
