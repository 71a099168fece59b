from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from django.core.management.base import CommandError, CommandParser
from django.db.models import QuerySet

from sharing import selectors, services
from sharing.crypto import KeyProblem
from sharing.management.commands._maintenance import MaintenanceCommand, add_batch_size, add_dry_run
from sharing.models import ResumableUpload, StoredFile
from sharing.storage.keyring import get_keyring


class Command(MaintenanceCommand):
    help = (
        "Re-wrap the data key of every file whose key id is not the primary (first) entry of "
        "ENCRYPTION_KEYS under the primary key. Only the 60-byte wrapped keys in the database "
        "change; no content is re-encrypted and no blob is touched. Each file commits on its "
        "own, in primary key order, so an interrupted run is resumed by running it again, and "
        "a run with nothing left to do changes nothing. A file whose master key is missing "
        "from ENCRYPTION_KEYS (or whose wrapped key does not open) is reported and skipped; "
        "the command then exits with status 1. Once it exits 0, the old key can be removed "
        "from ENCRYPTION_KEYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_batch_size(parser)
        add_dry_run(parser, "re-wrapped (each wrapped key is still test-opened)")

    def handle(self, *args: object, batch_size: int, dry_run: bool, **options: object) -> None:
        primary = get_keyring().primary.key_id
        pending = StoredFile.objects.exclude(key_id=primary).order_by("pk").only("id", "key_id")
        counts: Counter[str] = Counter(current=StoredFile.objects.filter(key_id=primary).count())
        progress = self.start_progress(label="rotating", total=pending.count())
        for batch in _batches(pending, batch_size):
            for stored in batch:
                counts[self._rotate(stored, dry_run=dry_run)] += 1
                progress.advance()
        # Unfinished resumable uploads hold a wrapped data key too: their next PATCH
        # unwraps it, so they must not keep needing the key about to be removed.
        for upload in ResumableUpload.objects.exclude(key_id=primary).order_by("pk"):
            outcome = self._rotate_upload(upload, dry_run=dry_run)
            if outcome in ("rotated", "failed"):  # "gone" or "current": nothing left to do
                counts["uploads" if outcome == "rotated" else "failed"] += 1
        self._summarise(counts, primary=primary, dry_run=dry_run)

    def _rotate(self, stored: StoredFile, *, dry_run: bool) -> str:
        old_key_id = stored.key_id
        try:
            if dry_run:
                selectors.file_data_key(file=stored)  # the wrapped key must open
                rotated = True
            else:
                rotated = services.file_rewrap_key(file=stored)
        except KeyProblem as exc:
            self.say(f"failed: file {stored.pk}: {exc}", style=self.style.ERROR)
            return "failed"
        except StoredFile.DoesNotExist:
            self.say(f"gone: file {stored.pk} was deleted meanwhile", level=2)
            return "gone"
        if not rotated:
            return "current"
        verb = "would re-wrap" if dry_run else "re-wrapped"
        self.say(f"{verb}: file {stored.pk} ({old_key_id!r} -> primary)", level=2)
        return "rotated"

    def _rotate_upload(self, upload: ResumableUpload, *, dry_run: bool) -> str:
        try:
            if dry_run:
                selectors.upload_data_key(upload=upload)
            elif not services.upload_rewrap_key(upload=upload):
                return "current"
        except KeyProblem as exc:
            self.say(f"failed: unfinished upload {upload.pk}: {exc}", style=self.style.ERROR)
            return "failed"
        except ResumableUpload.DoesNotExist:
            return "gone"  # finished (under the primary key), expired or terminated
        return "rotated"

    def _summarise(self, counts: Counter[str], *, primary: str, dry_run: bool) -> None:
        verb = "would rotate" if dry_run else "rotated"
        summary = (
            f"{verb} {counts['rotated']} files to key {primary!r}: "
            f"{counts['current']} already current, {counts['failed']} failed"
        )
        if counts["gone"]:
            summary += f", {counts['gone']} deleted meanwhile"
        if counts["uploads"]:
            verb = "would be re-wrapped" if dry_run else "re-wrapped"
            summary += f"; {counts['uploads']} unfinished upload(s) {verb}"
        if not dry_run and (counts["rotated"] or counts["uploads"] or counts["failed"]):
            services.keys_rotated_record(summary=summary)
        self.finish(summary, failed=bool(counts["failed"]))
        if counts["failed"]:
            raise CommandError(
                f"{counts['failed']} file(s) could not be re-wrapped: put their master key back "
                "in ENCRYPTION_KEYS (after the primary) and run rotate_keys again"
            )


def _batches(files: QuerySet[StoredFile], size: int) -> Iterator[list[StoredFile]]:
    """Walk a queryset ordered by pk in keyset pages: rows that stay behind (failures)
    are not read twice, and rows changed meanwhile never shift a page."""
    batch = list(files[:size])
    while batch:
        yield batch
        batch = list(files.filter(pk__gt=batch[-1].pk)[:size])
