import uuid
from typing import Any

from django.conf import settings
from django.db import models

from sharing.storage import get_encrypted_storage

# How the file list sorts by name: case-insensitively, on the first SORT_NAME_CHARS
# characters (a B-tree entry holds at most ~2700 bytes; a name has no limit). Names alike
# that far are ordered by id.
SORT_NAME_CHARS = 200


def sort_name_of(name: str) -> str:
    """The name sort's key for ``name``: its first SORT_NAME_CHARS characters, lower case.

    Python's ``str.lower`` here; on PostgreSQL a trigger (migration 0019) sets the stored
    column to ``lower(left(name, 200))`` on every insert and rename instead, so that rows
    written by anything (an older release during an upgrade, a bulk load) agree.
    """
    return name[:SORT_NAME_CHARS].lower()


class StoredFileManager(models.Manager["StoredFile"]):
    """StoredFile.objects: ``bulk_create`` fills each new file's ``sort_name`` (as save()
    does)."""

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> "list[StoredFile]":
        files = list(objs)
        for stored in files:
            stored.sort_name = sort_name_of(stored.name)
        return super().bulk_create(files, *args, **kwargs)


class StoredFile(models.Model):
    """One uploaded file: metadata and the wrapped data key; the content is a blob.

    Name, type, size and times are kept in clear (see the threat model in README.md);
    the content digest is keyed, so the database alone cannot confirm a guessed file.
    Which columns are authenticated, and by what: docs/FORMAT.md.
    """

    class Origin(models.TextChoices):
        """How the content arrived: through an upload, or imported by import_legacy from
        the prototype's CBC files, which had no MAC (their content was never authenticated
        before it was imported)."""

        UPLOAD = "upload", "Uploaded"
        LEGACY = "legacy", "Imported from the unauthenticated legacy format"

    class ScanState(models.TextChoices):
        """What the malware scan (ClamAV, sharing.services.scanning) said when the file
        arrived. A file clamd found malware in is never stored, so there is no "infected"
        state and no signature column."""

        CLEAN = "clean", "Scanned: no malware found"
        OFF = "off", "Not scanned: scanning was off"
        TOO_LARGE = "too_large", "Not scanned: larger than the scanner's stream limit"
        UNAVAILABLE = "unavailable", "Not scanned: the scanner was unavailable"
        ENCRYPTED = "encrypted", "Not scanned: encrypted (password-protected) content"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="files"
    )
    # As the browser sent it, minus what no database can hold (NUL); sanitised on output.
    name = models.TextField()
    # sort_name_of(name), what the name sort orders by, stored so that its index holds all
    # a page needs (PostgreSQL reads an index on an expression of name index-only never).
    sort_name = models.TextField(editable=False)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    size = models.BigIntegerField(help_text="Plaintext size in bytes.")
    digest = models.BinaryField(
        max_length=32, editable=False, help_text="HMAC-SHA-256 of the plaintext, keyed per file."
    )
    sha256_sealed = models.BinaryField(
        max_length=60,
        editable=False,
        default=b"",
        help_text="The plaintext's SHA-256, AES-GCM sealed under a key from the data key.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="purge_expired deletes it after this."
    )
    blob = models.FileField(
        storage=get_encrypted_storage, max_length=255, editable=False, unique=True
    )
    wrapped_key = models.BinaryField(max_length=60, editable=False)
    key_id = models.CharField(max_length=32, db_index=True, editable=False)
    format_version = models.PositiveSmallIntegerField(default=1, editable=False)
    origin = models.CharField(
        max_length=16, choices=Origin.choices, default=Origin.UPLOAD, editable=False
    )
    scan_state = models.CharField(
        max_length=16, choices=ScanState.choices, default=ScanState.OFF, editable=False
    )

    objects = StoredFileManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # One index per ordering of the file list (and the admin's), each ending in the id
        # that makes the order total, so a page is read from the index in order, never
        # sorted, and a page typed by number reads its ids from the index alone;
        # PostgreSQL reads them backwards for the descending orders. Built concurrently
        # on PostgreSQL (migrations 0012 and 0019; 0012 also adds the trigram index the
        # name search uses).
        indexes = [
            models.Index(fields=["owner", "created_at", "id"], name="file_owner_date_idx"),
            models.Index(fields=["owner", "size", "id"], name="file_owner_size_idx"),
            models.Index(fields=["owner", "sort_name", "id"], name="file_owner_sort_name_idx"),
            models.Index(fields=["created_at", "id"], name="file_date_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.sort_name = sort_name_of(self.name)
        super().save(*args, **kwargs)


class StorageQuota(models.Model):
    """A per-user override of USER_QUOTA_MB (0 = unlimited for this user)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="storage_quota"
    )
    quota_mb = models.PositiveIntegerField(help_text="Storage quota in MiB; 0 means no quota.")

    def __str__(self) -> str:
        return f"{self.user}: {self.quota_mb} MiB"


class StorageUsage(models.Model):
    """What a user's files take, kept by the services in the transaction of every upload,
    deletion and transfer, so no page sums every file (README "Metadata at scale").

    ``files`` counts the user's StoredFile rows, ``bytes`` adds their plaintext sizes;
    a user without a row has no files. services.usage_recount rebuilds it from the rows.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="storage_usage",
    )
    files = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user}: {self.files} files, {self.bytes} bytes"


class ShareManager(models.Manager["Share"]):
    """Share.objects: ``bulk_create`` fills each new share's ``file_name`` (as save() does)."""

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> "list[Share]":
        shares = list(objs)
        unnamed = {share.file_id for share in shares if not share.file_name}
        if unnamed:  # one query for the names of the files not loaded with their share
            names = dict(StoredFile.objects.filter(pk__in=unnamed).values_list("pk", "name"))
            for share in shares:
                share.file_name = share.file_name or names.get(share.file_id, "")
        return super().bulk_create(shares, *args, **kwargs)


class Share(models.Model):
    """Read-only access to a file for a named colleague or for every member of a group
    (Django's auth group), granted by the file's owner.

    Exactly one of ``colleague`` and ``group`` is set. A group share reaches whoever is a
    member at the time of each request: leaving the group ends access at once. From the
    day after ``expires_on`` (the last day of access, in TIME_ZONE) the share works no
    more, exactly as if it had been revoked (sharing.selectors.shares_reaching).

    ``file_name`` is the file's name, copied when the share is made (save() and
    ``Share.objects.bulk_create`` fill it; a file's name never changes): "Shared with me"
    is searched by it, through a trigram index by colleague and group (sharing 0018), so a
    search costs what the user's matching shares cost, not a bitmap of every matching
    name in the portal (the files shared with a user have other owners).
    """

    file = models.ForeignKey(StoredFile, on_delete=models.CASCADE, related_name="shares")
    # db_default too: a share inserted by an older release during an upgrade gets "" (the
    # migration's batches fill it) instead of failing on a NOT NULL column it never set.
    file_name = models.TextField(default="", db_default="", editable=False)
    colleague = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="shares_received",
        null=True,
        blank=True,
    )
    group = models.ForeignKey(
        "auth.Group", on_delete=models.CASCADE, related_name="shares", null=True, blank=True
    )
    expires_on = models.DateField(
        null=True, blank=True, help_text="The last day of access; empty for no expiry."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ShareManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["file", "colleague"], name="one_share_per_colleague"),
            models.UniqueConstraint(fields=["file", "group"], name="one_share_per_group"),
            models.CheckConstraint(
                condition=models.Q(colleague__isnull=False, group__isnull=True)
                | models.Q(colleague__isnull=True, group__isnull=False),
                name="share_with_colleague_or_group",
            ),
        ]
        # "Shared with me", newest share first, read in order from this index.
        indexes = [
            models.Index(fields=["colleague", "created_at", "id"], name="share_colleague_date_idx")
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.file} → {self.recipient}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.file_name:
            self.file_name = self.file.name
        super().save(*args, **kwargs)

    @property
    def recipient(self) -> str:
        """Who the share is for, as people read it: a username, or "group <name>"."""
        if self.group is not None:
            return f"group {self.group.name}"
        return self.colleague.get_username() if self.colleague else ""

    @property
    def recipient_detail(self) -> str:
        """Who the share is for, as audit entries name them: "colleague=<username>" or
        "group=<name>"."""
        if self.group is not None:
            return f"group={self.group.name}"
        return f"colleague={self.colleague.get_username() if self.colleague else ''}"


class ShareLink(models.Model):
    """A link for people without an account. Only the SHA-256 of its token is stored."""

    file = models.ForeignKey(StoredFile, on_delete=models.CASCADE, related_name="links")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="links_created"
    )
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    max_downloads = models.PositiveIntegerField(null=True, blank=True)
    download_count = models.PositiveIntegerField(default=0)
    # Aborted transfers given back so far; capped, or a visitor could fetch all but the
    # last bytes of a one-download link again and again.
    refunds = models.PositiveIntegerField(default=0)
    # Bytes the downloads sent beyond the file's size and their own slack each (what
    # resumes sent twice), all downloads together: the pool LinkClaim budgets draw on.
    resent = models.BigIntegerField(default=0)
    password_hash = models.CharField(max_length=255, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Who the owner made it for ("for Dr Smith"), so links need not be told apart by id.
    label = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"link {self.pk} ({self.label})" if self.label else f"link {self.pk}"

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    @property
    def downloads_left(self) -> int | None:
        if self.max_downloads is None:
            return None
        return max(0, self.max_downloads - self.download_count)


class LinkClaim(models.Model):
    """One download taken from a share link with a download limit, and the bytes sent
    under it (README "Ranged and resumed downloads").

    The browser session that made the claim may resume it with Range requests. Responses
    under it add to ``sent`` before sending, a window at a time, in conditional UPDATEs
    that refuse to pass ``budget`` (the file's size plus at most LINK_RESUME_SLACK_MB),
    and take back at their end what they did not hand to the server; so ``sent`` is never
    below the bytes that actually left, even under parallel requests. Beyond one copy a
    claim first uses its ``own_slack``, then the link's pool (``ShareLink.resent``). With
    q = (size - 1) // (2N), own_slack <= q and the pool holds size - 1 - N x q, so a link's
    N claims together send at most N x size + size - 1 bytes: no sequence of ranged,
    repeated or parallel requests delivers one complete copy more than the limit.
    """

    link = models.ForeignKey(ShareLink, on_delete=models.CASCADE, related_name="claims")
    number = models.PositiveIntegerField(help_text="The link's download count it took.")
    budget = models.BigIntegerField(help_text="Bytes all responses under it may send.")
    own_slack = models.BigIntegerField(
        default=0, help_text="Bytes beyond one copy it may send without drawing on the pool."
    )
    sent = models.BigIntegerField(default=0, help_text="Bytes sent or being sent.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sent__gte=0) & models.Q(sent__lte=models.F("budget")),
                name="link_claim_sent_within_budget",
            )
        ]

    def __str__(self) -> str:
        return f"claim {self.number} of link {self.link_id}"


class ResumableUpload(models.Model):
    """A tus 1.0.0 upload in progress (README "Resumable uploads").

    All of its state is here and in its blob, never in one process, so any worker may take
    the next PATCH. ``offset`` counts the plaintext bytes whose sealed segments are in the
    blob and synced; the blob holds the header and exactly those segments (a longer blob,
    left by a crashed PATCH, is cut back to that before the next append). The row's id
    becomes the StoredFile's id when the last byte arrives; the row is then deleted.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="resumable_uploads"
    )
    name = models.TextField()
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    expires_in_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="The finished file's retention, as the upload form's."
    )
    length = models.BigIntegerField(help_text="Upload-Length: plaintext bytes in all.")
    offset = models.BigIntegerField(default=0, help_text="Plaintext bytes sealed and stored.")
    segment_size = models.PositiveIntegerField(help_text="Plaintext bytes per segment.")
    header = models.BinaryField(max_length=49, editable=False)
    wrapped_key = models.BinaryField(max_length=60, editable=False)
    key_id = models.CharField(max_length=32, editable=False)
    blob = models.CharField(max_length=255, unique=True, editable=False)
    # S3 only: the multipart upload and the parts done ([{"PartNumber", "ETag"}, ...]).
    s3_upload_id = models.CharField(max_length=1024, blank=True, default="")
    s3_parts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True, help_text="Upload-Expires.")
    # A PATCH holds the upload until then (renewed per segment), under its own token.
    patching_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"upload {self.pk} ({self.offset}/{self.length} bytes)"
