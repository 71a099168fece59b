from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from jobs import services as job_services
from sharing import selectors, services
from sharing.management.commands._maintenance import (
    MaintenanceCommand,
    add_dry_run,
    positive_int,
    shown,
)
from sharing.storage import get_encrypted_storage
from sharing.storage import s3 as storage_s3

BATCH = 500


class Command(MaintenanceCommand):
    help = (
        "Sweep the configured file storage (STORAGE_BACKEND): delete blobs that no file row "
        "points at and that were last modified more than --grace-hours ago. A server killed "
        "in the middle of an upload, or an interrupted reencrypt_files, leaves such blobs; "
        "the grace period keeps uploads still in progress. Also lists files whose blob is "
        "missing from storage (their rows are kept: run verify_files, restore the blob from "
        "a backup, or delete the file). On S3, also aborts multipart uploads started before "
        "the grace period, except those of unfinished resumable uploads. Deletes unfinished "
        "resumable (tus) uploads past their expiry, rows and blobs (on S3 their multipart "
        "uploads are aborted). Exits with status 1 if a blob could not be deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_dry_run(parser, "deleted")
        parser.add_argument(
            "--grace-hours",
            type=positive_int,
            default=24,
            metavar="HOURS",
            help="Keep unreferenced blobs modified less than this many hours ago "
            "(default 24, at least 1: an upload may still be writing them).",
        )

    def handle(self, *args: object, dry_run: bool, grace_hours: int, **options: object) -> None:
        cutoff = timezone.now() - timedelta(hours=grace_hours)
        if not dry_run:  # one sweep at a time, across machines; a killed one is redone
            self.lock_job("cleanup_storage", params={"grace_hours": grace_hours})
        counts: Counter[str] = Counter()
        self.start_progress(label="sweeping storage (blobs)", total=None)
        # Unfinished resumable uploads past their Upload-Expires: rows, then blobs.
        expired = services.resumable_purge_expired(now=timezone.now(), dry_run=dry_run)
        for upload in expired:
            verb = "would delete" if dry_run else "deleted"
            self.say(f"{verb}: expired resumable upload {upload.pk} (blob {upload.blob})")
        counts["expired_uploads"] = len(expired)
        batch: list[tuple[str, datetime]] = []
        for blob in get_encrypted_storage().list_blobs():
            batch.append(blob)
            if len(batch) >= BATCH:
                counts.update(self._sweep(batch, cutoff, dry_run=dry_run))
                batch = []
        counts.update(self._sweep(batch, cutoff, dry_run=dry_run))
        counts["missing"] = self._list_missing()
        counts["multipart"] = self._abort_stale_uploads(cutoff, dry_run=dry_run)
        self._summarise(counts, grace_hours=grace_hours, dry_run=dry_run)

    def _abort_stale_uploads(self, cutoff: datetime, *, dry_run: bool) -> int:
        """On S3, multipart uploads left by a killed server hold parts but no object."""
        inner = get_encrypted_storage().inner
        if not storage_s3.is_s3(inner):
            return 0
        # Unfinished resumable uploads are multipart uploads too: theirs are kept (an
        # expired one was aborted with its row above).
        keep = selectors.resumable_s3_upload_ids()
        return storage_s3.abort_stale_uploads(inner, cutoff, dry_run=dry_run, keep=keep)

    def _sweep(
        self, blobs: list[tuple[str, datetime]], cutoff: datetime, *, dry_run: bool
    ) -> Counter[str]:
        counts: Counter[str] = Counter()
        if not blobs:
            return counts
        self._advance(len(blobs))
        known = selectors.blob_names_referenced(names=[name for name, _ in blobs])
        for name, modified in blobs:
            if name in known:
                counts["referenced"] += 1
            elif modified >= cutoff:
                counts["young"] += 1
                self.say(f"kept: blob {name} has no row but is recent ({modified:%F %T})", level=2)
            else:
                counts[self._delete(name, dry_run=dry_run)] += 1
        return counts

    def _delete(self, name: str, *, dry_run: bool) -> str:
        if dry_run:
            self.say(f"would delete: orphan blob {name}")
            return "deleted"
        try:
            get_encrypted_storage().delete(name)
        except OSError as exc:
            self.say(f"failed: orphan blob {name}: {exc.strerror or exc}", style=self.style.ERROR)
            return "failed"
        self.say(f"deleted: orphan blob {name}")
        return "deleted"

    def _advance(self, count: int) -> None:
        """Progress on the terminal and on the job run, which also keeps its lock alive
        through a sweep of any length (nothing is recorded on a dry run, which holds no
        lock)."""
        if self.progress is not None:
            self.progress.advance(count)
        if self.job_run is not None:
            job_services.run_advance(self.job_run, count)

    def _list_missing(self) -> int:
        storage, missing = get_encrypted_storage(), 0
        for number, stored in enumerate(
            selectors.files_for_maintenance().iterator(chunk_size=BATCH), start=1
        ):
            if number % BATCH == 0:
                self._advance(0)  # the existence checks of a large store take long too
            if not storage.exists(stored.blob.name):
                missing += 1
                self.say(
                    f"missing: file {stored.pk} (owner {shown(stored.owner.get_username())}, "
                    f"name {shown(stored.name)}) has no blob {stored.blob.name}",
                    style=self.style.WARNING,
                )
        return missing

    def _summarise(self, counts: Counter[str], *, grace_hours: int, dry_run: bool) -> None:
        verb = "would delete" if dry_run else "deleted"
        summary = (
            f"{verb} {counts['deleted']} orphan blobs older than {grace_hours} h; "
            f"kept {counts['young']} recent orphans and {counts['referenced']} blobs in use; "
            f"{counts['missing']} files with a missing blob"
        )
        if counts["expired_uploads"]:
            summary += f"; {verb} {counts['expired_uploads']} expired resumable uploads"
        if counts["multipart"]:
            verb = "would abort" if dry_run else "aborted"
            summary += f"; {verb} {counts['multipart']} stale multipart uploads"
        if counts["failed"]:
            summary += f"; {counts['failed']} blobs could not be deleted"
        self.finish(summary, failed=bool(counts["failed"]))
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} orphan blob(s) could not be deleted")
