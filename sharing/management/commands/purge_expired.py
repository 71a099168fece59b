from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from sharing import services


class Command(BaseCommand):
    help = (
        "Delete files past their own expiry ('delete after N days' at upload) or older than "
        "RETENTION_DAYS, with their row, wrapped key, shares, links and blob; and delete "
        "expired share links. Safe to run from cron. The wrapped keys survive in database "
        "backups until the master key that wrapped them is rotated out and retired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be deleted; change nothing."
        )

    def handle(self, *args: object, **options: Any) -> None:
        dry_run = bool(options["dry_run"])
        verbosity = int(options["verbosity"])
        now = timezone.now()
        files = services.files_purge_expired(now=now, dry_run=dry_run)
        links = services.links_purge_expired(now=now, dry_run=dry_run)
        if verbosity >= 2:
            for stored in files:
                self.stdout.write(f"{'would delete' if dry_run else 'deleted'} {stored.id}")
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {len(files)} expired file(s) and {links} expired link(s)")
