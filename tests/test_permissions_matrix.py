"""Every file URL × every kind of visitor: owner, colleague, revoked colleague, a member
of a group the file is shared with, a former member, a colleague and a group member whose
shares expired, stranger, anonymous and an administrator who neither owns the file nor has
a share.

Only the owner changes anything; a colleague reads (a read-only page and the download);
everyone else logged in gets the same 404 page as for a file that does not exist, and so
does everyone for a made-up id or a path that is not one; anonymous visitors are sent to
log in; a method a URL does not take is refused with 405 and changes nothing.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Group, User
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from sharing.models import Share, ShareLink, StoredFile
from tests.helpers import blob_path, make_file, make_link, make_share, streamed

pytestmark = pytest.mark.django_db

DATA = b"alice's confidential plan\n" * 100
CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"')

# name: (method, URL template, form data)
URLS = {
    "detail": ("get", "/files/{id}/", None),
    "download": ("get", "/files/{id}/download/", None),
    "download_head": ("head", "/files/{id}/download/", None),
    "delete": ("post", "/files/{id}/delete/", {"confirm": "on"}),
    "share": ("post", "/files/{id}/shares/", {"username": "erin"}),
    "share_revoke": ("post", "/files/{id}/shares/{share}/revoke/", {}),
    "link": ("post", "/files/{id}/links/", {"expires_in_hours": "24"}),
    "link_revoke": ("post", "/files/{id}/links/{link}/revoke/", {}),
}
OWNER = {
    "detail": 200,
    "download": 200,
    "download_head": 200,
    "delete": 302,
    "share": 302,
    "share_revoke": 302,
    "link": 201,
    "link_revoke": 302,
}
COLLEAGUE = {name: 404 for name in URLS} | {"detail": 200, "download": 200, "download_head": 200}
NOBODY = {name: 404 for name in URLS}
EXPECTED = {
    "owner": OWNER,
    "colleague": COLLEAGUE,
    "revoked_colleague": NOBODY,
    "group_member": COLLEAGUE,
    "former_group_member": NOBODY,
    "expired_colleague": NOBODY,
    "expired_group_member": NOBODY,
    "stranger": NOBODY,
    "admin": NOBODY,
}
LOGGED_IN_CASES = [(role, url) for role in EXPECTED for url in URLS]


@dataclass
class World:
    """alice's file, shared with dave (the share the revoke URL names) and one link."""

    file: StoredFile
    share: Share
    link: ShareLink
    token: str

    def url(self, name: str, *, file_id: object = None) -> str:
        template = URLS[name][1]
        return template.format(id=file_id or self.file.id, share=self.share.pk, link=self.link.pk)

    def state(self) -> tuple:
        """Everything a request could change, to compare before and after."""
        links = ShareLink.objects.order_by("id").values_list("id", "revoked_at", "download_count")
        shares = Share.objects.order_by("id").values_list("file_id", "colleague__username")
        return (
            StoredFile.objects.filter(pk=self.file.pk).exists(),
            blob_path(self.file).exists(),
            list(shares),
            list(links),
        )


@pytest.fixture
def world(alice: User, alice_client: Client) -> World:
    for name in ("dave", "erin"):
        User.objects.create_user(name, email=f"{name}@example.com")
    stored = make_file(alice, DATA, name="plan.txt")
    share = make_share(alice_client, stored, "dave")
    token, link = make_link(alice_client, stored, expires_in_hours="24")
    return World(file=stored, share=share, link=link, token=token)


@pytest.fixture
def visitor(request: pytest.FixtureRequest, world: World, alice_client: Client) -> Client:
    """The client of the role under test, with that role's access set up."""
    role = request.param
    if role == "owner":
        return alice_client
    if role == "anonymous":
        return Client()
    if role == "admin":
        return request.getfixturevalue("admin_client")
    if role == "stranger":
        return request.getfixturevalue("charlie_client")
    bob_client = request.getfixturevalue("bob_client")
    if "group_member" in role:
        _share_with_bobs_group(alice_client, world, request.getfixturevalue("bob"), role)
        return bob_client
    share = make_share(alice_client, world.file, "bob")
    if role == "expired_colleague":
        Share.objects.filter(pk=share.pk).update(expires_on=_yesterday())
    if role == "revoked_colleague":
        alice_client.post(f"/files/{world.file.id}/shares/{share.pk}/revoke/")
        assert not Share.objects.filter(pk=share.pk).exists()
    return bob_client


def _yesterday() -> date:
    return timezone.localdate() - timedelta(days=1)


def _share_with_bobs_group(alice_client: Client, world: World, bob: User, role: str) -> None:
    """alice and bob are in "Litigation"; alice shares the file with the group; then bob
    leaves it, or the share expires, as the role says."""
    group = Group.objects.create(name="Litigation")
    group.user_set.add(world.file.owner, bob)
    response = alice_client.post(world.url("share"), {"group": "Litigation"})
    assert response.status_code == 302
    if role == "former_group_member":
        group.user_set.remove(bob)
    if role == "expired_group_member":
        Share.objects.filter(group=group).update(expires_on=_yesterday())


def _call(client: Client, name: str, url: str) -> HttpResponseBase:
    method, _, data = URLS[name]
    return getattr(client, method)(url, data) if data is not None else getattr(client, method)(url)


def _page(response: HttpResponseBase) -> bytes:
    # The masked CSRF token of the logout form is fresh on every render.
    return CSRF_INPUT.sub(b"csrf", response.content)


@pytest.mark.parametrize(
    ("visitor", "name"),
    LOGGED_IN_CASES,
    indirect=["visitor"],
    ids=[f"{r}-{u}" for r, u in LOGGED_IN_CASES],
)
def test_it_answers_each_logged_in_visitor(visitor: Client, world: World, request, name) -> None:
    role = request.node.callspec.params["visitor"]
    expected = EXPECTED[role][name]
    before = world.state()

    response = _call(visitor, name, world.url(name))
    unknown = _call(visitor, name, world.url(name, file_id=uuid.uuid4()))

    assert response.status_code == expected
    assert unknown.status_code == 404  # a made-up id, whoever asks
    if expected == 404:
        assert _page(response) == _page(unknown)
        assert b"plan.txt" not in response.content
        assert world.state() == before
    elif name == "download":
        assert streamed(response) == DATA
    elif name == "download_head":
        assert response["Content-Length"] == str(len(DATA))
        assert response.content == b""


@pytest.mark.parametrize("name", list(URLS))
def test_it_redirects_anonymous_to_login(client: Client, world: World, name) -> None:
    before = world.state()
    url = world.url(name)

    response = _call(client, name, url)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={quote(url)}"
    assert world.state() == before


def test_it_lets_the_owner_delete(alice_client: Client, world: World) -> None:
    alice_client.post(world.url("delete"), {"confirm": "on"})

    assert not StoredFile.objects.filter(pk=world.file.pk).exists()


def test_it_lets_the_owner_share(alice_client: Client, world: World) -> None:
    alice_client.post(world.url("share"), {"username": "erin"})

    assert Share.objects.filter(file=world.file, colleague__username="erin").exists()


def test_it_lets_the_owner_revoke_a_share(alice_client: Client, world: World) -> None:
    alice_client.post(world.url("share_revoke"))

    assert not Share.objects.filter(pk=world.share.pk).exists()


def test_it_lets_the_owner_create_a_link(alice_client: Client, world: World) -> None:
    alice_client.post(world.url("link"), {"expires_in_hours": "24"})

    assert ShareLink.objects.filter(file=world.file).count() == 2


def test_it_lets_the_owner_revoke_a_link(alice_client: Client, world: World) -> None:
    alice_client.post(world.url("link_revoke"))

    world.link.refresh_from_db()
    assert world.link.revoked_at is not None
    assert Client().get(f"/s/{world.token}/").status_code == 404


def test_it_gives_the_colleague_the_owners_bytes(alice_client, bob_client, world) -> None:
    make_share(alice_client, world.file, "bob")

    mine = alice_client.get(world.url("download"))
    theirs = bob_client.get(world.url("download"))

    assert streamed(theirs) == streamed(mine) == DATA
    for header in ("Content-Type", "Content-Length", "Content-Disposition", "Cache-Control"):
        assert theirs[header] == mine[header]


def test_it_lists_a_shared_file_for_the_colleague_only(
    alice_client, bob_client, charlie_client, world
) -> None:
    make_share(alice_client, world.file, "bob")

    home = bob_client.get("/").content.decode()
    shared_section = home[home.index('id="shared-title"') :]

    assert "plan.txt" in shared_section
    assert f'href="/files/{world.file.id}/download/"' in shared_section
    assert ">alice<" in shared_section
    assert "plan.txt" not in charlie_client.get("/").content.decode()


def test_it_applies_a_revocation_on_the_next_request(alice_client, bob_client, world) -> None:
    share = make_share(alice_client, world.file, "bob")
    assert bob_client.get(world.url("download")).status_code == 200

    alice_client.post(f"/files/{world.file.id}/shares/{share.pk}/revoke/")

    assert bob_client.get(world.url("download")).status_code == 404
    assert bob_client.head(world.url("download")).status_code == 404
    assert "plan.txt" not in bob_client.get("/").content.decode()


def test_it_does_not_let_a_colleague_drop_their_own_share(alice_client, bob_client, world) -> None:
    share = make_share(alice_client, world.file, "bob")

    response = bob_client.post(f"/files/{world.file.id}/shares/{share.pk}/revoke/")

    assert response.status_code == 404
    assert Share.objects.filter(pk=share.pk).exists()


def test_it_shows_the_admin_metadata_only_in_the_admin(admin_client, world) -> None:
    listing = admin_client.get("/admin/sharing/storedfile/")

    assert b"plan.txt" in listing.content
    assert DATA[:20] not in listing.content
    assert admin_client.get(world.url("download")).status_code == 404


def test_it_refuses_a_share_of_another_file_through_my_file(alice, alice_client, world) -> None:
    # alice owns both files: a share id of one file named under the other's URL is 404.
    other = make_file(alice, b"other", name="other.txt")
    other_share = make_share(alice_client, other, "erin")

    revoke = alice_client.post(f"/files/{world.file.id}/shares/{other_share.pk}/revoke/")

    assert revoke.status_code == 404
    assert Share.objects.filter(pk=other_share.pk).exists()


def test_it_refuses_a_link_of_another_users_file(bob, alice_client, bob_client, world) -> None:
    bobs = make_file(bob, b"bob's", name="bobs.txt")
    _, bobs_link = make_link(bob_client, bobs)

    revoke = alice_client.post(f"/files/{world.file.id}/links/{bobs_link.pk}/revoke/")
    revoke_direct = alice_client.post(f"/files/{bobs.id}/links/{bobs_link.pk}/revoke/")

    assert revoke.status_code == revoke_direct.status_code == 404
    bobs_link.refresh_from_db()
    assert bobs_link.revoked_at is None


def test_it_gives_a_colleague_a_read_only_page(alice_client, bob_client, charlie_client, world):
    make_share(alice_client, world.file, "bob")

    response = bob_client.get(world.url("detail"))
    denied_to_colleague = AuditEntry.objects.filter(event="file.access_denied").count()
    charlie_client.get(world.url("detail"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "plan.txt" in page and "2.5\xa0KiB" in page and f"{len(DATA):,}\xa0bytes" in page
    assert hashlib.sha256(DATA).hexdigest() in page
    assert '<dd class="shared-by">alice</dd>' in page
    assert f'href="/files/{world.file.id}/download/"' in page
    for owners_only in ("/delete/", "/shares/", "/links/", "Activity", "dave"):
        assert owners_only not in page
    assert denied_to_colleague == 0
    assert AuditEntry.objects.filter(event="file.access_denied").count() == 1  # charlie


# ---------------------------------------------------------------------------- not a file


@pytest.mark.parametrize(
    "url",
    [
        "/files/not-a-uuid/",
        "/files/not-a-uuid/download/",
        "/files/12345/delete/",
        "/files/../etc/passwd/download/",
        "/files/%2e%2e%2fsettings.py/download/",
    ],
)
def test_it_answers_404_for_a_path_that_is_not_a_uuid(alice_client, url) -> None:
    assert alice_client.get(url).status_code == 404
    assert alice_client.post(url).status_code == 404


# ---------------------------------------------------------------------------- the file list


def test_it_redirects_anonymous_home_to_login(client) -> None:
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_it_lists_only_my_files_newest_first(alice, bob, alice_client) -> None:
    older = make_file(alice, b"1", name="older-alpha.txt")
    newer = make_file(alice, b"2", name="newer-beta.txt")
    make_file(bob, b"3", name="bobs-gamma.txt")

    response = alice_client.get("/")

    assert response.status_code == 200
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    html = response.content.decode()
    assert "bobs-gamma.txt" not in html
    assert html.index("newer-beta.txt") < html.index("older-alpha.txt")
    for stored in (older, newer):
        assert f'href="/files/{stored.id}/download/"' in html
    assert len(re.findall(r'href="/files/[0-9a-f-]{36}/download/"', html)) == 2


# ---------------------------------------------------------------------------- methods


def test_it_refuses_get_on_upload(alice_client) -> None:
    assert alice_client.get("/files/upload/").status_code == 405


def test_it_refuses_get_on_delete(alice_client, world: World) -> None:
    before = world.state()

    response = alice_client.get(world.url("delete"))

    assert response.status_code == 405
    assert world.state() == before


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_it_refuses_writes_on_download(alice_client, world: World, method) -> None:
    before = world.state()

    response = getattr(alice_client, method)(world.url("download"))

    assert response.status_code == 405
    assert not response.streaming
    assert world.state() == before
