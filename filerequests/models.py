"""File requests: a link through which people without an account send files in.

A request belongs to its owner; what arrives through it lands in the owner's space as
ordinary StoredFile rows, each marked by a ReceivedFile row. Only the SHA-256 of the
request's token is stored (as for share links).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from sharing.models import StoredFile


class FileRequest(models.Model):
    """One request for files. ``received_files`` and ``received_bytes`` count what was
    accepted through it (plaintext bytes); they only grow, and are moved under this row's
    lock in the transaction that records the files, so max_files and max_bytes hold
    exactly under parallel uploads."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="file_requests"
    )
    title = models.CharField(max_length=200)
    message = models.TextField(blank=True, default="", max_length=2000)
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    max_files = models.PositiveIntegerField(null=True, blank=True)
    max_bytes = models.BigIntegerField(null=True, blank=True, help_text="Plaintext bytes.")
    password_hash = models.CharField(max_length=255, blank=True, editable=False)
    require_sender = models.BooleanField(
        default=False, help_text="The sender must give a name and an e-mail address."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set once the expiry is in the audit log (recorded when first seen expired).
    expiry_recorded = models.BooleanField(default=False, editable=False)
    received_files = models.PositiveIntegerField(default=0, editable=False)
    received_bytes = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "created_at"], name="filerequest_owner_idx")]

    def __str__(self) -> str:
        return f"request {self.pk} ({self.title})"

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    @property
    def files_left(self) -> int | None:
        if self.max_files is None:
            return None
        return max(0, self.max_files - self.received_files)

    @property
    def bytes_left(self) -> int | None:
        if self.max_bytes is None:
            return None
        return max(0, self.max_bytes - self.received_bytes)


class ReceivedFile(models.Model):
    """A file that arrived through a request, and from whom, as the sender declared it
    (never verified: shown as declared). The IP is in the audit entry."""

    file = models.OneToOneField(
        StoredFile, on_delete=models.CASCADE, primary_key=True, related_name="received_through"
    )
    request = models.ForeignKey(FileRequest, on_delete=models.CASCADE, related_name="received")
    sender_name = models.CharField(max_length=200, blank=True, default="")
    sender_email = models.CharField(max_length=254, blank=True, default="")
    # The visitor's batch (one browser session's sending); one e-mail to the owner each.
    batch = models.UUIDField(db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.file_id} via request {self.request_id}"


class RequestUpload(models.Model):
    """An upload on its way into a request: ``id`` is the upload's id, which the file keeps
    (a tus ResumableUpload's, or a form upload's minted key id). No foreign key: the
    upload row is deleted in the transaction that creates the file, where this row is
    read and then deleted (filerequests.receivers)."""

    id = models.UUIDField(primary_key=True, editable=False)
    request = models.ForeignKey(FileRequest, on_delete=models.CASCADE, related_name="uploads")
    sender_name = models.CharField(max_length=200, blank=True, default="")
    sender_email = models.CharField(max_length=254, blank=True, default="")
    batch = models.UUIDField(default=uuid.uuid4)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"upload {self.pk} into request {self.request_id}"
