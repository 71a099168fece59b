"""A job run, its batches (the checkpoints) and the lock that keeps runs of one job apart."""

from __future__ import annotations

from django.db import models


class JobRun(models.Model):
    """One run of a named job (e.g. ``verify_files``) over a fixed list of ids.

    The ids are planned once, when the run starts, into JobBatch rows; ``done`` counts the
    ids of finished batches and ``counts`` their outcomes (e.g. ``{"ok": 10, "corrupt": 1}``).
    A run left unfinished by a crash is resumed by the next run with the same name and
    parameters.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "finished with problems"

    name = models.CharField(max_length=64, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    # Dotted path of ``fn(ids: list[str], params: dict) -> dict[str, int]``, what a worker
    # runs for one batch: only code the project ships, never a path from a request.
    handler = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    summary = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["name", "status"], name="jobs_run_name_status")]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"


class JobBatch(models.Model):
    """A slice of a run's ids: the unit a worker claims, and the checkpoint (once ``done``,
    never run again)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="batches")
    seq = models.PositiveIntegerField()
    ids = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="jobs_batch_run_seq_unique")
        ]
        indexes = [models.Index(fields=["run", "status"], name="jobs_batch_run_status")]

    def __str__(self) -> str:
        return f"batch {self.seq} of run {self.run_id}"


class JobLock(models.Model):
    """At most one row per job name: the run holding it, and which process (holder_id)
    last vouched for it. Taking a name is an INSERT or a locked UPDATE of this row, so two
    runs started at once on several machines cannot both get it."""

    name = models.CharField(max_length=64, primary_key=True)
    run = models.ForeignKey(JobRun, on_delete=models.SET_NULL, null=True, blank=True)
    holder = models.CharField(max_length=200)
    heartbeat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"lock {self.name}"
