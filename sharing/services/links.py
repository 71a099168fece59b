"""Share links: creating, revoking, claiming downloads, password attempts, expiry."""

from __future__ import annotations

import enum
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.actors import Actor
from audit.events import Event
from audit.services import audit_record
from securefiles.lib.auth_types import User
from securefiles.lib.transactions import retry_on_deadlock
from sharing import selectors
from sharing.models import LinkClaim, ShareLink, StoredFile
from sharing.services.files import FileGone, file_lock
from throttle import counters, keys

logger = logging.getLogger(__name__)
# 256 bits from secrets: 43 URL-safe characters.
LINK_TOKEN_BYTES = 32


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
        file = file_lock(file.pk)
        link = ShareLink.objects.create(
            file=file,
            created_by=created_by,
            token_digest=selectors.link_token_digest(token),
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
        link.file = file_lock(link.file_id)
        updated = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            _audit_link(Event.LINK_REVOKED, link, actor)
    return bool(updated)


@dataclass(frozen=True)
class LinkClaimed:
    """A download taken from a link: ``number`` is the link's download count after it
    (1, 2, ...); ``claim_id`` the LinkClaim row that counts the bytes sent under it, None
    for a link without a download limit (nothing to count)."""

    number: int
    claim_id: int | None


def link_claim_budget(*, size: int) -> int:
    """Bytes all responses under one claim may send (see LinkClaim): the file's ``size``
    plus at most LINK_RESUME_SLACK_MB MiB, and less than ``size`` more, for what broken
    connections lost in transit and resumes sent again."""
    if size <= 0:
        return 0
    return size + min(size - 1, settings.LINK_RESUME_SLACK_MB * 1024 * 1024)


def _own_share(size: int, max_downloads: int) -> int:
    """q = (size - 1) // (2 x max_downloads): the most slack of its own a claim may have."""
    return max(0, size - 1) // (2 * max_downloads)


def link_claim_own_slack(*, size: int, max_downloads: int) -> int:
    """Bytes beyond one copy a claim may send without drawing on the link's pool: its
    share q of half the slack the limit allows (see LinkClaim), at most
    LINK_RESUME_SLACK_MB MiB; so one recipient's resumes can never leave another's
    broken download nothing to resume with."""
    return min(_own_share(size, max_downloads), settings.LINK_RESUME_SLACK_MB * 1024 * 1024)


def link_pool_bytes(*, size: int, max_downloads: int) -> int:
    """Bytes the link's pool holds for all its claims together, beyond one copy and their
    own slack each: size - 1 - N x q, so that N claims send at most N x size + size - 1."""
    return max(0, size - 1 - max_downloads * _own_share(size, max_downloads))


def _drawn(sent: int, size: int, own_slack: int) -> int:
    """Bytes of ``sent`` that a claim draws on the pool: beyond one copy and its slack."""
    return max(0, sent - size - own_slack)


class _NoRoom(Exception):
    """The link's pool cannot give what a range needs: the transaction is undone."""


@retry_on_deadlock
def link_claim_download(*, link: ShareLink, actor: Actor, sending: int) -> LinkClaimed | None:
    """Atomically take one download from a link, the first response under it about to
    send ``sending`` bytes (the whole file, the range asked for, or 0 when the browser is
    sent on to the link's GET download URL); None when the link is no longer usable.

    One conditional UPDATE: the database decides, so N+k parallel requests on a link
    with max_downloads=N deliver exactly N files, whatever the number of workers. The
    file's row is locked first, as for every write on a file: a claim racing the file's
    deletion waits for it and then finds the link gone (None). A limited link's claim
    gets its LinkClaim row in the same transaction, ``sending`` already counted. A claim
    is never given back once a byte was sent: a broken transfer resumes under the claim
    instead (``link_claim_reserve``). Raises TryAgain if the database gave up on the
    transaction (deadlock victim) every time.
    """
    usable = Q(revoked_at__isnull=True, expires_at__gt=timezone.now()) & (
        Q(max_downloads__isnull=True) | Q(download_count__lt=F("max_downloads"))
    )
    with transaction.atomic():
        try:
            link.file = file_lock(link.file_id)
        except FileGone:
            return None
        claimed = ShareLink.objects.filter(usable, pk=link.pk).update(
            download_count=F("download_count") + 1
        )
        if not claimed:
            return None
        link.refresh_from_db(fields=["download_count", "max_downloads"])
        claim_id = None
        if link.max_downloads is not None:
            size = link.file.size
            claim = LinkClaim.objects.create(
                link=link,
                number=link.download_count,
                budget=link_claim_budget(size=size),
                own_slack=link_claim_own_slack(size=size, max_downloads=link.max_downloads),
                sent=sending,
            )
            claim_id = claim.pk
        _audit_link(Event.DOWNLOAD, link, actor, f"via=link count={link.download_count}")
        if link.max_downloads is not None and link.download_count >= link.max_downloads:
            _audit_link(Event.LINK_USED_UP, link, actor)
    return LinkClaimed(number=link.download_count, claim_id=claim_id)


@retry_on_deadlock
def link_claim_reserve(*, claim_id: int, length: int, size: int) -> bool:
    """Count ``length`` more bytes (the next window of a response under a claim, of a
    file of ``size`` bytes) as sent; False, counting nothing, when they do not fit: past
    the claim's budget or, for what goes beyond one copy and the claim's own slack, past
    the link's pool (``link_pool_bytes``); or the claim is gone with its link or file.

    Conditional UPDATEs in one transaction, the claim's row first, then the link's: the
    database decides, so parallel responses of one session or of several never pass
    either limit together. The response gives back what it did not send
    (``link_claim_settle``). Raises TryAgain if the database gave up on the transaction
    (deadlock victim) every time.
    """
    try:
        with transaction.atomic():
            fits = Q(pk=claim_id, sent__lte=F("budget") - length)
            if not LinkClaim.objects.filter(fits).update(sent=F("sent") + length):
                return False
            claim = (
                LinkClaim.objects.select_related("link")
                .only("sent", "own_slack", "link__max_downloads")
                .get(pk=claim_id)
            )
            own = claim.own_slack
            drawn = _drawn(claim.sent, size, own) - _drawn(claim.sent - length, size, own)
            if drawn:
                limit = link_pool_bytes(size=size, max_downloads=claim.link.max_downloads or 1)
                pooled = Q(pk=claim.link_id, resent__lte=limit - drawn)
                if not ShareLink.objects.filter(pooled).update(resent=F("resent") + drawn):
                    raise _NoRoom
    except _NoRoom:
        return False
    return True


def link_claim_settle(*, claim_id: int, unsent: int, size: int) -> None:
    """Give back to a claim (and to its link's pool) the ``unsent`` bytes (>= 0) that a
    response counted but never handed to the server (the client left, or the rest of a
    window); ``size`` is the file's. Runs as a response closes: never raises; a failure
    only leaves the bytes counted, which errs on the safe side."""
    if unsent <= 0:
        return
    try:
        with transaction.atomic():
            back = Q(pk=claim_id, sent__gte=unsent)
            if not LinkClaim.objects.filter(back).update(sent=F("sent") - unsent):
                return
            claim = LinkClaim.objects.only("sent", "own_slack", "link_id").get(pk=claim_id)
            own = claim.own_slack
            given = _drawn(claim.sent + unsent, size, own) - _drawn(claim.sent, size, own)
            if given:
                ShareLink.objects.filter(pk=claim.link_id, resent__gte=given).update(
                    resent=F("resent") - given
                )
    except DatabaseError:
        logger.warning("unsent bytes not given back claim=%s unsent=%s", claim_id, unsent)


@retry_on_deadlock
def link_release_download(*, link: ShareLink, actor: Actor, claim_id: int | None) -> None:
    """Give back a claimed download whose response sent nothing (the stored copy failed
    verification before any header: a 502), with its LinkClaim row. Not capped, since no
    byte left the server; a transfer that started is never given back. Nothing is given
    back (nor raised) if the file was deleted meanwhile. Raises TryAgain if the database
    gave up on the transaction (deadlock victim) every time.
    """
    with transaction.atomic():
        try:
            link.file = file_lock(link.file_id)
        except FileGone:
            return
        # The claim's row before the link's, the order link_claim_reserve locks them in.
        if claim_id is not None:
            LinkClaim.objects.filter(pk=claim_id, link=link).delete()
        refunded = ShareLink.objects.filter(pk=link.pk, download_count__gt=0).update(
            download_count=F("download_count") - 1, refunds=F("refunds") + 1
        )
        outcome = "download given back" if refunded else "nothing to give back"
        _audit_link(Event.DOWNLOAD, link, actor, f"via=link nothing sent; {outcome}")


def link_resume_record(*, link: ShareLink, actor: Actor, claim: int, byte_range: str) -> None:
    """Audit a ranged request served under an earlier claim of this link (a resumed
    download): no download is taken. ``claim`` is the claim's number, ``byte_range`` the
    Content-Range sent (RFC 9110 section 14.4, e.g. "bytes 1000-1999/5000")."""
    _audit_link(Event.DOWNLOAD, link, actor, f"via=link resume of count={claim} range={byte_range}")


class LinkPasswordOutcome(enum.Enum):
    """What a password given for a link turned out to be."""

    RIGHT = "right"
    WRONG = "wrong"
    THROTTLED = "throttled"  # too many wrong ones in the window: not even checked


def link_password_check(*, link: ShareLink, password: str, actor: Actor) -> LinkPasswordOutcome:
    """Check a password given for a link, counting it against LINK_PASSWORD_ATTEMPTS.

    The attempt is counted before the slow Argon2 check, in one atomic step shared by all
    workers, so a burst of parallel guesses cannot all pass the limit before the first is
    counted; a right password gives its attempt back. A wrong one is audited
    (link.password_denied), and so is a refusal for too many (link.throttled).
    """
    limit, window = settings.LINK_PASSWORD_ATTEMPTS, settings.LINK_PASSWORD_WINDOW_SECONDS
    key = keys.link_password_key(link.pk)
    if counters.is_throttled(key, limit, window):
        return _link_throttled(link, actor)
    attempts = counters.add_failure(key, window)
    if attempts > limit:
        counters.remove_failure(key)  # refused unchecked: not a wrong password
        return _link_throttled(link, actor)
    if check_password(password, link.password_hash):
        counters.remove_failure(key)
        return LinkPasswordOutcome.RIGHT
    _audit_link(Event.LINK_PASSWORD_DENIED, link, actor, f"failures={attempts}")
    if attempts >= limit:
        return _link_throttled(link, actor)
    return LinkPasswordOutcome.WRONG


def _link_throttled(link: ShareLink, actor: Actor) -> LinkPasswordOutcome:
    _audit_link(Event.LINK_THROTTLED, link, actor)
    return LinkPasswordOutcome.THROTTLED


def links_purge_expired(*, now: datetime, dry_run: bool = False) -> int:
    """Delete link rows that expired; the audit log keeps their history."""
    links = ShareLink.objects.filter(expires_at__lte=now)
    count = links.count()
    if not dry_run:
        links.delete()
    return count
