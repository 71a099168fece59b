"""Byte ranges of a download: parsing ``Range`` and ``If-Range`` (RFC 9110 section 14).

Only the HTTP grammar lives here; reading the segments a range needs is the reader's job
(sharing.crypto.DecryptingReader.plaintext_range).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.http import HttpRequest
from django.utils.http import parse_http_date_safe

# int-range / suffix-range (RFC 9110 section 14.1.1); positions are 1*DIGIT (ASCII only).
_RANGE_SPEC = re.compile(r"([0-9]+)-([0-9]*)|-([0-9]+)", re.ASCII)
# Far more than any client sends; a longer header is not worth parsing: it is ignored.
MAX_RANGE_HEADER = 4096


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``stop`` (exclusive) of a representation of ``size`` bytes."""

    start: int
    stop: int
    size: int

    @property
    def length(self) -> int:
        """How many bytes the range holds (its Content-Length)."""
        return self.stop - self.start

    @property
    def content_range(self) -> str:
        """The Content-Range field value of a 206 (RFC 9110 section 14.4): inclusive ends."""
        return f"bytes {self.start}-{self.stop - 1}/{self.size}"


class Unsatisfiable:
    """A syntactically valid Range none of whose ranges overlaps the representation:
    answered 416 with ``Content-Range: bytes */size`` (RFC 9110 section 15.5.17)."""


UNSATISFIABLE = Unsatisfiable()


def parse_range(header: str, size: int) -> ByteRange | Unsatisfiable | None:
    """The one range to send for a ``Range`` field value over ``size`` bytes.

    None means "ignore the field and send the whole representation (200)": another unit
    than bytes or invalid syntax, as RFC 9110 section 14.2 allows. Several ranges are
    answered with the single range covering all the satisfiable ones (section 14.2 lets a
    server coalesce them): never a multipart/byteranges body. Never raises.
    """
    if len(header) > MAX_RANGE_HEADER:
        return None
    unit, sep, range_set = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[tuple[int, int]] = []
    for spec in range_set.split(","):
        spec = spec.strip(" \t")
        if not spec:
            continue  # empty list elements are allowed (RFC 9110 section 5.6.1)
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None:
            return None
        first, last, suffix = match.groups()
        if suffix is not None:
            length = int(suffix)
            if length > 0 and size > 0:
                ranges.append((max(0, size - length), size))
            continue
        start = int(first)
        if last and int(last) < start:
            return None  # an invalid range-spec: the whole field is invalid
        if start < size:
            stop = size if not last else min(int(last) + 1, size)
            ranges.append((start, stop))
    if not ranges:
        # Only an empty range-set is invalid; unsatisfiable specs give 416.
        return UNSATISFIABLE if range_set.strip(" \t,") else None
    return ByteRange(min(r[0] for r in ranges), max(r[1] for r in ranges), size)


def if_range_allows(request: HttpRequest, *, etag: str, last_modified: int) -> bool:
    """Whether the request's ``If-Range`` (if any) lets its Range apply (RFC 9110
    section 13.1.5): an entity-tag must equal ``etag`` by strong comparison (a weak one
    never does), a date must equal ``last_modified`` (seconds since the epoch) exactly.
    Without If-Range, True. Never raises."""
    value = request.headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag
    return parse_http_date_safe(value) == last_modified
