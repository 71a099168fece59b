"""Parallel writes on one file against the real database: deletes, link creation and
revocation, shares and uploads racing each other never answer 500.

Every service that writes something hanging off a file locks the file's row first, checks
foreign keys at once rather than at COMMIT, and takes the audit chain's head last; a file
deleted meanwhile answers the same 404 as any missing file. Each thread has its own test
client and its own database connection, as gunicorn's threads and workers do.
PostgreSQL only, like tests/test_links_concurrency.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from audit.models import AuditEntry
from audit.selectors import verify_chain
from sharing.models import Share, ShareLink, StoredFile
from tests.helpers import blob_path, client_for, make_file, make_link, upload

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="threads cannot share SQLite's test database reliably; "
        "run with DATABASE_URL=postgres://... to exercise real row locks",
    ),
]

ROUNDS = 12
DATA = b"quarterly figures " * 4096
LINK_FIELDS = {"expires_in_hours": "24", "max_downloads": "3"}


def _in_parallel(work: list[Callable[[], object]]) -> list[object]:
    """Run each callable on its own thread, all released at once; return the results.

    An exception in a thread is returned as its result, so the test can show it. Each
    thread closes its own database connection before it ends.
    """
    barrier = threading.Barrier(len(work))
    results: list[object] = [None] * len(work)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work[index]()
        except Exception as exc:  # any failure is the result the test reports
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


def _post(client: Client, url: str, data: dict | None = None) -> Callable[[], int]:
    return lambda: client.post(url, data or {}).status_code


def _owner_clients(user: User, count: int) -> list[Client]:
    # raise_request_exception=False: an unhandled exception is the 500 a browser would get.
    return [
        client_for(user, raise_request_exception=False, REMOTE_ADDR=f"203.0.113.{n}")
        for n in range(count)
    ]


def _assert_gone_without_orphans(stored: StoredFile) -> None:
    assert not StoredFile.objects.filter(pk=stored.pk).exists()
    assert not blob_path(stored).exists()
    assert not ShareLink.objects.filter(file_id=stored.pk).exists()
    assert not Share.objects.filter(file_id=stored.pk).exists()
    assert AuditEntry.objects.filter(event="file.delete", file_id=stored.pk).count() == 1


def _assert_chain_intact() -> None:
    report = verify_chain()
    assert report.intact, report.reason


def test_parallel_deletes_links_and_shares_on_one_file_never_fail(alice, bob) -> None:
    # The security finding: two deletes, three link creations and a share fired at once
    # by the owner, round after round. Before the fix: "deadlock detected" and foreign-key
    # IntegrityErrors at COMMIT, both answered 500.
    clients = _owner_clients(alice, 6)
    wrong: list[tuple[int, dict[str, list[int]]]] = []
    for round_ in range(ROUNDS):
        stored = make_file(alice, DATA, name=f"round {round_}.bin")
        base = f"/files/{stored.id}"
        work = [
            _post(clients[0], f"{base}/delete/"),
            _post(clients[1], f"{base}/links/", LINK_FIELDS),
            _post(clients[2], f"{base}/shares/", {"username": "bob"}),
            _post(clients[3], f"{base}/links/", LINK_FIELDS),
            _post(clients[4], f"{base}/delete/"),
            _post(clients[5], f"{base}/links/", LINK_FIELDS),
        ]
        kinds = ["delete", "link", "share", "link", "delete", "link"]

        results = _in_parallel(work)

        assert not [r for r in results if isinstance(r, Exception)], results
        statuses: dict[str, list[int]] = {kind: [] for kind in kinds}
        for kind, status in zip(kinds, results, strict=True):
            statuses[kind].append(status)
        # Exactly one delete wins; the other finds the file gone (before or after waiting).
        if (
            sorted(statuses["delete"]) != [302, 404]
            or not set(statuses["link"]) <= {201, 404}
            or not set(statuses["share"]) <= {302, 404}
        ):
            wrong.append((round_, statuses))
        _assert_gone_without_orphans(stored)

    # All rounds run first, so a failure shows every wrong answer, not just the first.
    assert wrong == [], wrong
    _assert_chain_intact()


def test_parallel_link_revokes_and_deletes_never_fail(alice) -> None:
    clients = _owner_clients(alice, 6)
    owner = client_for(alice)
    for round_ in range(ROUNDS):
        stored = make_file(alice, DATA, name=f"round {round_}.bin")
        links = [make_link(owner, stored, **LINK_FIELDS)[1] for _ in range(3)]
        base = f"/files/{stored.id}"
        work = [
            _post(clients[0], f"{base}/links/{links[0].pk}/revoke/"),
            _post(clients[1], f"{base}/delete/"),
            _post(clients[2], f"{base}/links/{links[1].pk}/revoke/"),
            _post(clients[3], f"{base}/links/", LINK_FIELDS),
            _post(clients[4], f"{base}/links/{links[2].pk}/revoke/"),
            _post(clients[5], f"{base}/delete/"),
        ]

        results = _in_parallel(work)

        assert not [r for r in results if isinstance(r, Exception)], results
        revokes = [results[0], results[2], results[4]]
        assert set(revokes) <= {302, 404}, (round_, results)
        assert sorted([results[1], results[5]]) == [302, 404], (round_, results)
        assert results[3] in {201, 404}, (round_, results)
        # A revocation reported done is a revocation recorded: none "succeeds" on a link
        # the deletion had already removed.
        revoked = AuditEntry.objects.filter(event="link.revoked", file_id=stored.pk)
        assert revoked.count() == revokes.count(302), (round_, results)
        _assert_gone_without_orphans(stored)

    _assert_chain_intact()


def test_parallel_uploads_and_shares_with_the_uploader_never_fail(alice, bob, settings) -> None:
    # With a quota, an upload locks its owner's row; a share with that owner checks its
    # foreign key to the same row. Checked at COMMIT, after the share had taken the audit
    # head, that check waited for the upload, which waited for the head: a deadlock.
    settings.USER_QUOTA_MB = 1024
    uploaders = _owner_clients(bob, 3)
    sharers = _owner_clients(alice, 3)
    for round_ in range(ROUNDS):
        files = [make_file(alice, DATA, name=f"round {round_} {n}.bin") for n in range(3)]
        work: list[Callable[[], object]] = []
        for n in range(3):
            name = f"bob {round_} {n}.txt"
            work.append(lambda n=n, name=name: upload(uploaders[n], (name, DATA)).status_code)
            work.append(_post(sharers[n], f"/files/{files[n].id}/shares/", {"username": "bob"}))

        results = _in_parallel(work)

        assert not [r for r in results if isinstance(r, Exception)], results
        assert results == [302, 302] * 3, (round_, results)

    assert StoredFile.objects.filter(owner=bob).count() == 3 * ROUNDS
    assert Share.objects.filter(colleague=bob).count() == 3 * ROUNDS
    _assert_chain_intact()
