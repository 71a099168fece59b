"""/metrics under real gunicorn with two workers (prometheus-client's multiprocess mode):
the scrape sums both workers, and METRICS_DIR is emptied of old values at start."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import requests

from tests.live_gunicorn import create_user, free_port, manage, running_gunicorn, server_env
from tests.test_several_servers_live import PASSWORD, SCRAPE_TOKEN, _alice, _scrape, _upload

DOWNLOADS = ("securefiles_download_bytes_total", frozenset())


def test_a_scrape_sums_the_workers_and_starts_from_zero(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_4242.db").write_bytes(b"left by a previous run")
    (metrics_dir / "README").write_text("not ours to delete")
    env = server_env(
        tmp_path,
        free_port(),
        GUNICORN_WORKERS="2",
        METRICS_DIR=str(metrics_dir),
        METRICS_TOKEN_SHA256=hashlib.sha256(SCRAPE_TOKEN.encode()).hexdigest(),
    )
    manage(env, "migrate", "--noinput")
    create_user(env, "alice", PASSWORD)
    data = secrets.token_bytes(100_000)

    with running_gunicorn(env, tmp_path / "gunicorn.log") as base:
        assert not (metrics_dir / "counter_4242.db").exists()
        assert (metrics_dir / "README").exists()
        assert _scrape(base).get(DOWNLOADS, 0) == 0
        session = _alice(base)
        file_id = _upload(session, base, data)
        cookies = session.cookies.get_dict()
        # Fresh connections each, which the kernel spreads over the two workers.
        for _ in range(12):
            url = f"{base}/files/{file_id}/download/"
            assert requests.get(url, cookies=cookies, timeout=30).content == data
        assert _scrape(base)[DOWNLOADS] == 12 * len(data)
        anonymous = requests.get(f"{base}/metrics", timeout=10)
        assert anonymous.status_code == 404
