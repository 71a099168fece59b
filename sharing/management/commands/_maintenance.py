"""What the maintenance commands share: verbosity-gated output, a progress line, and
streaming a file's plaintext through its keyed digest without keeping any of it.

The leading underscore keeps Django from taking this module for a command.
"""

from __future__ import annotations

import time
from argparse import ArgumentTypeError
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import selectors as job_selectors
from jobs import services as job_services
from jobs.models import JobRun

PROGRESS_INTERVAL = 0.2  # seconds between redraws of the progress line
ID_BATCH = 200  # files per checkpoint of a job run (and per worker job)
WAIT_INTERVAL = 0.5  # seconds between looks at the workers' progress (--workers)


class Progress:
    """A one-line `label: done/total` counter on stderr, redrawn in place (`label: done`
    when the total is not known ahead, ``total=None``).

    Shown only to a person watching: verbosity >= 1 and stderr a terminal. Logs and cron
    mails get the summary line alone.
    """

    def __init__(
        self, command: BaseCommand, *, label: str, total: int | None, verbosity: int
    ) -> None:
        self._stderr = command.stderr
        self._enabled = verbosity >= 1 and command.stderr.isatty()
        self._label, self._total, self._done = label, total, 0
        self._drawn_at = 0.0
        self._visible = False

    def advance(self, count: int = 1) -> None:
        self._done += count
        now = time.monotonic()
        last = self._total is not None and self._done >= self._total
        if self._enabled and (now - self._drawn_at >= PROGRESS_INTERVAL or last):
            self._drawn_at = now
            shown_total = "" if self._total is None else f"/{self._total}"
            self._write(f"\r{self._label}: {self._done}{shown_total}")
            self._visible = True

    def clear(self) -> None:
        """Erase the line (before other output, and at the end)."""
        if self._visible:
            self._write("\r\x1b[K")
            self._visible = False

    def _write(self, text: str) -> None:
        # Plain: Django styles a terminal's stderr as an error by default.
        self._stderr.write(text, style_func=_plain, ending="")
        self._stderr.flush()


def _plain(text: str) -> str:
    return text


class MaintenanceCommand(BaseCommand):
    """A command whose output is gated on --verbosity and keeps clear of its progress line."""

    verbosity = 1
    progress: Progress | None = None
    job_run: JobRun | None = None

    def execute(self, *args: object, **options: object) -> str | None:
        self.verbosity = int(options.get("verbosity", 1))  # type: ignore[call-overload]
        self.job_run = None
        try:
            return super().execute(*args, **options)
        finally:
            if self.job_run is not None and self.job_run.finished_at is None:
                # Stopped before its summary: the run stays resumable, its lock is freed.
                job_services.run_release(self.job_run)

    def lock_job(self, name: str, params: dict) -> JobRun:
        """Take the job's lock for a run that is not split into batches (CommandError
        while another run holds it); finish() closes the run and frees the lock."""
        plan = job_services.RunPlan(name=name, params=params, handler="", ids=list)
        try:
            self.job_run, _resumed = job_services.run_begin(plan)
        except job_services.JobBusy as exc:
            raise CommandError(f"{exc}; not started") from None
        return self.job_run

    def start_progress(self, *, label: str, total: int | None) -> Progress:
        self.progress = Progress(self, label=label, total=total, verbosity=self.verbosity)
        return self.progress

    def say(
        self, message: str, *, level: int = 1, style: Callable[[str], str] | None = None
    ) -> None:
        """Write a line to stdout if --verbosity is at least ``level``."""
        if self.verbosity < level:
            return
        if self.progress is not None:
            self.progress.clear()
        self.stdout.write(message, style_func=style)

    def run_job(
        self,
        plan: job_services.RunPlan,
        *,
        label: str,
        inline: job_services.BatchHandler,
        workers: bool,
    ) -> JobRun:
        """Run ``plan`` as a job: take its lock (CommandError while another run holds it),
        resume its unfinished run or start one, and work through the batches, in this
        process with ``inline`` or, with ``workers``, by queueing them for the db_worker
        processes and waiting. Returns the run, every batch done; the caller closes it
        with job_services.run_finish. Interrupted, the run stays resumable."""
        try:
            run, resumed = job_services.run_begin(plan)
        except job_services.JobBusy as exc:
            raise CommandError(f"{exc}; not started") from None
        self.job_run = run
        if resumed:
            self.say(f"resuming run {run.pk}: {run.done} of {run.total} already done")
        progress = self.start_progress(label=label, total=run.total)
        progress.advance(run.done)
        try:
            if workers:
                self._wait_for_workers(run, progress)
            else:
                job_services.run_inline(run, inline)
        except BaseException:
            job_services.run_release(run)
            raise
        self.job_run = job_services.run_refresh(run)
        return self.job_run

    def _wait_for_workers(self, run: JobRun, progress: Progress) -> None:
        queued = job_services.run_enqueue(run)
        self.say(f"queued {queued} batch(es) for the workers (manage.py db_worker)", level=2)
        done = run.done
        while True:
            time.sleep(WAIT_INTERVAL)
            job_services.run_heartbeat(run)
            if requeued := job_services.run_requeue_orphans(run):
                self.say(f"queued again {requeued} batch(es) whose worker stopped", level=2)
            current = job_services.run_refresh(run)
            progress.advance(current.done - done)
            done = current.done
            if current.done >= current.total:
                return
            if not job_selectors.batches_in_queue():
                # Read again: the last batch may have finished between the two reads.
                current = job_services.run_refresh(run)
                progress.advance(current.done - done)
                if current.done >= current.total:
                    return
                left = current.total - current.done
                raise CommandError(
                    f"the workers left {left} file(s) undone (see the failed jobs); "
                    "run the command again to retry them"
                )

    def finish(self, summary: str, *, failed: bool) -> None:
        """The last line: the summary, in the error style when something failed. Closes
        the command's job run (with this summary) and frees its lock."""
        if self.progress is not None:
            self.progress.clear()
        if self.job_run is not None:
            job_services.run_finish(self.job_run, summary=summary, failed=failed)
        self.say(summary, style=self.style.ERROR if failed else self.style.SUCCESS)


def add_batch_size(parser: CommandParser, default: int = 200, *, checkpoint: bool = False) -> None:
    what = (
        "Files per checkpoint, and per worker job with --workers"
        if checkpoint
        else "Rows read from the database per query"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=default,
        help=f"{what} (default {default}); each file still commits on its own.",
    )


def add_dry_run(parser: CommandParser, what: str) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help=f"Report what would be {what}; change nothing."
    )


def add_workers(parser: CommandParser, *, batches: str = "batches of file ids") -> None:
    parser.add_argument(
        "--workers",
        action="store_true",
        help=f"Split the work into {batches} for the job workers (manage.py "
        "db_worker, on any number of machines) and wait for them, instead of doing it in "
        "this process.",
    )


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def shown(name: str) -> str:
    """A file or user name as a terminal can safely show it (no control characters)."""
    return repr(name)
