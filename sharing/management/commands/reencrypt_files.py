from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

from django.core.management.base import CommandError, CommandParser
from django.db.models import Q, QuerySet
from django.utils import timezone

from jobs import services as job_services
from sharing import selectors, services
from sharing.crypto import BlobIntegrityError, FileKey, KeyProblem
from sharing.management.commands._maintenance import (
    MaintenanceCommand,
    add_batch_size,
    add_dry_run,
)
from sharing.models import StoredFile
from sharing.storage import EncryptedStorage, StoredBlob, get_encrypted_storage


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
        "is resumed by the next run with the same --after, skipping the batches it finished; "
        "a run already in progress on any machine makes this one stop with an error. "
        "A crash leaves at most one unreferenced new blob, which cleanup_storage removes. "
        "Exits with status 1 if any file could not be re-encrypted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_batch_size(parser, default=50)
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
        **options: object,
    ) -> None:
        files = selectors.files_for_maintenance().filter(created_at__lte=timezone.now())
        if after is not None:
            files = files.filter(_after(_checkpoint(after)))
        if not dry_run:
            plan = job_services.RunPlan(
                name="reencrypt_files",
                params={"after": str(after or "")},
                handler="",  # in this process only: the output names each file
                ids=lambda: (str(pk) for pk in files.values_list("pk", flat=True).iterator()),
                batch_size=batch_size,
            )
            run = self.run_job(plan, label="re-encrypting", inline=self._batch, workers=False)
            self._summarise(Counter(run.counts), dry_run=False)
            return
        counts: Counter[str] = Counter()
        progress = self.start_progress(label="re-encrypting", total=files.count())
        for batch in _batches(files, batch_size):
            for stored in batch:
                counts[self._reencrypt(stored, dry_run=True)] += 1
                progress.advance()
        self._summarise(counts, dry_run=True)

    def _batch(self, ids: list[str], params: dict) -> dict[str, int]:
        """One checkpointed batch of a run (the run's ids, in files_for_maintenance order)."""
        counts: Counter[str] = Counter()
        files = {str(f.pk): f for f in selectors.files_for_maintenance().filter(pk__in=ids)}
        for file_id in ids:
            stored = files.get(file_id)
            counts[self._reencrypt(stored, dry_run=False) if stored else "gone"] += 1
            if self.progress is not None:
                self.progress.advance()
        self.say(f"checkpoint: done through file {ids[-1]} (--after {ids[-1]})")
        return dict(counts)

    def _reencrypt(self, stored: StoredFile, *, dry_run: bool) -> str:
        storage = get_encrypted_storage()
        try:
            old_key = selectors.file_data_key(file=stored)
            if dry_run:
                return self._would(storage, stored)
            new_key = FileKey.generate(file_id=stored.id)
            blob = services.file_content_copy(
                storage=storage, file=stored, old=old_key, new=new_key
            )
        except KeyProblem as exc:
            return self._failed(stored, str(exc))
        except BlobIntegrityError:
            return self._failed(stored, "old blob failed authentication")
        except services.ContentMismatch as exc:
            return self._failed(stored, str(exc))
        except OSError as exc:
            return self._failed(stored, f"storage error: {exc.strerror or exc}")
        return self._switch(storage, stored, new_key, blob)

    def _would(self, storage: EncryptedStorage, stored: StoredFile) -> str:
        if not storage.exists(stored.blob.name):
            return self._failed(stored, "blob not in storage")
        self.say(f"would re-encrypt: file {stored.pk}", level=2)
        return "reencrypted"

    def _switch(
        self, storage: EncryptedStorage, stored: StoredFile, key: FileKey, blob: StoredBlob
    ) -> str:
        # On an unexpected error the new blob is left for cleanup_storage: the commit may
        # already have happened, and then it is the file's only copy.
        switched = services.file_replace_content(
            file=stored, old_blob=stored.blob.name, key=key, blob=blob
        )
        if not switched:
            storage.delete(blob.name)
            self.say(f"gone: file {stored.pk} was deleted or changed meanwhile", level=2)
            return "gone"
        self.say(f"re-encrypted: file {stored.pk}", level=2)
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
        if not dry_run and (counts["reencrypted"] or counts["failed"]):
            services.content_reencrypted_record(summary=summary)
        self.finish(summary, failed=bool(counts["failed"]))
        if counts["failed"]:
            raise CommandError(
                f"{counts['failed']} file(s) could not be re-encrypted; "
                "run verify_files for details"
            )


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
