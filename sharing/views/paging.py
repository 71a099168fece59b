"""Pages of a long file list whose cost does not grow with the list.

"Page n of m" with Previous, Next, First and Last stays as users know it, but:

* the count comes from the user's storage usage row (kept by the services), not from a
  COUNT(*) over every file; a search still counts its matches (few, found by an index);
* Next and Previous carry the sort key of the page's last or first row (``after`` /
  ``before``, an opaque cursor), and the next page is read from the index from there
  (keyset pagination): page 2,000 costs what page 2 does;
* a bare ``?page=n`` (typed, bookmarked, or the First/Last link) is read with OFFSET from
  whichever end of the list is nearer, so Last costs what First does.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

from sharing import selectors
from sharing.models import StoredFile


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
    """Where a page starts or ends: the sort key and id of a row (``selectors.files_seek``)."""

    key: object
    file_id: uuid.UUID

    def encode(self) -> str:
        """URL-safe base64 of JSON ``[key, id]`` (a datetime as ISO 8601, tagged)."""
        key = {"t": self.key.isoformat()} if isinstance(self.key, datetime) else self.key
        raw = json.dumps([key, str(self.file_id)], ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """The cursor in ``text``, or None for anything else (then the page is read with
        OFFSET): a cursor is a hint from our own link, never trusted beyond its shape."""
        if not text or len(text) > 1200:
            return None
        try:
            key, file_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if not isinstance(file_id, str):
                return None
            if isinstance(key, dict):
                key = datetime.fromisoformat(key["t"])
            elif not isinstance(key, (str, int)) or isinstance(key, bool):
                return None
            return cls(key, uuid.UUID(file_id))
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
    paginator = CountedPaginator(files, per_page, count=count)
    page_number = paginator.validate_number(_as_number(number, paginator.num_pages))
    page = _seek(paginator, files, ordering, page_number, after, before)
    if page is None:
        page = _offset_page(paginator, files, page_number)
    rows = list(page.object_list)
    page.next_after = _cursor_of(rows[-1]) if rows and page.has_next() else ""
    page.previous_before = _cursor_of(rows[0]) if rows and page.has_previous() else ""
    return page


def _as_number(number: str | None, last: int) -> int:
    try:
        value = int(number or 1)
    except ValueError:
        return 1
    return min(max(value, 1), max(last, 1))


def _seek(
    paginator: Paginator,
    files: QuerySet[StoredFile],
    ordering: str,
    number: int,
    after: str | None,
    before: str | None,
) -> SeekPage | None:
    cursor = Cursor.decode(after) or Cursor.decode(before)
    if cursor is None:
        return None
    forward = Cursor.decode(after) is not None
    found = selectors.files_seek(
        files, ordering=ordering, key=cursor.key, file_id=cursor.file_id, forward=forward
    )
    rows = list(found[: paginator.per_page])
    if not rows:
        return None  # the list changed under the cursor: fall back on the page number
    return SeekPage(rows if forward else rows[::-1], number, paginator)


def _offset_page(paginator: Paginator, files: QuerySet[StoredFile], number: int) -> SeekPage:
    """Page ``number`` by OFFSET, counted from the nearer end of the list."""
    start = (number - 1) * paginator.per_page
    end = min(start + paginator.per_page, paginator.count)
    if start <= paginator.count - end:
        # A whole page, not `count` rows: the count (the usage row) is read in a statement
        # of its own, so a file committed in between would push the page's last row off
        # (found by bench/load.py: several sessions of one account uploading).
        return SeekPage(list(files[start : start + paginator.per_page]), number, paginator)
    from_end = paginator.count - end
    rows = list(files.reverse()[from_end : from_end + (end - start)])
    return SeekPage(rows[::-1], number, paginator)


def _cursor_of(row: StoredFile) -> str:
    return Cursor(row.seek_key, row.id).encode()  # type: ignore[attr-defined]
