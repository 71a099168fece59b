"""A real S3-compatible server for tests: `moto_server` from moto[server], on loopback.

The process is started once per test session; boto3 talks HTTP to it, exactly as it would
to a production bucket. Nothing is mocked in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_gunicorn import free_port, wait_until_up

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"  # noqa: S105 (moto accepts any credentials)
REGION = "us-east-1"


def _moto_command(port: int) -> list[str]:
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if executable:
        return [executable, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto_server on a free loopback port; yield its endpoint URL."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        _moto_command(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(
            f"{endpoint}/moto-api/", process, 30, name="moto_server", ready=lambda r: r.ok
        )
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    """A boto3 S3 client of moto_server at ``endpoint``, with the test credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
