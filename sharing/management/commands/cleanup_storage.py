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
    add_workers,
    positive_int,
    shown,
)
from sharing.services import maintenance
from sharing.storage import get_encrypted_storage
from sharing.storage import s3 as storage_s3
from sharing.storage.encrypted import BLOB_FOLDERS

BATCH = 500
SWEEP_LABEL = "sweeping storage (folders of blobs/)"


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
        "uploads are aborted). The sweep goes folder by folder (the 256 folders of blobs/), "
        "each a checkpoint: a sweep that was interrupted (even killed) is resumed by the next "
        "run with the same --grace-hours from its first unfinished folder; --workers splits "
        "the folders across the job workers (manage.py db_worker). A sweep already in "
        "progress on any machine makes this one stop with an error. "
        "Exits with status 1 if a blob could not be deleted."
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
        add_workers(parser, batches="the 256 folders of blobs/")

    def handle(
        self, *args: object, dry_run: bool, grace_hours: int, workers: bool, **options: object
    ) -> None:
        counts: Counter[str] = Counter()
        if dry_run:  # no lock, no run: nothing changes
            self.start_progress(label=SWEEP_LABEL, total=len(BLOB_FOLDERS))
            counts.update(self._sweep(list(BLOB_FOLDERS), {"grace_hours": grace_hours}, True))
        else:  # one sweep at a time, across machines; a killed one resumes at its folder
            plan = job_services.RunPlan(
                name="cleanup_storage",
                # "sweep" keeps a run of the older, unbatched sweep from being resumed
                # (it planned no batches: resuming it would sweep nothing).
                params={"grace_hours": grace_hours, "sweep": "folders"},
                handler="sharing.services.maintenance.blobs_sweep_batch",
                ids=lambda: BLOB_FOLDERS,
                batch_size=1,
            )
            run = self.run_job(plan, label=SWEEP_LABEL, inline=self._sweep, workers=workers)
            counts.update(run.counts)
        # Unfinished resumable uploads past their Upload-Expires: rows, then blobs (their
        # blobs were referenced, hence kept, during the sweep).
        expired = services.resumable_purge_expired(now=timezone.now(), dry_run=dry_run)
        for upload in expired:
            verb = "would delete" if dry_run else "deleted"
            self.say(f"{verb}: expired resumable upload {upload.pk} (blob {upload.blob})")
        counts["expired_uploads"] = len(expired)
        counts["missing"] = self._list_missing()
        cutoff = timezone.now() - timedelta(hours=grace_hours)
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

    def _sweep(self, folders: list[str], params: dict, dry_run: bool = False) -> dict[str, int]:
        """Sweep these folders of blobs/ in this process (one checkpointed batch of a run,
        or all of them on a dry run), each blob's fate on stdout."""
        cutoff = timezone.now() - timedelta(hours=int(params["grace_hours"]))
        counts: Counter[str] = Counter()
        for folder in folders:
            if dry_run:
                blobs = get_encrypted_storage().list_blobs(folder)
                counts.update(
                    maintenance.blobs_sweep(blobs, cutoff=cutoff, dry_run=True, on_blob=self._say)
                )
            else:
                counts.update(maintenance.blobs_sweep_batch([folder], params, on_blob=self._say))
            if self.progress is not None:
                self.progress.advance()
        return dict(counts)

    def _say(self, outcome: str, name: str, modified: datetime) -> None:
        if outcome == "young":
            self.say(f"kept: blob {name} has no row but is recent ({modified:%F %T})", level=2)
        elif outcome == "deleted":
            verb = "deleted" if self.job_run is not None else "would delete"
            self.say(f"{verb}: orphan blob {name}")
        elif outcome == "failed":
            self.say(f"failed: orphan blob {name}", style=self.style.ERROR)

    def _list_missing(self) -> int:
        storage, missing = get_encrypted_storage(), 0
        for number, stored in enumerate(
            selectors.files_for_maintenance().iterator(chunk_size=BATCH), start=1
        ):
            if number % BATCH == 0:
                if self.job_run is not None:  # the existence checks take long too
                    job_services.run_heartbeat(self.job_run)
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
