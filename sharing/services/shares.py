"""Shares with named colleagues and with groups."""

from __future__ import annotations

import logging
from datetime import date

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actors import Actor
from audit.events import Event
from audit.services import audit_record
from securefiles.lib import site
from securefiles.lib.auth_types import User
from securefiles.lib.mail import send_later
from securefiles.lib.transactions import retry_on_deadlock
from sharing.models import Share, StoredFile
from sharing.services.files import file_lock
from throttle import counters, keys

# A colleague is e-mailed about one file at most once per this many seconds.
SHARE_NOTICE_WINDOW_SECONDS = 3600

logger = logging.getLogger(__name__)


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


def _expiry_detail(expires_on: date | None) -> str:
    return "" if expires_on is None else f" expires_on={expires_on.isoformat()}"


def _check_expiry(expires_on: date | None) -> None:
    if expires_on is not None and expires_on < timezone.localdate():
        raise ShareError(_("The last day of access cannot be in the past."))


@retry_on_deadlock
def share_grant(
    *, file: StoredFile, query: str, actor: Actor, expires_on: date | None = None
) -> Share:
    """Give a colleague (by username or e-mail) read access to a file; notify them.

    ``expires_on`` is the last day of access (TIME_ZONE), None for no expiry. Raises
    ShareError (message safe to show) when the share cannot be granted (the day is past,
    no such colleague, the owner, already shared), ShareLookupThrottled when the acting
    user (``actor.user_id``, else the owner) has had too many lookups match no account in
    the window (then nothing is looked up at all), FileGone if the file was deleted
    meanwhile, and TryAgain if the database gave up on the transaction (deadlock victim)
    every time.
    """
    _check_expiry(expires_on)
    user_id = actor.user_id if actor.user_id is not None else file.owner_id
    colleague = _lookup_colleague(query=query, actor=actor, user_id=user_id)
    if colleague.pk == file.owner_id:
        raise ShareError(_("You already own this file."))
    with transaction.atomic():
        share = _share_create(
            file=file,
            recipient={"colleague": colleague},
            expires_on=expires_on,
            actor=actor,
            already=_("This file is already shared with that user."),
        )
        transaction.on_commit(lambda: _notify_colleague(share))
    return share


def _share_create(
    *, file: StoredFile, recipient: dict, expires_on: date | None, actor: Actor, already: str
) -> Share:
    """In the caller's transaction: lock the file, create the share with ``recipient``
    ({"colleague": user} or {"group": group}) and audit it. Raises ShareError(``already``)
    when that recipient already has a share of the file, FileGone if the file is gone."""
    locked = file_lock(file.pk)
    share, created = Share.objects.get_or_create(
        file=locked, **recipient, defaults={"expires_on": expires_on}
    )
    if not created:
        raise ShareError(already)
    audit_record(
        event=Event.SHARE_GRANTED,
        actor=actor,
        file_id=locked.id,
        file_name=locked.name,
        detail=share.recipient_detail + _expiry_detail(expires_on),
    )
    return share


@retry_on_deadlock
def share_grant_group(
    *, file: StoredFile, group_name: str, actor: Actor, expires_on: date | None = None
) -> Share:
    """Give every member of a group the owner belongs to read access to a file.

    Membership is looked up on every request (sharing.selectors.shares_reaching), so
    whoever joins later gains access and whoever leaves loses it. Only the owner's own
    groups can be named: the answer for any other name is the same as for a group that
    does not exist, so the form reveals no group's name. No e-mail is sent (a group may
    be large); members find the file under "Shared with me". ``expires_on`` as in
    share_grant. Raises ShareError, FileGone and TryAgain as share_grant does.
    """
    _check_expiry(expires_on)
    group = Group.objects.filter(name=group_name.strip(), user=file.owner_id).first()
    if group is None:
        raise ShareError(_("You are not a member of a group of that name."))
    with transaction.atomic():
        return _share_create(
            file=file,
            recipient={"group": group},
            expires_on=expires_on,
            actor=actor,
            already=_("This file is already shared with that group."),
        )


def _notify_colleague(share: Share) -> None:
    """Tell a colleague by e-mail that a file was shared with them, with a link to its page.

    The link is built from SITE_URL (site.absolute_url), never from a request's Host.
    The file's name travels in clear over e-mail, so it is left out unless the operator
    set SHARE_EMAIL_INCLUDES_NAME; the subject never carries it. Queued (send_later): the
    worker sends it, retrying a failing mail server; the request never waits for one.
    """
    colleague, file = share.colleague, share.file
    if colleague is None or not colleague.email:
        return
    # Sharing, revoking and sharing again in a loop must not flood a colleague's inbox:
    # one e-mail per file and colleague per window (the share itself always happens).
    key = keys.share_notice_key(file.pk, colleague.pk)
    if counters.add_failure(key, SHARE_NOTICE_WINDOW_SECONDS) > 1:
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
    send_later(subject=subject, body=body, to=[colleague.email], reason="share")


@retry_on_deadlock
def share_revoke(*, share: Share, actor: Actor) -> bool:
    """Take a colleague's access to a file away; False if the share was already gone.

    Raises FileGone if the file was deleted meanwhile (its shares with it), TryAgain if
    the database gave up on the transaction (deadlock victim) every time.
    """
    recipient = share.recipient_detail
    with transaction.atomic():
        locked = file_lock(share.file_id)
        deleted, _counts = Share.objects.filter(pk=share.pk).delete()
        if not deleted:
            return False
        # Last, like every audit entry (see file_delete): no lock is awaited holding the head.
        audit_record(
            event=Event.SHARE_REVOKED,
            actor=actor,
            file_id=locked.id,
            file_name=locked.name,
            detail=recipient,
        )
    return True
