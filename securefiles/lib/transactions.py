"""Transaction helpers for the services: foreign keys checked at once, deadlock victims retried.

The lock order every writing service follows, so that parallel writers queue instead of
deadlocking:

1. the row of the file the write hangs off (``services`` locks it first);
2. the rows the write itself touches (links, shares, the owner's row for quotas), and the
   rows its foreign keys point at, checked at once (``check_foreign_keys_now``);
3. the audit chain's head, last (``audit.services.audit_record``).

Django creates PostgreSQL foreign keys DEFERRABLE INITIALLY DEFERRED: left alone, each
check runs at COMMIT, after the head was locked, and takes a KEY SHARE lock on the row it
points at. A check that had to wait there (for a file being deleted, or a user row locked
by an upload's quota check) did so while holding the head that the other transaction was
queueing for: "deadlock detected", or, once the file was gone, an IntegrityError at COMMIT.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled
# back whole and may simply be run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 3
# What a 503 for TryAgain tells the client to wait before repeating the request.
RETRY_AFTER_SECONDS = 2
BACKOFF_SECONDS = 0.05
_jitter = secrets.SystemRandom()


class TryAgain(Exception):
    """The database gave up on a write (deadlock victim) on every attempt; nothing of it was
    kept. The request may be repeated; views answer 503 with Retry-After."""


def check_foreign_keys_now() -> None:
    """Check foreign keys at each statement, for the rest of the current transaction.

    Also runs, at once, every check still pending from earlier statements, so none is left
    for COMMIT, when the audit head is held. PostgreSQL only: SQLite serialises writers
    and has no row locks to wait for. Must be called inside a transaction.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _is_retryable(exc: OperationalError) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES


def retry_on_deadlock(func: Callable[P, R]) -> Callable[P, R]:
    """Run a service's whole transaction again when PostgreSQL rolls it back as a deadlock
    victim (or for a serialisation failure): up to ATTEMPTS times, with a short jittered
    pause, then raise TryAgain.

    Only a service that starts the transaction is retried: called inside a caller's
    transaction (a savepoint), a retry would repeat half of a larger unit of work, so the
    first failure raises TryAgain at once and the caller decides. Any other error is
    raised unchanged.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        attempts = 1 if connection.in_atomic_block else ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if not _is_retryable(exc):
                    raise
                logger.warning(
                    "%s: transaction rolled back by the database (%s), attempt %d of %d",
                    func.__name__,
                    exc.__cause__.sqlstate,  # type: ignore[union-attr]
                    attempt,
                    attempts,
                )
                if attempt == attempts:
                    raise TryAgain from exc
                time.sleep(_jitter.uniform(0.5, 1.5) * BACKOFF_SECONDS * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper
