from __future__ import annotations

import hmac
from argparse import ArgumentTypeError
from collections import Counter
from datetime import date, datetime, time

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from securefiles.lib.auth_types import User
from sharing import selectors
from sharing.crypto import BlobIntegrityError, FileKey, InvalidTag, KeyProblem, open_sha256
from sharing.crypto.stream import measure_all
from sharing.management.commands._maintenance import MaintenanceCommand, shown
from sharing.models import StoredFile
from sharing.storage import get_encrypted_storage

ORPHAN_BATCH = 500


class Command(MaintenanceCommand):
    help = (
        "Decrypt every file end to end and check it against its database row: the blob must "
        "exist, every segment must authenticate under the file's data key, and the plaintext "
        "size, keyed digest and sealed SHA-256 must match the row. Plaintext is only hashed, "
        "never written anywhere. Reports missing blobs, corrupt blobs (failed "
        "authentication), size, digest or sealed SHA-256 mismatches (a seal that does not "
        "open counts too), data keys that cannot be unwrapped (master key missing from "
        "ENCRYPTION_KEYS), and, when no filter is given, orphan blobs: blobs in storage that "
        "no file row points at (on a live server, an upload in progress shows up as one). "
        "Run it after every restore from backup. Exits with status 1 on any problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", metavar="USERNAME", help="Only this user's files.")
        parser.add_argument(
            "--since",
            type=_day,
            metavar="YYYY-MM-DD",
            help="Only files uploaded on or after this day (in TIME_ZONE).",
        )

    def handle(
        self, *args: object, owner: str | None, since: date | None, **options: object
    ) -> None:
        files = selectors.files_for_maintenance(owner=self._user(owner) if owner else None)
        if since is not None:
            files = files.filter(
                created_at__gte=timezone.make_aware(datetime.combine(since, time.min))
            )
        counts: Counter[str] = Counter()
        progress = self.start_progress(label="verifying", total=files.count())
        for stored in files.iterator(chunk_size=500):
            counts[self._verify(stored)] += 1
            progress.advance()
        orphans = None if owner or since else self._count_orphans()
        self._summarise(counts, orphans)

    def _user(self, username: str) -> User:
        try:
            return get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {shown(username)}") from None

    def _verify(self, stored: StoredFile) -> str:
        storage = get_encrypted_storage()
        problem = None
        try:
            key = selectors.file_data_key(file=stored)
            if not storage.exists(stored.blob.name):
                return self._report("missing", stored, "blob not in storage")
            size, digest, sha256 = measure_all(storage.open_plaintext(stored.blob.name, key), key)
        except KeyProblem as exc:
            return self._report("key error", stored, str(exc))
        except FileNotFoundError:
            return self._report("missing", stored, "blob not in storage")
        except OSError as exc:
            return self._report("missing", stored, f"blob unreadable: {exc.strerror or exc}")
        except BlobIntegrityError:
            return self._report("corrupt", stored, "blob failed authentication")
        if size != stored.size:
            problem = f"plaintext is {size} bytes, the row says {stored.size}"
        elif not hmac.compare_digest(digest, bytes(stored.digest)):
            problem = "plaintext digest differs from the row"
        else:
            problem = _seal_problem(stored, key, sha256)
        if problem:
            return self._report("mismatched", stored, problem)
        self.say(f"ok: file {stored.pk}", level=2)
        return "ok"

    def _report(self, outcome: str, stored: StoredFile, detail: str) -> str:
        owner = shown(stored.owner.get_username())
        self.say(
            f"{outcome}: file {stored.pk} (owner {owner}, blob {stored.blob.name}): {detail}",
            style=self.style.ERROR,
        )
        return outcome

    def _count_orphans(self) -> int:
        orphans, batch = 0, []
        for name, _modified in get_encrypted_storage().list_blobs():
            batch.append(name)
            if len(batch) >= ORPHAN_BATCH:
                orphans += self._report_orphans(batch)
                batch = []
        return orphans + self._report_orphans(batch)

    def _report_orphans(self, names: list[str]) -> int:
        known = selectors.blob_names_referenced(names=names) if names else set()
        orphans = [name for name in names if name not in known]
        for name in orphans:
            self.say(f"orphan: blob {name} has no file row", style=self.style.WARNING)
        return len(orphans)

    def _summarise(self, counts: Counter[str], orphans: int | None) -> None:
        total = sum(counts.values())
        problems = total - counts["ok"] + (orphans or 0)
        summary = (
            f"verified {total} files: {counts['ok']} ok, {counts['missing']} missing, "
            f"{counts['corrupt']} corrupt, {counts['mismatched']} mismatched, "
            f"{counts['key error']} key errors"
        )
        if orphans is not None:
            summary += f"; {orphans} orphan blob{'' if orphans == 1 else 's'}"
        self.finish(summary, failed=bool(problems))
        if problems:
            raise CommandError(f"verification found {problems} problem(s): {summary}")


def _seal_problem(stored: StoredFile, key: FileKey, measured: bytes) -> str | None:
    """What is wrong with the row's sealed SHA-256 (the one its page shows), if anything.

    A row from before the column has no seal, which is not a problem.
    """
    if not stored.sha256_sealed:
        return None
    try:
        sealed = open_sha256(key, bytes(stored.sha256_sealed))
    except InvalidTag:
        return "sealed SHA-256 does not open (damaged or altered)"
    if not hmac.compare_digest(sealed, measured):
        return "sealed SHA-256 differs from the plaintext's"
    return None


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {value!r}") from None
