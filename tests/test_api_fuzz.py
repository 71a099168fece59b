"""An independent fuzzer against the live API: schemathesis (all its checks, every phase:
examples, coverage, fuzzing with positive and negative data, and stateful sequences),
authenticated with a token, against real gunicorn. Zero server errors, zero responses
the OpenAPI document does not describe. Bounded by SCHEMATHESIS_SECONDS (60 by default);
SCHEMATHESIS_SEED (14) picks the run."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from tusclient.client import TusClient

from tests.api_live import live_portal, live_token

HERE = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("SCHEMATHESIS_SECONDS", "60"))
# A fixed seed repeats a run exactly; set another to explore further.
SEED = os.environ.get("SCHEMATHESIS_SEED", "14")


def _seed_files(base: str, token: str) -> list[str]:
    """A few files of alice's (through tus with the token), one shared with bob."""
    client = TusClient(f"{base}/files/uploads/", headers={"Authorization": f"Bearer {token}"})
    ids = []
    for number in range(4):
        uploader = client.uploader(
            file_stream=io.BytesIO(b"report %d\n" % number * 500),
            chunk_size=1024 * 1024,
            metadata={"filename": f"report-{number}.txt"},
        )
        uploader.upload()
        ids.append(uploader.url.rstrip("/").rsplit("/", 1)[1])
    shared = requests.post(
        f"{base}/api/v1/files/{ids[0]}/shares/",
        json={"username": "bob"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert shared.status_code == 201
    return ids


@pytest.mark.slow
def test_the_api_answers_as_its_schema_says(tmp_path: Path) -> None:
    # Far above what the fuzzer sends in its time: the limit itself has its own tests.
    with live_portal(tmp_path, API_RATE_LIMIT="1000000") as portal:
        token = live_token(portal.env, "alice")
        _seed_files(portal.base, token)
        result = subprocess.run(  # noqa: S603  (our own interpreter, fixed arguments)
            [
                sys.executable, "-m", "schemathesis.cli",
                "--config-file", str(HERE / "schemathesis.toml"),
                "run", f"{portal.base}/api/v1/openapi.json",
                "--header", f"Authorization: Bearer {token}",
                "--checks", "all",
                "--mode", "all",
                "--max-time", str(SECONDS),
                "--seed", SEED,
                "--workers", "1",
                "--request-timeout", "20",
                "--warnings", "off",
            ],
            capture_output=True,
            text=True,
            timeout=SECONDS + 240,
        )  # fmt: skip
        server_log = portal.log.read_text()

    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert "Internal Server Error" not in server_log and "Traceback" not in server_log
    assert token[11:] not in report + server_log
