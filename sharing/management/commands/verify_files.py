from __future__ import annotations

from argparse import ArgumentTypeError
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, time

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from jobs import services as job_services
from securefiles.lib.auth_types import User
from sharing import selectors
from sharing.management.commands._maintenance import (
    ID_BATCH,
    MaintenanceCommand,
    add_batch_size,
    add_workers,
    shown,
)
from sharing.models import StoredFile
from sharing.services import maintenance
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
        add_workers(parser)
        add_batch_size(parser, default=ID_BATCH, checkpoint=True)

    def handle(
        self,
        *args: object,
        owner: str | None,
        since: date | None,
        workers: bool,
        **options: object,
    ) -> None:
        user = self._user(owner) if owner else None
        plan = job_services.RunPlan(
            name="verify_files",
            params={"owner": owner or "", "since": since.isoformat() if since else ""},
            handler="sharing.services.maintenance.files_verify_batch",
            ids=lambda: self._planned_ids(user, since),
            batch_size=int(options["batch_size"]),  # type: ignore[call-overload]
        )
        run = self.run_job(plan, label="verifying", inline=self._verify_batch, workers=workers)
        orphans = None if owner or since else self._count_orphans()
        self._summarise(Counter(run.counts), orphans)

    def _planned_ids(self, user: User | None, since: date | None) -> Iterator[str]:
        files = selectors.files_for_maintenance(owner=user)
        if since is not None:
            files = files.filter(
                created_at__gte=timezone.make_aware(datetime.combine(since, time.min))
            )
        return (str(pk) for pk in files.values_list("pk", flat=True).iterator(chunk_size=2000))

    def _verify_batch(self, ids: list[str], params: dict) -> dict[str, int]:
        counts: Counter[str] = Counter()
        files = {str(f.pk): f for f in selectors.files_for_maintenance().filter(pk__in=ids)}
        for file_id in ids:
            stored = files.get(file_id)
            counts[self._verify(stored) if stored is not None else "gone"] += 1
            if self.progress is not None:
                self.progress.advance()
        return dict(counts)

    def _user(self, username: str) -> User:
        try:
            return get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {shown(username)}") from None

    def _verify(self, stored: StoredFile) -> str:
        verdict = maintenance.file_verify(stored)
        if verdict.outcome == "ok":
            self.say(f"ok: file {stored.pk}", level=2)
            return "ok"
        return self._report(verdict.outcome, stored, verdict.detail)

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
        total = sum(counts.values()) - counts["gone"]
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


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {value!r}") from None
