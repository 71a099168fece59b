import pytest

from sharing import selectors
from sharing.models import StoredFile
from tests.helpers import blob_path, make_file
from tests.helpers_keys import blob_names, download, new_key, run, use_keys

pytestmark = pytest.mark.django_db

BIG = bytes(range(256)) * 10_000  # 2.5 MiB: three segments, streamed one at a time


@pytest.fixture
def files(alice):
    return [
        make_file(alice, b"small"),
        make_file(alice, BIG, name="big.bin"),
        make_file(alice, b""),
    ]


def test_it_moves_every_file_to_a_new_blob_under_a_new_data_key(
    settings, files, alice_client, django_capture_on_commit_callbacks
):
    use_keys(settings, new_key("fresh"), settings.ENCRYPTION_KEYS)  # after a leak: new primary
    old_keys = [selectors.file_data_key(file=f).data_key for f in files]

    with django_capture_on_commit_callbacks(execute=True):
        result = run("reencrypt_files", "--batch-size", "2")

    assert result.exit_code == 0
    assert "re-encrypted 3 files, 0 failed" in result.out
    assert f"checkpoint: done through file {files[2].pk} (--after {files[2].pk})" in result.out
    for before, old_key in zip(files, old_keys, strict=True):
        after = StoredFile.objects.get(pk=before.pk)  # same id: URLs and links keep working
        assert after.blob.name != before.blob.name
        assert not blob_path(before).exists()  # old blob gone after the commit
        assert selectors.file_data_key(file=after).data_key != old_key
        assert after.key_id == "fresh"
        assert bytes(after.digest) != bytes(before.digest)  # keyed by the new data key
    assert blob_names() == {f.blob.name for f in StoredFile.objects.all()}
    assert [download(alice_client, f) for f in files] == [b"small", BIG, b""]
    assert run("verify_files").exit_code == 0


def test_it_changes_nothing_in_a_dry_run(files):
    rows = {f.pk: (f.blob.name, bytes(f.wrapped_key)) for f in StoredFile.objects.all()}
    blobs = blob_names()

    result = run("reencrypt_files", "--dry-run")

    assert "would re-encrypt 3 files, 0 failed" in result.out
    assert {f.pk: (f.blob.name, bytes(f.wrapped_key)) for f in StoredFile.objects.all()} == rows
    assert blob_names() == blobs


def test_it_resumes_after_the_checkpoint_given(files, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = run("reencrypt_files", "--after", str(files[0].pk))

    assert "re-encrypted 2 files, 0 failed" in result.out
    names = [StoredFile.objects.get(pk=f.pk).blob.name for f in files]
    assert names[0] == files[0].blob.name
    assert names[1] != files[1].blob.name and names[2] != files[2].blob.name


def test_it_leaves_a_corrupt_file_alone_and_keeps_nothing_new(
    files, django_capture_on_commit_callbacks
):
    path = blob_path(files[1])
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x80  # in the last segment: the first two are already copied by then
    path.write_bytes(bytes(data))

    with django_capture_on_commit_callbacks(execute=True):
        result = run("reencrypt_files")

    assert result.exit_code == 1
    assert f"failed: file {files[1].pk} (blob {files[1].blob.name})" in result.out
    assert "re-encrypted 2 files, 1 failed" in result.out
    assert StoredFile.objects.get(pk=files[1].pk).blob.name == files[1].blob.name
    assert blob_names() == {f.blob.name for f in StoredFile.objects.all()}  # no partial copy


def test_it_refuses_an_unknown_checkpoint(files):
    result = run("reencrypt_files", "--after", "00000000-0000-4000-8000-000000000000")

    assert "resume from an earlier checkpoint" in str(result.error)
