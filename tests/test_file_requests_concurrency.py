"""File requests under parallel uploads against the real database: max_files and max_mb
hold exactly (the request's row is locked where the files are recorded), refused uploads
leave nothing, and wrong passwords are counted once across every thread and worker (the
database's counters, and Redis's when configured).

Each thread has its own client and database connection, as gunicorn's threads and
workers do. PostgreSQL only, as tests/test_links_concurrency.py.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from audit.selectors import verify_chain
from filerequests.models import FileRequest, ReceivedFile
from sharing.models import ResumableUpload, StoredFile
from tests.helpers import files_on_disk
from tests.helpers_requests import make_request, send_form, tus_create, tus_patch, visitor
from tests.test_links_concurrency import _in_parallel
from tests.test_throttle import redis_is_up, redis_url
from throttle import counters, keys

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="threads cannot share SQLite's test database reliably; "
        "run with DATABASE_URL=postgres://... to exercise real row locks",
    ),
]

KiB = 1024


def test_it_takes_exactly_max_files_from_parallel_senders(alice_client: Client) -> None:
    token, found = make_request(alice_client, max_files="3")
    senders = [visitor(token) for _ in range(10)]

    def send(index: int) -> int:
        response = send_form(senders[index], token, (f"part-{index}.pdf", b"%d" % index * 999))
        return response.status_code

    results = _in_parallel(10, send)

    assert sorted(results) == [302] * 3 + [404] * 7, results
    found.refresh_from_db()
    assert found.received_files == 3
    assert ReceivedFile.objects.filter(request=found).count() == 3
    assert StoredFile.objects.count() == 3 and len(files_on_disk()) == 3
    assert verify_chain().intact


def test_it_takes_exactly_max_mb_from_parallel_tus_uploads(alice_client: Client) -> None:
    token, found = make_request(alice_client, max_mb="1")
    size = 300 * KiB  # three fit in 1 MiB, a fourth does not
    senders = [visitor(token) for _ in range(6)]
    locations = [tus_create(sender, token, size)["Location"] for sender in senders]

    def finish(index: int) -> int:
        return tus_patch(senders[index], locations[index], 0, bytes([index]) * size).status_code

    results = _in_parallel(6, finish)

    assert sorted(results) == [204] * 3 + [404] * 3, results
    found.refresh_from_db()
    assert (found.received_files, found.received_bytes) == (3, 3 * size)
    assert StoredFile.objects.count() == 3 and not ResumableUpload.objects.exists()
    assert len(files_on_disk()) == 3
    assert verify_chain().intact


@pytest.fixture(params=["database", "redis"])
def shared_counters(request: pytest.FixtureRequest, settings):  # type: ignore[no-untyped-def]
    """The counters all workers share: the database's, or Redis's (db 10 here)."""
    if request.param == "redis":
        if not redis_is_up():
            pytest.skip("no Redis for the tests")
        settings.THROTTLE_REDIS_URL = redis_url(10)
    counters._redis.cache_clear()
    yield request.param
    for found in FileRequest.objects.all():
        counters.reset(keys.file_request_password_key(found.pk))
    counters._redis.cache_clear()


def test_wrong_passwords_are_counted_once_across_workers(
    alice_client: Client, settings, shared_counters: str
) -> None:
    settings.LINK_PASSWORD_ATTEMPTS = 3
    token, found = make_request(alice_client, password="right password 7")
    counters.reset(keys.file_request_password_key(found.pk))

    def guess(index: int) -> int:
        client = Client(REMOTE_ADDR=f"198.51.100.{index}")
        return send_form(client, token, password=f"guess {index}").status_code

    results = _in_parallel(10, guess)

    assert sorted(results) == [403] * 3 + [429] * 7, results
    right = send_form(Client(), token, password="right password 7")
    assert right.status_code == 429  # locked for the window, even for the right one


def test_files_sent_together_make_one_email_however_they_finish(alice_client: Client) -> None:
    from django.core import mail

    token, _found = make_request(alice_client)
    sender = visitor(token)
    locations = [tus_create(sender, token, 1000, f"scan-{i}.dcm")["Location"] for i in range(4)]
    browsers = []  # the same browser session, one connection per upload, as a page has
    for _location in locations:
        browser = Client()
        browser.cookies = sender.cookies
        browsers.append(browser)

    def finish(index: int) -> int:
        return tus_patch(browsers[index], locations[index], 0, bytes([index]) * 1000).status_code

    results = _in_parallel(4, finish)

    assert results == [204] * 4, results
    [message] = mail.outbox
    assert "4 file(s)" in message.body
