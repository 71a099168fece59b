"""Helpers for the file-request tests: create a request through the owner's real form,
and send files into it as a visitor does (the plain form, or tus)."""

from __future__ import annotations

import base64
import re

from django.http import HttpResponseBase
from django.test import Client

from filerequests.models import FileRequest
from tests.helpers import MULTIPART, field_part, file_part, multipart

NEW_REQUEST_URL = re.compile(r"http://testserver/r/([A-Za-z0-9_-]{43})/")
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def make_request(owner_client: Client, **fields: object) -> tuple[str, FileRequest]:
    """Create a request through ``POST /requests/``; return its token (read from the page
    shown once) and its row."""
    data = {"title": "Signed contract", **fields}
    response = owner_client.post("/requests/", data)
    assert response.status_code == 201, response.content[:800]
    match = NEW_REQUEST_URL.search(response.content.decode())
    assert match is not None
    return match.group(1), FileRequest.objects.latest("id")


def send_form(
    client: Client,
    token: str,
    *files: tuple[str, bytes],
    **fields: str,
) -> HttpResponseBase:
    """POST the plain form of ``/r/<token>/``: files, then name, email, password (request
    headers such as HTTP_ACCEPT go with the request, not into the form)."""
    headers = {key: fields.pop(key) for key in list(fields) if key.startswith("HTTP_")}
    parts = [field_part(name, value) for name, value in fields.items()]
    parts += [file_part(name, data) for name, data in files]
    body = multipart(parts)
    return client.generic("POST", f"/r/{token}/", body, content_type=MULTIPART, **headers)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def tus_create(client: Client, token: str, length: int, name: str = "scan.pdf") -> HttpResponseBase:
    metadata = f"filename {_b64(name)},filetype {_b64('application/pdf')}"
    return client.post(
        f"/r/{token}/uploads/",
        HTTP_UPLOAD_LENGTH=str(length),
        HTTP_UPLOAD_METADATA=metadata,
        **TUS,  # type: ignore[arg-type]
    )


def tus_patch(client: Client, location: str, offset: int, body: bytes) -> HttpResponseBase:
    return client.generic(
        "PATCH", location, body, content_type=OCTETS, HTTP_UPLOAD_OFFSET=str(offset), **TUS
    )


def tus_send(client: Client, token: str, data: bytes, name: str = "scan.pdf") -> str:
    """Send ``data`` by tus in one PATCH; return the upload's URL (its id is the file's)."""
    created = tus_create(client, token, len(data), name)
    assert created.status_code == 201, created.content
    location = created["Location"]
    patched = tus_patch(client, location, 0, data)
    assert patched.status_code == 204, patched.content
    return location


def visitor(token: str, **defaults: str) -> Client:
    """A browser without an account that opened the request's page (``defaults``: WSGI
    environ for every request, e.g. REMOTE_ADDR)."""
    client = Client(**defaults)
    assert client.get(f"/r/{token}/").status_code == 200
    return client
