"""Reading the chain: verification from the first entry to the head."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet

import securefiles.lib.sqlite_functions  # noqa: F401  (the unicode_icontains lookup)
from audit.chain import GENESIS_MAC, audit_key, compute_mac
from audit.models import AuditEntry, AuditHead
from securefiles.lib.values import uuid_or_none


@dataclass(frozen=True)
class ChainReport:
    """What verify_chain found: entries checked, the head it reached, and the first broken
    entry with the reason (None and "" when the chain is intact)."""

    checked: int
    head_seq: int
    head_mac: str
    broken_at: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


MAC_MISMATCH = "content does not match its MAC (entry edited)"


def _walk(entries: Iterable[AuditEntry], key: bytes) -> Iterator[tuple[AuditEntry, str]]:
    """Yield each entry with what is wrong with it ('' when it verifies)."""
    expected_seq, prev_mac = 1, GENESIS_MAC
    for entry in entries:
        if entry.seq != expected_seq:
            yield (
                entry,
                f"expected entry #{expected_seq}, found #{entry.seq} (entry missing or inserted)",
            )
        elif not _same(entry.prev_mac, prev_mac):
            yield entry, "does not follow the previous entry (entry missing, inserted or reordered)"
        elif not _same(entry.mac, compute_mac(key, prev_mac, entry)):
            yield entry, MAC_MISMATCH
        else:
            yield entry, ""
        expected_seq, prev_mac = entry.seq + 1, entry.mac


def _same(stored: str, expected: str) -> bool:
    # As bytes: compare_digest raises TypeError on a str with non-ASCII characters, and a
    # forged row may hold anything; it must be reported, not crash the verifier.
    return hmac.compare_digest(stored.encode(), expected.encode())


KEY_PROBLEM = (
    "the audit key is not the one the log was written with (AUDIT_LOG_KEY / SECRET_KEY "
    "changed?): no entry verifies under it, while every entry still follows the one before it"
)


def verify_chain(expect_head: tuple[int, str] | None = None) -> ChainReport:
    """Walk the whole chain in order; report the first broken entry, if any.

    A MAC failure at entry #1, in a chain whose links (sequence numbers, prev_mac, head)
    all hold, is told apart from an edit where it can be (see _wrong_key_problem).
    """
    key = audit_key()
    checked, last_seq, last_mac = 0, 0, GENESIS_MAC
    entries = AuditEntry.objects.order_by("seq").iterator(chunk_size=2000)
    for entry, problem in _walk(entries, key):
        if problem:
            if entry.seq == 1 and problem == MAC_MISMATCH:
                problem = _wrong_key_problem(key) or problem
            return ChainReport(checked, last_seq, last_mac, entry.seq, problem)
        checked, last_seq, last_mac = checked + 1, entry.seq, entry.mac
    head = AuditHead.objects.filter(pk=1).first()
    if head and (head.seq, head.mac) != (last_seq, last_mac):
        return ChainReport(checked, last_seq, last_mac, last_seq + 1, "entries cut off the end")
    if expect_head and (last_seq < expect_head[0] or _mac_at(expect_head[0]) != expect_head[1]):
        return ChainReport(
            checked, last_seq, last_mac, expect_head[0], "recorded head is missing or differs"
        )
    return ChainReport(checked, last_seq, last_mac)


def _wrong_key_problem(key: bytes) -> str | None:
    """Say so when entry #1's MAC failure looks like a wrong key rather than an edit.

    Writing with one key and verifying with another keeps every link (seq 1, 2, ...;
    each prev_mac the MAC stored before it; the head on the last entry) and fails every
    MAC from #1 on: that is a key problem. If only entries #1..#k fail and the rest
    verify, the key changed after #k or those entries were edited; both are said. None
    (an edit) when a link is broken or a failure follows entries that verify.
    """
    expected_seq, prev_mac, failing = 1, GENESIS_MAC, 0
    for entry in AuditEntry.objects.order_by("seq").iterator(chunk_size=2000):
        if entry.seq != expected_seq or not _same(entry.prev_mac, prev_mac):
            return None
        if not _same(entry.mac, compute_mac(key, entry.prev_mac, entry)):
            if failing != entry.seq - 1:
                return None  # a failure after entries that verify: an edit there
            failing += 1
        expected_seq, prev_mac = entry.seq + 1, entry.mac
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq, head.mac) != (expected_seq - 1, prev_mac):
        return None
    if failing == expected_seq - 1:
        return KEY_PROBLEM
    return (
        f"entries #1 to #{failing} do not verify under the current audit key while every "
        "later one does and all links hold: the key was changed after entry "
        f"#{failing} (AUDIT_LOG_KEY / SECRET_KEY changed?), or those entries were edited"
    )


def _mac_at(seq: int) -> str | None:
    if seq == 0:
        return GENESIS_MAC  # the head an empty log prints
    return AuditEntry.objects.filter(seq=seq).values_list("mac", flat=True).first()


# Shorter queries match whole values only: a trigram index cannot narrow "%ab%".
PARTIAL_MATCH_MIN_CHARS = 3


def entries_matching(entries: QuerySet[AuditEntry], term: str) -> QuerySet[AuditEntry]:
    """The entries whose actor, file name or detail contains ``term`` (any case; three
    characters or more, else whose actor or file name equals it), or whose file id or IP
    address is ``term``.

    Each condition has an index (PostgreSQL: trigram indexes on upper(file_name) and
    upper(detail), audit migration 0002; the btree on the actor, 0003, for the actors that
    _actor_contains finds), so a search of millions of entries reads only what matches.
    One query more on PostgreSQL, for the actors.
    """
    term = term.strip()
    if not term:
        return entries
    if len(term) >= PARTIAL_MATCH_MIN_CHARS:
        matches = (
            _actor_contains(term)
            | Q(file_name__unicode_icontains=term)
            | Q(detail__unicode_icontains=term)
        )
    else:
        matches = Q(actor__iexact=term) | Q(file_name__iexact=term)
    file_id = uuid_or_none(term)
    if file_id is not None:
        matches |= Q(file_id=file_id)
    if _is_ip(term):
        matches |= Q(ip=term)
    return entries.filter(matches)


# The distinct actors, one probe of audit_actor_seq_idx each (a "loose index scan": each
# step asks the index for the first actor after the last one), and those containing %s.
# (The table kept its name from the `sharing` app: AuditEntry.Meta.db_table.)
_ACTORS_CONTAINING = """
    WITH RECURSIVE actors (actor) AS (
        (SELECT actor FROM sharing_auditentry ORDER BY actor LIMIT 1)
        UNION ALL
        SELECT (
            SELECT entry.actor FROM sharing_auditentry entry
            WHERE entry.actor > actors.actor ORDER BY entry.actor LIMIT 1
        )
        FROM actors WHERE actors.actor IS NOT NULL
    )
    SELECT actor FROM actors WHERE UPPER(actor::text) LIKE UPPER(%s)
"""


def _actor_contains(term: str) -> Q:
    """Entries whose actor contains ``term``, ignoring case (as ``unicode_icontains``).

    On PostgreSQL the actors containing it are listed first (_ACTORS_CONTAINING: its cost
    grows with the number of distinct actors, users, tokens and file requests, not with
    the entries), then their entries are found by equality on the btree index: the
    trigram index on upper(actor) would build a bitmap of every entry of every actor
    sharing frequent trigrams with the term ("owner-00042": 190 ms of 5,000,000 entries)
    before giving one row. SQLite compares each entry (small logs).
    """
    if connection.vendor != "postgresql":
        return Q(actor__unicode_icontains=term)
    with connection.cursor() as cursor:
        cursor.execute(_ACTORS_CONTAINING, [f"%{connection.ops.prep_for_like_query(term)}%"])
        actors = [actor for (actor,) in cursor.fetchall()]
    return Q(actor__in=actors) if actors else Q(pk__in=[])


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
