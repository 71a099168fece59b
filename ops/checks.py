"""The readiness checks /readyz runs (registered in ops.apps): each returns None when its
dependency answers and raises (or returns False) otherwise. Each is quick: the network
ones give up after PROBE_TIMEOUT_SECONDS, and nothing is written anywhere.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from django.conf import settings
from django.core.files.storage import storages
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sharing.storage.keyring import get_keyring
from sharing.storage.s3 import is_s3

# Seconds a probe waits for Redis or S3 (connect, then each read) before calling it down:
# a load balancer's probe times out after a few seconds, and a hung dependency must
# answer "not ready" rather than nothing.
PROBE_TIMEOUT_SECONDS = 2

# Set once every migration was seen applied: migrations are not unapplied under a running
# release, and loading them from disk at each probe would cost tens of milliseconds.
_migrated = False


def database() -> None:
    """The default database answers a query. (A server that does not answer at all is
    bounded by the driver's connect timeout: set ``connect_timeout=2`` in DATABASE_URL.)"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def migrations() -> bool:
    """Every migration of this release is applied (False while `migrate` has not run)."""
    global _migrated
    if not _migrated:
        executor = MigrationExecutor(connection)
        _migrated = not executor.migration_plan(executor.loader.graph.leaf_nodes())
    return _migrated


def storage() -> bool:
    """The ciphertext storage is reachable: the S3 bucket answers HEAD, or MEDIA_ROOT (or,
    before the first upload, the folder it will be made in) is a writable folder."""
    inner: Any = storages["ciphertext"]
    if is_s3(inner):
        _s3_probe_client(
            inner.endpoint_url, inner.region_name, inner.access_key, inner.secret_key
        ).head_bucket(Bucket=inner.bucket_name)
        return True
    folder = Path(settings.MEDIA_ROOT)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


@lru_cache(maxsize=4)
def _s3_probe_client(
    endpoint_url: str | None, region: str | None, access_key: str | None, secret_key: str | None
) -> Any:
    """A boto3 S3 client with the storage's endpoint and credentials (None: boto3's own
    chain, an instance role), short timeouts and no retries: the storage's own client
    waits a minute and retries."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region or None,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        config=Config(
            connect_timeout=PROBE_TIMEOUT_SECONDS,
            read_timeout=PROBE_TIMEOUT_SECONDS,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def keys() -> None:
    """The master keys parsed (ENCRYPTION_KEYS): the files can be opened."""
    get_keyring()


def throttle_counters() -> bool:
    """Redis answers PING when THROTTLE_REDIS_URL is set (else the counters live in the
    database, checked above)."""
    if not settings.THROTTLE_REDIS_URL:
        return True
    return bool(_redis_probe_client(settings.THROTTLE_REDIS_URL).ping())


@lru_cache(maxsize=4)
def _redis_probe_client(url: str) -> Any:
    """A Redis client for probes only: short socket timeouts, its own small pool."""
    import redis

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
        socket_timeout=PROBE_TIMEOUT_SECONDS,
        max_connections=4,
    )
