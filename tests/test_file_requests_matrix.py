"""A file-request visitor against every portal URL.

The visitor has no account; they opened a request's link, sent a file through it (so
they know its id: tus hands it out in Location) and left an upload unfinished. Every URL
the portal routes (found in the URLconf, not listed by hand, so a new one is covered the
day it is added) is called with GET and POST, and the portal's own tus URL with HEAD,
PATCH and DELETE, with the file's id, the upload's id and the request's id wherever a
URL takes one. Only the request's own pages answer them; everything else sends them to
log in or refuses them, shows nothing of the owner's, and changes nothing.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from filerequests.models import FileRequest
from sharing.models import ResumableUpload, Share, ShareLink, StoredFile
from tests.helpers import make_file, make_link, make_share
from tests.helpers_requests import TUS, make_request, tus_create, tus_patch, tus_send, visitor

pytestmark = pytest.mark.django_db

PRIVATE_NAME = "alice-private-merger-plan.txt"
SENT_NAME = "carol-signed-contract.pdf"
# Pages anyone may see without an account (logging in, signing up, resetting a password,
# the API's description): 200 is right for them, as long as nothing of alice's is shown.
PUBLIC = {
    "login",
    "login_otp",
    "signup",
    "password_reset",
    "password_reset_done",
    "password_reset_complete",
    "password_reset_confirm",
    "invitation",
    "passkey_auth_options",
    "oidc_authentication_init",
    "openapi-json",
    "openapi-view",
    "api_problem",
    "api-root",
}
REFUSED = {301, 302, 303, 400, 401, 403, 404, 405}
PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def _routes(patterns: list, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            found.append(("/" + prefix + str(pattern.pattern), pattern.name or ""))
    return found


def _fill(route: str, values: dict[str, str]) -> str:
    path = PARAM.sub(lambda m: values.get(m.group(2), "1"), route)
    return path.replace("^", "").replace("$", "")


def _state() -> tuple:
    return (
        sorted(StoredFile.objects.values_list("id", "name", "owner_id")),
        list(FileRequest.objects.values_list("id", "revoked_at", "received_files")),
        Share.objects.count(),
        ShareLink.objects.filter(revoked_at__isnull=True).count(),
        ResumableUpload.objects.count(),
        User.objects.count(),
    )


@pytest.fixture
def world(alice: User, alice_client: Client, bob: User) -> dict:
    private = make_file(alice, b"merger terms", name=PRIVATE_NAME)
    make_share(alice_client, private, "bob")
    make_link(alice_client, private)
    token, found = make_request(alice_client)
    sender = visitor(token)
    sent_id = tus_send(sender, token, b"signed" * 1000, name=SENT_NAME).rstrip("/").split("/")[-1]
    unfinished = tus_create(sender, token, 3 * 1024 * 1024)["Location"]
    return {
        "sender": sender,
        "token": token,
        "values": {
            "file_id": sent_id,
            "upload_id": unfinished.rstrip("/").split("/")[-1],
            "request_id": str(found.pk),
            "token": "T" * 43,
            "uidb64": "MQ",
            "slug": "not-found",
            "object_id": sent_id,
            "content_type_id": "1",
            "app_label": "sharing",
        },
    }


def _own(path: str, token: str) -> bool:
    return path.startswith(f"/r/{token}/")


def test_a_visitor_reaches_nothing_but_their_request(world: dict) -> None:
    sender: Client = world["sender"]
    before = _state()
    seen = []
    for route, name in _routes(get_resolver().url_patterns):
        path = _fill(route, world["values"])
        for method in ("get", "post"):
            response = getattr(sender, method)(path)
            seen.append(path)
            body = b"" if response.streaming else response.content
            assert PRIVATE_NAME.encode() not in body, (method, path)
            if name in PUBLIC or route.startswith("/admin/") and response.status_code == 200:
                # The admin's own login page, and the public pages: nothing of alice's.
                assert SENT_NAME.encode() not in body, (method, path)
                continue
            assert response.status_code in REFUSED, (method, path, response.status_code)
            if response.status_code in (301, 302, 303):  # to log in, never to a file
                assert not response["Location"].startswith("/files/"), (method, path)
    assert len(seen) > 200  # the whole URLconf, admin included
    assert _state() == before


def test_the_portals_tus_url_refuses_the_visitors_upload(world: dict) -> None:
    sender: Client = world["sender"]
    url = f"/files/uploads/{world['values']['upload_id']}/"
    before = _state()
    assert sender.head(url, **TUS).status_code == 403
    assert tus_patch(sender, url, 0, b"x" * 1024 * 1024).status_code == 403
    assert sender.delete(url, **TUS).status_code == 403
    assert sender.post("/files/uploads/", HTTP_UPLOAD_LENGTH="5", **TUS).status_code == 403
    assert _state() == before


def test_the_visitor_can_only_continue_or_cancel_their_own_upload(world: dict) -> None:
    sender: Client = world["sender"]
    token = world["token"]
    own = f"/r/{token}/uploads/{world['values']['upload_id']}/"
    assert sender.head(own, **TUS).status_code == 200
    sent = f"/r/{token}/uploads/{world['values']['file_id']}/"
    assert sender.head(sent, **TUS).status_code == 404  # a finished file is no upload
    assert sender.delete(sent, **TUS).status_code == 404
    made_up = f"/r/{token}/uploads/{uuid.uuid4()}/"
    assert sender.head(made_up, **TUS).status_code == 404
    assert StoredFile.objects.filter(id=world["values"]["file_id"]).exists()
    assert sender.delete(own, **TUS).status_code == 204
