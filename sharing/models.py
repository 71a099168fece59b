import uuid

from django.conf import settings
from django.db import models

from sharing.storage import get_encrypted_storage


class StoredFile(models.Model):
    """One uploaded file: metadata and the wrapped data key; the content is a blob.

    Name, type, size and times are kept in clear (see the threat model in README.md);
    the content digest is keyed, so the database alone cannot confirm a guessed file.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="files"
    )
    # As the browser sent it, minus what no database can hold (NUL); sanitised on output.
    name = models.TextField()
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    size = models.BigIntegerField(help_text="Plaintext size in bytes.")
    digest = models.BinaryField(
        max_length=32, editable=False, help_text="HMAC-SHA-256 of the plaintext, keyed per file."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    blob = models.FileField(
        storage=get_encrypted_storage, max_length=255, editable=False, unique=True
    )
    wrapped_key = models.BinaryField(max_length=60, editable=False)
    key_id = models.CharField(max_length=32, db_index=True, editable=False)
    format_version = models.PositiveSmallIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return self.name
