"""Pages of a long file list whose cost does not grow with the list.

"Page n of m" with Previous, Next, First and Last stays as users know it, but:

* the count comes from the user's storage usage row (kept by the services), not from a
  COUNT(*) over every file; a search still counts its matches (few, found by an index);
* Next and Previous carry the sort key of the page's last or first row (``after`` /
  ``before``, an opaque cursor), and the next page is read from the index from there
  (keyset pagination): page 2,000 costs what page 2 does;
* a bare ``?page=n`` (typed, bookmarked, or the First/Last link) is read with OFFSET from
  whichever end of the list is nearer, so Last costs what First does, and by a deferred
  join (the page's ids from the index, then its rows: ``selectors.files_slice``), so the
  skipped rows are neither fetched nor joined.

"Shared with me" pages the same way (``shared_page``, ``shared_after``,
``shared_before``), by the time and id of its shares (``page_of_shares``).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

from sharing import selectors
from sharing.models import Share, StoredFile

# What a cursor's row id is: a file's UUID, a share's integer id.
IdType = type[uuid.UUID] | type[int]
# Reads rows start to stop (stop excluded) of a list in its order, for a page by OFFSET.
RowsBetween = Callable[[Any, int, int], list[Any]]


class CountedPaginator(Paginator):
    """A Paginator told how many objects there are (``count``), which it never counts."""

    def __init__(
        self, object_list: QuerySet[Any] | selectors.SharesWithMe, per_page: int, *, count: int
    ) -> None:
        # SharesWithMe takes the slices a Paginator makes (no int index, no iteration).
        super().__init__(object_list, per_page)  # type: ignore[arg-type]
        self._known_count = count

    @cached_property
    def count(self) -> int:
        return self._known_count


class SeekPage(Page):
    """A Page with the cursors of its Next and Previous links ("" where there is none)."""

    next_after = ""
    previous_before = ""


@dataclass(frozen=True)
class Cursor:
    """Where a page starts or ends: the sort key and id of a row (a file's UUID for
    ``selectors.files_seek``, a share's integer id for ``SharesWithMe.seek``)."""

    key: object
    row_id: uuid.UUID | int

    def encode(self) -> str:
        """URL-safe base64 of JSON ``[key, id]`` (a datetime as ISO 8601, tagged; a UUID
        as its string)."""
        key = {"t": self.key.isoformat()} if isinstance(self.key, datetime) else self.key
        row_id = self.row_id if isinstance(self.row_id, int) else str(self.row_id)
        raw = json.dumps([key, row_id], ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str | None, id_type: IdType = uuid.UUID) -> Cursor | None:
        """The cursor in ``text`` whose id is an ``id_type``, or None for anything else
        (then the page is read with OFFSET): a cursor is a hint from our own link, never
        trusted beyond its shape."""
        if not text or len(text) > 1200:
            return None
        try:
            key, row_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if isinstance(key, dict):
                key = datetime.fromisoformat(key["t"])
            elif not isinstance(key, (str, int)) or isinstance(key, bool):
                return None
            if id_type is int:
                return cls(key, row_id) if type(row_id) is int else None
            return cls(key, uuid.UUID(row_id)) if isinstance(row_id, str) else None
        except (ValueError, TypeError, KeyError, binascii.Error):
            return None


def page_of_files(
    files: QuerySet[StoredFile],
    *,
    per_page: int,
    count: int,
    ordering: str,
    number: str | None,
    after: str | None = None,
    before: str | None = None,
) -> SeekPage:
    """Page ``number`` (1-based; invalid: the first, too far: the last) of ``files``, a
    ``selectors.files_owned_by`` queryset of ``count`` rows in ``ordering``.

    ``after`` / ``before`` are the cursors of our Next / Previous links. The page gets
    ``next_after`` and ``previous_before``: the cursors for its own links ("" for none).
    """

    def seek(cursor: Cursor, forward: bool) -> QuerySet[StoredFile] | list[StoredFile]:
        if not isinstance(cursor.row_id, uuid.UUID):
            return []
        return selectors.files_seek(
            files, ordering=ordering, key=cursor.key, file_id=cursor.row_id, forward=forward
        )

    paginator = CountedPaginator(files, per_page, count=count)
    page = _seek_or_offset(
        paginator,
        number,
        after,
        before,
        seek=seek,
        id_type=uuid.UUID,
        between=selectors.files_slice,
    )
    return _with_cursors(page, lambda row: Cursor(row.seek_key, row.id))


def page_of_matches(
    files: QuerySet[StoredFile],
    *,
    unsearched: QuerySet[StoredFile],
    per_page: int,
    cap: int,
    number: str | None,
) -> tuple[SeekPage, bool]:
    """Page ``number`` of a searched ``selectors.files_owned_by`` queryset, which lists its
    first ``cap`` matches at most; and whether there are more. ``unsearched`` is the same
    list without the search, which the page's rows are read from by id.

    The ids of the first ``cap`` + 1 matches, in order, are read in one query (it counts
    them too), and the page's rows by their ids. Read page by page instead, PostgreSQL
    walks the user's files in order testing each name when it expects many matches: a
    name 100 files of 100,000 match, all near the end of the order, read 98,703 rows
    (73 ms) for its first page. Every page of a search is among those ids, so the Next
    and Previous links' cursors are not needed (the page number is). The rows are read
    without the search's filter: with it, PostgreSQL searched the name index again to
    fetch 50 rows it knew by id (5.5 ms of a 0.5 ms read).
    """
    ids = list(files.values_list("pk", flat=True)[: cap + 1])
    capped, ids = len(ids) > cap, ids[:cap]
    paginator = CountedPaginator(files, per_page, count=len(ids))
    page_number = paginator.validate_number(_as_number(number, paginator.num_pages))
    shown = ids[(page_number - 1) * per_page : page_number * per_page]
    found = {row.pk: row for row in unsearched.filter(pk__in=shown)} if shown else {}
    page = SeekPage([found[pk] for pk in shown if pk in found], page_number, paginator)
    return _with_cursors(page, lambda row: Cursor(row.seek_key, row.id)), capped


def page_of_shares(
    shares: selectors.SharesWithMe,
    *,
    per_page: int,
    count: int,
    number: str | None,
    after: str | None = None,
    before: str | None = None,
) -> SeekPage:
    """Page ``number`` of "shared with me" (``selectors.shares_with_me``, ``count``
    rows), as page_of_files: ``after`` / ``before`` are the cursors of our Next /
    Previous links (a share's creation time and id), so page 100 reached by Next reads
    50 index rows where ``?shared_page=100`` reads 5,000."""

    def seek(cursor: Cursor, forward: bool) -> selectors.SharesWithMe | list[Share]:
        if not isinstance(cursor.key, datetime) or not isinstance(cursor.row_id, int):
            return []
        return shares.seek(created_at=cursor.key, share_id=cursor.row_id, forward=forward)

    paginator = CountedPaginator(shares, per_page, count=count)
    if not count:
        return SeekPage([], 1, paginator)  # nothing shared: no query
    page = _seek_or_offset(
        paginator, number, after, before, seek=seek, id_type=int, between=_shares_slice
    )
    return _with_cursors(page, lambda row: Cursor(row.created_at, row.pk))


def page_of_shared_matches(
    shares: selectors.SharesWithMe, *, per_page: int, cap: int, number: str | None
) -> tuple[SeekPage, bool]:
    """Page ``number`` of a searched "shared with me" (``selectors.shares_with_me``), which
    lists its first ``cap`` matches at most; and whether there are more.

    As page_of_matches: the ids of the first ``cap`` + 1 matches, in order, in one query
    (it counts them too), then the page's rows by id. Counted and paged each on its own,
    PostgreSQL built the bitmap of every file in the portal whose name matches twice
    ("doc-00012": 10,200 of 1,000,000 files, 25 ms each)."""
    ids = shares.first_ids(cap + 1)
    capped, ids = len(ids) > cap, ids[:cap]
    paginator = CountedPaginator(shares, per_page, count=len(ids))
    page_number = paginator.validate_number(_as_number(number, paginator.num_pages))
    shown = ids[(page_number - 1) * per_page : page_number * per_page]
    page = SeekPage(shares.with_ids(shown) if shown else [], page_number, paginator)
    return _with_cursors(page, lambda row: Cursor(row.created_at, row.pk)), capped


def _seek_or_offset(
    paginator: Paginator,
    number: str | None,
    after: str | None,
    before: str | None,
    *,
    seek: Callable[[Cursor, bool], Any],
    id_type: IdType,
    between: RowsBetween,
) -> SeekPage:
    """The page from the cursor of a Next (``after``) or Previous (``before``) link, read
    by ``seek(cursor, forward)`` (rows nearest the cursor first); else, or if the list
    changed under the cursor, page ``number`` by OFFSET, read by ``between``."""
    page_number = paginator.validate_number(_as_number(number, paginator.num_pages))
    forward = Cursor.decode(after, id_type)
    cursor = forward or Cursor.decode(before, id_type)
    if cursor is not None:
        rows = list(seek(cursor, forward is not None)[: paginator.per_page])
        if rows:
            return SeekPage(rows if forward else rows[::-1], page_number, paginator)
    return _offset_page(paginator, page_number, between)


def _with_cursors(page: SeekPage, cursor_of: Callable[[Any], Cursor]) -> SeekPage:
    """``page`` with the cursors of its Next and Previous links set ("" for none)."""
    rows = list(page.object_list)
    page.next_after = cursor_of(rows[-1]).encode() if rows and page.has_next() else ""
    page.previous_before = cursor_of(rows[0]).encode() if rows and page.has_previous() else ""
    return page


def _as_number(number: str | None, last: int) -> int:
    try:
        value = int(number or 1)
    except ValueError:
        return 1
    return min(max(value, 1), max(last, 1))


def _shares_slice(shares: selectors.SharesWithMe, start: int, stop: int) -> list[Share]:
    return shares[start:stop]


def _offset_page(paginator: Paginator, number: int, between: RowsBetween) -> SeekPage:
    """Page ``number`` by OFFSET, counted from the nearer end of the list; ``between(list,
    start, stop)`` reads a slice of the paginator's list or of its reverse."""
    objects: Any = paginator.object_list  # a files_owned_by QuerySet or a SharesWithMe
    start = (number - 1) * paginator.per_page
    end = min(start + paginator.per_page, paginator.count)
    if start <= paginator.count - end:
        # A whole page, not `count` rows: the count (the usage row) is read in a statement
        # of its own, so a file committed in between would push the page's last row off
        # (found by bench/load.py: several sessions of one account uploading).
        return SeekPage(between(objects, start, start + paginator.per_page), number, paginator)
    from_end = paginator.count - end
    nearest_first = between(objects.reverse(), from_end, from_end + (end - start))
    return SeekPage(nearest_first[::-1], number, paginator)
