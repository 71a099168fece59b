"""Administrator oversight in /admin/: the audit log read-only, filterable and exportable;
shares and links listed and revocable; files transferable. Every admin action is logged
with the administrator as actor, and no admin page ever holds a file's plaintext."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from audit.selectors import verify_chain
from sharing.models import Share, ShareLink, StoredFile
from tests.helpers import make_file, make_link, make_share, streamed

pytestmark = pytest.mark.django_db

AUDIT = "/admin/audit/auditentry/"
SHARES = "/admin/sharing/share/"
LINKS = "/admin/sharing/sharelink/"
FILES = "/admin/sharing/storedfile/"
MARKER = b"PLAINTEXT-NEVER-IN-ADMIN-7c1e"
ADMIN = "root"  # the conftest superuser


@pytest.fixture
def stored(alice: User) -> StoredFile:
    return make_file(alice, b"head " + MARKER + b" tail", name="board minutes.docx")


def _action(
    client: Client, url: str, action: str, selected: list, **extra: object
) -> HttpResponseBase:
    """Run an admin action from the changelist, as its "Go" button does."""
    data = {"action": action, "_selected_action": [str(pk) for pk in selected], "index": "0"}
    return client.post(url, {**data, **extra})


def _listed(response: HttpResponseBase) -> list:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


# ---------------------------------------------------------------------------- audit log


def test_it_shows_the_audit_log(admin_client, alice_client, stored) -> None:
    streamed(alice_client.get(f"/files/{stored.id}/download/"))

    response = admin_client.get(AUDIT)

    assert response.status_code == 200
    assert b"file.download" in response.content and b"board minutes.docx" in response.content
    entry = AuditEntry.objects.get(event="file.download")
    detail = admin_client.get(f"{AUDIT}{entry.pk}/change/")
    assert detail.status_code == 200
    assert entry.mac.encode() in detail.content
    assert b'name="_save"' not in detail.content


def test_it_keeps_the_audit_log_read_only(admin_client, alice_client, stored) -> None:
    entry = AuditEntry.objects.get(event="file.upload")
    before = list(AuditEntry.objects.values())

    add = admin_client.get(f"{AUDIT}add/")
    add_post = admin_client.post(f"{AUDIT}add/", {"actor": "x", "event": "file.upload"})
    change = admin_client.post(f"{AUDIT}{entry.pk}/change/", {"actor": "mallory"})
    delete = admin_client.get(f"{AUDIT}{entry.pk}/delete/")
    delete_post = admin_client.post(f"{AUDIT}{entry.pk}/delete/", {"post": "yes"})
    bulk = _action(admin_client, AUDIT, "delete_selected", [entry.pk], post="yes")

    assert [r.status_code for r in (add, add_post, change, delete, delete_post)] == [403] * 5
    assert bulk.status_code in (200, 302)
    assert b'value="delete_selected"' not in admin_client.get(AUDIT).content
    # Only the admin's own log-in-free requests happened: nothing changed, nothing removed.
    assert list(AuditEntry.objects.filter(seq__lte=len(before)).values()) == before
    assert verify_chain().intact


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ({"event": "file.download"}, lambda e: e.event == "file.download"),
        ({"actor": "bob"}, lambda e: e.actor == "bob"),
        ({"event": "share.granted", "actor": "alice"}, lambda e: e.event == "share.granted"),
        ({"q": "bob"}, lambda e: "bob" in e.actor + e.detail),
    ],
)
def test_it_filters_the_audit_log(
    admin_client, alice_client, bob, bob_client, stored, query, wanted
) -> None:
    make_share(alice_client, stored, "bob")
    for client in (alice_client, bob_client, bob_client):
        streamed(client.get(f"/files/{stored.id}/download/"))
    expected = [e for e in AuditEntry.objects.order_by("-seq") if wanted(e)]

    listed = _listed(admin_client.get(AUDIT, query))

    assert expected and listed == expected


def test_it_filters_the_audit_log_by_file(admin_client, alice, alice_client, stored) -> None:
    other = make_file(alice, b"other", name="other.txt")
    streamed(alice_client.get(f"/files/{other.id}/download/"))

    listed = _listed(admin_client.get(AUDIT, {"file_id": str(other.id)}))

    assert [e.event for e in listed] == ["file.download", "file.upload"]
    assert {e.file_name for e in listed} == {"other.txt"}


def test_it_filters_the_audit_log_by_date(admin_client, alice_client, stored) -> None:
    old = AuditEntry.objects.get(event="file.upload")
    AuditEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))
    since, until = _today()

    recent = _listed(admin_client.get(AUDIT, {"created_at__gte": since, "created_at__lt": until}))

    assert recent and old not in recent
    assert all(e.created_at.date() == timezone.now().date() for e in recent)


@pytest.mark.parametrize("query", [{"event": "x" * 5000}, {"file_id": "not-a-uuid"}, {"q": "'"}])
def test_it_survives_odd_filters(admin_client, stored, query) -> None:
    assert admin_client.get(AUDIT, query).status_code in (200, 302)


def _today() -> tuple[str, str]:
    """The admin's "Today" date filter bounds, as its own links spell them."""
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return str(start), str(start + timedelta(days=1))


def _export(client: Client, url: str = AUDIT) -> HttpResponseBase:
    """Tick "Select all" on the (filtered) list, then run the CSV action."""
    first = AuditEntry.objects.order_by("seq").values_list("pk", flat=True)[0]
    return _action(client, url, "export_csv", [first], select_across="1")


def _csv(response: HttpResponseBase) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    return list(csv.reader(io.StringIO(streamed(response).decode())))


def test_it_exports_the_audit_log_as_csv(admin_client, alice, alice_client) -> None:
    formula = make_file(alice, b"=1+1 " + MARKER, name="=cmd|' -C calc'!A0.csv")
    make_file(alice, b"2", name="@SUM(1+1).csv")
    streamed(alice_client.get(f"/files/{formula.id}/download/"))

    rows = _csv(_export(admin_client))

    header, body = rows[0], rows[1:]
    assert header[:4] == ["seq", "created_at", "actor", "actor_user_id"]
    assert "mac" in header and "file_name" in header
    in_order = AuditEntry.objects.order_by("seq").values_list("seq", flat=True)
    assert [int(row[0]) for row in body] == list(in_order)
    names = {row[header.index("file_name")] for row in body} - {""}
    assert names == {"'=cmd|' -C calc'!A0.csv", "'@SUM(1+1).csv"}
    assert MARKER.decode() not in str(rows)


def test_it_exports_only_the_selected_date_range(admin_client, alice, alice_client, stored) -> None:
    streamed(alice_client.get(f"/files/{stored.id}/download/"))
    AuditEntry.objects.filter(event="file.upload").update(
        created_at=timezone.now() - timedelta(days=30)
    )
    since, until = _today()
    query = "?" + urlencode({"created_at__gte": since, "created_at__lt": until})

    rows = _csv(_export(admin_client, AUDIT + query))

    events = [row[6] for row in rows[1:]]
    assert "file.download" in events and "file.upload" not in events


# ---------------------------------------------------------------------------- shares


def test_it_lists_and_filters_shares(admin_client, alice_client, bob, charlie, stored) -> None:
    make_share(alice_client, stored, "bob")
    make_share(alice_client, stored, "charlie")

    page = admin_client.get(SHARES)
    only_bob = _listed(admin_client.get(SHARES, {"colleague__id__exact": bob.pk}))

    assert b"board minutes.docx" in page.content
    assert b">bob<" in page.content and b">charlie<" in page.content
    assert [share.colleague for share in only_bob] == [bob]


def test_it_revokes_shares_from_the_admin(admin_client, alice_client, bob, bob_client, stored):
    share = make_share(alice_client, stored, "bob")

    response = _action(admin_client, SHARES, "revoke_shares", [share.pk])

    assert response.status_code == 302
    assert not Share.objects.exists()
    assert bob_client.get(f"/files/{stored.id}/download/").status_code == 404
    entry = AuditEntry.objects.get(event="share.revoked")
    assert (entry.actor, entry.file_id, entry.detail) == (ADMIN, stored.id, "colleague=bob")
    assert entry.ip == "127.0.0.1"


def test_it_revokes_a_share_from_its_delete_page(admin_client, alice_client, bob, stored) -> None:
    share = make_share(alice_client, stored, "bob")

    response = admin_client.post(f"{SHARES}{share.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Share.objects.exists()
    assert AuditEntry.objects.get(event="share.revoked").actor == ADMIN


def test_it_offers_no_unaudited_bulk_delete_of_shares(admin_client, alice_client, bob, stored):
    make_share(alice_client, stored, "bob")

    page = admin_client.get(SHARES).content

    assert b'value="delete_selected"' not in page
    assert b'value="revoke_shares"' in page
    assert admin_client.get(f"{SHARES}add/").status_code == 403


# ---------------------------------------------------------------------------- links


def test_it_lists_and_filters_links(admin_client, alice_client, stored) -> None:
    _, active = make_link(alice_client, stored, max_downloads="2")
    _, revoked = make_link(alice_client, stored)
    alice_client.post(f"/files/{stored.id}/links/{revoked.pk}/revoke/")

    page = admin_client.get(LINKS)

    assert b"board minutes.docx" in page.content
    assert _listed(admin_client.get(LINKS, {"state": "active"})) == [active]
    assert _listed(admin_client.get(LINKS, {"state": "revoked"})) == [revoked]
    assert active.token_digest.encode() not in page.content


def test_it_revokes_links_from_the_admin(admin_client, alice_client, stored) -> None:
    token, link = make_link(alice_client, stored)
    assert Client().get(f"/s/{token}/").status_code == 200

    response = _action(admin_client, LINKS, "revoke_links", [link.pk])

    assert response.status_code == 302
    link.refresh_from_db()
    assert link.revoked_at is not None
    assert Client().get(f"/s/{token}/").status_code == 404
    entry = AuditEntry.objects.get(event="link.revoked")
    assert (entry.actor, entry.link_id, entry.file_id) == (ADMIN, link.pk, stored.id)


def test_it_never_deletes_a_link_from_the_admin(admin_client, alice_client, stored) -> None:
    _, link = make_link(alice_client, stored)

    assert admin_client.post(f"{LINKS}{link.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.post(f"{LINKS}{link.pk}/change/", {"max_downloads": 9}).status_code == 403
    assert admin_client.get(f"{LINKS}add/").status_code == 403
    assert ShareLink.objects.get().max_downloads is None


# ---------------------------------------------------------------------------- files


def test_it_transfers_files_to_another_user(
    admin_client, alice, alice_client, bob, bob_client, charlie, stored
) -> None:
    second = make_file(alice, b"second", name="second.txt")
    make_share(alice_client, stored, "bob")
    make_share(alice_client, stored, "charlie")

    form = _action(admin_client, FILES, "transfer_files", [stored.pk, second.pk])
    assert form.status_code == 200
    assert b"board minutes.docx" in form.content and MARKER not in form.content
    done = admin_client.post(
        FILES,
        {
            "action": "transfer_files",
            "_selected_action": [str(stored.pk), str(second.pk)],
            "new_owner": str(bob.pk),
        },
    )

    assert done.status_code == 302
    assert set(StoredFile.objects.values_list("owner__username", flat=True)) == {"bob"}
    assert bob_client.get(f"/files/{stored.id}/").status_code == 200
    assert alice_client.get(f"/files/{stored.id}/").status_code == 404
    assert list(Share.objects.values_list("colleague__username", flat=True)) == ["charlie"]
    entries = AuditEntry.objects.filter(event="file.transfer").order_by("seq")
    assert {(e.actor, e.file_id, e.detail) for e in entries} == {
        (ADMIN, stored.id, "from=alice to=bob"),
        (ADMIN, second.id, "from=alice to=bob"),
    }


def test_it_audits_the_deletion_of_a_users_files_by_the_admin(
    admin_client, alice, stored, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/auth/user/{alice.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not StoredFile.objects.exists()
    entry = AuditEntry.objects.get(event="file.delete")
    assert (entry.actor, entry.file_id, entry.file_name) == (ADMIN, stored.id, stored.name)
    assert verify_chain().intact


def test_it_never_shows_plaintext_in_the_admin(admin_client, alice_client, bob, stored) -> None:
    share = make_share(alice_client, stored, "bob")
    _, link = make_link(alice_client, stored)
    streamed(alice_client.get(f"/files/{stored.id}/download/"))
    entry = AuditEntry.objects.get(event="file.download")

    pages = [
        FILES,
        f"{FILES}{stored.pk}/change/",
        SHARES,
        f"{SHARES}{share.pk}/change/",
        LINKS,
        f"{LINKS}{link.pk}/change/",
        AUDIT,
        f"{AUDIT}{entry.pk}/change/",
        "/admin/",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert MARKER not in response.content, url
    assert MARKER not in streamed(_export(admin_client))
