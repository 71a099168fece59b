"""Writes: every change to stored files goes through here, in a transaction."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import fields
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actors import SYSTEM, Actor
from audit.events import Event
from audit.models import AuditEntry
from audit.services import audit_record
from securefiles.lib import site
from securefiles.lib.auth_types import User
from securefiles.lib.transactions import check_foreign_keys_now, retry_on_deadlock
from sharing import names, selectors
from sharing.crypto import VERSION, FileKey, seal_sha256, unwrap_key, wrap_key
from sharing.keyring import get_keyring
from sharing.models import Share, ShareLink, StoredFile
from sharing.storage import StoredBlob, get_encrypted_storage
from sharing.uploads import EncryptedUpload
from throttle import counters, keys

logger = logging.getLogger(__name__)
# 256 bits from secrets: 43 URL-safe characters.
LINK_TOKEN_BYTES = 32


def _stored_file_from_upload(
    *, owner: User, upload: EncryptedUpload, origin: str = StoredFile.Origin.UPLOAD
) -> StoredFile:
    master = get_keyring().primary
    return StoredFile(
        id=upload.key.file_id,
        owner=owner,
        name=names.stored_name(upload.name or ""),
        content_type=names.content_type(upload.content_type),
        size=upload.blob.plaintext_size,
        digest=upload.blob.digest,
        sha256_sealed=seal_sha256(upload.key, upload.blob.sha256),
        blob=upload.blob.name,
        wrapped_key=wrap_key(upload.key, master),
        key_id=master.key_id,
        format_version=VERSION,
        origin=origin,
    )


class QuotaExceeded(Exception):
    """The owner's files would exceed their storage quota."""


class FileGone(StoredFile.DoesNotExist):
    """The file was deleted (by a parallel request, say) before this write could lock it."""


def _lock_file(file_id: UUID) -> StoredFile:
    """Start a write on a file: lock its row, and check foreign keys at each statement.

    Every service that writes something hanging off a file (shares, links, the file
    itself) takes this lock first, inside its transaction, so writes on one file queue one
    behind the other instead of deadlocking: a link created while the file is deleted
    either commits first (and the cascade removes it) or finds the file gone. The audit
    head stays the last lock (securefiles.lib.transactions). Raises FileGone if the row is gone.
    """
    check_foreign_keys_now()
    locked = StoredFile.objects.select_for_update().filter(pk=file_id).first()
    if locked is None:
        raise FileGone(f"file {file_id} no longer exists")
    return locked


def _check_quota(*, owner: User, adding: int) -> None:
    """Inside the creating transaction, with the owner's row locked (PostgreSQL; SQLite
    serialises writers anyway), so two parallel uploads cannot both squeeze in."""
    quota = selectors.quota_of(user=owner)
    if quota is None:
        return
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    if selectors.usage_of(user=owner) + adding > quota:
        raise QuotaExceeded


def file_create_many(
    *,
    owner: User,
    uploads: Sequence[EncryptedUpload],
    actor: Actor | None = None,
    expires_at: datetime | None = None,
) -> list[StoredFile]:
    """Record already-stored encrypted uploads; all rows commit together or none do.

    Raises QuotaExceeded (nothing recorded) if they would exceed the owner's quota, and
    TryAgain if the database gave up on the transaction (deadlock victim) every time.
    """
    files = [_stored_file_from_upload(owner=owner, upload=upload) for upload in uploads]
    actor = actor or Actor(label=owner.get_username(), user_id=owner.pk)
    _record_uploads(owner=owner, files=files, actor=actor, expires_at=expires_at)
    return files


@retry_on_deadlock
def _record_uploads(
    *,
    owner: User,
    files: list[StoredFile],
    actor: Actor,
    expires_at: datetime | None,
    audit_detail: str = "",
) -> None:
    with transaction.atomic():
        check_foreign_keys_now()
        _check_quota(owner=owner, adding=sum(stored.size for stored in files))
        # Every row first, every audit entry after: the chain head is the last lock, so no
        # insert (and its foreign-key check on the owner's row) may wait while it is held.
        for stored in files:
            stored.expires_at = expires_at
            stored.save(force_insert=True)
        for stored in files:
            audit_record(
                event=Event.UPLOAD,
                actor=actor,
                file_id=stored.id,
                file_name=stored.name,
                detail=f"size={stored.size}{audit_detail}",
            )


@retry_on_deadlock
def file_delete(*, file: StoredFile, actor: Actor = SYSTEM) -> None:
    """Delete a file: row, wrapped key, shares and links now; the blob once committed.

    Raises FileGone if it was deleted meanwhile (nothing is audited twice), and TryAgain
    if the database gave up on the transaction (deadlock victim) every time.
    """
    with transaction.atomic():
        locked = _lock_file(file.pk)
        file_id, file_name = locked.id, locked.name  # delete() forgets the id
        locked.delete()
        # The audit entry comes last, as in every service: the chain head is the last lock
        # a transaction takes. Taken first, it would be held while the cascade waits for a
        # link row that a parallel download holds while it waits for the head: deadlock.
        audit_record(event=Event.DELETE, actor=actor, file_id=file_id, file_name=file_name)


def _delete_blob(name: str) -> None:
    try:
        get_encrypted_storage().delete(name)
    except OSError:
        # The row and its wrapped key are gone, so the blob is unreadable; the storage
        # sweep (cleanup_storage) removes it later.
        logger.warning("blob of a deleted file could not be removed name=%s", name)


# -- shares with named colleagues


class ShareError(Exception):
    """A share request that cannot be granted; the message is safe to show the owner."""


class ShareLookupThrottled(Exception):
    """Too many share lookups by this user matched no account; nothing was looked up.

    ``limit`` is SHARE_LOOKUP_FAILURES, ``window_seconds`` its window and ``retry_after``
    the seconds until the user may look names up again.
    """

    def __init__(self, *, limit: int, window_seconds: int, retry_after: int) -> None:
        super().__init__(f"share lookups throttled for {retry_after} s")
        self.limit, self.window_seconds, self.retry_after = limit, window_seconds, retry_after


def _find_colleague(query: str) -> User | None:
    query = query.strip()[:254]
    if not query:
        return None
    users = get_user_model().objects.filter(is_active=True)
    match = users.filter(username=query).first()
    if match is None and "@" in query:
        matches = list(users.filter(email__iexact=query).order_by("pk")[:2])
        if len(matches) > 1:
            # Addresses are not unique (nor verified at sign-up): never guess who is meant.
            raise ShareError(_("Several users have that e-mail address; share by username."))
        match = matches[0] if matches else None
    return match


def _lookup_colleague(*, query: str, actor: Actor, user_id: int) -> User:
    """Find the colleague ``query`` names, counting lookups that match no account.

    Sharing by name tells the owner that an account exists (that is its point); a limit
    on misses per user keeps it from becoming a way to enumerate accounts. The attempt is
    counted before the lookup, atomically, and given back when it finds someone, so
    parallel requests cannot slip past the limit. Raises ShareLookupThrottled (nothing
    looked up) once SHARE_LOOKUP_FAILURES misses are counted in the window, and ShareError
    for a miss or an ambiguous address (which counts as a miss).
    """
    key = keys.share_lookup_key(user_id)
    limit, window = settings.SHARE_LOOKUP_FAILURES, settings.SHARE_LOOKUP_WINDOW_SECONDS
    attempts = counters.add_failure(key, window)
    if attempts > limit:
        if attempts == limit + 1:  # the first refusal of this window: audited once
            audit_record(
                event=Event.SHARE_LOOKUP_THROTTLED,
                actor=actor,
                detail=f"failures={limit} window={window}s",
            )
        raise ShareLookupThrottled(
            limit=limit, window_seconds=window, retry_after=counters.seconds_left(key, window)
        )
    colleague = _find_colleague(query)  # ShareError (ambiguous address): stays counted
    if colleague is None:
        raise ShareError(_("No active user with that username or e-mail."))
    counters.remove_failure(key)  # found someone: not a failed lookup
    return colleague


@retry_on_deadlock
def share_grant(*, file: StoredFile, query: str, actor: Actor) -> Share:
    """Give a colleague (by username or e-mail) read access to a file; notify them.

    Raises ShareError (message safe to show) when the share cannot be granted,
    ShareLookupThrottled when the acting user (``actor.user_id``, else the owner) has had
    too many lookups match no account in the window (then nothing is looked up at all),
    FileGone if the file was deleted meanwhile, and TryAgain if the database gave up on
    the transaction (deadlock victim) every time.
    """
    user_id = actor.user_id if actor.user_id is not None else file.owner_id
    colleague = _lookup_colleague(query=query, actor=actor, user_id=user_id)
    if colleague.pk == file.owner_id:
        raise ShareError(_("You already own this file."))
    with transaction.atomic():
        file = _lock_file(file.pk)
        share, created = Share.objects.get_or_create(file=file, colleague=colleague)
        if not created:
            raise ShareError(_("This file is already shared with that user."))
        audit_record(
            event=Event.SHARE_GRANTED,
            actor=actor,
            file_id=file.id,
            file_name=file.name,
            detail=f"colleague={colleague.get_username()}",
        )
        transaction.on_commit(lambda: _notify_colleague(share))
    return share


def _notify_colleague(share: Share) -> None:
    """Tell a colleague by e-mail that a file was shared with them, with a link to its page.

    The link is built from SITE_URL (site.absolute_url), never from a request's Host.
    The file's name travels in clear over e-mail, so it is left out unless the operator
    set SHARE_EMAIL_INCLUDES_NAME; the subject never carries it. A failure to send is
    logged, never raised.
    """
    colleague, file = share.colleague, share.file
    if not colleague.email:
        return
    context = {
        "share": share,
        "file": file,
        "owner": file.owner,
        "colleague": colleague,
        "include_name": settings.SHARE_EMAIL_INCLUDES_NAME,
        "file_url": site.absolute_url(reverse("sharing:file_detail", args=[file.id])),
    }
    subject = _("%(owner)s shared a file with you") % {"owner": file.owner.get_username()}
    body = render_to_string("sharing/email/shared_with_you.txt", context)
    try:
        send_mail(subject, body, None, [colleague.email])
    except OSError:
        logger.warning("share notification could not be sent share=%s", share.pk)


@retry_on_deadlock
def share_revoke(*, share: Share, actor: Actor) -> bool:
    """Take a colleague's access to a file away; False if the share was already gone.

    Raises FileGone if the file was deleted meanwhile (its shares with it), TryAgain if
    the database gave up on the transaction (deadlock victim) every time.
    """
    colleague = share.colleague.get_username()
    with transaction.atomic():
        locked = _lock_file(share.file_id)
        deleted, _counts = Share.objects.filter(pk=share.pk).delete()
        if not deleted:
            return False
        # Last, like every audit entry (see file_delete): no lock is awaited holding the head.
        audit_record(
            event=Event.SHARE_REVOKED,
            actor=actor,
            file_id=locked.id,
            file_name=locked.name,
            detail=f"colleague={colleague}",
        )
    return True


# -- share links


def _audit_link(event: str, link: ShareLink, actor: Actor, detail: str = "") -> None:
    """Audit an event of a share link: its file, name snapshot and link id."""
    audit_record(
        event=event,
        actor=actor,
        file_id=link.file_id,
        file_name=link.file.name,
        link_id=link.pk,
        detail=detail,
    )


def link_token_digest(token: str) -> str:
    """Links are found by the SHA-256 of their token; the token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


@retry_on_deadlock
def link_create(
    *,
    file: StoredFile,
    actor: Actor,
    created_by: User,
    expires_in_hours: int,
    max_downloads: int | None,
    password: str,
    label: str = "",
) -> tuple[ShareLink, str]:
    """Create a link; return it with its token, which exists only in this return value.

    ``label`` (at most 100 characters, may be empty) says whom the owner made it for; it
    is shown to the owner and administrators and recorded in the audit entry.

    Raises FileGone if the file was deleted meanwhile, TryAgain if the database gave up on
    the transaction (deadlock victim) every time.
    """
    token = secrets.token_urlsafe(LINK_TOKEN_BYTES)
    with transaction.atomic():
        file = _lock_file(file.pk)
        link = ShareLink.objects.create(
            file=file,
            created_by=created_by,
            token_digest=link_token_digest(token),
            expires_at=timezone.now() + timedelta(hours=expires_in_hours),
            max_downloads=max_downloads,
            password_hash=make_password(password, hasher="argon2") if password else "",
            label=label,
        )
        audit_record(
            event=Event.LINK_CREATED,
            actor=actor,
            file_id=file.id,
            file_name=file.name,
            link_id=link.pk,
            detail=f"expires={link.expires_at.isoformat()} max_downloads={max_downloads} "
            f"password={'yes' if password else 'no'} label={label!r}",
        )
    return link, token


@retry_on_deadlock
def link_revoke(*, link: ShareLink, actor: Actor) -> bool:
    """Revoke a link; False if it was already revoked (or removed).

    Raises FileGone if the file was deleted meanwhile (its links with it), TryAgain if the
    database gave up on the transaction (deadlock victim) every time.
    """
    with transaction.atomic():
        link.file = _lock_file(link.file_id)
        updated = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            _audit_link(Event.LINK_REVOKED, link, actor)
    return bool(updated)


@retry_on_deadlock
def link_claim_download(*, link: ShareLink, actor: Actor) -> bool:
    """Atomically take one download from a link; False when it is no longer usable.

    One conditional UPDATE: the database decides, so N+k parallel requests on a link
    with max_downloads=N deliver exactly N files, whatever the number of workers. The
    file's row is locked first, as for every write on a file: a claim racing the file's
    deletion waits for it and then finds the link gone (False). Raises TryAgain if the
    database gave up on the transaction (deadlock victim) every time.
    """
    usable = Q(revoked_at__isnull=True, expires_at__gt=timezone.now()) & (
        Q(max_downloads__isnull=True) | Q(download_count__lt=F("max_downloads"))
    )
    with transaction.atomic():
        try:
            link.file = _lock_file(link.file_id)
        except FileGone:
            return False
        claimed = ShareLink.objects.filter(usable, pk=link.pk).update(
            download_count=F("download_count") + 1
        )
        if not claimed:
            return False
        link.refresh_from_db(fields=["download_count"])
        _audit_link(Event.DOWNLOAD, link, actor, f"via=link count={link.download_count}")
        if link.max_downloads is not None and link.download_count >= link.max_downloads:
            _audit_link(Event.LINK_USED_UP, link, actor)
    return True


@retry_on_deadlock
def link_release_download(*, link: ShareLink, actor: Actor) -> None:
    """Give back a claimed download whose transfer did not reach its last byte.

    At most LINK_MAX_REFUNDS times per link: past that, an aborted transfer counts, so
    aborting near the end cannot turn a limited link into an unlimited one. Nothing is
    given back (nor raised) if the file was deleted meanwhile. Raises TryAgain if the
    database gave up on the transaction (deadlock victim) every time.
    """
    with transaction.atomic():
        try:
            link.file = _lock_file(link.file_id)
        except FileGone:
            return
        refunded = ShareLink.objects.filter(
            pk=link.pk, download_count__gt=0, refunds__lt=settings.LINK_MAX_REFUNDS
        ).update(download_count=F("download_count") - 1, refunds=F("refunds") + 1)
        outcome = "download given back" if refunded else "counted (no give-backs left)"
        _audit_link(Event.DOWNLOAD, link, actor, f"via=link aborted; {outcome}")


def _password_key(link: ShareLink) -> str:
    return f"link-password:{link.pk}"


def link_password_attempt(*, link: ShareLink) -> int:
    """Count an attempt at a link's password before it is checked; return the count.

    Shared by all workers and atomic, so at most LINK_PASSWORD_ATTEMPTS passwords are ever
    checked per window, however many arrive at once. An attempt that turns out not to be a
    wrong password is given back with link_password_attempt_undone.
    """
    return counters.add_failure(_password_key(link), settings.LINK_PASSWORD_WINDOW_SECONDS)


def link_password_attempt_undone(*, link: ShareLink) -> None:
    counters.remove_failure(_password_key(link))


def link_password_failed(*, link: ShareLink, actor: Actor, failures: int) -> None:
    """Audit a wrong password (link_password_attempt has already counted it)."""
    _audit_link(Event.LINK_PASSWORD_DENIED, link, actor, f"failures={failures}")


# -- password resets


# -- offboarding and administration


@retry_on_deadlock
def user_offboard(*, user: User, actor: Actor) -> None:
    """Revoke every link a deactivated user created and every share they granted.

    Raises TryAgain if the database gave up on the transaction (deadlock victim) every time.
    """
    with transaction.atomic():
        # Like every write on a file, the files' rows first; in one order (by id), so two
        # writers that lock several files never wait for each other crosswise.
        touched = Q(owner=user) | Q(pk__in=ShareLink.objects.filter(created_by=user).values("file"))
        check_foreign_keys_now()
        list(StoredFile.objects.select_for_update().filter(touched).order_by("pk").values("pk"))
        links = ShareLink.objects.filter(created_by=user, revoked_at__isnull=True)
        revoked_links = links.update(revoked_at=timezone.now())
        shares = Share.objects.filter(file__owner=user)
        revoked_shares = shares.count()
        shares.delete()
        audit_record(
            event=Event.USER_DEACTIVATED,
            actor=actor,
            detail=f"user={user.get_username()} links_revoked={revoked_links} "
            f"shares_revoked={revoked_shares}",
        )


def user_deactivate(*, user: User, actor: Actor) -> None:
    """Disable an account and offboard it: its sessions stop working (Django refuses
    inactive users), its links are revoked and the shares of its files removed (audited).

    The one way code deactivates a user (the admin's user form saves the flag itself and
    then calls user_offboard). Raises TryAgain as user_offboard does.
    """
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        user_offboard(user=user, actor=actor)


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)  # quoted, with any line break escaped: one line per change
    if isinstance(value, tuple):
        return "[" + ", ".join(_describe(item) for item in value) + "]"
    return "none" if value is None else str(value)


def user_state_changes(*, before: selectors.UserState, after: selectors.UserState) -> list[str]:
    """``field: old -> new`` for every field that differs (no password hash is compared)."""
    changes = []
    for field in fields(selectors.UserState):
        old, new = getattr(before, field.name), getattr(after, field.name)
        if old != new:
            changes.append(f"{field.name}: {_describe(old)} -> {_describe(new)}")
    return changes


def user_change_record(
    *,
    user: User,
    before: selectors.UserState,
    after: selectors.UserState,
    actor: Actor,
) -> AuditEntry | None:
    """Record what an administrator changed about a user in one ``user.changed`` entry
    (None, and no entry, when nothing changed)."""
    changes = user_state_changes(before=before, after=after)
    if not changes:
        return None
    with transaction.atomic():
        return audit_record(
            event=Event.USER_CHANGED,
            actor=actor,
            detail=f"user={user.get_username()}; " + "; ".join(changes),
        )


def user_delete(*, user: User, actor: Actor) -> None:
    """Delete a user: their files one by one through file_delete (each audited; the
    cascade from the user's row would remove them without a trace), then the user."""
    username = user.get_username()
    with transaction.atomic():
        for stored in StoredFile.objects.filter(owner=user):
            with suppress(FileGone):  # deleted meanwhile: nothing left to do
                file_delete(file=stored, actor=actor)
        user.delete()
        audit_record(event=Event.USER_DELETED, actor=actor, detail=f"user={username}")


@retry_on_deadlock
def file_transfer(*, file: StoredFile, new_owner: User, actor: Actor) -> None:
    """Give a file to another user (offboarding); its shares with colleagues stay.

    Raises FileGone if the file was deleted meanwhile, TryAgain if the database gave up on
    the transaction (deadlock victim) every time.
    """
    with transaction.atomic():
        locked = _lock_file(file.pk)
        previous = locked.owner.get_username()
        locked.owner = new_owner
        locked.save(update_fields=["owner"])
        Share.objects.filter(file=locked, colleague=new_owner).delete()
        audit_record(
            event=Event.TRANSFER,
            actor=actor,
            file_id=locked.id,
            file_name=locked.name,
            detail=f"from={previous} to={new_owner.get_username()}",
        )
    file.owner = new_owner


# -- integrity


def file_integrity_failed(*, file: StoredFile, actor: Actor, reason: str, via: str) -> None:
    """Record in the audit chain that a download of ``file`` failed verification.

    ``reason`` says what failed (e.g. "first segment failed", "size mismatch"), ``via``
    which path served it ("owner", "colleague", "link"). Commits on its own: the failure
    is on record even if the download's response is then abandoned. Never raises for a
    file deleted meanwhile (the entry names it by id and name, not by foreign key).
    """
    with transaction.atomic():
        audit_record(
            event=Event.INTEGRITY_ERROR,
            actor=actor,
            file_id=file.id,
            file_name=file.name,
            detail=f"reason={reason[:200]} via={via}",
        )


# -- maintenance: imports, key rotation and re-encryption (management commands)


def file_create_imported(
    *,
    owner: User,
    name: str,
    content_type: str,
    key: FileKey,
    blob: StoredBlob,
    actor: Actor | None = None,
    legacy: bool = False,
    manifest_checked: bool = False,
) -> StoredFile:
    """Record a file whose content was encrypted and stored outside an upload (imports).

    Exactly like an upload: the data key is wrapped under the primary master key. With
    ``legacy``, the content came from the prototype's unauthenticated CBC format: the row
    is marked (origin "legacy", shown on the file list and page) and the upload's audit
    entry says ``imported=legacy-cbc`` and whether a SHA-256 manifest confirmed the
    content (``manifest_checked=yes|no``). Raises QuotaExceeded like file_create_many.
    """
    upload = EncryptedUpload(key=key, blob=blob, name=name, content_type=content_type)
    origin = StoredFile.Origin.LEGACY if legacy else StoredFile.Origin.UPLOAD
    stored = _stored_file_from_upload(owner=owner, upload=upload, origin=origin)
    detail = f" imported=legacy-cbc manifest_checked={'yes' if manifest_checked else 'no'}"
    _record_uploads(
        owner=owner,
        files=[stored],
        actor=actor or Actor(label=owner.get_username(), user_id=owner.pk),
        expires_at=None,
        audit_detail=detail if legacy else "",
    )
    return stored


def file_rewrap_key(*, file: StoredFile) -> bool:
    """Re-wrap a file's data key under the primary master key; False if it already was.

    The row is re-read locked and committed on its own, so a crash leaves each row on its
    old key or on the primary, never in between. Content is never touched. Raises
    KeyUnwrapError if the row's master key is not configured or its wrapped key does not
    open, and StoredFile.DoesNotExist if the file was deleted meanwhile.
    """
    keyring = get_keyring()
    with transaction.atomic():
        locked = StoredFile.objects.select_for_update().get(pk=file.pk)
        if locked.key_id == keyring.primary.key_id:
            return False
        key = unwrap_key(bytes(locked.wrapped_key), locked.id, keyring.get(locked.key_id))
        locked.wrapped_key = wrap_key(key, keyring.primary)
        locked.key_id = keyring.primary.key_id
        locked.save(update_fields=["wrapped_key", "key_id"])
    file.wrapped_key, file.key_id = locked.wrapped_key, locked.key_id
    return True


def file_replace_content(
    *, file: StoredFile, old_blob: str, key: FileKey, blob: StoredBlob
) -> bool:
    """Point a file at a re-encrypted copy of its content; remove the old blob once committed.

    The caller has checked that ``blob`` decrypts under ``key`` to the file's plaintext.
    Returns False, changing nothing, if the file was deleted or its blob replaced meanwhile.
    """
    if key.file_id != file.id or blob.plaintext_size != file.size:
        raise ValueError("the new blob is not this file's content")
    master = get_keyring().primary
    with transaction.atomic():
        locked = StoredFile.objects.select_for_update().filter(pk=file.pk, blob=old_blob).first()
        if locked is None:
            return False
        locked.blob, locked.digest, locked.format_version = blob.name, blob.digest, VERSION
        locked.sha256_sealed = seal_sha256(key, blob.sha256)
        locked.wrapped_key, locked.key_id = wrap_key(key, master), master.key_id
        locked.save(
            update_fields=[
                "blob",
                "digest",
                "sha256_sealed",
                "format_version",
                "wrapped_key",
                "key_id",
            ]
        )
        transaction.on_commit(lambda: _delete_blob(old_blob))
    return True


# -- retention


def files_purge_expired(*, now: datetime, dry_run: bool = False) -> list[StoredFile]:
    """Delete files past their own expiry or the site-wide retention; return them."""
    expired = Q(expires_at__lte=now)
    if settings.RETENTION_DAYS:
        expired |= Q(created_at__lt=now - timedelta(days=settings.RETENTION_DAYS))
    files = list(StoredFile.objects.filter(expired).order_by("created_at"))
    if dry_run:
        return files
    deleted = []
    for stored in files:
        try:
            file_delete(file=stored, actor=Actor(label="retention"))
        except FileGone:
            continue  # deleted meanwhile, by its owner or another purge
        deleted.append(stored)
    return deleted


def links_purge_expired(*, now: datetime, dry_run: bool = False) -> int:
    """Delete link rows that expired; the audit log keeps their history."""
    links = ShareLink.objects.filter(expires_at__lte=now)
    count = links.count()
    if not dry_run:
        links.delete()
    return count
