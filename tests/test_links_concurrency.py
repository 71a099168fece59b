"""Parallel requests against the real database: download limits claimed atomically, shared
throttle counters, and an audit chain that never forks.

Each thread has its own test client and its own database connection, as gunicorn's
threads and workers do. PostgreSQL only: the suite's SQLite database cannot be shared
reliably between threads inside a test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client

from audit.actors import SYSTEM
from audit.models import AuditEntry, AuditHead
from audit.selectors import verify_chain
from sharing import services
from sharing.models import Share, ShareLink
from tests.helpers import MiB, client_for, make_file, make_link, make_share, streamed

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="threads cannot share SQLite's test database reliably; "
        "run with DATABASE_URL=postgres://... to exercise real row locks",
    ),
]

DATA = bytes(range(256)) * (2 * MiB // 256 + 7)
PASSWORD = "correct horse battery staple"


def _in_parallel(count: int, work: Callable[[int], object]) -> list[object]:
    """Run work(0..count-1) on as many threads, all released at once; return the results.

    An exception in a thread is returned as its result, so the test can show it.
    """
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except Exception as exc:  # any failure is the result the test reports
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


def _download_link(token: str, data: dict | None = None) -> Callable[[int], object]:
    def work(index: int) -> tuple[int, bytes]:
        response = Client(REMOTE_ADDR=f"198.51.100.{index}").post(f"/s/{token}/", data or {})
        body = streamed(response) if response.streaming else response.content
        return response.status_code, body

    return work


def _assert_chain_unforked() -> None:
    report = verify_chain()
    assert report.intact, report.reason
    seqs = list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert AuditHead.objects.get().seq == len(seqs)
    macs = AuditEntry.objects.values_list("prev_mac", flat=True)
    assert len(set(macs)) == len(seqs)


@pytest.mark.parametrize(("limit", "requests"), [(3, 10), (3, 3), (1, 8)])
def test_it_delivers_exactly_max_downloads(alice, alice_client, limit, requests) -> None:
    stored = make_file(alice, DATA, name="tender.bin")
    token, link = make_link(alice_client, stored, max_downloads=str(limit))

    results = _in_parallel(requests, _download_link(token))

    assert not [r for r in results if isinstance(r, Exception)], results
    delivered = [body for status, body in results if status == 200]
    refused = [status for status, _ in results if status != 200]
    assert len(delivered) == limit
    assert all(body == DATA for body in delivered)
    assert refused == [404] * (requests - limit)
    link.refresh_from_db()
    assert link.download_count == limit
    assert AuditEntry.objects.filter(event="file.download", link_id=link.pk).count() == limit
    assert AuditEntry.objects.filter(event="link.used_up", link_id=link.pk).count() == 1
    _assert_chain_unforked()


def test_ranged_and_parallel_requests_deliver_no_more_than_max_downloads(
    alice, alice_client
) -> None:
    stored = make_file(alice, DATA, name="tender.bin")
    token, link = make_link(alice_client, stored, max_downloads="2")
    clients = [Client(REMOTE_ADDR=f"198.51.100.{n}") for n in range(8)]
    half = len(DATA) // 2

    def claim(index: int) -> tuple[int, bytes]:
        # Every client asks for the first half only, as a download manager might.
        response = clients[index].post(f"/s/{token}/", HTTP_RANGE=f"bytes=0-{half - 1}")
        body = streamed(response) if response.streaming else response.content
        return response.status_code, body

    claims = _in_parallel(8, claim)

    assert not [r for r in claims if isinstance(r, Exception)], claims
    winners = [i for i, (status, _) in enumerate(claims) if status == 206]
    assert len(winners) == 2
    assert all(claims[i][1] == DATA[:half] for i in winners)
    assert sorted(status for status, _ in claims) == [206, 206] + [404] * 6
    losers = [i for i in range(8) if i not in winners]

    def rest(index: int) -> tuple[int, bytes]:
        # Winners resume (each twice, in parallel); losers try a range too.
        who = clients[winners[index % 2]] if index < 4 else clients[losers[index - 4]]
        response = who.get(f"/s/{token}/", HTTP_RANGE=f"bytes={half}-")
        body = streamed(response) if response.streaming else response.content
        return response.status_code, body

    resumed = _in_parallel(8, rest)

    assert not [r for r in resumed if isinstance(r, Exception)], resumed
    # Each winner completes its copy. The second half sent twice more to both winners
    # would be more than the link's pool of size - 1 bytes: exactly one of the two
    # extra resumes fits (README "Each claim counts its bytes").
    for winner in (0, 1):
        mine = [resumed[index] for index in (winner, winner + 2)]
        assert (206, DATA[half:]) in mine, mine
    assert sorted(status for status, _ in resumed[:4]) == [206, 206, 206, 404]
    assert all(body == DATA[half:] for status, body in resumed[:4] if status == 206)
    assert [status for status, _ in resumed[4:]] == [404] * 4
    link.refresh_from_db()
    assert link.download_count == 2
    assert Client().post(f"/s/{token}/").status_code == 404
    _assert_chain_unforked()


def test_it_keeps_one_chain_under_parallel_owner_downloads(alice) -> None:
    stored = make_file(alice, DATA, name="board pack.pdf")
    clients = [client_for(alice, REMOTE_ADDR=f"203.0.113.{n}") for n in range(8)]

    def work(index: int) -> tuple[int, bytes]:
        response = clients[index].get(f"/files/{stored.id}/download/")
        return response.status_code, streamed(response)

    results = _in_parallel(8, work)

    assert results == [(200, DATA)] * 8
    downloads = AuditEntry.objects.filter(event="file.download", file_id=stored.id)
    assert sorted(downloads.values_list("ip", flat=True)) == sorted(
        f"203.0.113.{n}" for n in range(8)
    )
    _assert_chain_unforked()


def test_it_tries_no_more_parallel_passwords_than_the_limit(alice, alice_client) -> None:
    # A burst of guesses arriving together must not all pass the throttle before the
    # first of them is counted: that would multiply the limit by the burst size.
    stored = make_file(alice, DATA, name="tender.bin")
    token, link = make_link(alice_client, stored, password=PASSWORD)
    limit = settings.LINK_PASSWORD_ATTEMPTS

    results = _in_parallel(limit * 4, _download_link(token, {"password": "guess"}))

    statuses = [status for status, _ in results]
    tried = AuditEntry.objects.filter(event="link.password_denied", link_id=link.pk)
    assert tried.count() == limit
    assert statuses.count(403) == limit - 1
    assert statuses.count(429) == limit * 4 - (limit - 1)
    status, _ = _download_link(token, {"password": PASSWORD})(0)
    assert status == 429
    link.refresh_from_db()
    assert link.download_count == 0
    _assert_chain_unforked()


def test_it_lets_parallel_right_passwords_through(alice, alice_client) -> None:
    # Each attempt is counted before its check and given back when the password was right,
    # so a crowd of legitimate downloads never throttles the link.
    stored = make_file(alice, DATA, name="tender.bin")
    token, link = make_link(alice_client, stored, password=PASSWORD)
    count = settings.LINK_PASSWORD_ATTEMPTS

    results = _in_parallel(count, _download_link(token, {"password": PASSWORD}))

    assert results == [(200, DATA)] * count
    link.refresh_from_db()
    assert link.download_count == count
    # Nothing was counted against the link: a guesser still has every attempt.
    guesses = [_download_link(token, {"password": f"guess {n}"})(n)[0] for n in range(count)]
    assert guesses == [403] * (count - 1) + [429]


def test_it_never_lets_a_parallel_guess_through_after_the_limit(alice, alice_client) -> None:
    # The right password arrives together with a burst of wrong ones: whatever the
    # interleaving, nothing is delivered once the limit was reached before it.
    stored = make_file(alice, DATA, name="tender.bin")
    token, link = make_link(alice_client, stored, password=PASSWORD)
    for _ in range(settings.LINK_PASSWORD_ATTEMPTS):
        Client().post(f"/s/{token}/", {"password": "guess"})

    results = _in_parallel(6, _download_link(token, {"password": PASSWORD}))

    assert [status for status, _ in results] == [429] * 6
    link.refresh_from_db()
    assert link.download_count == 0


# ---------------------------------------------------------------------------- lock order
#
# Every service takes the audit chain's head last. These tests line two requests up in
# the order that deadlocked when one service took the head first: the test holds the
# head, starts one request, waits until it queues for a lock, starts the other, waits
# again, and lets go.


def _waiting_for_locks() -> int:
    with connection.cursor() as cursor:
        # Within a transaction PostgreSQL keeps showing its first snapshot of the view.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def _until_waiting(count: int) -> None:
    deadline = time.monotonic() + 20
    while _waiting_for_locks() < count:
        assert time.monotonic() < deadline, "the request never queued for the lock"
        time.sleep(0.01)


def _queued_behind_the_head(
    first: Callable[[], object], second: Callable[[], object]
) -> list[object]:
    results: list[object] = [None, None]

    def run(index: int, work: Callable[[], object]) -> None:
        try:
            results[index] = work()
        except Exception as exc:  # any failure is the result the test reports
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate((first, second))]
    with transaction.atomic():
        AuditHead.objects.select_for_update().get(pk=1)
        threads[0].start()
        _until_waiting(1)
        threads[1].start()
        _until_waiting(2)
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_it_deletes_a_file_while_its_link_is_claimed(alice, alice_client) -> None:
    stored = make_file(alice, DATA, name="tender.bin")
    token, _ = make_link(alice_client, stored)
    owner = client_for(alice, raise_request_exception=False)

    def delete() -> int:
        return owner.post(f"/files/{stored.id}/delete/", {"confirm": "on"}).status_code

    def fetch() -> int:
        response = Client(raise_request_exception=False).post(f"/s/{token}/")
        if response.streaming:
            streamed(response)
        return response.status_code

    deleted, fetched = _queued_behind_the_head(delete, fetch)

    assert deleted == 302
    assert fetched == 404
    assert not ShareLink.objects.exists()
    _assert_chain_unforked()


def test_it_revokes_a_share_while_its_owner_is_deactivated(alice, bob, alice_client) -> None:
    stored = make_file(alice, DATA, name="tender.bin")
    share = make_share(alice_client, stored, "bob")
    owner = client_for(alice, raise_request_exception=False)

    def revoke() -> int:
        return owner.post(f"/files/{stored.id}/shares/{share.pk}/revoke/").status_code

    def deactivate() -> bool:
        services.user_deactivate(user=alice, actor=SYSTEM)
        return True

    revoked, deactivated = _queued_behind_the_head(revoke, deactivate)

    assert revoked == 302
    assert deactivated is True
    assert not Share.objects.exists()
    assert AuditEntry.objects.filter(event="share.revoked").count() == 1
    assert AuditEntry.objects.filter(event="user.deactivated").count() == 1
    _assert_chain_unforked()
