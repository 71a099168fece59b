"""Writes of file requests: creating, revoking, expiry, passwords, and accepting files.

Files reach a request through the shared upload paths (the form's EncryptingUploadHandler
and tus): both record them with sharing's uploads_record, whose files_recording signal
calls request_accept inside the recording transaction (filerequests.receivers). There the
request's row is locked, its state and limits checked against what is already counted,
and the counts moved: limits hold exactly under parallel uploads, and an upload finishing
after a revocation or the expiry is rolled back (sharing's UploadNotAccepted).
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actors import Actor
from audit.events import Event
from audit.services import audit_record
from filerequests import selectors
from filerequests.models import FileRequest, ReceivedFile, RequestUpload
from securefiles.lib.auth_types import User
from securefiles.lib.mail import send_later
from securefiles.lib.site import absolute_url
from securefiles.lib.transactions import retry_on_deadlock
from sharing.models import ResumableUpload, StoredFile
from sharing.services import (
    LinkPasswordOutcome,
    UploadGone,
    UploadNotAccepted,
    file_create_many,
    resumable_terminate,
)
from sharing.storage.uploads import EncryptedUpload
from throttle import counters, keys

# 256 bits from secrets: 43 URL-safe characters, as share links.
REQUEST_TOKEN_BYTES = 32
MiB = 1024 * 1024


@dataclass(frozen=True)
class Sender:
    """Who sends, as they declared it (never verified); both may be empty."""

    name: str = ""
    email: str = ""


def _audit(event: str, file_request: FileRequest, actor: Actor, detail: str = "") -> None:
    """A request.* entry: detail starts with "request=<id>"."""
    audit_record(event=event, actor=actor, detail=f"request={file_request.pk} {detail}".strip())


@retry_on_deadlock
def request_create(
    *,
    owner: User,
    title: str,
    message: str,
    expires_in_hours: int,
    max_files: int | None,
    max_mb: int | None,
    password: str,
    require_sender: bool,
    actor: Actor,
) -> tuple[FileRequest, str]:
    """Create a request; return it with its token, which exists only in this return value
    (only its SHA-256 is stored). ``max_mb`` is in MiB (1024 × 1024 bytes); the password,
    if any, is hashed with Argon2. Raises TryAgain (deadlock victim every time)."""
    token = secrets.token_urlsafe(REQUEST_TOKEN_BYTES)
    with transaction.atomic():
        file_request = FileRequest.objects.create(
            owner=owner,
            title=title,
            message=message,
            token_digest=selectors.token_digest(token),
            expires_at=timezone.now() + timedelta(hours=expires_in_hours),
            max_files=max_files,
            max_bytes=max_mb * MiB if max_mb else None,
            password_hash=make_password(password, hasher="argon2") if password else "",
            require_sender=require_sender,
        )
        _audit(
            Event.REQUEST_CREATED,
            file_request,
            actor,
            f"title={title!r} expires={file_request.expires_at.isoformat()} "
            f"max_files={max_files} max_mb={max_mb} password={'yes' if password else 'no'}",
        )
    return file_request, token


@retry_on_deadlock
def request_revoke(*, file_request: FileRequest, actor: Actor) -> bool:
    """Revoke a request: its link answers 404 from now on, and its unfinished uploads are
    cancelled (rows and blobs; a PATCH still streaming loses its lease, and its completion
    would be refused anyway). False if it was revoked already."""
    with transaction.atomic():
        revoked = FileRequest.objects.filter(pk=file_request.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            _audit(Event.REQUEST_REVOKED, file_request, actor)
    if revoked:
        _cancel_unfinished(file_request, actor)
    return bool(revoked)


def _cancel_unfinished(file_request: FileRequest, actor: Actor) -> None:
    for upload_id in RequestUpload.objects.filter(request=file_request).values_list(
        "id", flat=True
    ):
        try:
            resumable_terminate(
                upload_id=upload_id, owner=file_request.owner, actor=actor, reason="request revoked"
            )
        except UploadGone:
            pass  # finished, cancelled or expired meanwhile
    RequestUpload.objects.filter(request=file_request).delete()


def request_note_expiry(*, file_request: FileRequest, actor: Actor) -> None:
    """Audit a request's expiry once, when it is first seen expired (by a visitor, its
    owner or the admin); nothing if it is not expired or was recorded already."""
    now = timezone.now()
    if file_request.expiry_recorded or file_request.expires_at > now:
        return
    with transaction.atomic():
        noted = FileRequest.objects.filter(
            pk=file_request.pk, expiry_recorded=False, expires_at__lte=now
        ).update(expiry_recorded=True)
        if noted:
            _audit(Event.REQUEST_EXPIRED, file_request, actor)
    file_request.expiry_recorded = True


def request_password_check(
    *, file_request: FileRequest, password: str, actor: Actor
) -> LinkPasswordOutcome:
    """Check a password given for a request, counted against LINK_PASSWORD_ATTEMPTS per
    LINK_PASSWORD_WINDOW_SECONDS in the counters all workers share (throttle.counters),
    before the slow Argon2 check, exactly as a link's (sharing.services.links); a wrong
    one is audited (request.password_denied), a refusal for too many too
    (request.throttled)."""
    limit, window = settings.LINK_PASSWORD_ATTEMPTS, settings.LINK_PASSWORD_WINDOW_SECONDS
    key = keys.file_request_password_key(file_request.pk)
    attempts = counters.add_failure(key, window)
    if attempts > limit:
        counters.remove_failure(key)  # refused unchecked: not a wrong password
        _audit(Event.REQUEST_THROTTLED, file_request, actor)
        return LinkPasswordOutcome.THROTTLED
    if check_password(password, file_request.password_hash):
        counters.remove_failure(key)
        return LinkPasswordOutcome.RIGHT
    _audit(Event.REQUEST_PASSWORD_DENIED, file_request, actor, f"failures={attempts}")
    return LinkPasswordOutcome.WRONG


def request_upload_throttled(*, ip: str, files: int = 1) -> int:
    """Count ``files`` uploads started from ``ip`` through file requests; 0 if within
    FILE_REQUEST_UPLOADS_PER_IP per FILE_REQUEST_UPLOAD_WINDOW_SECONDS, else the seconds
    until the window ends (a Retry-After; the refused ones are not counted)."""
    key = keys.file_request_uploads_key(ip)
    window = settings.FILE_REQUEST_UPLOAD_WINDOW_SECONDS
    for counted in range(files):
        if counters.add_failure(key, window) > settings.FILE_REQUEST_UPLOADS_PER_IP:
            for _n in range(counted + 1):
                counters.remove_failure(key)
            return max(1, counters.seconds_left(key, window))
    return 0


def _tie(
    file_request: FileRequest, upload_id: uuid.UUID, sender: Sender, batch: uuid.UUID
) -> RequestUpload:
    return RequestUpload(
        id=upload_id,
        request=file_request,
        sender_name=sender.name,
        sender_email=sender.email,
        batch=batch,
    )


def request_upload_tie(
    *, file_request: FileRequest, upload_id: uuid.UUID, sender: Sender, batch: uuid.UUID
) -> None:
    """Mark a started tus upload (its id, which the file will keep) as going into the
    request. The request's ties whose upload is gone (cancelled, or expired and purged)
    are dropped first, so a sender's declared details do not outlive their upload."""
    with transaction.atomic():
        RequestUpload.objects.filter(request=file_request).exclude(
            id__in=ResumableUpload.objects.values("id")
        ).delete()
        _tie(file_request, upload_id, sender, batch).save(force_insert=True)


@retry_on_deadlock
def request_receive_form(
    *,
    file_request: FileRequest,
    uploads: Sequence[EncryptedUpload],
    sender: Sender,
    batch: uuid.UUID,
    actor: Actor,
) -> list[StoredFile]:
    """Record a form upload's files (already encrypted and stored) into the request, all
    or none, and e-mail the owner once committed (one message for the batch). Raises
    UploadNotAccepted (revoked, expired or full meanwhile; nothing recorded),
    QuotaExceeded (the owner's quota), TryAgain."""
    with transaction.atomic():
        RequestUpload.objects.bulk_create(
            [_tie(file_request, upload.key.file_id, sender, batch) for upload in uploads]
        )
        stored = file_create_many(owner=file_request.owner, uploads=uploads, actor=actor)
        request_batch_close(request_id=file_request.pk, batch=batch)
    return stored


def _fits(file_request: FileRequest, files: list[StoredFile]) -> bool:
    """Whether ``files`` may still go into the (locked, fresh) request."""
    if not selectors.request_is_live(file_request):
        return False
    left = file_request.files_left
    if left is not None and len(files) > left:
        return False
    room = file_request.bytes_left
    return room is None or sum(stored.size for stored in files) <= room


def request_accept(*, owner: User, files: Sequence[StoredFile], actor: Actor) -> None:
    """Inside the transaction recording ``files`` (sharing's files_recording): those tied
    to a request are accepted into it, its row locked, or the whole upload refused with
    UploadNotAccepted. Files tied to no request are left alone. Audits each received file
    (request.file_received: request id, declared sender, the IP in the entry's actor)."""
    ties = {tie.id: tie for tie in RequestUpload.objects.filter(id__in=[f.id for f in files])}
    if not ties:
        return
    received = []
    for request_id in sorted({tie.request_id for tie in ties.values()}):
        # FOR NO KEY UPDATE: it queues parallel recordings on the request, yet does not
        # wait for the key-share locks that inserting rows pointing at it takes.
        locked = FileRequest.objects.select_for_update(no_key=True).filter(pk=request_id).first()
        batch = [f for f in files if f.id in ties and ties[f.id].request_id == request_id]
        if locked is None or locked.owner_id != owner.pk or not _fits(locked, batch):
            raise UploadNotAccepted
        received += [_received(locked, stored, ties[stored.id]) for stored in batch]
        FileRequest.objects.filter(pk=request_id).update(
            received_files=F("received_files") + len(batch),
            received_bytes=F("received_bytes") + sum(stored.size for stored in batch),
        )
    ReceivedFile.objects.bulk_create(received)
    RequestUpload.objects.filter(id__in=list(ties)).delete()
    for tie in {(tie.request_id, tie.batch) for tie in ties.values()}:
        _close_if_complete(*tie)
    for row in received:  # the audit entries last: the chain head is the last lock
        audit_record(
            event=Event.REQUEST_FILE_RECEIVED,
            actor=actor,
            file_id=row.file.id,
            file_name=row.file.name,
            detail=f"request={row.request_id} sender_name={row.sender_name!r} "
            f"sender_email={row.sender_email!r} size={row.file.size}",
        )


def _received(file_request: FileRequest, stored: StoredFile, tie: RequestUpload) -> ReceivedFile:
    return ReceivedFile(
        file=stored,
        request=file_request,
        sender_name=tie.sender_name,
        sender_email=tie.sender_email,
        batch=tie.batch,
    )


def _close_if_complete(request_id: int, batch: uuid.UUID) -> None:
    """Close the batch once none of its uploads is still unfinished: files sent together
    (the page starts every chosen file at once) make one e-mail, sent by the last to
    arrive. Parallel completions queue on the request's row, so the last one sees the
    others' ties gone."""
    unfinished = RequestUpload.objects.filter(
        batch=batch, id__in=ResumableUpload.objects.values("id")
    )
    if not unfinished.exists():
        request_batch_close(request_id=request_id, batch=batch)


def request_batch_close(*, request_id: int, batch: uuid.UUID) -> None:
    """Once the current transaction commits, e-mail the owner about the batch's files
    (request_notify_owner); at once outside a transaction."""
    transaction.on_commit(lambda: request_notify_owner(request_id=request_id, batch=batch))


def request_notify_owner(*, request_id: int, batch: uuid.UUID) -> int:
    """The one place the owner is told files arrived: one e-mail for the batch's files not
    told yet, naming the request (never the files) with a link to its page; returns how
    many files it covered (0: nothing sent). Small and self-contained, so that it can move
    onto a job queue. Nothing is sent to an owner without an e-mail address."""
    with transaction.atomic():
        pending = ReceivedFile.objects.select_for_update().filter(
            request_id=request_id, batch=batch, notified_at__isnull=True
        )
        count = pending.update(notified_at=timezone.now())
    file_request = FileRequest.objects.select_related("owner").filter(pk=request_id).first()
    if not count or file_request is None or not file_request.owner.email:
        return 0
    url = absolute_url(reverse("filerequests:detail", args=[request_id]))
    subject = _("Files arrived: %(title)s") % {"title": file_request.title}
    body = _(
        "%(count)d file(s) arrived through your file request “%(title)s”.\n\n"
        "See them (after logging in) at:\n%(url)s\n"
    ) % {"count": count, "title": file_request.title, "url": url}
    send_later(subject=subject, body=body, to=[file_request.owner.email], reason="request-files")
    return count


class EmailsThrottled(Exception):
    """The owner e-mailed FILE_REQUEST_EMAILS_PER_USER links within the window; nothing
    was sent. ``retry_after``: seconds until the window ends (at least 1)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many links e-mailed; retry after {retry_after} s")
        self.retry_after = retry_after


def request_email_link(*, file_request: FileRequest, token: str, recipient: str) -> bool:
    """E-mail the request's link to ``recipient`` from the portal; ``token`` must be the
    request's own (the owner has it on the page shown once after creation). False (and
    nothing sent) if it is not, or the request is no longer open. Raises EmailsThrottled
    past the owner's FILE_REQUEST_EMAILS_PER_USER per FILE_REQUEST_EMAIL_WINDOW_SECONDS
    (in the counters every worker shares; a refused or invalid one is not counted).
    The e-mail of a password-protected request carries neither its title nor its message."""
    if not hmac.compare_digest(selectors.token_digest(token), file_request.token_digest):
        return False
    if not selectors.request_is_open(file_request):
        return False
    key = keys.file_request_emails_key(file_request.owner_id)
    window = settings.FILE_REQUEST_EMAIL_WINDOW_SECONDS
    if counters.add_failure(key, window) > settings.FILE_REQUEST_EMAILS_PER_USER:
        counters.remove_failure(key)
        raise EmailsThrottled(max(1, counters.seconds_left(key, window)))
    url = absolute_url(reverse("filerequests:visit", args=[token]))
    who = selectors.owner_display_name(file_request) or _("A user of the secure file portal")
    expires = file_request.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    if file_request.has_password:
        # The link travels by e-mail, the password another way: the e-mail tells nothing
        # the page tells only after the password (a title may name a patient), but who
        # asks, so that the recipient can tell it from phishing.
        subject = _("%(who)s asks you for files") % {"who": who}
        body = _(
            "%(who)s asks you to send files through the secure file portal.\n\n"
            "The request is protected by a password, which you are given separately.\n\n"
            "Send them here (the link is yours alone; it expires on %(expires)s):\n%(url)s\n"
        ) % {"who": who, "expires": expires, "url": url}
    else:
        subject = _("%(who)s asks you for files: %(title)s") % {
            "who": who,
            "title": file_request.title,
        }
        body = _(
            "%(who)s asks you to send files through the secure file portal.\n\n"
            "%(title)s\n%(message)s\n\nSend them here (the link is yours alone; it expires on "
            "%(expires)s):\n%(url)s\n"
        ) % {
            "who": who,
            "title": file_request.title,
            "message": file_request.message,
            "expires": expires,
            "url": url,
        }
    send_later(subject=subject, body=body, to=[recipient], reason="request-link")
    return True
