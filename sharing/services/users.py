"""Users as owners of files: offboarding, deactivation, deletion, and the record of what an
administrator changed."""

from __future__ import annotations

import logging
from contextlib import suppress

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import services as account_services
from audit.actors import Actor
from audit.changes import state_changes
from audit.events import Event
from audit.models import AuditEntry
from audit.services import audit_record
from securefiles.lib.auth_types import User
from securefiles.lib.transactions import check_foreign_keys_now, retry_on_deadlock
from sharing import selectors
from sharing.models import Share, ShareLink, StoredFile
from sharing.services.files import FileGone, file_delete

logger = logging.getLogger(__name__)


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

    For code that deactivates a user (a script, a directory sync); the admin's user form
    saves the flag itself and then calls user_offboard. Raises TryAgain as user_offboard does.
    """
    with transaction.atomic():
        user.is_active = False
        setattr(user, account_services.PRIVILEGES_AUDITED, True)  # user.deactivated below
        user.save(update_fields=["is_active"])
        user_offboard(user=user, actor=actor)


def user_update(*, user: User) -> None:
    """Save an administrator's edit of a user's own fields (the admin's change form). What
    changed is recorded by user_change_record, once groups and quota are saved too."""
    with transaction.atomic():
        user.save()


def user_state_changes(*, before: selectors.UserState, after: selectors.UserState) -> list[str]:
    """``field: old -> new`` for every field that differs (no password hash is compared)."""
    return state_changes(before=before, after=after)


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
