"""A paginator for the admin's lists of millions of rows: it counts no further than it must.

An exact COUNT(*) of five million audit entries takes longer than the page it numbers,
and nobody pages that far: the admin filters and searches. This paginator counts at most
``cap`` + 1 rows (``SELECT COUNT(*) FROM (SELECT ... LIMIT cap + 1)``, which an index
serves); past that, the list says "more than 10,000" and pages through the first ones.
Used with ``show_full_result_count = False`` (Django's other unfiltered COUNT).
"""

from __future__ import annotations

from functools import cached_property

from django.core.paginator import Paginator
from django.db.models import QuerySet

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """A Paginator whose ``count`` is exact up to ``cap`` rows and ``cap`` + 1 beyond;
    ``count_capped`` says which (templates/admin/pagination.html shows it)."""

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if isinstance(object_list, QuerySet):
            return object_list[: self.cap + 1].count()  # SELECT COUNT(*) FROM (... LIMIT)
        return len(object_list)

    @property
    def count_capped(self) -> bool:
        return self.count > self.cap
