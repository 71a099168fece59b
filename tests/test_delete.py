"""Deleting a file removes its row (and wrapped key) and, once committed, its blob."""

from __future__ import annotations

import pytest
from django.db import transaction

from sharing.models import StoredFile
from tests.helpers import blob_path, files_on_disk, make_file

pytestmark = pytest.mark.django_db


def _delete_url(stored: StoredFile) -> str:
    return f"/files/{stored.id}/delete/"


def test_it_deletes_the_row_now_and_the_blob_on_commit(
    alice, alice_client, django_capture_on_commit_callbacks
) -> None:
    stored = make_file(alice, b"to be deleted")
    kept = make_file(alice, b"to be kept")

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(_delete_url(stored))
        assert not StoredFile.objects.filter(pk=stored.pk).exists()
        assert blob_path(stored).exists()  # not before the deletion has committed

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert not blob_path(stored).exists()
    assert files_on_disk() == [blob_path(kept)]
    assert StoredFile.objects.get() == kept


@pytest.mark.django_db(transaction=True)
def test_it_deletes_the_blob_after_a_real_commit(alice, alice_client) -> None:
    stored = make_file(alice, b"to be deleted")

    response = alice_client.post(_delete_url(stored))

    assert response.status_code == 302
    assert not StoredFile.objects.exists()
    assert files_on_disk() == []


def test_it_keeps_the_blob_when_the_deletion_rolls_back(
    alice, django_capture_on_commit_callbacks
) -> None:
    stored = make_file(alice, b"survivor")

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            StoredFile.objects.get(pk=stored.pk).delete()
            raise RuntimeError("roll back")

    assert StoredFile.objects.filter(pk=stored.pk).exists()
    assert blob_path(stored).exists()


def test_it_answers_404_to_another_user_and_keeps_the_file(
    alice, bob_client, django_capture_on_commit_callbacks
) -> None:
    stored = make_file(alice, b"alice's")

    with django_capture_on_commit_callbacks(execute=True):
        response = bob_client.post(_delete_url(stored))

    assert response.status_code == 404
    assert StoredFile.objects.filter(pk=stored.pk).exists()
    assert blob_path(stored).exists()


def test_it_keeps_the_file_for_anonymous(alice, client, django_capture_on_commit_callbacks) -> None:
    stored = make_file(alice, b"alice's")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_delete_url(stored))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert files_on_disk() == [blob_path(stored)]


def test_it_deletes_files_through_the_admin_action(
    alice, bob, admin_client, django_capture_on_commit_callbacks
) -> None:
    doomed = [make_file(alice, b"1"), make_file(bob, b"2")]
    kept = make_file(alice, b"3")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/sharing/storedfile/",
            {
                "action": "delete_selected",
                "_selected_action": [str(f.pk) for f in doomed],
                "post": "yes",
            },
        )

    assert response.status_code == 302
    assert list(StoredFile.objects.all()) == [kept]
    assert files_on_disk() == [blob_path(kept)]


def test_it_deletes_a_file_through_the_admin_delete_page(
    alice, admin_client, django_capture_on_commit_callbacks
) -> None:
    stored = make_file(alice, b"1")
    url = f"/admin/sharing/storedfile/{stored.pk}/delete/"
    assert admin_client.get(url).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not StoredFile.objects.exists()
    assert files_on_disk() == []


def test_it_deletes_a_users_files_with_the_user(
    alice, bob, django_capture_on_commit_callbacks
) -> None:
    make_file(alice, b"1")
    make_file(alice, b"2")
    bobs = make_file(bob, b"3")

    with django_capture_on_commit_callbacks(execute=True):
        alice.delete()

    assert list(StoredFile.objects.all()) == [bobs]
    assert files_on_disk() == [blob_path(bobs)]


def test_it_deletes_a_users_files_when_the_admin_deletes_the_user(
    alice, admin_client, django_capture_on_commit_callbacks
) -> None:
    make_file(alice, b"1")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/auth/user/{alice.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not StoredFile.objects.exists()
    assert files_on_disk() == []
