from __future__ import annotations

import hmac
import mimetypes
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from audit.actors import Actor
from securefiles.lib.auth_types import User
from sharing import services
from sharing.crypto import FileKey
from sharing.crypto.legacy import LegacyFileError, LegacyKeyError, decrypt_chunks, read_key_file
from sharing.management.commands._maintenance import MaintenanceCommand, add_dry_run, shown
from sharing.storage import StoredBlob, get_encrypted_storage

if TYPE_CHECKING:
    from hashlib import _Hash

SUFFIX = ".enc"
ACTOR = Actor(label="import_legacy")
# One line of `sha256sum` output: 64 hex digits, a space, a space or "*" (binary mode),
# then the name. A line sha256sum starts with "\\" (a name it had to escape) is refused.
MANIFEST_LINE = re.compile(r"(?P<hex>[0-9a-fA-F]{64}) [ *](?P<name>.+)")


@dataclass(frozen=True)
class _Imported:
    name: str
    key: FileKey
    blob: StoredBlob


class Command(MaintenanceCommand):
    help = (
        "Import the Flask prototype's encrypted uploads: every DIR/*.enc file "
        "(IV || AES-CBC(PKCS#7(plaintext)) under the raw key of the prototype's .env) becomes "
        "a file owned by USERNAME, named without .enc, its type guessed from the name. Each "
        "file is decrypted as a stream straight into this portal's encrypted storage under a "
        "new data key; no plaintext is written to disk. Files that are too short, not whole "
        "16-byte blocks or badly padded are reported and skipped, leaving nothing behind. "
        "CBC has no integrity check, so a wrong key still lets about one file in 256 through: "
        "when more than half of the files fail, the command stops and imports nothing, "
        "assuming the key is wrong. Rows are created together at the end, so an interrupted "
        "run imports nothing (cleanup_storage removes its blobs). Running it twice imports "
        "the files twice. Exits with status 1 if any file was skipped; with --strict, any "
        "file that would be skipped stops the run and nothing is imported. With --manifest, "
        "each decrypted file must match its SHA-256 there (the only integrity check CBC "
        "files can have). Imported files are marked as such on the file list and page and "
        "in the audit log (imported=legacy-cbc, manifest_checked=yes|no)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "directory",
            type=Path,
            metavar="DIR",
            help="The prototype's uploads/ folder holding the *.enc files (not recursive).",
        )
        parser.add_argument(
            "--key-file",
            type=Path,
            required=True,
            metavar="PATH",
            help="The prototype's .env file, with a line AES_KEY=<16, 24 or 32 ASCII characters>.",
        )
        parser.add_argument(
            "--owner", required=True, metavar="USERNAME", help="Existing user to own the files."
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Refuse the whole run, importing nothing, if any file would be skipped "
            "(bad padding, damaged, not in the manifest or not matching it).",
        )
        parser.add_argument(
            "--manifest",
            type=Path,
            metavar="PATH",
            help="SHA-256 values of the original files, as `sha256sum` prints them "
            "(<64 hex>  <name>, the name without .enc; only its last path part counts). "
            "Each decrypted file must match its line; a file that does not, or has no "
            "line, is skipped. CBC has no MAC: this is the only way to know an imported "
            "file is the one that was uploaded.",
        )
        add_dry_run(parser, "imported (every file is still decrypted and its padding checked)")

    def handle(
        self,
        *args: object,
        directory: Path,
        key_file: Path,
        owner: str,
        dry_run: bool,
        strict: bool = False,
        manifest: Path | None = None,
        **options: object,
    ) -> None:
        try:
            key = read_key_file(key_file)
        except LegacyKeyError as exc:
            raise CommandError(str(exc)) from None
        expected = _read_manifest(manifest) if manifest is not None else None
        user = _owner(owner)
        paths = _legacy_files(directory)
        done: list[_Imported] = []
        try:
            skipped = self._import_all(paths, key, done, dry_run=dry_run, expected=expected)
            if strict and skipped:
                raise CommandError(
                    f"--strict: {skipped} of {len(paths)} file(s) would be skipped (see "
                    "above); nothing was imported"
                )
            _record(user, done, manifest_checked=expected is not None)
        except services.QuotaExceeded:
            _discard(done)
            raise CommandError(
                f"the files would exceed the storage quota of {shown(owner)}; nothing was imported"
            ) from None
        except BaseException:
            _discard(done)
            raise
        self._summarise(len(paths) - skipped, skipped, owner=owner, dry_run=dry_run)

    def _import_all(
        self,
        paths: list[Path],
        key: bytes,
        done: list[_Imported],
        *,
        dry_run: bool,
        expected: dict[str, bytes] | None,
    ) -> int:
        """Store every file's blob (in ``done``); return how many files were skipped."""
        progress = self.start_progress(label="importing", total=len(paths))
        skipped = 0
        for path in paths:
            ok = self._import_one(path, key, done, dry_run=dry_run, expected=expected)
            progress.advance()
            if ok:
                continue
            skipped += 1
            if skipped * 2 > len(paths):
                raise CommandError(
                    f"{skipped} of {len(paths)} files failed to decrypt: the key is probably "
                    "wrong. Nothing was imported."
                )
        return skipped

    def _import_one(
        self,
        path: Path,
        key: bytes,
        done: list[_Imported],
        *,
        dry_run: bool,
        expected: dict[str, bytes] | None,
    ) -> bool:
        name = path.name[: -len(SUFFIX)]
        wanted = None
        if expected is not None:
            wanted = expected.get(name)
            if wanted is None:
                return self._skip(path, f"{shown(name)} is not in the manifest")
        try:
            source = path.open("rb")
        except OSError as exc:
            return self._skip(path, f"cannot read it: {exc.strerror}")
        file_key = FileKey.generate()
        hashed = sha256()
        blob = None
        try:
            with source:
                plaintext = _hashing(decrypt_chunks(source, key), hashed)
                if dry_run:
                    for _chunk in plaintext:
                        pass  # decrypted and checked, then dropped
                else:
                    blob = get_encrypted_storage().save_plaintext(plaintext, file_key)
        except LegacyFileError as exc:  # save_plaintext has already removed its blob
            return self._skip(path, str(exc))
        if wanted is not None and not hmac.compare_digest(hashed.digest(), wanted):
            if blob is not None:
                get_encrypted_storage().delete(blob.name)
            return self._skip(path, "its SHA-256 differs from the manifest (tampered or wrong key)")
        if blob is not None:
            done.append(_Imported(name, file_key, blob))
        self.say(f"{'would import' if dry_run else 'imported'} {shown(path.name)}", level=2)
        return True

    def _skip(self, path: Path, reason: str) -> bool:
        self.say(f"skipped {shown(path.name)}: {reason}", style=self.style.ERROR)
        return False

    def _summarise(self, imported: int, skipped: int, *, owner: str, dry_run: bool) -> None:
        verb = "would import" if dry_run else "imported"
        summary = f"{verb} {imported} legacy files for {shown(owner)}, skipped {skipped}"
        self.finish(summary, failed=bool(skipped))
        if skipped:
            raise CommandError(f"{skipped} file(s) could not be imported (see above); {summary}")


def _owner(username: str) -> User:
    try:
        return get_user_model().objects.get_by_natural_key(username)
    except get_user_model().DoesNotExist:
        raise CommandError(f"no user {shown(username)}") from None


def _legacy_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise CommandError(f"{str(directory)!r} is not a directory")
    paths = sorted(path for path in directory.glob(f"*{SUFFIX}") if path.is_file())
    if not paths:
        raise CommandError(f"no *{SUFFIX} files in {str(directory)!r}")
    return paths


def _hashing(chunks: Iterable[bytes], hashed: _Hash) -> Iterator[bytes]:
    """Pass the chunks through, feeding each to ``hashed`` on the way."""
    for chunk in chunks:
        hashed.update(chunk)
        yield chunk


def _read_manifest(path: Path) -> dict[str, bytes]:
    """{file name: SHA-256} from `sha256sum` output; CommandError naming a bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the manifest {str(path)!r}: {exc}") from None
    digests: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = MANIFEST_LINE.fullmatch(line.rstrip("\r"))
        if match is None:
            raise CommandError(
                f"manifest {str(path)!r}, line {number}: expected `<64 hex digits>  <name>` "
                "as sha256sum prints it"
            )
        name = match["name"].replace("\\", "/").rsplit("/", 1)[-1]
        digest = bytes.fromhex(match["hex"])
        if digests.setdefault(name, digest) != digest:
            raise CommandError(
                f"manifest {str(path)!r}, line {number}: {shown(name)} is listed twice with "
                "different SHA-256 values"
            )
    if not digests:
        raise CommandError(f"the manifest {str(path)!r} lists no file")
    return digests


def _record(owner: User, imported: list[_Imported], *, manifest_checked: bool) -> None:
    """Create every row in one transaction: all files appear, or none."""
    with transaction.atomic():
        for item in imported:
            content_type, _encoding = mimetypes.guess_type(item.name, strict=False)
            services.file_create_imported(
                owner=owner,
                name=item.name,
                content_type=content_type or "application/octet-stream",
                key=item.key,
                blob=item.blob,
                actor=ACTOR,
                legacy=True,
                manifest_checked=manifest_checked,
            )


def _discard(imported: list[_Imported]) -> None:
    """Delete the blobs of a run that stopped: nothing partial is kept."""
    storage = get_encrypted_storage()
    for item in imported:
        storage.delete(item.blob.name)
