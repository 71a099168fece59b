import hashlib
import io
import shutil
from pathlib import Path

import pytest

from audit.events import Event
from audit.models import AuditEntry
from sharing.crypto.legacy import LegacyFileError, decrypt_chunks, read_key_file
from sharing.models import StoredFile
from tests.helpers import blob_path, make_file
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


# ---------------------------------------------------------------------------- no MAC in CBC

TEXT = "SOC_Task2_Sample_Logs.txt"
LEGACY_MARK = "Imported from the unauthenticated legacy format"


def _flip_iv(uploads: Path) -> None:
    """Turn the log's first character "2" into "9" ("2025-07-03" into "9025-07-03"): in CBC
    an IV bit flip flips the same bit of the first plaintext block, and the padding, at
    the end, still checks out. Nothing in the legacy format can notice."""
    path = uploads / f"{TEXT}.enc"
    data = bytearray(path.read_bytes())
    data[0] ^= ord("2") ^ ord("9")
    path.write_bytes(bytes(data))


def _manifest(tmp_path: Path, names=tuple(PLAINTEXTS), star: bool = False) -> Path:
    """The SHA-256 of the original files, exactly as `sha256sum` prints them."""
    lines = [
        f"{hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest()} {'*' if star else ' '}"
        f"originals/{name}\n"
        for name in names
    ]
    path = tmp_path / "SHA256SUMS"
    path.write_text("".join(lines))
    return path


def _upload_details() -> dict[str, str]:
    return dict(AuditEntry.objects.filter(event=Event.UPLOAD).values_list("file_name", "detail"))


def test_without_a_manifest_a_flipped_iv_imports_altered_content(uploads, key_file, alice):
    # Why --manifest exists: this import "succeeds" with the wrong bytes.
    _flip_iv(uploads)

    result = _import(uploads, key_file)

    assert result.exit_code == 0
    stored = StoredFile.objects.get(name=TEXT)
    assert stored.origin == StoredFile.Origin.LEGACY
    assert "manifest_checked=no" in _upload_details()[TEXT]


@pytest.mark.parametrize("star", [False, True], ids=["text mode", "binary mode"])
def test_it_imports_files_that_match_the_manifest(uploads, key_file, tmp_path, alice, star):
    result = _import(uploads, key_file, "--manifest", str(_manifest(tmp_path, star=star)))

    assert result.exit_code == 0
    assert "imported 2 legacy files for 'alice', skipped 0" in result.out
    for name in PLAINTEXTS:
        assert _upload_details()[name].endswith("imported=legacy-cbc manifest_checked=yes")


def test_it_skips_a_file_the_manifest_catches_as_tampered(
    uploads, key_file, tmp_path, alice, alice_client
):
    _flip_iv(uploads)

    result = _import(uploads, key_file, "--manifest", str(_manifest(tmp_path)))

    assert result.exit_code == 1
    assert f"skipped '{TEXT}.enc': its SHA-256 differs from the manifest" in result.out
    assert list(StoredFile.objects.values_list("name", flat=True)) == ["task.pdf"]
    assert blob_names() == set(StoredFile.objects.values_list("blob", flat=True))
    assert download(alice_client, StoredFile.objects.get()) == (FIXTURES / "task.pdf").read_bytes()


def test_it_skips_a_file_missing_from_the_manifest(uploads, key_file, tmp_path, alice):
    result = _import(uploads, key_file, "--manifest", str(_manifest(tmp_path, ["task.pdf"])))

    assert result.exit_code == 1
    assert f"skipped '{TEXT}.enc': '{TEXT}' is not in the manifest" in result.out
    assert list(StoredFile.objects.values_list("name", flat=True)) == ["task.pdf"]


@pytest.mark.parametrize("damage", ["bad padding", "tampered", "not in the manifest"])
def test_strict_imports_nothing_if_any_file_would_be_skipped(
    uploads, key_file, tmp_path, alice, damage
):
    manifest = _manifest(tmp_path, ["task.pdf"] if damage == "not in the manifest" else PLAINTEXTS)
    if damage == "bad padding":
        _add_bad_padding(uploads)  # 1 of 3: a plain run would import the other two
    if damage == "tampered":
        _flip_iv(uploads)
    extra = () if damage == "bad padding" else ("--manifest", str(manifest))

    result = _import(uploads, key_file, "--strict", *extra)

    assert result.exit_code == 1
    assert "--strict: 1 of" in str(result.error) and "nothing was imported" in str(result.error)
    assert not StoredFile.objects.exists()
    assert blob_names() == set()
    assert not AuditEntry.objects.filter(event=Event.UPLOAD).exists()


def test_strict_imports_a_clean_folder(uploads, key_file, tmp_path, alice):
    result = _import(uploads, key_file, "--strict", "--manifest", str(_manifest(tmp_path)))

    assert result.exit_code == 0
    assert StoredFile.objects.count() == 2


@pytest.mark.parametrize(
    "content", ["not a manifest\n", f"{'ab' * 32}task.pdf\n", f"{'ab' * 31}  task.pdf\n", ""]
)
def test_it_refuses_a_malformed_manifest_before_importing(
    uploads, key_file, tmp_path, alice, content
):
    path = tmp_path / "bad.sha256"
    path.write_text(content)

    result = _import(uploads, key_file, "--manifest", str(path))

    assert result.exit_code == 1
    assert "manifest" in str(result.error)
    assert not StoredFile.objects.exists()


def test_the_file_list_and_page_mark_imported_files(uploads, key_file, alice, alice_client):
    _import(uploads, key_file)
    uploaded = make_file(alice, b"uploaded here", name="uploaded.txt")
    imported = StoredFile.objects.get(name="task.pdf")

    rows = alice_client.get("/").content.decode().split("<tr>")
    [imported_row] = [row for row in rows if ">task.pdf</a>" in row]
    [uploaded_row] = [row for row in rows if ">uploaded.txt</a>" in row]
    assert LEGACY_MARK in imported_row
    assert LEGACY_MARK not in uploaded_row
    assert LEGACY_MARK in alice_client.get(f"/files/{imported.id}/").content.decode()
    assert LEGACY_MARK not in alice_client.get(f"/files/{uploaded.id}/").content.decode()
    assert uploaded.origin == StoredFile.Origin.UPLOAD
