"""The tus endpoint with a bearer token, against real gunicorn and a real client (tuspy):
no session, no CSRF token; the upload becomes a file the API then serves byte for byte.
A token without the write scope, or a dead one, uploads nothing."""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError

from tests.api_live import LivePortal, live_portal, live_token

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    with live_portal(tmp_path_factory.mktemp("api-tus")) as running:
        yield running


def _get(url: str, token: str, **headers: str) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Bearer {token}", **headers}, timeout=60)


def _tus(portal: LivePortal, token: str) -> TusClient:
    """A tus client that authenticates with ``token`` alone: no cookie, no CSRF token."""
    return TusClient(f"{portal.base}/files/uploads/", headers={"Authorization": f"Bearer {token}"})


def test_a_bearer_token_uploads_through_tus(portal: LivePortal) -> None:
    token = live_token(portal.env, "alice", "read,write")
    data = secrets.token_bytes(3 * MiB + 12345)
    client = _tus(portal, token)
    uploader = client.uploader(
        file_stream=io.BytesIO(data), chunk_size=1 * MiB, metadata={"filename": "report.bin"}
    )

    uploader.upload()

    file_id = uploader.url.rstrip("/").rsplit("/", 1)[1]
    meta = _get(f"{portal.base}/api/v1/files/{file_id}/", token).json()
    assert meta["name"] == "report.bin" and meta["sha256"] == hashlib.sha256(data).hexdigest()
    content = _get(f"{portal.base}/api/v1/files/{file_id}/content/", token)
    assert content.status_code == 200 and content.content == data


@pytest.mark.parametrize(("scopes", "status"), [("read,share", 403), (None, 401)])
def test_a_token_that_may_not_write_uploads_nothing(
    portal: LivePortal, scopes: str | None, status: int
) -> None:
    token = live_token(portal.env, "bob", scopes) if scopes else "sf_" + "A" * 51
    client = _tus(portal, token)
    uploader = client.uploader(file_stream=io.BytesIO(b"x" * 1000), chunk_size=MiB)

    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()

    assert refused.value.status_code == status
    listing = _get(f"{portal.base}/api/v1/files/", live_token(portal.env, "bob", "read"))
    assert listing.json()["count"] == 0


def test_a_session_still_needs_its_csrf_token(portal: LivePortal, tmp_path: Path) -> None:
    session = requests.Session()
    session.trust_env = False
    session.get(f"{portal.base}/accounts/login/", timeout=10)
    session.post(
        f"{portal.base}/accounts/login/",
        data={
            "username": "alice",
            "password": "Quill-Harbor-7-Lantern",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=10,
    )
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "10"}

    refused = session.post(f"{portal.base}/files/uploads/", headers=headers, timeout=10)
    accepted = session.post(
        f"{portal.base}/files/uploads/",
        headers={**headers, "X-CSRFToken": session.cookies["csrftoken"]},
        timeout=10,
    )

    assert refused.status_code == 403 and accepted.status_code == 201
