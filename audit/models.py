"""The audit log's rows: the HMAC-chained entries and the chain's head."""

from django.db import models


class AuditEntry(models.Model):
    """One security-relevant event, chained to the previous one by an HMAC.

    Everything the MAC covers is a plain value (ids and names as text), never a foreign
    key that a later deletion could null, so the chain verifies forever.
    """

    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(db_index=True, editable=False)
    actor = models.CharField(max_length=200, editable=False)
    actor_user_id = models.BigIntegerField(null=True, blank=True, db_index=True, editable=False)
    ip = models.CharField(max_length=45, blank=True, editable=False)
    user_agent = models.CharField(max_length=300, blank=True, editable=False)
    event = models.CharField(max_length=40, db_index=True, editable=False)
    file_id = models.UUIDField(null=True, blank=True, db_index=True, editable=False)
    file_name = models.TextField(blank=True, editable=False)
    link_id = models.BigIntegerField(null=True, blank=True, editable=False)
    detail = models.TextField(blank=True, editable=False)
    prev_mac = models.CharField(max_length=64, editable=False)
    mac = models.CharField(max_length=64, editable=False)

    class Meta:
        # The table keeps the name it had in the `sharing` app: moving the model moved no data.
        db_table = "sharing_auditentry"
        ordering = ["-seq"]
        verbose_name_plural = "audit entries"
        # The admin's event filter, a file's activity and the search by IP, newest first (migration
        # 0002, which also adds the search's trigram indexes on PostgreSQL); the search by
        # actor (0003: entries_matching).
        indexes = [
            models.Index(fields=["event", "seq"], name="audit_event_seq_idx"),
            models.Index(fields=["file_id", "seq"], name="audit_file_seq_idx"),
            models.Index(fields=["ip", "seq"], name="audit_ip_seq_idx"),
            models.Index(fields=["actor", "seq"], name="audit_actor_seq_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event} by {self.actor}"


class AuditHead(models.Model):
    """The chain's last sequence number and MAC: one row, locked by every writer."""

    seq = models.PositiveBigIntegerField(default=0)
    mac = models.CharField(max_length=64, default="")

    class Meta:
        # The table keeps the name it had in the `sharing` app: moving the model moved no data.
        db_table = "sharing_audithead"

    def __str__(self) -> str:
        return f"audit head #{self.seq}"
