import io
import shutil
from pathlib import Path

import pytest

from sharing.legacy import LegacyFileError, decrypt_chunks, read_key_file
from sharing.models import StoredFile
from tests.conftest import blob_path, make_file
from tests.helpers_keys import blob_names, download, run

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
PLAINTEXTS = {"SOC_Task2_Sample_Logs.txt": "text/plain", "task.pdf": "application/pdf"}


@pytest.fixture
def uploads(tmp_path):
    """A copy of the prototype's uploads/ folder holding the real .enc files."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    for name in PLAINTEXTS:
        shutil.copy(FIXTURES / f"{name}.enc", folder)
    return folder


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "legacy.env"
    shutil.copy(FIXTURES / "legacy.env", path)
    return path


def _import(uploads: Path, key_file: Path, *extra: str):
    return run(
        "import_legacy", "--key-file", str(key_file), "--owner", "alice", str(uploads), *extra
    )


def _write_key(path: Path, key: str) -> Path:
    path.write_text(f"FLASK_ENV=development\nAES_KEY={key}\n")
    return path


def _add_bad_padding(uploads: Path) -> None:
    """A real file whose last plaintext byte is turned into 0: never valid PKCS#7.

    In CBC, flipping bits of the previous ciphertext block flips the same bits of the
    plaintext block after it.
    """
    data = bytearray((FIXTURES / "SOC_Task2_Sample_Logs.txt.enc").read_bytes())
    padding = 16 - len((FIXTURES / "SOC_Task2_Sample_Logs.txt").read_bytes()) % 16
    data[-17] ^= padding
    (uploads / "bad-padding.txt.enc").write_bytes(bytes(data))


def _add_truncated(uploads: Path) -> None:
    data = (FIXTURES / "task.pdf.enc").read_bytes()
    (uploads / "truncated.pdf.enc").write_bytes(data[:-5])


def test_it_imports_the_prototype_files_byte_for_byte(uploads, key_file, alice, alice_client):
    result = _import(uploads, key_file)

    assert result.exit_code == 0
    assert "imported 2 legacy files for 'alice', skipped 0" in result.out
    for name, content_type in PLAINTEXTS.items():
        stored = StoredFile.objects.get(owner=alice, name=name)
        assert stored.content_type == content_type
        assert download(alice_client, stored) == (FIXTURES / name).read_bytes()


def test_it_stores_no_plaintext(uploads, key_file, alice):
    _import(uploads, key_file)

    for stored in StoredFile.objects.all():
        blob = blob_path(stored).read_bytes()
        plaintext = (FIXTURES / stored.name).read_bytes()
        assert plaintext[:64] not in blob and plaintext[-64:] not in blob


def test_it_stops_and_imports_nothing_with_a_wrong_key(uploads, tmp_path, alice):
    result = _import(uploads, _write_key(tmp_path / "wrong.env", "6543210987654321"))

    assert result.exit_code == 1
    assert "the key is probably wrong. Nothing was imported." in str(result.error)
    assert not StoredFile.objects.exists()
    assert blob_names() == set()


def test_it_skips_damaged_files_and_imports_the_good_ones(uploads, key_file, alice, alice_client):
    _add_bad_padding(uploads)
    _add_truncated(uploads)

    result = _import(uploads, key_file)

    assert result.exit_code == 1  # 2 of 4 failed: not more than half, so the rest is kept
    assert "skipped 'bad-padding.txt.enc': bad padding (wrong key, or a damaged file)" in result.out
    assert "skipped 'truncated.pdf.enc': not a whole number of 16-byte blocks" in result.out
    assert "imported 2 legacy files for 'alice', skipped 2" in result.out
    assert sorted(StoredFile.objects.values_list("name", flat=True)) == sorted(PLAINTEXTS)
    assert blob_names() == set(StoredFile.objects.values_list("blob", flat=True))
    assert (
        download(alice_client, StoredFile.objects.get(name="task.pdf"))
        == (FIXTURES / "task.pdf").read_bytes()
    )


def test_it_rolls_back_files_already_stored_when_most_fail(uploads, key_file, alice):
    (uploads / "task.pdf.enc").unlink()
    _add_bad_padding(uploads)
    (uploads / "tiny.enc").write_bytes(b"\x00" * 20)

    result = _import(uploads, key_file)

    assert "skipped 'tiny.enc': shorter than 32 bytes" in result.out
    assert "2 of 3 files failed to decrypt: the key is probably wrong" in str(result.error)
    assert not StoredFile.objects.exists()
    assert blob_names() == set()  # the good file's blob, written first, is gone too


def test_it_stores_nothing_in_a_dry_run(uploads, key_file, alice):
    result = _import(uploads, key_file, "--dry-run")

    assert "would import 2 legacy files for 'alice', skipped 0" in result.out
    assert not StoredFile.objects.exists()
    assert blob_names() == set()


@pytest.mark.parametrize("key", ["123456789012345", "12345678901234567", "clé-de-seize-car"])
def test_it_refuses_a_key_of_the_wrong_size_or_alphabet(uploads, tmp_path, alice, key):
    result = _import(uploads, _write_key(tmp_path / "bad.env", key))

    assert "exactly 16, 24 or 32" in str(result.error) or "ASCII" in str(result.error)
    assert key not in str(result.error)
    assert not StoredFile.objects.exists()


def test_it_refuses_a_key_file_without_a_key_and_an_unknown_owner(
    uploads, key_file, tmp_path, alice
):
    (tmp_path / "empty.env").write_text("DEBUG=1\n")

    assert "no AES_KEY=... line" in str(_import(uploads, tmp_path / "empty.env").error)
    result = run("import_legacy", "--key-file", str(key_file), "--owner", "carol", str(uploads))
    assert "no user 'carol'" in str(result.error)


def test_it_decrypts_in_pieces_of_any_size():
    key = read_key_file(FIXTURES / "legacy.env")
    blob = (FIXTURES / "SOC_Task2_Sample_Logs.txt.enc").read_bytes()
    expected = (FIXTURES / "SOC_Task2_Sample_Logs.txt").read_bytes()

    for read_size in (16, 48, 4096):
        assert b"".join(decrypt_chunks(io.BytesIO(blob), key, read_size)) == expected
    with pytest.raises(LegacyFileError, match="shorter than 32 bytes"):
        b"".join(decrypt_chunks(io.BytesIO(blob[:16]), key))


def test_it_imports_nothing_past_the_owner_quota(uploads, key_file, alice, settings):
    settings.USER_QUOTA_MB = 1
    existing = make_file(alice, b"\x00" * 300_000)  # with the imports: over 1 MiB

    result = _import(uploads, key_file)

    assert "would exceed the storage quota of 'alice'; nothing was imported" in str(result.error)
    assert list(StoredFile.objects.all()) == [existing]
    assert blob_names() == {existing.blob.name}
