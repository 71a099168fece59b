from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

from django.core.management.base import CommandError, CommandParser
from django.db.models import Q, QuerySet
from django.utils import timezone

from jobs import services as job_services
from sharing import selectors, services
from sharing.crypto import KeyProblem
from sharing.management.commands._maintenance import (
    MaintenanceCommand,
    add_batch_size,
    add_dry_run,
    add_workers,
)
from sharing.models import StoredFile
from sharing.services import maintenance
from sharing.storage import EncryptedStorage, get_encrypted_storage


class Command(MaintenanceCommand):
    help = (
        "Re-encrypt the content of every file under a fresh data key, for the day a master "
        "key and the database leaked together (first put a new key first in ENCRYPTION_KEYS: "
        "the new data keys are wrapped under the primary). For each file, oldest first: "
        "stream-decrypt its blob into a new blob under a new data key (same file id, so "
        "links and URLs keep working), read the new blob back and check its size and digest, "
        "then switch the row to it in one small transaction; the old blob is deleted only "
        "after that commits. Memory stays about two segments per file. Files uploaded after "
        "the run started already have fresh keys and are left alone. After every batch a "
        "checkpoint line names the last file done. A run that was interrupted (even killed) "
        "is resumed by the next run with the same --after, skipping the batches it finished "
        "(and, in a batch it was in, the files it had already switched); --workers splits "
        "the batches across the job workers (manage.py db_worker) and waits for them; "
        "a run already in progress on any machine makes this one stop with an error. "
        "A crash leaves at most one unreferenced new blob, which cleanup_storage removes. "
        "Exits with status 1 if any file could not be re-encrypted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_batch_size(parser, default=50, checkpoint=True)
        add_workers(parser)
        add_dry_run(parser, "re-encrypted")
        parser.add_argument(
            "--after",
            type=uuid.UUID,
            metavar="FILE_ID",
            help="Resume after this file (the id in the last checkpoint line of a run).",
        )

    def handle(
        self,
        *args: object,
        batch_size: int,
        dry_run: bool,
        after: uuid.UUID | None,
        workers: bool,
        **options: object,
    ) -> None:
        files = selectors.files_for_maintenance().filter(created_at__lte=timezone.now())
        if after is not None:
            files = files.filter(_after(_checkpoint(after)))
        if not dry_run:
            plan = job_services.RunPlan(
                name="reencrypt_files",
                params={"after": str(after or "")},
                handler="sharing.services.maintenance.files_reencrypt_batch",
                ids=lambda: _planned_ids(files),
                batch_size=batch_size,
            )
            run = self.run_job(plan, label="re-encrypting", inline=self._batch, workers=workers)
            self._summarise(Counter(run.counts), dry_run=False)
            return
        counts: Counter[str] = Counter()
        progress = self.start_progress(label="re-encrypting", total=files.count())
        for batch in _batches(files, batch_size):
            for stored in batch:
                counts[self._would(get_encrypted_storage(), stored)] += 1
                progress.advance()
        self._summarise(counts, dry_run=True)

    def _batch(self, ids: list[str], params: dict) -> dict[str, int]:
        """One checkpointed batch of a run in this process (the run's planned ids, in
        files_for_maintenance order), each file's outcome on stdout."""
        counts: Counter[str] = Counter()
        for planned in ids:
            counts[self._reencrypt(planned)] += 1
            if self.progress is not None:
                self.progress.advance()
        last = maintenance.reencrypt_plan_parse(ids[-1])[0]
        self.say(f"checkpoint: done through file {last} (--after {last})")
        return dict(counts)

    def _reencrypt(self, planned: str) -> str:
        file_id, blob = maintenance.reencrypt_plan_parse(planned)
        verdict = maintenance.file_reencrypt(planned)
        if verdict.outcome == "failed":
            self.say(
                f"failed: file {file_id} (blob {blob}): {verdict.detail}", style=self.style.ERROR
            )
        elif verdict.outcome == "reencrypted":
            self.say(f"re-encrypted: file {file_id}", level=2)
        else:
            self.say(f"{verdict.outcome}: file {file_id} ({verdict.detail})", level=2)
        return verdict.outcome

    def _would(self, storage: EncryptedStorage, stored: StoredFile) -> str:
        try:
            selectors.file_data_key(file=stored)
        except KeyProblem as exc:
            return self._failed(stored, str(exc))
        if not storage.exists(stored.blob.name):
            return self._failed(stored, "blob not in storage")
        self.say(f"would re-encrypt: file {stored.pk}", level=2)
        return "reencrypted"

    def _failed(self, stored: StoredFile, detail: str) -> str:
        self.say(
            f"failed: file {stored.pk} (blob {stored.blob.name}): {detail}", style=self.style.ERROR
        )
        return "failed"

    def _summarise(self, counts: Counter[str], *, dry_run: bool) -> None:
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        summary = f"{verb} {counts['reencrypted']} files, {counts['failed']} failed"
        if counts["gone"]:
            summary += f", {counts['gone']} deleted or changed meanwhile"
        if counts["already"]:
            summary += f", {counts['already']} already re-encrypted by the interrupted attempt"
        if not dry_run and (counts["reencrypted"] or counts["failed"]):
            services.content_reencrypted_record(summary=summary)
        self.finish(summary, failed=bool(counts["failed"]))
        if counts["failed"]:
            raise CommandError(
                f"{counts['failed']} file(s) could not be re-encrypted; "
                "run verify_files for details"
            )


def _planned_ids(files: QuerySet[StoredFile]) -> Iterator[str]:
    """Each file as "<id> <blob>" (see maintenance.file_reencrypt), in the run's order."""
    rows = files.values_list("pk", "blob").iterator(chunk_size=2000)
    return (maintenance.reencrypt_plan_id(str(pk), blob) for pk, blob in rows)


def _checkpoint(file_id: uuid.UUID) -> StoredFile:
    found = StoredFile.objects.filter(pk=file_id).only("id", "created_at").first()
    if found is None:
        raise CommandError(
            f"no file {file_id} (deleted since?): resume from an earlier checkpoint instead"
        )
    return found


def _after(checkpoint: StoredFile) -> Q:
    """Files after the checkpoint in the (created_at, id) order of files_for_maintenance."""
    at = checkpoint.created_at
    return Q(created_at__gt=at) | Q(created_at=at, id__gt=checkpoint.pk)


def _batches(files: QuerySet[StoredFile], size: int) -> Iterator[list[StoredFile]]:
    """Keyset pages in (created_at, id) order: re-encrypted rows never shift a page."""
    batch = list(files[:size])
    while batch:
        yield batch
        batch = list(files.filter(_after(batch[-1]))[:size])
