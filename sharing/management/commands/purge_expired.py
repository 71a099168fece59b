from collections.abc import Iterator
from typing import Any

from django.core.management.base import CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from jobs import services as job_services
from sharing import services
from sharing.management.commands._maintenance import (
    ID_BATCH,
    MaintenanceCommand,
    add_batch_size,
    add_workers,
)
from sharing.models import StoredFile
from sharing.services import maintenance


def _ids(files: QuerySet[StoredFile]) -> Iterator[str]:
    return (str(pk) for pk in files.values_list("pk", flat=True).iterator(chunk_size=2000))


class Command(MaintenanceCommand):
    help = (
        "Delete files past their own expiry ('delete after N days' at upload) or older than "
        "RETENTION_DAYS, with their row, wrapped key, shares, links and blob; and delete "
        "expired share links. Safe to run from cron: a run already in progress (on any "
        "machine) makes this one stop with an error, and a run that was killed is resumed "
        "where it stopped. The wrapped keys survive in database backups until the master "
        "key that wrapped them is rotated out and retired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be deleted; change nothing."
        )
        add_workers(parser)
        add_batch_size(parser, default=ID_BATCH, checkpoint=True)

    def handle(self, *args: object, **options: Any) -> None:
        now = timezone.now()
        if options["dry_run"]:
            files = services.files_purge_expired(now=now, dry_run=True)
            links = services.links_purge_expired(now=now, dry_run=True)
            for stored in files:
                self.say(f"would delete {stored.id}", level=2)
            self.say(f"would delete {len(files)} expired file(s) and {links} expired link(s)")
            return
        plan = job_services.RunPlan(
            name="purge_expired",
            params={},
            handler="sharing.services.maintenance.files_purge_batch",
            ids=lambda: (
                str(pk) for pk in services.expired_files(now=now).values_list("pk", flat=True)
            ),
        )
        run = self.run_job(plan, label="purging", inline=self._purge, workers=options["workers"])
        links = services.links_purge_expired(now=timezone.now(), dry_run=False)
        deleted = run.counts.get("deleted", 0)
        summary = f"deleted {deleted} expired file(s) and {links} expired link(s)"
        self.finish(summary, failed=False)

    def _purge(self, ids: list[str], params: dict) -> dict[str, int]:
        counts = maintenance.files_purge_batch(
            ids, params, on_deleted=lambda file_id: self.say(f"deleted {file_id}", level=2)
        )
        if self.progress is not None:
            self.progress.advance(len(ids))
        return counts
