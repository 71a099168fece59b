"""Failure counters that every worker shares: the database by default, Redis when set."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from throttle import counters, keys
from throttle.models import ThrottleCounter

pytestmark = pytest.mark.django_db


# The Redis the tests use: CI's PostgreSQL run gets a server of its own (TESTS_REDIS_URL,
# .ci/run), so that the two suites running side by side never flush each other's data.
REDIS_BASE_URL = os.environ.get("TESTS_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


def redis_url(db: int) -> str:
    """The tests' Redis URL for database number ``db`` (0-15)."""
    return f"{REDIS_BASE_URL}/{db}"


def redis_is_up() -> bool:
    parsed = urlparse(REDIS_BASE_URL)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_throttle(settings):
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_BASE_URL}")
    settings.THROTTLE_REDIS_URL = redis_url(15)
    counters._redis.cache_clear()
    key = f"test-{uuid.uuid4().hex}"
    yield key
    counters.reset(key)
    counters._redis.cache_clear()


def test_it_counts_failures_in_the_database():
    assert counters.add_failure("k", 60) == 1
    assert counters.add_failure("k", 60) == 2
    assert ThrottleCounter.objects.get(key="k").count == 2
    assert counters.is_throttled("k", 2, 60)
    assert not counters.is_throttled("other", 2, 60)


def test_it_starts_a_new_window_when_the_old_one_is_over():
    counters.add_failure("k", 60)
    counters.add_failure("k", 60)
    ThrottleCounter.objects.filter(key="k").update(window_start=timezone.now() - timedelta(61))
    assert not counters.is_throttled("k", 2, 60)
    assert counters.add_failure("k", 60) == 1


def test_it_counts_failures_in_redis_when_configured(redis_throttle):
    key = redis_throttle
    assert counters.add_failure(key, 60) == 1
    assert counters.add_failure(key, 60) == 2
    assert counters.is_throttled(key, 2, 60)
    assert not ThrottleCounter.objects.exists()  # nothing went to the database
    # The counter expires with its window: Redis holds one key for it, with a TTL.
    [name] = counters._redis().keys(f"*{key}*")
    assert 0 < counters._redis().ttl(name) <= 60


def test_it_says_how_long_a_window_has_left_in_the_database():
    assert counters.seconds_left("k", 600) == 0  # nothing counted
    counters.add_failure("k", 600)
    assert 598 <= counters.seconds_left("k", 600) <= 600
    ThrottleCounter.objects.filter(key="k").update(
        window_start=timezone.now() - timedelta(seconds=590)
    )
    assert 1 <= counters.seconds_left("k", 600) <= 10
    ThrottleCounter.objects.filter(key="k").update(
        window_start=timezone.now() - timedelta(seconds=601)
    )
    assert counters.seconds_left("k", 600) == 0  # over: a new window starts at the next count


def test_it_says_how_long_a_window_has_left_in_redis(redis_throttle):
    key = redis_throttle
    assert counters.seconds_left(key, 600) == 0
    counters.add_failure(key, 600)
    assert 598 <= counters.seconds_left(key, 600) <= 600


def test_it_builds_reset_keys_without_the_address_and_in_any_case():
    key = keys.password_reset_account_key(" Alice@Example.COM ")
    assert key == keys.password_reset_account_key("alice@example.com")
    assert "alice" not in key
    assert len(keys.password_reset_account_key("a" * 5000 + "@example.com")) <= 200
    assert len(keys.password_reset_address_key("x" * 500)) <= 200


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("fe80::1:2%eth0", "fe80::/64"),
        # 6to4: each of the 65536 /64s of 192.0.2.1's /48 is that one IPv4 address.
        ("2002:c000:201:1::1", "192.0.2.1"),
        ("2002:c000:201:ffff::1", "192.0.2.1"),
        # Teredo: the client's address, stored inverted, not the relay's /64.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
        ("not an address", "not an address"),
    ],
)
def test_it_counts_an_ipv4_address_alone_and_an_ipv6_one_by_its_64(address, counted):
    assert keys.client_network(address) == counted
