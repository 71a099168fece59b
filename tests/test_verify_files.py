import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from sharing.models import StoredFile
from tests.helpers import blob_path, make_file
from tests.helpers_keys import new_key, orphan_blob, run, use_keys

pytestmark = pytest.mark.django_db

CLEAN = "verified 3 files: 3 ok, 0 missing, 0 corrupt, 0 mismatched, 0 key errors; 0 orphan blobs"


@pytest.fixture
def files(alice):
    # The middle one spans three 1 MiB segments, so a flip can land past the first.
    sizes = [10, 2_500_000, 0]
    return [make_file(alice, bytes([n]) * size, name=f"f{n}") for n, size in enumerate(sizes)]


def _flip_byte(stored: StoredFile, offset: int) -> None:
    path = blob_path(stored)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_it_passes_a_clean_store(files):
    result = run("verify_files")

    assert result.exit_code == 0
    assert CLEAN in result.out


def test_it_catches_a_flipped_byte(files):
    _flip_byte(files[1], 2_000_000)  # in the second segment

    result = run("verify_files")

    assert result.exit_code == 1
    assert f"corrupt: file {files[1].pk} (owner 'alice'" in result.out
    assert "2 ok, 0 missing, 1 corrupt" in result.out
    assert "1 problem(s)" in str(result.error)


def test_it_catches_a_deleted_blob(files):
    blob_path(files[0]).unlink()

    result = run("verify_files")

    assert result.exit_code == 1
    assert f"missing: file {files[0].pk}" in result.out
    assert "2 ok, 1 missing, 0 corrupt" in result.out


def test_it_catches_an_orphan_blob(files):
    name = orphan_blob()

    result = run("verify_files")

    assert result.exit_code == 1
    assert f"orphan: blob {name} has no file row" in result.out
    assert "3 ok, 0 missing, 0 corrupt, 0 mismatched, 0 key errors; 1 orphan blob" in result.out


def test_it_catches_a_row_that_does_not_match_its_blob(files):
    StoredFile.objects.filter(pk=files[0].pk).update(size=11)
    StoredFile.objects.filter(pk=files[2].pk).update(digest=bytes(32))

    result = run("verify_files")

    assert result.exit_code == 1
    assert "plaintext is 10 bytes, the row says 11" in result.out
    assert "plaintext digest differs from the row" in result.out
    assert "1 ok, 0 missing, 0 corrupt, 2 mismatched" in result.out


def test_it_reports_a_key_that_cannot_be_unwrapped(settings, alice):
    use_keys(settings, new_key("lost"))
    stored = make_file(alice, b"under a key that is gone")
    use_keys(settings, new_key("k2"))

    result = run("verify_files")

    assert result.exit_code == 1
    assert f"key error: file {stored.pk}" in result.out
    assert "0 ok, 0 missing, 0 corrupt, 0 mismatched, 1 key errors" in result.out


def test_it_checks_only_the_files_asked_for(files, alice, bob):
    bob_file = make_file(bob, b"bob's")
    blob_path(bob_file).unlink()
    old = files[0]
    StoredFile.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))
    orphan_blob()
    since = (timezone.localdate() - timedelta(days=1)).isoformat()

    result = run("verify_files", "--owner", "alice", "--since", since)

    assert result.exit_code == 0
    assert "verified 2 files: 2 ok, 0 missing, 0 corrupt, 0 mismatched, 0 key errors" in result.out
    assert "orphan" not in result.out  # a filtered run cannot know which blobs are orphans


def test_it_refuses_an_unknown_owner_and_a_bad_date(files):
    assert "no user 'mallory'" in str(run("verify_files", "--owner", "mallory").error)
    assert "YYYY-MM-DD" in str(run("verify_files", "--since", "last week").error)


def test_it_prints_only_the_error_at_verbosity_zero(files):
    blob_path(files[0]).unlink()

    result = run("verify_files", verbosity=0)

    assert result.out == ""
    assert "1 missing" in str(result.error)


class _Terminal(io.StringIO):
    """Output that says it is a terminal, as an operator's shell is."""

    def isatty(self) -> bool:
        return True


def test_it_shows_progress_on_a_terminal_only(files):
    terminal, quiet = _Terminal(), _Terminal()

    call_command("verify_files", stdout=io.StringIO(), stderr=terminal)
    call_command("verify_files", stdout=io.StringIO(), stderr=quiet, verbosity=0)

    assert "\rverifying: 3/3" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\x1b[K")  # erased before the summary
    assert quiet.getvalue() == ""


def _damage_seal(stored: StoredFile) -> None:
    sealed = bytearray(stored.sha256_sealed)
    sealed[20] ^= 0x01
    StoredFile.objects.filter(pk=stored.pk).update(sha256_sealed=bytes(sealed))


def test_it_catches_a_damaged_sealed_sha256(files):
    _damage_seal(files[0])

    result = run("verify_files")

    assert result.exit_code == 1
    assert f"mismatched: file {files[0].pk}" in result.out
    assert "sealed SHA-256 does not open (damaged or altered)" in result.out
    assert "2 ok, 0 missing, 0 corrupt, 1 mismatched" in result.out


def test_it_catches_a_sealed_sha256_of_other_content(files):
    # A seal that opens, but for other bytes: the file's own key sealing another hash.
    from sharing import selectors
    from sharing.crypto import seal_sha256

    key = selectors.file_data_key(file=files[1])
    StoredFile.objects.filter(pk=files[1].pk).update(sha256_sealed=seal_sha256(key, bytes(32)))

    result = run("verify_files")

    assert result.exit_code == 1
    assert "sealed SHA-256 differs from the plaintext's" in result.out


def test_it_accepts_an_old_row_without_a_seal(files):
    StoredFile.objects.filter(pk=files[0].pk).update(sha256_sealed=b"")

    result = run("verify_files")

    assert result.exit_code == 0
    assert CLEAN in result.out
