import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from sharing import services
from sharing.checks import check_key_ids_in_use
from sharing.models import StoredFile
from tests.helpers import blob_path, make_file
from tests.helpers_keys import download, new_key, run, use_keys

pytestmark = pytest.mark.django_db

OLD, NEW = new_key("old"), new_key("new")


@pytest.fixture
def old_files(settings, alice):
    """Three files whose data keys are wrapped under the key 'old'."""
    use_keys(settings, OLD)
    return [make_file(alice, f"file {n}\n".encode() * 100, name=f"f{n}.txt") for n in range(3)]


def _rows() -> dict:
    return {f.pk: (f.key_id, bytes(f.wrapped_key)) for f in StoredFile.objects.all()}


def _blob_digests(files) -> list[str]:
    return [hashlib.sha256(blob_path(f).read_bytes()).hexdigest() for f in files]


def test_it_rewraps_every_key_so_the_old_key_can_be_removed(settings, old_files, alice_client):
    blobs_before, rows_before = _blob_digests(old_files), _rows()
    use_keys(settings, NEW, OLD)

    result = run("rotate_keys")

    assert result.exit_code == 0
    assert "rotated 3 files to key 'new': 0 already current, 0 failed" in result.out
    rows = _rows()
    assert {key_id for key_id, _ in rows.values()} == {"new"}
    assert all(rows[pk][1] != rows_before[pk][1] for pk in rows)
    assert _blob_digests(old_files) == blobs_before  # content never re-encrypted
    use_keys(settings, NEW)
    for stored in old_files:
        assert download(alice_client, stored) == f"file {stored.name[1]}\n".encode() * 100


def test_it_does_nothing_when_run_again(settings, old_files):
    use_keys(settings, NEW, OLD)
    run("rotate_keys")
    rows = _rows()

    result = run("rotate_keys")

    assert result.exit_code == 0
    assert "rotated 0 files to key 'new': 3 already current, 0 failed" in result.out
    assert _rows() == rows


def test_it_changes_nothing_in_a_dry_run(settings, old_files):
    rows = _rows()
    use_keys(settings, NEW, OLD)

    result = run("rotate_keys", "--dry-run")

    assert result.exit_code == 0
    assert "would rotate 3 files to key 'new'" in result.out
    assert _rows() == rows


def test_it_resumes_after_a_crash_in_the_middle(settings, alice, alice_client, monkeypatch):
    use_keys(settings, OLD)
    files = [make_file(alice, f"doc {n}".encode(), name=f"d{n}.txt") for n in range(6)]
    use_keys(settings, NEW, OLD)
    real_rewrap, calls = services.file_rewrap_key, []

    def crash_after_three(*, file):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or a killed process
        calls.append(file.pk)
        return real_rewrap(file=file)

    monkeypatch.setattr(services, "file_rewrap_key", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        run("rotate_keys", "--batch-size", "2")
    key_ids = sorted(key_id for key_id, _ in _rows().values())
    assert key_ids == ["new"] * 3 + ["old"] * 3  # each row committed on its own
    monkeypatch.undo()

    result = run("rotate_keys", "--batch-size", "2")

    assert "rotated 3 files to key 'new': 3 already current, 0 failed" in result.out
    use_keys(settings, NEW)
    assert [download(alice_client, f) for f in files] == [f"doc {n}".encode() for n in range(6)]


def test_it_reports_files_whose_key_is_missing_and_rotates_the_others(settings, alice):
    lost = new_key("lost")
    use_keys(settings, lost)
    orphaned = make_file(alice, b"under a lost key")
    use_keys(settings, OLD)
    fine = make_file(alice, b"under the old key")
    use_keys(settings, NEW, OLD)

    result = run("rotate_keys")

    assert result.exit_code == 1
    assert f"failed: file {orphaned.pk}: master key 'lost' is not in ENCRYPTION_KEYS" in result.out
    assert "rotated 1 files to key 'new': 0 already current, 1 failed" in result.out
    assert "could not be re-wrapped" in str(result.error)
    assert StoredFile.objects.get(pk=fine.pk).key_id == "new"
    assert StoredFile.objects.get(pk=orphaned.pk).key_id == "lost"


def test_it_warns_in_check_while_files_need_a_missing_key(settings, old_files, alice):
    use_keys(settings, new_key("other"))
    make_file(alice, b"under another key")
    use_keys(settings, NEW)

    warnings = check_key_ids_in_use(None)
    result = run("check")

    assert [w.id for w in warnings] == ["sharing.W001", "sharing.W001"]
    assert "3 file(s) need master key 'old', which is not in ENCRYPTION_KEYS" in result.err
    assert "1 file(s) need master key 'other'" in result.err


def test_it_does_not_warn_when_every_key_in_use_is_configured(settings, old_files):
    use_keys(settings, NEW, OLD)

    assert check_key_ids_in_use(None) == []


def test_it_checks_cleanly_before_the_tables_exist(tmp_path):
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    manage = Path(django_settings.BASE_DIR) / "manage.py"

    done = subprocess.run(  # noqa: S603 (our own manage.py, fixed arguments)
        [sys.executable, str(manage), "check"], env=env, capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_it_records_a_rotation_in_the_audit_log(alice, settings):
    from audit.models import AuditEntry
    from audit.selectors import verify_chain
    from sharing.crypto import generate_key_entry
    from tests.helpers import make_file

    make_file(alice, b"rotate me")
    settings.ENCRYPTION_KEYS = f"{generate_key_entry('new')},{settings.ENCRYPTION_KEYS}"
    from io import StringIO

    from django.core.management import call_command

    call_command("rotate_keys", stdout=StringIO())
    entry = AuditEntry.objects.get(event="keys.rotated")
    assert entry.actor == "rotate_keys" and "rotated 1 files" in entry.detail
    assert verify_chain().intact


def test_an_upload_begun_under_the_old_key_finishes_after_the_readme_rotation(
    settings, alice_client
):
    """README "Rotating a master key", with a resumable upload begun before it and resumed
    after the old key was removed: check warns while it needs the old key, rotate_keys
    re-wraps it, and its last PATCH completes a file that downloads byte-identical."""
    from tests.helpers import MiB
    from tests.test_tus import create, patch

    use_keys(settings, OLD)
    data = os.urandom(MiB + 777)
    status, location = create(alice_client, len(data), filename="deposition.pdf")
    assert status == 201
    assert patch(alice_client, location, 0, data[:MiB])["Upload-Offset"] == str(MiB)

    use_keys(settings, NEW)
    assert "1 unfinished upload(s) need master key 'old'" in run("check").err
    use_keys(settings, NEW, OLD)
    result = run("rotate_keys")
    assert result.exit_code == 0
    assert "1 unfinished upload(s) re-wrapped" in result.out
    use_keys(settings, NEW)
    assert check_key_ids_in_use(None) == []

    response = patch(alice_client, location, MiB, data[MiB:])

    assert response.status_code == 204
    assert response["Upload-Offset"] == str(len(data))
    stored = StoredFile.objects.get()
    assert stored.key_id == "new"
    assert download(alice_client, stored) == data
