"""Every API endpoint × every kind of caller: owner, colleague (the file is shared with
them), stranger, no token, a revoked, an expired and a wrong-scope token, and a
deactivated user's token.

Only the owner changes anything; a colleague reads the file and its bytes; a stranger
gets the same 404 problem as for a file that does not exist (and the attempt is audited,
as on the web); a missing or dead token is 401, a token without the scope 403. Nothing
refused changes a row.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from accounts.models import AccessToken
from audit.models import AuditEntry
from sharing.models import Share, ShareLink, StoredFile
from tests.helpers import bearer, make_file, make_token, streamed

pytestmark = pytest.mark.django_db

DATA = b"alice's confidential plan\n" * 100
ALL = ("read", "write", "share")

# name: (method, path, JSON body, scope needed)
ENDPOINTS = {
    "me": ("get", "/api/v1/me/", None, "read"),
    "files": ("get", "/api/v1/files/", None, "read"),
    "file": ("get", "/api/v1/files/{id}/", None, "read"),
    "content": ("get", "/api/v1/files/{id}/content/", None, "read"),
    "delete": ("delete", "/api/v1/files/{id}/", None, "write"),
    "shares": ("get", "/api/v1/files/{id}/shares/", None, "read"),
    "share": ("post", "/api/v1/files/{id}/shares/", {"username": "erin"}, "share"),
    "share_revoke": ("delete", "/api/v1/files/{id}/shares/{share}/", None, "share"),
    "links": ("get", "/api/v1/files/{id}/links/", None, "read"),
    "link": ("post", "/api/v1/files/{id}/links/", {"expires_in_hours": 24}, "share"),
    "link_revoke": ("delete", "/api/v1/files/{id}/links/{link}/", None, "share"),
}
# What each endpoint answers the owner and a colleague; a stranger gets 404 on every
# file URL (and 200 on me and the list, which hold nothing of alice's for them).
OWNER = {
    "me": 200, "files": 200, "file": 200, "content": 200, "delete": 204, "shares": 200,
    "share": 201, "share_revoke": 204, "links": 200, "link": 201, "link_revoke": 204,
}  # fmt: skip
COLLEAGUE = {**{name: 404 for name in OWNER}, "me": 200, "files": 200, "file": 200,
             "content": 200}  # fmt: skip
STRANGER = {**{name: 404 for name in OWNER}, "me": 200, "files": 200}


@dataclass
class World:
    alice: User
    bob: User
    charlie: User
    file: StoredFile
    share: Share
    link: ShareLink


@pytest.fixture
def world(alice: User, bob: User, charlie: User) -> World:
    User.objects.create_user("erin", email="erin@example.com")
    stored = make_file(alice, DATA)
    share = Share.objects.create(file=stored, colleague=bob)
    link = ShareLink.objects.create(
        file=stored,
        created_by=alice,
        token_digest=uuid.uuid4().hex * 2,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    return World(alice, bob, charlie, stored, share, link)


def _call(client: Client, name: str, world: World, token: str | None) -> HttpResponseBase:
    method, path, body, _scope = ENDPOINTS[name]
    url = path.format(id=world.file.id, share=world.share.pk, link=world.link.pk)
    headers = bearer(token) if token is not None else {}
    if body is None:
        return getattr(client, method)(url, **headers)
    return getattr(client, method)(url, json.dumps(body), "application/json", **headers)


def _rows() -> tuple[int, int, int, int]:
    revoked = ShareLink.objects.filter(revoked_at__isnull=False).count()
    return StoredFile.objects.count(), Share.objects.count(), ShareLink.objects.count(), revoked


def _problem_type(response: HttpResponseBase) -> str:
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)["type"]


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize(
    ("who", "expected"), [("alice", OWNER), ("bob", COLLEAGUE), ("charlie", STRANGER)]
)
def test_people(client: Client, world: World, name: str, who: str, expected: dict) -> None:
    token = make_token(getattr(world, who), ALL)
    before = _rows()

    response = _call(client, name, world, token)

    assert response.status_code == expected[name]
    if response.status_code == 404:
        assert _problem_type(response) == "/api/v1/problems/not-found"
        assert _rows() == before
        assert AuditEntry.objects.filter(event="file.access_denied", file_id=world.file.id).exists()
    if name == "content" and response.status_code == 200:
        assert streamed(response) == DATA


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_made_up_file_is_the_same_404(client: Client, world: World, name: str) -> None:
    if "{id}" not in ENDPOINTS[name][1]:
        pytest.skip("no file in this URL")
    token = make_token(world.alice, ALL)
    world.file = StoredFile(id=uuid.uuid4())

    response = _call(client, name, world, token)

    assert response.status_code == 404
    assert _problem_type(response) == "/api/v1/problems/not-found"


def _revoked(world: World) -> str:
    raw = make_token(world.alice, ALL)
    AccessToken.objects.update(revoked_at=timezone.now())
    return raw


def _expired(world: World) -> str:
    raw = make_token(world.alice, ALL)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    return raw


def _deactivated(world: World) -> str:
    raw = make_token(world.alice, ALL)
    User.objects.filter(pk=world.alice.pk).update(is_active=False)
    return raw


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize("dead", [None, _revoked, _expired, _deactivated])
def test_no_or_a_dead_token_is_401(client: Client, world: World, name: str, dead) -> None:  # type: ignore[no-untyped-def]
    token = None if dead is None else dead(world)
    before = _rows()

    response = _call(client, name, world, token)

    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    assert _problem_type(response) in (
        "/api/v1/problems/unauthenticated",
        "/api/v1/problems/invalid-token",
    )
    assert _rows() == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_token_without_the_scope_is_403(client: Client, world: World, name: str) -> None:
    needed = ENDPOINTS[name][3]
    token = make_token(world.alice, [scope for scope in ALL if scope != needed])
    before = _rows()

    response = _call(client, name, world, token)

    assert response.status_code == 403
    assert _problem_type(response) == "/api/v1/problems/insufficient-scope"
    assert _rows() == before


def test_every_write_names_the_token_that_made_it(client: Client, world: World) -> None:
    token = make_token(world.alice, ALL)
    for name in ("link", "link_revoke", "share", "share_revoke", "delete"):
        assert _call(client, name, world, token).status_code in (201, 204)

    entries = AuditEntry.objects.filter(
        event__in=["link.created", "link.revoked", "share.granted", "share.revoked", "file.delete"]
    )
    assert entries.count() == 5
    assert set(entries.values_list("actor", flat=True)) == {f"alice via token {token[:11]}"}
