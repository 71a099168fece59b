"""Failure counters that every worker shares: the database by default, Redis when set."""

from __future__ import annotations

import socket
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from sharing import throttle
from sharing.models import ThrottleCounter

pytestmark = pytest.mark.django_db


def redis_is_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_throttle(settings):
    if not redis_is_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings.THROTTLE_REDIS_URL = "redis://127.0.0.1:6379/15"
    throttle._redis.cache_clear()
    key = f"test-{uuid.uuid4().hex}"
    yield key
    throttle.reset(key)
    throttle._redis.cache_clear()


def test_it_counts_failures_in_the_database():
    assert throttle.add_failure("k", 60) == 1
    assert throttle.add_failure("k", 60) == 2
    assert ThrottleCounter.objects.get(key="k").count == 2
    assert throttle.is_throttled("k", 2, 60)
    assert not throttle.is_throttled("other", 2, 60)


def test_it_starts_a_new_window_when_the_old_one_is_over():
    throttle.add_failure("k", 60)
    throttle.add_failure("k", 60)
    ThrottleCounter.objects.filter(key="k").update(window_start=timezone.now() - timedelta(61))
    assert not throttle.is_throttled("k", 2, 60)
    assert throttle.add_failure("k", 60) == 1


def test_it_counts_failures_in_redis_when_configured(redis_throttle):
    key = redis_throttle
    assert throttle.add_failure(key, 60) == 1
    assert throttle.add_failure(key, 60) == 2
    assert throttle.is_throttled(key, 2, 60)
    assert not ThrottleCounter.objects.exists()  # nothing went to the database
    # The counter expires with its window: Redis holds one key for it, with a TTL.
    [name] = throttle._redis().keys(f"*{key}*")
    assert 0 < throttle._redis().ttl(name) <= 60


def test_it_says_how_long_a_window_has_left_in_the_database():
    assert throttle.seconds_left("k", 600) == 0  # nothing counted
    throttle.add_failure("k", 600)
    assert 598 <= throttle.seconds_left("k", 600) <= 600
    ThrottleCounter.objects.filter(key="k").update(
        window_start=timezone.now() - timedelta(seconds=590)
    )
    assert 1 <= throttle.seconds_left("k", 600) <= 10
    ThrottleCounter.objects.filter(key="k").update(
        window_start=timezone.now() - timedelta(seconds=601)
    )
    assert throttle.seconds_left("k", 600) == 0  # over: a new window starts at the next count


def test_it_says_how_long_a_window_has_left_in_redis(redis_throttle):
    key = redis_throttle
    assert throttle.seconds_left(key, 600) == 0
    throttle.add_failure(key, 600)
    assert 598 <= throttle.seconds_left(key, 600) <= 600


def test_it_builds_reset_keys_without_the_address_and_in_any_case():
    key = throttle.password_reset_account_key(" Alice@Example.COM ")
    assert key == throttle.password_reset_account_key("alice@example.com")
    assert "alice" not in key
    assert len(throttle.password_reset_account_key("a" * 5000 + "@example.com")) <= 200
    assert len(throttle.password_reset_address_key("x" * 500)) <= 200
