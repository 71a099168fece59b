"""Reads: every lookup of a file goes through a function that takes the user."""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
)
from django.http import Http404
from django.utils import timezone

import securefiles.lib.sqlite_functions  # noqa: F401  (the unicode_icontains lookup)
from audit.models import AuditEntry
from securefiles.lib.auth_types import User
from securefiles.lib.values import uuid_or_none
from sharing.crypto import (
    DecryptingReader,
    FileKey,
    InvalidTag,
    KeyProblem,
    open_sha256,
    unwrap_key,
)
from sharing.models import (
    LinkClaim,
    ResumableUpload,
    Share,
    ShareLink,
    StorageQuota,
    StorageUsage,
    StoredFile,
)
from sharing.storage import get_encrypted_storage
from sharing.storage.keyring import get_keyring

# What secrets.token_urlsafe(32) produces: 43 characters of the URL-safe alphabet.
LINK_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


# The orderings the file list offers, each matching an index of StoredFile exactly (owner
# first); the id makes every order total and pages stable.
FILE_ORDERINGS: dict[str, tuple[str, ...]] = {
    "name": ("sort_name", "id"),
    "-name": ("-sort_name", "-id"),
    "size": ("size", "id"),
    "-size": ("-size", "-id"),
    "date": ("created_at", "id"),
    "-date": ("-created_at", "-id"),
}
# The sort key of each ordering (without its direction), selected as ``seek_key`` so that
# a page's last row says where the next page starts (files_seek).
FILE_SEEK_KEYS: dict[str, F] = {
    "name": F("sort_name"),
    "size": F("size"),
    "date": F("created_at"),
}
_LIST_FIELDS = (
    "id",
    "name",
    "size",
    "content_type",
    "created_at",
    "expires_at",
    "owner_id",
    "origin",
)
SEARCH_MAX_CHARS = 200


def files_owned_by(
    *, user: User, search: str = "", ordering: str = "-date"
) -> QuerySet[StoredFile]:
    """The user's files for the list page: one query per page, whatever the count.

    ``search`` keeps the files whose name contains it (name_contains).
    """
    files = StoredFile.objects.filter(owner=user).only(*_LIST_FIELDS)
    if search:
        files = name_contains(files, search)
    seek_key = FILE_SEEK_KEYS[ordering.lstrip("-")]
    return files.annotate(seek_key=seek_key).order_by(*FILE_ORDERINGS[ordering])


def files_seek(
    files: QuerySet[StoredFile], *, ordering: str, key: object, file_id: uuid.UUID, forward: bool
) -> QuerySet[StoredFile]:
    """The files of ``files_owned_by(ordering=ordering)`` after (``forward``) or before
    the row whose sort key is ``key`` and id ``file_id``: keyset ("seek") pagination, so a
    deep page costs what the first does. Backwards, the rows come nearest first (reverse
    them to show). The ``>=`` bound is what the index seeks to; the rest breaks ties.
    """
    ascending = not ordering.startswith("-")
    op = "gt" if ascending == forward else "lt"
    bound = Q(**{f"seek_key__{op}e": key})
    past = Q(**{f"seek_key__{op}": key}) | Q(**{f"id__{op}": file_id})
    files = files.filter(bound & past)
    return files if forward else files.reverse()


def files_slice(files: QuerySet[StoredFile], start: int, stop: int) -> list[StoredFile]:
    """Rows ``start`` to ``stop`` (0-based, ``stop`` excluded) of ``files``, a
    ``files_owned_by`` queryset, in its order: a page typed by number (OFFSET).

    Past the first rows, a deferred join in one query: the page's ids are read with
    OFFSET from the sort's index alone (``owner, created_at, id``, ``owner, size, id`` and
    ``owner, sort_name, id``: the skipped rows are never fetched from the table), then the
    page's rows by id. Read whole, every skipped row was fetched and its columns and sort
    key computed before being thrown away (page 1,000 of 2,000: 50,000 rows, ~45 ms). The
    name sort is on a stored column for this (migration 0019): on an index of the
    expression ``lower(left(name, 200))`` PostgreSQL never reads index-only, and sorted
    the owner's 100,000 rows or fetched the 50,000 skipped ones (55-125 ms).
    """
    if start <= 0:
        return list(files[:stop])
    return list(files.filter(pk__in=files.values("pk")[start:stop]))


def name_contains(files: QuerySet[StoredFile], search: str) -> QuerySet[StoredFile]:
    """The files whose name contains ``search`` (name_matches)."""
    return files.filter(name_matches(search))


def name_matches(search: str, field: str = "name") -> Q:
    """A name containing ``search``, ignoring case in any script.

    The query and the name are compared as typed (accents count: "resume" does not find
    "résumé"), but a query typed composed (NFC, as keyboards send) also finds a name
    stored decomposed (NFD, as some systems send file names), and the reverse. On
    PostgreSQL the trigram index on ``upper(name)`` serves it; on SQLite it reads the
    owner's rows (securefiles.lib.sqlite_functions). ``%`` and ``_`` are literal.
    """
    forms = {unicodedata.normalize("NFC", search), unicodedata.normalize("NFD", search)}
    return Q(*((f"{field}__unicode_icontains", form) for form in sorted(forms)), _connector=Q.OR)


def file_get_for_owner(*, user: User, file_id: uuid.UUID) -> StoredFile:
    """The file, if this user owns it; 404 otherwise (same answer whether it exists)."""
    try:
        return StoredFile.objects.get(pk=file_id, owner=user)
    except StoredFile.DoesNotExist:
        raise Http404("No such file") from None


def shares_reaching(*, user: User) -> QuerySet[Share]:
    """The live shares that give ``user`` read access: with them by name, or with a group
    they are a member of now, and not past their last day (``expires_on``, TIME_ZONE).

    The one definition of "shared with"; every reader lookup is built on it, so leaving a
    group, a revocation and an expiry all take effect on the next request.
    """
    reaches = Q(colleague=user) | Q(group__in=_group_ids_of(user))
    return Share.objects.filter(reaches, _share_is_live())


def _group_ids_of(user: User) -> QuerySet[Any]:
    """The ids of the groups ``user`` is in now, as a subquery of the membership table
    alone: a join through auth_group would repeat each share per member and keep
    PostgreSQL from reading the share indexes in order."""
    membership = get_user_model().groups.through
    return membership.objects.filter(user_id=user.pk).values("group_id")


def _share_is_live() -> Q:
    """Not past its last day: ``expires_on`` today or later (TIME_ZONE), or none."""
    return Q(expires_on__isnull=True) | Q(expires_on__gte=timezone.localdate())


def _readable_by(user: User) -> Q:
    return Q(owner=user) | Q(pk__in=shares_reaching(user=user).values("file_id"))


def file_get_for_reader(*, user: User, file_id: uuid.UUID) -> StoredFile:
    """The file, if this user owns it or a live share reaches them; 404 otherwise."""
    found = StoredFile.objects.filter(_readable_by(user), pk=file_id).first()
    if found is None:
        raise Http404("No such file")
    return found


def share_used_by(*, user: User, file: StoredFile) -> Share | None:
    """The live share through which ``user`` reads ``file`` (theirs by name before a
    group's, then the oldest), for the audit entry of a download; None if there is none."""
    shares = shares_reaching(user=user).filter(file=file).select_related("group")
    return shares.order_by(F("colleague").asc(nulls_last=True), "created_at", "id").first()


def file_exists(*, file_id: uuid.UUID) -> StoredFile | None:
    """For the audit log only: whether a denied request named a real file."""
    return StoredFile.objects.filter(pk=file_id).only("id", "name").first()


def files_shared_with(*, user: User, search: str = "") -> QuerySet[StoredFile]:
    """Files that live shares reach ``user`` with (shares_reaching), owned by others,
    newest first, each once, optionally searched by name (name_matches). The API's list;
    the web page lists shares (shares_with_me)."""
    shares = shares_reaching(user=user)
    if search:  # by the shares' copy of the name: their index by colleague and group
        shares = shares.filter(name_matches(search, field="file_name"))
    # An owner who is in a group the file is shared with already sees it among their own.
    files = StoredFile.objects.filter(pk__in=shares.values("file_id")).exclude(owner=user)
    return files.select_related("owner").order_by("-created_at", "-id")


def shares_with_me(*, user: User, search: str = "") -> SharesWithMe:
    """The live shares that reach ``user`` (shares_reaching: by name, or through a group
    they are in now, not expired) of files others own, most recently shared first, each
    with its file and the file's owner (``share.file``, ``share.file.owner``); optionally
    searched by the file's name. A file shared with the user in several ways is listed
    once, by its first share. A sequence to count and slice (a Paginator takes it)."""
    return SharesWithMe(user, search)


class SharesWithMe:
    """ "Shared with me" as a sliceable sequence whose slices cost what they show.

    The shares by name and the group shares are two branches, each read newest first from
    its index (share_colleague_date_idx; a group's shares by group_id) with LIMIT at the
    slice's end, then merged: a single query with ``colleague = … OR group_id IN …``
    makes PostgreSQL collect and sort every share the user has (10,000 shares: 30 ms a
    page; this: about 1 ms for the first page). ``len()`` counts exactly (count()).
    """

    def __init__(self, user: User, search: str) -> None:
        self.user, self.search = user, search
        # The user's groups, read once (a few ids). With none (most users) the list is
        # their shares by name alone, one per file (one_share_per_colleague): one branch,
        # and no test for an earlier share of the same file (less to build and to plan).
        self._group_ids = list(_group_ids_of(user).values_list("group_id", flat=True))
        live = _share_is_live()
        self._earlier: QuerySet[Share] | None = None
        if self._group_ids:
            reaching = Share.objects.filter(Q(colleague=user) | Q(group__in=self._group_ids), live)
            self._earlier = reaching.filter(file=OuterRef("file"), pk__lt=OuterRef("pk"))
        # A share by name is never of the user's own file (the services refuse it, a
        # transfer deletes it), so that branch is read from its index alone; a group's
        # share may be of a member's own file, listed among their own files instead.
        self._branches = [self._narrowed(Share.objects.filter(live, colleague=user))]
        if self._group_ids:
            by_group = Share.objects.filter(live, group__in=self._group_ids)
            self._branches.append(self._narrowed(by_group.exclude(file__owner=user)))
        self._bound = Q()  # seek(): where the rows start
        self._ordering: tuple[str, ...] = ("-created_at", "-id")

    def _narrowed(self, branch: QuerySet[Share]) -> QuerySet[Share]:
        # Searched by the share's copy of its file's name (Share.file_name): its trigram
        # index by colleague and group finds only this user's matching shares.
        if self._earlier is not None:
            branch = branch.exclude(Exists(self._earlier))
        if self.search:
            branch = branch.filter(name_matches(self.search, field="file_name"))
        return branch

    def count(self) -> int:
        """How many shares the list has (files shared with the user): the user's live
        shares by name (one per file, never of their own file: the services refuse those
        and a transfer deletes them; counted from their index) plus the files only group
        shares reach (few, checked one by one)."""
        live = _share_is_live()
        by_name = Share.objects.filter(live, colleague=self.user)
        if self.search:
            by_name = by_name.filter(name_matches(self.search, field="file_name"))
        counted = by_name.order_by().values("file")
        if self._group_ids:
            by_group = (
                Share.objects.filter(live, group__in=self._group_ids)
                .exclude(file__owner=self.user)
                .exclude(file__in=Share.objects.filter(live, colleague=self.user).values("file"))
            )
            if self.search:
                by_group = by_group.filter(name_matches(self.search, field="file_name"))
            only_group = by_group.order_by().values("file").distinct()
            counted = counted.union(only_group, all=True)
        return counted.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[Share]:
        """Rows ``index.start`` to ``index.stop`` (a slice with a stop; no step)."""
        start, stop = index.start or 0, index.stop
        if stop is None or index.step is not None:
            raise TypeError("slice with an end and no step")
        if stop <= start:
            return []
        if len(self._branches) == 1:  # the shares by name alone: read in order directly
            rows = self._branches[0]
        else:
            rows = Share.objects.filter(pk__in=self._first_ids(stop))
        rows = rows.order_by(*self._ordering)
        if start > 0:
            # Deferred join (as files_slice): the page's ids with OFFSET from the shares
            # alone, then its rows with their files and owners. Read whole, PostgreSQL
            # joined each skipped share to its file and owner (page 100: 4,950 of each).
            rows = Share.objects.filter(pk__in=rows.values("pk")[start:stop])
            rows, start, stop = rows.order_by(*self._ordering), 0, stop - start
        return list(rows.select_related("file", "file__owner", "group")[start:stop])

    def first_ids(self, stop: int) -> list[int]:
        """The ids of the list's first ``stop`` shares, in its order (one query)."""
        if len(self._branches) == 1:
            rows = self._branches[0]
        else:
            rows = Share.objects.filter(pk__in=self._first_ids(stop))
        return list(rows.order_by(*self._ordering).values_list("pk", flat=True)[:stop])

    def with_ids(self, ids: list[int]) -> list[Share]:
        """The shares whose ids are ``ids`` (from first_ids), in that order, each with its
        file, the file's owner and the group; one gone since is left out."""
        rows = Share.objects.filter(pk__in=ids).select_related("file", "file__owner", "group")
        found = {share.pk: share for share in rows}
        return [found[pk] for pk in ids if pk in found]

    def reverse(self) -> SharesWithMe:
        """The same shares, oldest first (a Paginator's last pages are read from there)."""
        reversed_ = copy.copy(self)
        reversed_._ordering = tuple(
            key[1:] if key.startswith("-") else f"-{key}" for key in self._ordering
        )
        return reversed_

    def seek(self, *, created_at: datetime, share_id: int, forward: bool) -> SharesWithMe:
        """The shares listed after (``forward``: older) or before (newer) the share
        created at ``created_at`` with id ``share_id``: keyset pagination, each branch
        read from its index from there. Backwards, the rows come nearest first (reverse
        them to show). The ``>=`` bound is what the index seeks to; the id breaks ties."""
        op = "lt" if forward else "gt"
        bound = Q(**{f"created_at__{op}e": created_at}) & (
            Q(**{f"created_at__{op}": created_at}) | Q(**{f"pk__{op}": share_id})
        )
        seeking = copy.copy(self)
        seeking._bound = bound
        seeking._branches = [branch.filter(bound) for branch in self._branches]
        return seeking if forward else seeking.reverse()

    def _first_ids(self, stop: int) -> QuerySet[Any]:
        """A subquery of the ids of the list's first ``stop`` rows, and maybe some more."""
        if not connection.features.supports_slicing_ordering_in_compound:
            # SQLite allows no LIMIT inside a UNION; its lists are small: one query.
            either = Share.objects.filter(Q(colleague=self.user) | Q(group__in=self._group_ids))
            either = either.filter(_share_is_live(), self._bound).exclude(file__owner=self.user)
            return self._narrowed(either).values("pk")
        # Each branch's first ``stop`` rows in order, each read from its index (a LIMIT in
        # each); the page is cut from what the two give.
        first, second = (
            branch.order_by(*self._ordering).values("pk")[:stop] for branch in self._branches
        )
        return first.union(second, all=True)


def colleagues_known_to(*, user: User) -> list[str]:
    """Usernames to suggest when sharing: only people this user already shares with, in
    either direction, so the form reveals no one the user could not already see.

    At most COLLEAGUES_SUGGESTED, alphabetically, found among the shares of the user's
    RECENT latest files and the RECENT latest shares with the user (each read from an
    index in order): a user with 100,000 files costs what one with 1,000 does.
    """
    latest_files = StoredFile.objects.filter(owner=user).order_by("-created_at", "-id")
    granted = Share.objects.filter(file__in=latest_files.values("pk")[:RECENT])
    received = Share.objects.filter(colleague=user).order_by("-created_at", "-id")[:RECENT]
    known = Q(pk__in=granted.values("colleague_id")) | Q(pk__in=received.values("file__owner_id"))
    names = get_user_model().objects.filter(known).order_by("username")
    return list(names.values_list("username", flat=True)[:COLLEAGUES_SUGGESTED])


COLLEAGUES_SUGGESTED = 200
# How far back the suggestions look, each way. Each received share costs a look-up of its
# file's owner: 1,000 of them were 4 of the 6 ms the query took on a busy file's page.
RECENT = 250


def groups_of(*, user: User) -> list[str]:
    """The names of the groups ``user`` is a member of, sorted: the groups they may share
    a file with (the share form offers no other, so it reveals no other group's name)."""
    return sorted(user.groups.values_list("name", flat=True))


def shares_of(*, file: StoredFile) -> QuerySet[Share]:
    """The colleagues and groups a file is shared with, oldest share first (expired ones
    too, annotated ``live`` False: the owner's page shows them as expired)."""
    live = ExpressionWrapper(_share_is_live(), output_field=BooleanField())
    shares = file.shares.select_related("colleague", "group").annotate(live=live)
    return shares.order_by("created_at", "id")


def links_of(*, file: StoredFile) -> QuerySet[ShareLink]:
    """A file's share links, newest first."""
    return file.links.order_by("-created_at", "-id")


def share_get_for_owner(*, user: User, file: StoredFile, share_id: int) -> Share:
    """A share of the owner's file; Http404 for anyone else or an unknown id."""
    try:
        return Share.objects.select_related("colleague", "group").get(
            pk=share_id, file=file, file__owner=user
        )
    except Share.DoesNotExist:
        raise Http404("No such share") from None


def link_get_for_owner(*, user: User, file: StoredFile, link_id: int) -> ShareLink:
    """A link of the owner's file; Http404 for anyone else or an unknown id."""
    try:
        return ShareLink.objects.get(pk=link_id, file=file, file__owner=user)
    except ShareLink.DoesNotExist:
        raise Http404("No such link") from None


def link_token_digest(token: str) -> str:
    """A link's token as stored: its SHA-256 in hex (64 characters). The token itself is
    never stored; links are found by this digest."""
    return hashlib.sha256(token.encode()).hexdigest()


def link_get_by_token(*, token: str, including_used_up: bool = False) -> ShareLink:
    """The usable link for a token; one 404 (Http404) for unknown, expired, revoked and
    used up. ``including_used_up`` also returns a link whose downloads are all claimed
    (for resuming a claimed download): check ``link_is_usable`` before claiming."""
    if not LINK_TOKEN_RE.fullmatch(token):
        raise Http404("No such link")
    digest = link_token_digest(token)
    link = (
        ShareLink.objects.select_related("file", "file__owner").filter(token_digest=digest).first()
    )
    # The row was found by an index on the digest; compare again in constant time so that
    # no code path depends on a byte-by-byte comparison of secrets.
    if (
        link is None
        or not hmac.compare_digest(link.token_digest, digest)
        or not (link_is_live(link) if including_used_up else link_is_usable(link))
    ):
        raise Http404("No such link")
    return link


def link_is_live(link: ShareLink) -> bool:
    """Neither revoked nor expired (it may be used up)."""
    return link.revoked_at is None and link.expires_at > timezone.now()


def link_claim_progress(*, claim_id: int) -> tuple[int, datetime] | None:
    """Bytes counted so far under a claim and when it was taken; None if it is gone
    (with its link or file)."""
    return LinkClaim.objects.filter(pk=claim_id).values_list("sent", "created_at").first()


def link_is_usable(link: ShareLink) -> bool:
    """Live, with a download left to claim."""
    if not link_is_live(link):
        return False
    return link.max_downloads is None or link.download_count < link.max_downloads


def activity_of(*, user: User, file: StoredFile) -> QuerySet[AuditEntry]:
    """The audit entries of a file, for its owner."""
    if file.owner_id != user.pk:
        raise Http404("No such file")
    return AuditEntry.objects.filter(file_id=file.id).order_by("-seq")


def file_open_plaintext(*, file: StoredFile) -> DecryptingReader:
    """Open the content of a file the caller is already allowed to read.

    Raises KeyUnwrapError (key gone or wrong), BlobIntegrityError (blob tampered, or its
    length does not fit the row's ``size``, which then cannot be promised as a
    Content-Length) or OSError (blob missing); the reader raises BlobIntegrityError on
    any later segment, and if the plaintext would be longer or shorter than ``size``.
    """
    master = get_keyring().get(file.key_id)
    key = unwrap_key(bytes(file.wrapped_key), file.id, master)
    return get_encrypted_storage().open_plaintext_ranged(
        file.blob.name, key, expected_size=file.size
    )


def file_etag(*, file: StoredFile) -> str:
    """A strong entity tag (RFC 9110 section 8.8.3) for a file's content, quoted.

    Derived from the plaintext's SHA-256 (sealed in the row) and the file's id, so it is
    the same after re-encryption or key rotation and differs whenever the content does;
    it reveals no hash a third party could match against a guessed file. A row whose
    SHA-256 is not recorded or does not open falls back on its keyed digest (which a
    re-encryption changes: an If-Range then misses, and the whole file is sent).
    """
    sealed = file_sha256(file=file)
    if sealed.state == "ok":
        basis = b"sha256:" + bytes.fromhex(sealed.hex)
    else:
        basis = b"digest:" + bytes(file.digest)
    return (
        '"' + hashlib.sha256(b"securefiles etag\0" + file.id.bytes + basis).hexdigest()[:40] + '"'
    )


# -- the admin's file list


OWNERS_LISTED = 500


def owners_with_files() -> Iterator[tuple[int, str]]:
    """(user id, username) of up to OWNERS_LISTED users who own files, by username, read
    from their usage rows (not from the distinct owners of every file)."""
    usages = StorageUsage.objects.filter(files__gt=0).order_by("user__username")
    yield from usages.values_list("user_id", "user__username")[:OWNERS_LISTED]


def files_matching(
    files: QuerySet[StoredFile], term: str, *, first: int | None = None
) -> QuerySet[StoredFile]:
    """For the admin's search: files whose name contains ``term`` (name_contains), whose
    owner's username or e-mail contains it (any case), or whose id it is.

    The owners are looked up first (a few of them, in the small users table) and passed
    as ids. ``first``: only the first ``first`` matches in ``files``' ordering are needed
    (a list page and its capped count). Each way of matching is then read on its own, in
    that order, from its index (the owner's (owner, created_at, id), the name's trigram
    index), up to ``first`` rows, and the page is cut from the union (PostgreSQL): one
    ``name LIKE … OR owner_id IN …`` had PostgreSQL either sort every file of the owner
    or scan the table in date order testing each row (a million files: 350 ms). Without
    ``first`` (or on SQLite), one filter: every match, for any ordering.
    """
    term = term.strip()[:SEARCH_MAX_CHARS]
    if not term:
        return files
    owner_ids = list(
        get_user_model()
        .objects.filter(Q(username__icontains=term) | Q(email__icontains=term))
        .values_list("pk", flat=True)[:OWNERS_LISTED]
    )
    ways = [name_matches(term)]
    if owner_ids:
        ways.append(Q(owner_id__in=owner_ids))
    file_id = uuid_or_none(term)
    if file_id is not None:
        ways.append(Q(pk=file_id))
    if (
        first is None
        or len(ways) == 1
        or not connection.features.supports_slicing_ordering_in_compound
    ):
        return files.filter(Q(*ways, _connector=Q.OR))
    ordering = tuple(files.query.order_by or StoredFile._meta.ordering or ())
    branches = [files.filter(way).order_by(*ordering).values("pk")[:first] for way in ways]
    return files.filter(pk__in=branches[0].union(*branches[1:], all=True))


# -- maintenance: for the operator's management commands only, never for a view


def files_for_maintenance(*, owner: User | None = None) -> QuerySet[StoredFile]:
    """Every file (or one owner's), oldest first, in a stable order commands can resume in."""
    files = StoredFile.objects.select_related("owner").order_by("created_at", "id")
    return files if owner is None else files.filter(owner=owner)


def file_data_key(*, file: StoredFile) -> FileKey:
    """A file's data key, for commands that check or re-encrypt its content.

    Raises KeyUnwrapError when its master key is not in ENCRYPTION_KEYS or the wrapped key
    does not open under it.
    """
    return unwrap_key(bytes(file.wrapped_key), file.id, get_keyring().get(file.key_id))


def key_ids_in_use() -> dict[str, int]:
    """How many files each master key id wraps."""
    counts = StoredFile.objects.order_by().values_list("key_id").annotate(files=Count("pk"))
    return dict(counts)


def upload_data_key(*, upload: ResumableUpload) -> FileKey:
    """An unfinished resumable upload's data key (rotate_keys --dry-run test-opens it).

    Raises KeyUnwrapError as file_data_key does.
    """
    return unwrap_key(bytes(upload.wrapped_key), upload.id, get_keyring().get(upload.key_id))


def upload_key_ids_in_use() -> dict[str, int]:
    """How many unfinished resumable uploads each master key id wraps (their next PATCH
    unwraps the data key, so removing that master key would break them)."""
    counts = ResumableUpload.objects.order_by().values_list("key_id").annotate(n=Count("pk"))
    return dict(counts)


def blob_names_referenced(*, names: list[str]) -> set[str]:
    """Which of these blob names a file row points at (ask in batches of a few hundred)."""
    files = set(StoredFile.objects.filter(blob__in=names).values_list("blob", flat=True))
    # An unfinished resumable upload's blob is in use too (its row expires; then it goes).
    uploads = ResumableUpload.objects.filter(blob__in=names).values_list("blob", flat=True)
    return files | set(uploads)


def resumable_s3_upload_ids() -> set[str]:
    """The S3 UploadIds of unfinished resumable uploads (their multipart uploads are in use)."""
    rows = ResumableUpload.objects.exclude(s3_upload_id="")
    return set(rows.values_list("s3_upload_id", flat=True))


def resumable_get_for_owner(*, user: User, upload_id: uuid.UUID) -> ResumableUpload:
    """An unfinished resumable upload, if this user started it; 404 otherwise (anyone
    else cannot tell whether it exists)."""
    try:
        return ResumableUpload.objects.get(pk=upload_id, owner=user)
    except ResumableUpload.DoesNotExist:
        raise Http404("No such upload") from None


# -- quotas


def quota_of(*, user: User) -> int | None:
    """The user's storage quota in bytes, or None for no quota."""
    override = StorageQuota.objects.filter(user=user).values_list("quota_mb", flat=True).first()
    quota_mb = settings.USER_QUOTA_MB if override is None else override
    return quota_mb * 1024 * 1024 if quota_mb else None


def usage_of(*, user: User) -> int:
    """Plaintext bytes the user's files take (kept by the services: one row read)."""
    return _usage_row(user=user)[1]


def file_count_of(*, user: User) -> int:
    """How many files the user owns (kept by the services: one row read)."""
    return _usage_row(user=user)[0]


def storage_usage_of(*, user: User) -> tuple[int, int]:
    """How many files the user owns and the plaintext bytes they take, in one read of the
    row the services keep."""
    return _usage_row(user=user)


def _usage_row(*, user: User) -> tuple[int, int]:
    row = StorageUsage.objects.filter(user_id=user.pk).values_list("files", "bytes").first()
    return row or (0, 0)


def quota_left(*, user: User) -> int | None:
    quota = quota_of(user=user)
    return None if quota is None else quota - usage_of(user=user)


@dataclass(frozen=True)
class FileSha256:
    """What a file's page shows for its SHA-256.

    ``hex`` is the 64-character digest when the row's seal opened; ``state`` is "ok",
    "not_recorded" (a row older than the sealed column) or "unverified" (the seal is
    there but does not open: damaged, moved from another row, or its key is unusable).
    """

    state: str
    hex: str = ""

    @property
    def unverified(self) -> bool:
        return self.state == "unverified"


def file_sha256(*, file: StoredFile) -> FileSha256:
    """The SHA-256 of a file the caller may read, or why it cannot be shown."""
    if not file.sha256_sealed:
        return FileSha256(state="not_recorded")
    try:
        digest = open_sha256(file_data_key(file=file), bytes(file.sha256_sealed))
    except (InvalidTag, KeyProblem):
        return FileSha256(state="unverified")
    return FileSha256(state="ok", hex=digest.hex())


# -- users, as administrators change them


@dataclass(frozen=True)
class UserState:
    """What an administrator can change about a user, as plain comparable values."""

    username: str
    email: str
    first_name: str
    last_name: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    groups: tuple[str, ...]
    user_permissions: tuple[str, ...]
    quota_mb: int | None


def user_state(*, user_id: int) -> UserState:
    """Read a user's administrable state from the database (never the password hash)."""
    user = get_user_model().objects.get(pk=user_id)
    quota = StorageQuota.objects.filter(user_id=user_id).values_list("quota_mb", flat=True)
    permissions = user.user_permissions.values_list("content_type__app_label", "codename")
    return UserState(
        username=user.get_username(),
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        is_active=user.is_active,
        is_staff=user.is_staff,
        is_superuser=user.is_superuser,
        groups=tuple(sorted(user.groups.values_list("name", flat=True))),
        user_permissions=tuple(sorted(f"{app}.{codename}" for app, codename in permissions)),
        quota_mb=quota.first(),
    )
