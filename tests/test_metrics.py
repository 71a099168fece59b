"""/metrics as a Prometheus scraper sees it: 404 until configured and to anyone without
the bearer token; counters that move with uploads, downloads, 429s and integrity failures;
labels that never carry a file name, a user name, a token or a path."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from sharing.crypto.stream import HEADER_SIZE
from sharing.models import StoredFile
from tests.helpers import MiB, blob_path, make_file, make_link, streamed, upload
from tests.live_gunicorn import ROOT
from tests.test_tus import create, patch

pytestmark = pytest.mark.django_db

SCRAPE_TOKEN = "scrape-token-for-tests-3f9c2a"  # noqa: S105 (a test's own token)
FILE_NAME = "patient-jane-doe-mri.pdf"


@pytest.fixture
def scraper(settings) -> Client:
    """A client sending the bearer token whose digest the portal is configured with."""
    settings.METRICS_TOKEN_SHA256 = hashlib.sha256(SCRAPE_TOKEN.encode()).hexdigest()
    return Client(HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}")


def scrape(scraper: Client) -> tuple[dict[tuple[str, frozenset], float], str]:
    """Every sample, keyed by (sample name, its labels), and the exposition's text."""
    response = scraper.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return samples, text


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_it_is_off_until_configured(client, settings) -> None:
    settings.METRICS_TOKEN_SHA256 = ""
    anyone = Client(HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}")

    assert anyone.get("/metrics").status_code == 404
    assert client.get("/metrics").status_code == 404


def test_it_answers_404_without_the_right_token(scraper, client, alice_client) -> None:
    wrong = Client(HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}x")
    basic = Client(HTTP_AUTHORIZATION=f"Basic {SCRAPE_TOKEN}")
    digest = Client(
        HTTP_AUTHORIZATION=f"Bearer {hashlib.sha256(SCRAPE_TOKEN.encode()).hexdigest()}"
    )

    for stranger in (client, alice_client, wrong, basic, digest):
        response = stranger.get("/metrics")
        assert response.status_code == 404
        assert b"securefiles_" not in response.content
    assert scraper.get("/metrics").status_code == 200


def test_it_refuses_to_start_with_a_malformed_token_digest() -> None:
    env = {**os.environ, "METRICS_TOKEN_SHA256": "not-a-digest", "SECUREFILES_ENV_FILE": ""}

    result = subprocess.run(  # noqa: S603 (our own interpreter and manage.py)
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "METRICS_TOKEN_SHA256 must be 64 hex digits" in result.stderr


def test_it_counts_form_uploads_and_downloads(scraper, alice, alice_client) -> None:
    data = os.urandom(300_000)
    before, _ = scrape(scraper)

    assert upload(alice_client, (FILE_NAME, data)).status_code == 302
    [stored] = StoredFile.objects.filter(owner=alice)
    assert streamed(alice_client.get(f"/files/{stored.id}/download/")) == data
    after, text = scrape(scraper)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("securefiles_upload_bytes_total", kind="form") == len(data)
    assert moved("securefiles_upload_seconds_count", kind="form") == 1
    assert moved("securefiles_download_bytes_total") == len(data)
    assert moved("securefiles_download_seconds_count") == 1
    assert (
        moved("securefiles_http_requests_total", view="sharing:upload", method="POST", status="302")
        == 1
    )
    assert (
        moved(
            "securefiles_http_requests_total", view="sharing:download", method="GET", status="200"
        )
        == 1
    )
    # Nothing about who or what: no file name, user name, file id or path in any label.
    for secret in (FILE_NAME, "alice", str(stored.id), "/files/"):
        assert secret not in text


def test_it_counts_tus_uploads(scraper, alice_client) -> None:
    data = os.urandom(MiB + 70_000)  # one whole segment, then the rest
    status, location = create(alice_client, len(data), filename=FILE_NAME)
    assert status == 201
    before, _ = scrape(scraper)

    assert patch(alice_client, location, 0, data[:MiB]).status_code == 204
    assert patch(alice_client, location, MiB, data[MiB:]).status_code == 204
    after, text = scrape(scraper)

    assert value(after, "securefiles_upload_bytes_total", kind="tus") - value(
        before, "securefiles_upload_bytes_total", kind="tus"
    ) == len(data)
    assert (
        value(after, "securefiles_upload_seconds_count", kind="tus")
        - value(before, "securefiles_upload_seconds_count", kind="tus")
        == 2
    )
    assert FILE_NAME not in text and location not in text


def test_it_counts_throttle_refusals(scraper, alice, alice_client, settings) -> None:
    stored = make_file(alice, b"terms\n" * 100)
    token, _ = make_link(alice_client, stored, password="correct horse battery staple")
    before, _ = scrape(scraper)

    statuses = [
        Client().post(f"/s/{token}/", {"password": f"guess {n}"}).status_code
        for n in range(settings.LINK_PASSWORD_ATTEMPTS + 1)
    ]
    after, text = scrape(scraper)

    assert statuses.count(429) == 2
    assert (
        value(after, "securefiles_throttle_refusals_total", view="sharing:link")
        - value(before, "securefiles_throttle_refusals_total", view="sharing:link")
        == 2
    )
    assert token not in text


def test_it_counts_integrity_failures(scraper, alice, alice_client) -> None:
    stored = make_file(alice, os.urandom(10_000))
    path = blob_path(stored)
    blob = bytearray(path.read_bytes())
    blob[HEADER_SIZE + 10] ^= 0x01
    path.write_bytes(bytes(blob))
    before, _ = scrape(scraper)

    assert alice_client.get(f"/files/{stored.id}/download/").status_code == 502
    after, _ = scrape(scraper)

    assert (
        value(after, "securefiles_integrity_failures_total")
        - value(before, "securefiles_integrity_failures_total")
        == 1
    )
    assert value(after, "securefiles_download_bytes_total") == value(
        before, "securefiles_download_bytes_total"
    )


def test_it_labels_unrouted_requests_none(scraper, client) -> None:
    before, _ = scrape(scraper)

    assert client.get("/no/such/place/with-a-secret-looking-path").status_code == 404
    after, text = scrape(scraper)

    assert (
        value(after, "securefiles_http_requests_total", view="none", method="GET", status="404")
        - value(before, "securefiles_http_requests_total", view="none", method="GET", status="404")
        == 1
    )
    assert "secret-looking" not in text


def test_generate_metrics_token_prints_a_token_and_its_digest(capsys) -> None:
    call_command("generate_metrics_token")
    out = capsys.readouterr().out.splitlines()

    token = out[0].rsplit(" ", 1)[1]
    assert out[1] == f"METRICS_TOKEN_SHA256={hashlib.sha256(token.encode()).hexdigest()}"
    assert len(token) >= 43


def test_it_shows_the_job_queues_depth(scraper, settings, transactional_db) -> None:
    from securefiles.lib.mail import send_later
    from tests.jobs_live import DATABASE_QUEUE

    settings.TASKS = DATABASE_QUEUE
    before, _ = scrape(scraper)
    send_later(subject="s", body="b", to=["someone@example.com"], reason="test")
    after, text = scrape(scraper)

    assert value(after, "securefiles_jobs_queued") == value(before, "securefiles_jobs_queued") + 1
    assert "someone@example.com" not in text


def test_a_scrape_skips_a_workers_file_still_being_created(scraper, monkeypatch, tmp_path) -> None:
    """Under gunicorn a worker makes its value file by opening it (0 bytes) and then
    growing it; a worker killed in between leaves it empty for good. A scrape at that
    moment still answers 200 with every other worker's values, never a 500."""
    from prometheus_client import Counter as PromCounter
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 4242))
    finished = PromCounter(
        "securefiles_download_bytes", "A worker's count.", registry=None
    )  # the name the portal uses, written to counter_4242.db as a worker would
    finished.inc(1234)
    (tmp_path / "counter_4243.db").write_bytes(b"")  # a worker between open and grow
    (tmp_path / "histogram_4244.db").write_bytes(b"\x10\x00")  # cut short by a kill -9

    samples, _ = scrape(scraper)

    assert value(samples, "securefiles_download_bytes_total") == 1234
