"""Fixed-window failure counters shared by every worker process.

The database is the default store (one row per key, updated under a row lock); Redis when
THROTTLE_REDIS_URL is set. Never a per-process memory cache: with N workers it would let
N times the limit through.
"""

from __future__ import annotations

import math
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from throttle.models import ThrottleCounter


@lru_cache(maxsize=1)
def _redis():  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(settings.THROTTLE_REDIS_URL)


def _redis_name(key: str) -> str:
    """The Redis key of a counter: every counter under one prefix."""
    return f"securefiles:throttle:{key}"


def failures(key: str, window_seconds: int) -> int:
    """How many failures are counted for ``key`` in the current window."""
    if settings.THROTTLE_REDIS_URL:
        return int(_redis().get(_redis_name(key)) or 0)
    since = timezone.now() - timedelta(seconds=window_seconds)
    row = ThrottleCounter.objects.filter(key=key, window_start__gt=since).first()
    return row.count if row else 0


def add_failure(key: str, window_seconds: int) -> int:
    """Count one more failure; return the new count in the current window."""
    if settings.THROTTLE_REDIS_URL:
        return _redis_add(key, window_seconds)
    now = timezone.now()
    with transaction.atomic():
        row, _ = ThrottleCounter.objects.select_for_update().get_or_create(
            key=key, defaults={"window_start": now, "count": 0}
        )
        if row.window_start <= now - timedelta(seconds=window_seconds):
            row.window_start, row.count = now, 0
        row.count += 1
        row.save(update_fields=["window_start", "count"])
    return row.count


def _redis_add(key: str, window_seconds: int) -> int:
    name = _redis_name(key)
    pipe = _redis().pipeline()
    pipe.incr(name)
    pipe.expire(name, window_seconds, nx=True)
    count, _ = pipe.execute()
    return int(count)


# Decrement, but never below zero nor on a key that already expired (DECR would recreate
# it without a TTL).
_REDIS_GIVE_BACK = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


def remove_failure(key: str) -> None:
    """Take back one counted failure (an attempt counted before its check, which passed)."""
    if settings.THROTTLE_REDIS_URL:
        _redis().eval(_REDIS_GIVE_BACK, 1, _redis_name(key))
        return
    ThrottleCounter.objects.filter(key=key, count__gt=0).update(count=F("count") - 1)


def reset(key: str) -> None:
    """Forget every failure counted for ``key`` (its owner proved who they are)."""
    if settings.THROTTLE_REDIS_URL:
        _redis().delete(_redis_name(key))
        return
    ThrottleCounter.objects.filter(key=key).delete()


def is_throttled(key: str, limit: int, window_seconds: int) -> bool:
    """Whether ``key`` has reached ``limit`` failures in the current window (seconds)."""
    return failures(key, window_seconds) >= limit


def seconds_left(key: str, window_seconds: int) -> int:
    """Seconds until ``key``'s current window ends (0 when nothing is counted), rounded up.

    What a 429 answer puts in Retry-After: the counter starts from zero after that.
    """
    if settings.THROTTLE_REDIS_URL:
        return max(int(_redis().ttl(_redis_name(key))), 0)
    now = timezone.now()
    row = ThrottleCounter.objects.filter(
        key=key, window_start__gt=now - timedelta(seconds=window_seconds)
    ).first()
    if row is None:
        return 0
    left = row.window_start + timedelta(seconds=window_seconds) - now
    return max(math.ceil(left.total_seconds()), 0)
