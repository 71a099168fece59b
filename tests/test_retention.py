"""Per-file expiry chosen at upload, site-wide retention, and purge_expired."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.actors import Actor
from sharing import services
from sharing.models import ShareLink, StoredFile
from tests.helpers import blob_path, field_part, file_part, make_file, multipart, post_body

pytestmark = pytest.mark.django_db


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_expired", *args, stdout=out)
    return out.getvalue()


def upload_with_days(client, days: str):
    body = multipart([field_part("expires_in_days", days), file_part("a.txt", b"data")])
    return post_body(client, body)


def test_it_sets_expiry_from_the_upload_form(alice_client):
    assert upload_with_days(alice_client, "3").status_code == 302
    stored = StoredFile.objects.get()
    assert timedelta(days=2, hours=23) < stored.expires_at - timezone.now() <= timedelta(days=3)


def test_it_keeps_files_without_expiry_by_default(alice_client):
    assert upload_with_days(alice_client, "").status_code == 302
    assert StoredFile.objects.get().expires_at is None


def test_it_refuses_an_expiry_over_the_maximum(alice_client, settings):
    settings.FILE_MAX_DAYS = 30
    response = upload_with_days(alice_client, "31")
    assert response.status_code == 400
    assert StoredFile.objects.count() == 0


@pytest.mark.parametrize("value", ["-1", "abc", "9" * 30])
def test_it_refuses_a_malformed_expiry(alice_client, value):
    response = upload_with_days(alice_client, value)
    assert response.status_code == 400
    assert StoredFile.objects.count() == 0


def test_it_applies_the_maximum_as_default(alice_client, settings):
    settings.FILE_MAX_DAYS = 7
    assert upload_with_days(alice_client, "").status_code == 302
    assert StoredFile.objects.get().expires_at is not None


def test_purge_deletes_expired_files_rows_and_blobs(alice, django_capture_on_commit_callbacks):
    expired = make_file(alice, b"old", name="old.txt")
    kept = make_file(alice, b"new", name="new.txt")
    StoredFile.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(1))
    with django_capture_on_commit_callbacks(execute=True):
        output = purge()
    assert "deleted 1 expired file(s)" in output
    assert list(StoredFile.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not blob_path(expired).exists()
    assert blob_path(kept).exists()


def test_purge_dry_run_changes_nothing(alice):
    expired = make_file(alice, b"old")
    StoredFile.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(1))
    assert "would delete 1" in purge("--dry-run")
    assert StoredFile.objects.filter(pk=expired.pk).exists()
    assert blob_path(expired).exists()


def test_purge_applies_site_wide_retention(alice, settings, django_capture_on_commit_callbacks):
    settings.RETENTION_DAYS = 30
    old = make_file(alice, b"old")
    recent = make_file(alice, b"recent")
    StoredFile.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    with django_capture_on_commit_callbacks(execute=True):
        purge()
    assert list(StoredFile.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not blob_path(old).exists()


def test_purge_deletes_expired_links(alice):
    stored = make_file(alice, b"data")
    actor = Actor(label="alice")
    live, _ = services.link_create(
        file=stored,
        actor=actor,
        created_by=alice,
        expires_in_hours=1,
        max_downloads=None,
        password="",
    )
    dead, _ = services.link_create(
        file=stored,
        actor=actor,
        created_by=alice,
        expires_in_hours=1,
        max_downloads=None,
        password="",
    )
    ShareLink.objects.filter(pk=dead.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    assert "1 expired link(s)" in purge()
    assert list(ShareLink.objects.values_list("pk", flat=True)) == [live.pk]
