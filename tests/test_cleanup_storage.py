import os
import time

import pytest

from sharing.models import StoredFile
from tests.helpers import blob_path, make_file
from tests.helpers_keys import blob_names, blob_path_of, orphan_blob, run

pytestmark = pytest.mark.django_db

DAY = 24 * 3600


def _age(name: str, seconds: int) -> None:
    """Backdate a blob's modified time, as if it had been written that long ago."""
    then = time.time() - seconds
    os.utime(blob_path_of(name), (then, then))


@pytest.fixture
def store(alice):
    """Two files (one of them old), an orphan two days old and one a minute old."""
    files = [make_file(alice, b"kept"), make_file(alice, b"also kept", name="notes.txt")]
    _age(files[0].blob.name, 30 * DAY)
    old, young = orphan_blob(), orphan_blob()
    _age(old, 2 * DAY)
    _age(young, 60)
    return {"files": files, "old": old, "young": young}


def test_it_removes_old_orphans_and_keeps_young_ones_and_every_file(store):
    result = run("cleanup_storage")

    assert result.exit_code == 0
    assert f"deleted: orphan blob {store['old']}" in result.out
    assert blob_names() == {store["young"]} | {f.blob.name for f in store["files"]}
    assert (
        "deleted 1 orphan blobs older than 24 h; kept 1 recent orphans and 2 blobs in use; "
        "0 files with a missing blob" in result.out
    )


def test_it_honours_the_grace_period_given(store):
    result = run("cleanup_storage", "--grace-hours", "72")

    assert "deleted 0 orphan blobs older than 72 h; kept 2 recent orphans" in result.out
    assert store["old"] in blob_names()


def test_it_deletes_nothing_in_a_dry_run(store):
    before = blob_names()

    result = run("cleanup_storage", "--dry-run")

    assert result.exit_code == 0
    assert f"would delete: orphan blob {store['old']}" in result.out
    assert "would delete 1 orphan blobs" in result.out
    assert blob_names() == before


def test_it_lists_files_whose_blob_is_gone_and_keeps_their_rows(store):
    lost = store["files"][1]
    blob_path(lost).unlink()

    result = run("cleanup_storage")

    assert f"missing: file {lost.pk} (owner 'alice', name 'notes.txt')" in result.out
    assert "1 files with a missing blob" in result.out
    assert StoredFile.objects.filter(pk=lost.pk).exists()


def test_it_works_on_an_empty_storage():
    result = run("cleanup_storage")

    assert result.exit_code == 0
    assert "deleted 0 orphan blobs" in result.out


def test_it_refuses_a_grace_period_under_an_hour(store):
    result = run("cleanup_storage", "--grace-hours", "0")

    assert "at least 1" in str(result.error)
    assert store["old"] in blob_names()
