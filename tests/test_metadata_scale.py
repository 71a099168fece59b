"""Pages whose cost does not grow with what is stored (issue 17): the same number of
queries at two sizes for every list page, keyset Next/Previous links that walk a list
exactly once, the usage row kept exact by the services, the admin's capped count."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.actors import Actor
from audit.models import AuditEntry
from audit.services import audit_record
from securefiles.lib.paging import CappedCountPaginator
from sharing import selectors, services
from sharing.models import Share, ShareLink, StorageUsage, StoredFile
from tests.helpers import make_file

pytestmark = pytest.mark.django_db


def add_rows(owner, count: int, *, prefix: str = "file") -> list[StoredFile]:
    """``count`` file rows (no blobs: list pages open none), with the usage recounted as
    the services would keep it. Sizes and names repeat, so that ties need the id."""
    now = timezone.now()
    rows = StoredFile.objects.bulk_create(
        StoredFile(
            id=uuid.uuid4(),
            owner=owner,
            name=f"{prefix}-{i % 97:03}.txt",
            size=i % 13,
            digest=b"",
            blob=f"blobs/{uuid.uuid4().hex}",
            wrapped_key=b"",
            key_id="test1",
            created_at=now - timedelta(seconds=i // 3),
        )
        for i in range(count)
    )
    services.usage_recount(user_id=owner.pk)
    return rows


def queries_of(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def next_link(response) -> str | None:
    found = re.search(r'<a href="\?([^"]+)" rel="next">', response.content.decode())
    return "/?" + found.group(1).replace("&amp;", "&") if found else None


def listed_ids(response) -> list[str]:
    table = response.content.decode().split('id="my-files"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'href="/files/([0-9a-f-]{36})/download/"', table)


def _shared_section(response) -> str:
    return response.content.decode().split('id="shared-title"', 1)[1]


def shared_ids(response) -> list[str]:
    table = _shared_section(response).split("</table>", 1)[0]
    return re.findall(r'href="/files/([0-9a-f-]{36})/download/"', table)


def shared_link(response, rel: str) -> str | None:
    """The shared list's Next or Previous link (``rel``), as a path."""
    found = re.search(rf'<a href="\?([^"]+)" rel="{rel}">', _shared_section(response))
    return "/?" + found.group(1).replace("&amp;", "&") if found else None


USER_PAGES = (
    "/",
    "/?sort=name",
    "/?sort=-name",
    "/?sort=size",
    "/?sort=-size",
    "/?sort=date",
    "/?page=3",
    "/?page=2&sort=name",
    "/?page=2&sort=-size",
    "/?page=9999",
    "/?q=file-01",
    "/?q=file-01&sort=name&page=2",
    "/?shared_page=2",
)


@pytest.mark.parametrize("in_a_group", [False, True], ids=["no group", "in a group"])
def test_every_list_page_takes_as_many_queries_at_120_files_as_at_1200(
    alice, bob, alice_client, in_a_group
) -> None:
    if in_a_group:  # "Shared with me" then merges the group's shares with those by name
        team = Group.objects.create(name="team")
        alice.groups.add(team)
        Share.objects.bulk_create(Share(file=f, group=team) for f in add_rows(bob, 30))
    sharer_files = add_rows(bob, 120, prefix="from-bob")
    Share.objects.bulk_create(Share(file=f, colleague=alice) for f in sharer_files)
    add_rows(alice, 120)
    small = {url: queries_of(alice_client, url) for url in USER_PAGES}
    small["deep"] = queries_of(alice_client, _deep_url(alice_client))
    small["shared deep"] = queries_of(alice_client, _shared_deep_url(alice_client))

    more = add_rows(bob, 1080, prefix="from-bob")
    Share.objects.bulk_create(Share(file=f, colleague=alice) for f in more)
    add_rows(alice, 1080)
    large = {url: queries_of(alice_client, url) for url in USER_PAGES}
    large["deep"] = queries_of(alice_client, _deep_url(alice_client))
    large["shared deep"] = queries_of(alice_client, _shared_deep_url(alice_client))

    assert small == large
    # A search's 14th: the user's groups, read once for "Shared with me". The quota is
    # read once (the header's and the page's).
    assert max(large.values()) <= 14, large


def _deep_url(client) -> str:
    """The Next link of the second page: a keyset page."""
    return next_link(client.get(next_link(client.get("/?sort=name")) or "/")) or "/"


def _shared_deep_url(client) -> str:
    """The shared list's Next link on its second page: a keyset page."""
    second = shared_link(client.get("/"), "next") or "/"
    return shared_link(client.get(second), "next") or "/"


def test_the_file_page_takes_as_many_queries_with_5_links_and_shares_as_with_120(
    alice, alice_client, django_user_model
) -> None:
    stored = make_file(alice, b"x", name="busy.txt")
    colleagues = django_user_model.objects.bulk_create(
        django_user_model(username=f"colleague-{i}") for i in range(120)
    )

    def add(start: int, end: int) -> None:
        Share.objects.bulk_create(Share(file=stored, colleague=c) for c in colleagues[start:end])
        ShareLink.objects.bulk_create(
            ShareLink(
                file=stored,
                created_by=alice,
                token_digest=uuid.uuid4().hex * 2,
                expires_at=timezone.now() + timedelta(days=1),
            )
            for _ in range(start, end)
        )

    add(0, 5)
    small = queries_of(alice_client, f"/files/{stored.id}/")
    add(5, 120)
    large = queries_of(alice_client, f"/files/{stored.id}/")
    page = alice_client.get(f"/files/{stored.id}/?links_page=3&shares_page=3").content.decode()

    assert small == large
    assert page.count("Remove access") == 20  # 120 shares, 50 a page: the third has 20
    assert "?links_page=2" in page and "?shares_page=2" in page


ADMIN_PAGES = (
    "/admin/sharing/storedfile/",
    "/admin/sharing/storedfile/?q=file-01",
    "/admin/sharing/storedfile/?q=alice",
    "/admin/sharing/storedfile/?key_id=test1",
    "/admin/sharing/storedfile/?created_at__gte=2000-01-01T00:00:00%2B00:00",
    "/admin/audit/auditentry/",
    "/admin/audit/auditentry/?event=file.download",
    "/admin/audit/auditentry/?q=alice",
    "/admin/audit/auditentry/?q=10.0.0.7",
    "/admin/audit/auditentry/?p=2",
)


def test_every_admin_list_takes_as_many_queries_at_both_sizes(alice, admin_client) -> None:
    def fill(files: int, entries: int) -> dict[str, int]:
        add_rows(alice, files)
        for _ in range(entries):
            audit_record(event="file.download", actor=Actor(label="alice", ip="10.0.0.7"))
        return {url: queries_of(admin_client, url) for url in ADMIN_PAGES}

    small = fill(150, 150)
    owner_filter_small = queries_of(admin_client, f"/admin/sharing/storedfile/?owner={alice.pk}")
    large = fill(1050, 300)
    owner_filter_large = queries_of(admin_client, f"/admin/sharing/storedfile/?owner={alice.pk}")

    assert small == large
    assert owner_filter_small == owner_filter_large


@pytest.mark.parametrize("sort", ["-date", "date", "name", "-name", "size", "-size"])
def test_next_links_walk_every_file_once_in_order_and_previous_walks_back(
    alice, alice_client, sort
) -> None:
    add_rows(alice, 260)
    expected = [str(pk) for pk in _ordered_ids(alice, sort)]
    url: str | None = f"/?sort={sort}"
    pages: list[list[str]] = []
    while url:
        response = alice_client.get(url)
        pages.append(listed_ids(response))
        url = next_link(response)
    assert [pk for page in pages for pk in page] == expected
    assert len(pages) == 6
    # Back from the last page, by the Previous links.
    response = alice_client.get(f"/?sort={sort}&page=6")
    back = [listed_ids(response)]
    while found := re.search(r'<a href="\?([^"]+)" rel="prev">', response.content.decode()):
        response = alice_client.get("/?" + found.group(1).replace("&amp;", "&"))
        back.append(listed_ids(response))
    assert back[::-1] == pages


@pytest.mark.parametrize("sort", ["-date", "date", "name", "-name", "size", "-size"])
def test_every_page_by_number_lists_the_rows_the_next_links_list(alice, alice_client, sort):
    add_rows(alice, 260)  # 6 pages: 2 and 3 read from the start, 4 and 5 from the end
    expected = [str(pk) for pk in _ordered_ids(alice, sort)]

    pages = [listed_ids(alice_client.get(f"/?sort={sort}&page={n}")) for n in range(1, 7)]

    assert [pk for page in pages for pk in page] == expected
    assert [len(page) for page in pages] == [50, 50, 50, 50, 50, 10]


def _ordered_ids(owner, sort: str) -> list[uuid.UUID]:
    rows = list(
        StoredFile.objects.filter(owner=owner).values_list("name", "size", "created_at", "id")
    )
    keys = {
        "name": lambda r: (r[0].lower(), r[3]),
        "size": lambda r: (r[1], r[3]),
        "date": lambda r: (r[2], r[3]),
    }
    rows.sort(key=keys[sort.lstrip("-")], reverse=sort.startswith("-"))
    return [row[3] for row in rows]


def shares_for_alice(
    alice, bob, charlie, *, by_name: int, by_group: int, prefix: str = "by"
) -> tuple[list[Share], list[Share], Group]:
    """Unsaved shares with alice: ``by_name`` of bob's files by her name, ``by_group`` of
    charlie's with a group she is in (returned too)."""
    team = Group.objects.create(name="team")
    alice.groups.add(team)
    named = [Share(file=f, colleague=alice) for f in add_rows(bob, by_name, prefix=prefix)]
    grouped = [Share(file=f, group=team) for f in add_rows(charlie, by_group, prefix=prefix)]
    return named, grouped, team


def test_shared_next_links_walk_every_share_once_in_order_and_previous_walks_back(
    alice, bob, charlie, alice_client
) -> None:
    by_name, by_group, _ = shares_for_alice(alice, bob, charlie, by_name=70, by_group=60)
    shares = Share.objects.bulk_create(by_name + by_group)
    start = timezone.now() - timedelta(days=1)
    for n, share in enumerate(shares):  # threes share a moment: the id breaks the tie
        Share.objects.filter(pk=share.pk).update(created_at=start + timedelta(seconds=n % 43))
    ordered = Share.objects.order_by("-created_at", "-id").values_list("file_id", flat=True)
    expected = [str(pk) for pk in ordered]

    pages: list[list[str]] = []
    url: str | None = "/"
    while url:
        response = alice_client.get(url)
        pages.append(shared_ids(response))
        url = shared_link(response, "next")
    back = [shared_ids(response)]
    while url := shared_link(response, "prev"):
        response = alice_client.get(url)
        back.append(shared_ids(response))

    assert [pk for page in pages for pk in page] == expected
    assert [len(page) for page in pages] == [50, 50, 30]
    assert "shared_after=" in (_shared_deep_url(alice_client) or "")
    assert back[::-1] == pages


@pytest.mark.parametrize("in_a_group", [False, True], ids=["no group", "in a group"])
def test_every_shared_page_by_number_lists_the_shares_in_order(
    alice, bob, charlie, alice_client, in_a_group
) -> None:
    by_name, by_group, _ = shares_for_alice(
        alice, bob, charlie, by_name=130, by_group=100 if in_a_group else 0
    )
    Share.objects.bulk_create(by_name + by_group)
    ordered = Share.objects.order_by("-created_at", "-id").values_list("file_id", flat=True)
    expected = [str(pk) for pk in ordered]

    last = 5 if in_a_group else 3  # the middle pages are read from the start or the end
    pages = [shared_ids(alice_client.get(f"/?shared_page={n}")) for n in range(1, last + 1)]

    assert [pk for page in pages for pk in page] == expected
    assert [len(page) for page in pages] == [50] * (last - 1) + [30]


def test_a_shared_search_lists_each_match_once_in_order_page_by_page(
    alice, bob, charlie, alice_client
) -> None:
    by_name, by_group, team = shares_for_alice(
        alice, bob, charlie, by_name=40, by_group=40, prefix="Plan"
    )
    both = [Share(file=share.file, group=team) for share in by_name[:5]]  # listed once
    other = [Share(file=f, colleague=alice) for f in add_rows(bob, 20, prefix="memo")]
    Share.objects.bulk_create(by_name + by_group + both + other)
    ordered = Share.objects.exclude(pk__in=[s.pk for s in both + other]).order_by(
        "-created_at", "-id"
    )
    expected = [str(pk) for pk in ordered.values_list("file_id", flat=True)]

    pages = [shared_ids(alice_client.get("/", {"q": "PLAN", "shared_page": n})) for n in (1, 2)]

    assert [pk for page in pages for pk in page] == expected
    assert [len(page) for page in pages] == [50, 30]


@pytest.mark.parametrize("cursor", ["garbage", "WyJ4IiwgMV0", "W3sidCI6ICJ4In0sIDFd", "WzEsMl0"])
def test_a_forged_shared_cursor_falls_back_on_the_page_number(
    alice, bob, alice_client, cursor
) -> None:
    Share.objects.bulk_create(Share(file=f, colleague=alice) for f in add_rows(bob, 120))
    by_number = shared_ids(alice_client.get("/?shared_page=2"))

    after = alice_client.get(f"/?shared_page=2&shared_after={cursor}")
    before = alice_client.get(f"/?shared_page=2&shared_before={cursor}")

    assert after.status_code == before.status_code == 200
    assert shared_ids(after) == shared_ids(before) == by_number


@pytest.mark.parametrize(
    "cursor", ["garbage", "e30", "W10", "WyJ4IiwgIm5vdC1hLXV1aWQiXQ", "A" * 5000, "WzEsMl0"]
)
def test_a_forged_cursor_falls_back_on_the_page_number(alice, alice_client, cursor) -> None:
    add_rows(alice, 120)
    by_number = listed_ids(alice_client.get("/?page=2"))

    response = alice_client.get(f"/?page=2&after={cursor}")
    before = alice_client.get(f"/?page=2&before={cursor}&sort=name")

    assert response.status_code == before.status_code == 200
    assert listed_ids(response) == by_number


def test_the_last_page_is_read_from_the_end_and_is_complete(alice, alice_client) -> None:
    add_rows(alice, 130)
    expected = [str(pk) for pk in _ordered_ids(alice, "-date")]

    last = alice_client.get("/?page=3")

    assert listed_ids(last) == expected[100:]
    assert "Page 3 of 3" in last.content.decode()


def test_a_search_matching_more_than_the_cap_says_so(alice, alice_client, monkeypatch) -> None:
    monkeypatch.setattr("sharing.views.files.SEARCH_COUNT_CAP", 60)
    add_rows(alice, 130)

    page = alice_client.get("/?q=file").content.decode()

    assert "More than 60 files match" in page
    assert "Page 1 of 2" in page


def test_a_search_of_shared_files_matching_more_than_its_cap_says_so(
    alice, bob, bob_client, monkeypatch
) -> None:
    monkeypatch.setattr("sharing.views.files.SHARED_SEARCH_COUNT_CAP", 60)
    Share.objects.bulk_create(Share(file=f, colleague=bob) for f in add_rows(alice, 130))

    searched = bob_client.get("/?q=file").content.decode()
    plain = bob_client.get("/").content.decode()

    assert "More than 60 files shared with you match" in searched
    assert "Page 1 of 2" in searched.split('id="shared-title"', 1)[1]
    assert "Page 1 of 3" in plain.split('id="shared-title"', 1)[1]


# ---------------------------------------------------------------- the usage row


def test_uploads_deletions_and_transfers_keep_the_usage_exact(alice, bob) -> None:
    first = make_file(alice, b"a" * 100)
    second = make_file(alice, b"b" * 50)
    services.file_delete(file=first)
    services.file_transfer(file=second, new_owner=bob, actor=Actor(label="admin"))

    alice_usage = StorageUsage.objects.get(user=alice)
    bob_usage = StorageUsage.objects.get(user=bob)

    assert (alice_usage.files, alice_usage.bytes) == (0, 0)
    assert (bob_usage.files, bob_usage.bytes) == (1, 50)


def test_the_page_shows_the_usage_the_services_kept(alice, alice_client) -> None:
    make_file(alice, b"x" * 2048)

    assert re.search(r"Using 2\.0\sKiB", alice_client.get("/").content.decode())


@pytest.mark.django_db(transaction=True)
def test_the_usage_stays_exact_under_parallel_uploads_and_deletions(
    alice, django_db_blocker
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: the race needs PostgreSQL")
    import threading

    from django.db import connections

    doomed = [make_file(alice, b"d" * 10, name=f"old-{i}") for i in range(8)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            if n % 2:
                services.file_delete(file=doomed[n // 2])
            else:
                make_file(alice, b"n" * (n + 1), name=f"new-{n}")
        except BaseException as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    usage = StorageUsage.objects.get(user=alice)
    rows = StoredFile.objects.filter(owner=alice)
    assert not errors
    assert usage.files == rows.count() == 8
    assert usage.bytes == sum(rows.values_list("size", flat=True))


# ---------------------------------------------------------------- the admin's count


def test_the_admin_counts_no_further_than_its_cap(alice, admin_client, monkeypatch) -> None:
    monkeypatch.setattr(CappedCountPaginator, "unfiltered_cap", 40)
    monkeypatch.setattr(CappedCountPaginator, "filtered_cap", 20)
    add_rows(alice, 130)

    listing = admin_client.get("/admin/sharing/storedfile/").content.decode()
    searched = admin_client.get("/admin/sharing/storedfile/?q=file-0").content.decode()
    small = admin_client.get("/admin/sharing/storedfile/?q=file-001").content.decode()

    assert "More than 40 stored files" in listing
    assert "More than 20 stored files" in searched
    assert re.search(r"\b2 stored files\b", small)


def _audit_seqs(page: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'class="field-seq"><a href="[^"]+">(\d+)</a>', page)]


def test_the_audit_search_lists_its_matches_in_order_under_and_over_the_cap(
    admin_client, monkeypatch
) -> None:
    monkeypatch.setattr(CappedCountPaginator, "filtered_cap", 20)
    monkeypatch.setattr(django_admin.site._registry[AuditEntry], "list_per_page", 10)
    for n in range(30):
        audit_record(event="file.download", actor=Actor(label=f"alice-{n % 2}"))
    audit_record(event="share.granted", actor=Actor(label="alice-1"))
    few = list(AuditEntry.objects.filter(actor="alice-1").values_list("seq", flat=True))
    alices = AuditEntry.objects.filter(actor__startswith="alice-")
    newest = list(alices.values_list("seq", flat=True))

    pages = [
        admin_client.get("/admin/audit/auditentry/", {"q": "ALICE-1", "p": n}).content.decode()
        for n in (1, 2)
    ]
    many = admin_client.get("/admin/audit/auditentry/", {"q": "alice-"}).content.decode()
    filtered = admin_client.get(
        "/admin/audit/auditentry/", {"q": "alice-1", "event": "share.granted"}
    ).content.decode()

    assert _audit_seqs(pages[0]) + _audit_seqs(pages[1]) == few  # 16 matches, newest first
    assert re.search(r"\b16 audit entries\b", pages[0])
    assert "More than 20 audit entries" in many
    assert _audit_seqs(many) == newest[:10]
    assert len(_audit_seqs(filtered)) == 1


def test_the_admin_owner_key_and_event_filters_keep_only_what_they_name(
    alice, bob, admin_client
) -> None:
    add_rows(alice, 3, prefix="alices")
    add_rows(bob, 2, prefix="bobs")
    audit_record(event="share.granted", actor=Actor(label="alice"))
    audit_record(event="file.download", actor=Actor(label="bob"))

    files = admin_client.get(f"/admin/sharing/storedfile/?owner={alice.pk}").content.decode()
    other_key = admin_client.get("/admin/sharing/storedfile/?key_id=nope").content.decode()
    entries = admin_client.get("/admin/audit/auditentry/?event=share.granted").content.decode()
    choices = admin_client.get("/admin/sharing/storedfile/").content.decode()

    assert "alices-" in files and "bobs-" not in files
    assert "alices-" not in other_key and "bobs-" not in other_key
    assert 'class="field-actor">alice<' in entries
    assert 'class="field-actor">bob<' not in entries
    assert f"?owner={alice.pk}" in choices and f"?owner={bob.pk}" in choices


def _admin_names(page: str) -> list[str]:
    return re.findall(r'class="field-name"><a href="[^"]+">([^<]+)</a>', page)


def test_the_admin_search_lists_every_owner_or_name_match_once_in_order(
    alice, bob, admin_client, monkeypatch
) -> None:
    admin_of_files = django_admin.site._registry[StoredFile]
    monkeypatch.setattr(admin_of_files, "list_per_page", 20)
    add_rows(bob, 50, prefix="plain")  # bob's: found by their owner
    add_rows(alice, 20, prefix="about-bob")  # alice's, found by their name
    add_rows(alice, 10, prefix="other")  # neither
    # One matching both ways: listed once.
    StoredFile.objects.filter(owner=bob, name="plain-000.txt").update(name="bob-too.txt")
    matches = StoredFile.objects.filter(Q(owner=bob) | Q(name__contains="bob"))
    expected = list(matches.order_by("-created_at", "-id").values_list("name", flat=True))

    pages = [
        admin_client.get("/admin/sharing/storedfile/", {"q": "bob", "p": n}).content.decode()
        for n in (1, 2, 3, 4)
    ]
    by_name = admin_client.get("/admin/sharing/storedfile/", {"q": "bob", "o": "1"})

    assert [name for page in pages[:4] for name in _admin_names(page)] == expected
    assert re.search(r"\b70 stored files\b", pages[0])
    assert sorted(_admin_names(by_name.content.decode())) == sorted(expected)[:20]


def test_the_admin_search_reads_only_the_first_matches_it_shows(alice, bob) -> None:
    add_rows(bob, 40, prefix="plain")
    add_rows(alice, 30, prefix="about-bob")
    every = StoredFile.objects.filter(Q(owner=bob) | Q(name__contains="bob"))
    expected = list(every.order_by("-created_at", "-id").values_list("id", flat=True))

    first = selectors.files_matching(StoredFile.objects.all(), "bob", first=25)
    whole = selectors.files_matching(StoredFile.objects.all(), "bob")

    listed = first.order_by("-created_at", "-id").values_list("id", flat=True)
    assert list(listed[:25]) == expected[:25]
    assert first[:1000].count() >= 25
    assert whole.count() == 70
