"""/healthz and /readyz, as a load balancer's probe sees them: no login, no host check, no
HTTPS redirect, no secrets, 503 naming the failing dependency (README "Health and metrics")."""

from __future__ import annotations

import json
import os
import socket
import subprocess  # noqa: S404  (our own interpreter, no shell)
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from ops import checks
from sharing.storage.keyring import get_keyring
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, s3_client
from tests.test_throttle import redis_is_up, redis_url

pytestmark = pytest.mark.django_db

CHECKS = {"database", "migrations", "storage", "keys", "throttle", "queue"}


def _ready(client: Client, **extra: str) -> tuple[int, dict]:
    response = client.get("/readyz", **extra)
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.status_code, json.loads(response.content)


def test_it_answers_healthz_to_anyone(client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert "Set-Cookie" not in response


def test_it_is_ready_when_every_dependency_answers(client) -> None:
    status, body = _ready(client)

    assert status == 200
    assert body == {"status": "ready", "checks": dict.fromkeys(CHECKS, "ok")}


def test_it_says_no_version_and_no_secret(client, settings) -> None:
    healthz, readyz = client.get("/healthz"), client.get("/readyz")

    for response in (healthz, readyz):
        text = response.content.decode().lower()
        assert "django" not in text and "python" not in text and "version" not in text
        assert settings.SECRET_KEY.lower() not in text


def test_it_answers_a_probe_to_the_pods_address(client, settings) -> None:
    settings.ALLOWED_HOSTS = ["files.example.org"]

    assert client.get("/healthz", HTTP_HOST="10.0.3.7:8000").status_code == 200
    assert _ready(client, HTTP_HOST="10.0.3.7:8000")[0] == 200
    # Everything else still refuses that host.
    assert client.get("/accounts/login/", HTTP_HOST="10.0.3.7:8000").status_code == 400


def test_it_does_not_redirect_a_plain_http_probe_to_https(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz").status_code == 200
    assert _ready(client)[0] == 200
    assert client.get("/accounts/login/").status_code == 301


def test_it_answers_only_get_and_head(client) -> None:
    assert client.head("/readyz").status_code == 200
    refused = client.post("/healthz")
    assert refused.status_code == 405
    assert refused["Allow"] == "GET, HEAD"


def test_it_is_not_ready_without_its_storage_folder(client, settings, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    settings.MEDIA_ROOT = blocker / "media"  # under a file: can never be made

    status, body = _ready(client)

    assert status == 503
    assert body["status"] == "not ready"
    assert body["checks"]["storage"] == "failing"
    assert body["checks"]["database"] == "ok"


def test_a_failing_probe_logs_one_warning_per_check_and_no_error(
    client, settings, tmp_path, caplog
) -> None:
    """A load balancer probes every few seconds: while a dependency is down, each probe
    logs a warning naming the check, never an ERROR (which pages people or mails ADMINS)."""
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    settings.MEDIA_ROOT = blocker / "media"

    assert _ready(client)[0] == 503

    assert [(r.name, r.levelname) for r in caplog.records if r.levelno >= 30] == [
        ("ops.registry", "WARNING")
    ]


def test_it_is_ready_before_the_first_upload_made_the_storage_folder(
    client, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path / "not-yet" / "media"

    assert _ready(client)[0] == 200
    assert not (tmp_path / "not-yet").exists()  # a probe writes nothing


def test_it_is_not_ready_while_a_migration_is_unapplied(client, settings, monkeypatch) -> None:
    settings.MIGRATION_MODULES = {"ops": "tests.unapplied_migrations"}
    monkeypatch.setattr(checks, "_migrated", False)  # a release not yet seen migrated

    status, body = _ready(client)

    assert status == 503
    assert body["checks"]["migrations"] == "failing"
    assert body["checks"]["database"] == "ok"


def test_it_is_not_ready_without_master_keys(client, settings, caplog) -> None:
    settings.ENCRYPTION_KEYS = ""
    get_keyring.cache_clear()
    try:
        status, body = _ready(client)
    finally:
        get_keyring.cache_clear()

    assert status == 503
    assert body["checks"]["keys"] == "failing"
    # Logged as a warning naming the check, without the error's text.
    [record] = [r for r in caplog.records if r.name == "ops.registry"]
    assert record.levelname == "WARNING"
    assert record.getMessage() == "readiness check keys failed: ImproperlyConfigured"


@pytest.mark.skipif(not redis_is_up(), reason="no Redis for the tests")
def test_it_checks_redis_counters_when_configured(client, settings) -> None:
    settings.THROTTLE_REDIS_URL = redis_url(13)
    assert _ready(client)[0] == 200

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.THROTTLE_REDIS_URL = f"redis://127.0.0.1:{port}/13"
    status, body = _ready(client)

    assert status == 503
    assert body["checks"]["throttle"] == "failing"


def _s3_storage(settings, endpoint: str, bucket: str) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "ciphertext": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": endpoint,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "region_name": REGION,
            },
        },
    }


def test_it_checks_the_s3_bucket(client, settings, moto_server) -> None:
    bucket = f"securefiles-ready-{uuid.uuid4().hex[:12]}"
    s3_client(moto_server).create_bucket(Bucket=bucket)
    _s3_storage(settings, moto_server, bucket)
    assert _ready(client)[0] == 200

    _s3_storage(settings, moto_server, bucket + "-gone")
    status, body = _ready(client)

    assert status == 503
    assert body["checks"]["storage"] == "failing"
    assert bucket not in json.dumps(body)


def _with_database_url(url: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` after django.setup() in a fresh interpreter whose DATABASE_URL is
    ``url`` (nothing else of this test run's database)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "securefiles.settings",
        "SECUREFILES_ENV_FILE": "",
        "SECRET_KEY": "readiness-test-secret-key-0123456789-abcdefghijkl",
        "DATABASE_URL": url,
    }
    env.pop("DATABASE_TEST_NAME", None)
    return subprocess.run(  # noqa: S603  (our own interpreter, no shell)
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=Path(django_settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a hang guard, not a measurement: libpq alone would wait for ever
    )


def test_a_silent_database_fails_readiness_instead_of_hanging() -> None:
    """A PostgreSQL host that accepts the connection and never answers (a frozen server):
    the database check gives up at the connect timeout instead of hanging the probe."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"postgres://nobody@127.0.0.1:{silent.getsockname()[1]}/nothing?connect_timeout=2"
    code = (
        "from ops import checks\n"
        "try:\n    checks.database()\nexcept Exception as error:\n"
        "    print('failed', type(error).__name__)\n"
    )
    try:
        done = _with_database_url(url, code)
    finally:
        silent.close()
    assert "failed OperationalError" in done.stdout, done.stderr[-2000:]


def test_postgresql_connections_get_a_connect_timeout_unless_the_url_names_one() -> None:
    code = "from django.conf import settings\nprint(settings.DATABASES['default']['OPTIONS'])\n"
    default = _with_database_url("postgres://nobody@127.0.0.1:5432/nothing", code)
    assert "'connect_timeout': 5" in default.stdout, default.stderr[-2000:]
    named = _with_database_url("postgres://nobody@127.0.0.1:5432/x?connect_timeout=2", code)
    assert "'connect_timeout': 2" in named.stdout, named.stderr[-2000:]


def test_postgresql_connections_are_kept_a_minute_unless_the_url_says_otherwise() -> None:
    code = (
        "from django.conf import settings\n"
        "d = settings.DATABASES['default']\n"
        "print('age', d['CONN_MAX_AGE'], 'checks', bool(d['CONN_HEALTH_CHECKS']))\n"
    )
    default = _with_database_url("postgres://nobody@127.0.0.1:5432/nothing", code)
    assert "age 60 checks True" in default.stdout, default.stderr[-2000:]
    per_request = _with_database_url("postgres://nobody@127.0.0.1:5432/x?conn_max_age=0", code)
    assert "age 0 checks True" in per_request.stdout, per_request.stderr[-2000:]
