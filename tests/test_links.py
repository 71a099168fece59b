"""Share links for people without an account: creation, landing page, download, limits,
expiry, revocation, passwords and their throttling, and one 404 for every dead link."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from sharing.crypto import HEADER_SIZE
from sharing.models import Share, ShareLink, StoredFile
from sharing.templatetags.sharing_extras import when
from tests.helpers import MiB, blob_path, make_file, make_link, make_share, streamed
from tests.test_throttle import redis_is_up, redis_url
from throttle import counters
from throttle.models import ThrottleCounter

pytestmark = pytest.mark.django_db

DATA = b"merger terms, do not forward\n" * 50
PASSWORD = "correct horse battery staple"
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
DOWNLOAD_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Disposition",
    "X-Content-Type-Options",
    "Cache-Control",
    "Content-Security-Policy",
)


@pytest.fixture
def stored(alice: User) -> StoredFile:
    return make_file(alice, DATA, name="merger terms.pdf", content_type="application/pdf")


def _land(token: str, client: Client | None = None, **extra: object) -> HttpResponseBase:
    return (client or Client()).get(f"/s/{token}/", **extra)


def _fetch(token: str, data: dict | None = None, client: Client | None = None) -> HttpResponseBase:
    return (client or Client()).post(f"/s/{token}/", data or {})


def _count(link: ShareLink) -> int:
    link.refresh_from_db()
    return link.download_count


def _expire(link: ShareLink) -> None:
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


# ---------------------------------------------------------------------------- creating


def test_it_shows_the_new_link_exactly_once(alice_client, stored) -> None:
    response = alice_client.post(f"/files/{stored.id}/links/", {"expires_in_hours": "24"})
    [link] = ShareLink.objects.all()

    page = response.content.decode()
    [token] = re.findall(r"http://testserver/s/([^/\"]+)/", page)
    assert response.status_code == 201
    assert page.count(token) == 1
    assert "no-store" in response["Cache-Control"]
    later = alice_client.get(f"/files/{stored.id}/").content.decode()
    assert token not in later
    assert f"#{link.pk}" in later


def test_it_makes_a_fresh_256_bit_token_each_time(alice_client, stored) -> None:
    first, _ = make_link(alice_client, stored)
    second, _ = make_link(alice_client, stored)

    assert TOKEN_SHAPE.fullmatch(first) and TOKEN_SHAPE.fullmatch(second)
    assert first != second


def test_it_stores_only_the_sha256_of_the_token(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, password=PASSWORD, max_downloads="3")

    assert link.token_digest == hashlib.sha256(token.encode()).hexdigest()
    row = ShareLink.objects.filter(pk=link.pk).values().get()
    assert not any(token in str(value) for value in row.values())
    for entry in AuditEntry.objects.values():
        assert not any(token in str(value) for value in entry.values())
        assert not any(PASSWORD in str(value) for value in entry.values())


@pytest.mark.argon2
def test_it_hashes_the_password_with_argon2(alice_client, stored) -> None:
    _, link = make_link(alice_client, stored, password=PASSWORD)

    assert link.password_hash.startswith("argon2")
    assert PASSWORD not in link.password_hash


def test_it_expires_after_168_hours_by_default(alice_client, stored) -> None:
    before = timezone.now()
    _, link = make_link(alice_client, stored)
    _, blank = make_link(alice_client, stored, expires_in_hours="")

    for made in (link, blank):
        assert before + timedelta(hours=168) <= made.expires_at
        assert made.expires_at <= timezone.now() + timedelta(hours=168)
        assert made.max_downloads is None and made.password_hash == ""


def test_it_takes_the_owners_choices(alice_client, stored) -> None:
    _, link = make_link(alice_client, stored, expires_in_hours="2", max_downloads="5")

    assert timedelta(minutes=119) < link.expires_at - timezone.now() <= timedelta(hours=2)
    assert link.max_downloads == 5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expires_in_hours": str(settings.LINK_MAX_HOURS + 1)}, "at most 720 hours"),
        ({"expires_in_hours": "100000000000000000000000"}, "at most 720 hours"),
        ({"expires_in_hours": "0"}, "greater than or equal to 1"),
        ({"expires_in_hours": "-3"}, "greater than or equal to 1"),
        ({"expires_in_hours": "soon"}, "Enter a whole number"),
        ({"expires_in_hours": "1.5"}, "Enter a whole number"),
        ({"expires_in_hours": "9" * 5000}, ""),
        ({"max_downloads": "0"}, "greater than or equal to 1"),
        ({"max_downloads": "-1"}, "greater than or equal to 1"),
        ({"max_downloads": "many"}, "Enter a whole number"),
        ({"max_downloads": "9" * 40}, "less than or equal to 1000000"),
        ({"max_downloads": "9" * 5000}, ""),
        ({"password": "p" * 129}, "at most 128 characters"),
    ],
)
def test_it_refuses_bad_link_options(alice_client, stored, fields, message) -> None:
    response = alice_client.post(f"/files/{stored.id}/links/", fields)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ShareLink.objects.exists()
    assert not AuditEntry.objects.filter(event="link.created").exists()


def test_it_honours_a_lower_link_max_hours(alice_client, stored, settings) -> None:
    settings.LINK_MAX_HOURS = 24

    response = alice_client.post(f"/files/{stored.id}/links/", {"expires_in_hours": "25"})

    assert response.status_code == 400
    assert "at most 24 hours" in response.content.decode()
    assert not ShareLink.objects.exists()


# ---------------------------------------------------------------------------- landing page


def test_it_shows_a_landing_page(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, max_downloads="3")

    response = _land(token)

    page = response.content.decode()
    assert response.status_code == 200
    assert "merger terms.pdf" in page
    assert "1.4\xa0KiB" in page
    assert when(link.expires_at) in page
    assert 'name="password"' not in page
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    assert DATA[:20] not in response.content


def test_it_asks_for_the_password_on_the_landing_page(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, password=PASSWORD)

    page = _land(token).content.decode()

    assert 'name="password"' in page and 'type="password"' in page
    assert link.password_hash not in page


def test_it_never_counts_a_get_as_a_download(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, max_downloads="1")

    for _ in range(10):
        assert _land(token).status_code == 200
    assert Client().head(f"/s/{token}/").status_code == 200

    assert _count(link) == 0
    assert not AuditEntry.objects.filter(event="file.download").exists()
    assert streamed(_fetch(token)) == DATA


def test_it_escapes_the_file_name_on_the_landing_page(alice, alice_client) -> None:
    stored = make_file(alice, b"x", name="<img src=x onerror=alert(1)>.txt")
    token, _ = make_link(alice_client, stored)

    page = _land(token).content

    assert b"<img src=x" not in page
    assert b"&lt;img src=x onerror=alert(1)&gt;.txt" in page


# ---------------------------------------------------------------------------- downloading


def test_it_downloads_like_the_owner_does(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored)

    owner = alice_client.get(f"/files/{stored.id}/download/")
    visitor = _fetch(token)

    assert visitor.status_code == 200
    assert streamed(visitor) == streamed(owner) == DATA
    for header in DOWNLOAD_HEADERS:
        assert visitor[header] == owner[header], header
    assert visitor["Content-Disposition"] == 'attachment; filename="merger terms.pdf"'
    assert visitor["Content-Length"] == str(len(DATA))
    assert visitor["X-Content-Type-Options"] == "nosniff"
    assert _count(link) == 1


def test_it_does_not_need_a_csrf_token(alice_client, stored) -> None:
    # The landing page sends no Referer, so its form posts with "Origin: null".
    token, _ = make_link(alice_client, stored)

    response = _fetch(token, client=Client(enforce_csrf_checks=True, HTTP_ORIGIN="null"))

    assert streamed(response) == DATA


def test_it_stops_after_max_downloads(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, max_downloads="2")

    assert streamed(_fetch(token)) == DATA
    assert streamed(_fetch(token)) == DATA
    third = _fetch(token)

    assert third.status_code == 404
    assert _land(token).status_code == 404
    assert _count(link) == 2


# Closing a response fires request_finished, which closes the database connection as at
# the end of any real request: these run outside the test transaction.
@pytest.mark.django_db(transaction=True)
def test_it_resumes_a_broken_download_without_using_another(alice, alice_client) -> None:
    data = bytes(range(256)) * (3 * MiB // 256)
    stored = make_file(alice, data, name="big.bin")
    token, link = make_link(alice_client, stored, max_downloads="1")
    visitor = Client()

    response = _fetch(token, client=visitor)
    first = next(iter(response.streaming_content))
    assert 0 < len(first) < len(data)
    response.close()  # what the WSGI server does when the client hangs up
    assert _count(link) == 1
    etag = response["ETag"]

    # The browser resumes with a GET (as browsers do), curl with its POST again.
    rest = visitor.get(f"/s/{token}/", HTTP_RANGE=f"bytes={len(first)}-", HTTP_IF_RANGE=etag)
    assert rest.status_code == 206
    assert rest["Content-Range"] == f"bytes {len(first)}-{len(data) - 1}/{len(data)}"
    assert first + streamed(rest) == data
    tail = visitor.post(f"/s/{token}/", HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206
    assert streamed(tail) == data[-10:]

    assert _count(link) == 1
    # The one download is used: no whole copy for anyone, this browser included.
    assert _fetch(token, client=visitor).status_code == 404
    assert _fetch(token).status_code == 404
    assert visitor.get(f"/s/{token}/").status_code == 404
    assert Client().get(f"/s/{token}/", HTTP_RANGE="bytes=0-").status_code == 404
    details = list(
        AuditEntry.objects.filter(link_id=link.pk, event="file.download")
        .order_by("seq")
        .values_list("detail", flat=True)
    )
    assert details == [
        "via=link count=1",
        f"via=link resume of count=1 range=bytes {len(first)}-{len(data) - 1}/{len(data)}",
        f"via=link resume of count=1 range=bytes {len(data) - 10}-{len(data) - 1}/{len(data)}",
    ]


@pytest.mark.django_db(transaction=True)
def test_it_gives_no_whole_copy_under_a_grant(alice, alice_client) -> None:
    stored = make_file(alice, DATA, name="terms.pdf")
    token, link = make_link(alice_client, stored, max_downloads="1")
    visitor = Client()
    assert streamed(_fetch(token, client=visitor)) == DATA

    # Whole copies need a claim: no Range, bad syntax, a stale If-Range.
    assert _fetch(token, client=visitor).status_code == 404
    bad = visitor.post(f"/s/{token}/", HTTP_RANGE="bytes=oops")
    stale = visitor.post(f"/s/{token}/", HTTP_RANGE="bytes=5-", HTTP_IF_RANGE='"other"')
    assert bad.status_code == stale.status_code == 404
    # A GET never downloads without a Range; unsatisfiable is 416, and takes nothing.
    assert visitor.get(f"/s/{token}/").status_code == 404
    beyond = visitor.get(f"/s/{token}/", HTTP_RANGE=f"bytes={len(DATA)}-")
    assert beyond.status_code == 416
    assert beyond["Content-Range"] == f"bytes */{len(DATA)}"
    assert _count(link) == 1


@pytest.mark.django_db(transaction=True)
def test_it_ends_the_grant_with_its_minutes_or_the_link(alice, alice_client, settings) -> None:
    stored = make_file(alice, DATA, name="terms.pdf")
    token, link = make_link(alice_client, stored, max_downloads="1")
    visitor = Client()
    assert streamed(_fetch(token, client=visitor)) == DATA
    assert visitor.get(f"/s/{token}/", HTTP_RANGE="bytes=1-").status_code == 206

    session = visitor.session
    grants = session["link_grants"]
    grants[str(link.pk)]["until"] = 0  # LINK_RESUME_MINUTES later
    session["link_grants"] = grants
    session.save()
    assert visitor.get(f"/s/{token}/", HTTP_RANGE="bytes=1-").status_code == 404

    other = Client()
    token2, link2 = make_link(alice_client, stored, max_downloads="1")
    assert streamed(_fetch(token2, client=other)) == DATA
    alice_client.post(f"/files/{stored.id}/links/{link2.pk}/revoke/")
    assert other.get(f"/s/{token2}/", HTTP_RANGE="bytes=1-").status_code == 404


def test_a_claiming_post_honours_its_range(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, max_downloads="2")

    first = Client().post(f"/s/{token}/", HTTP_RANGE="bytes=0-9")
    unsatisfiable = Client().post(f"/s/{token}/", HTTP_RANGE="bytes=99999-")

    assert first.status_code == 206
    assert streamed(first) == DATA[:10]
    assert first["Accept-Ranges"] == "bytes"
    assert unsatisfiable.status_code == 416
    assert _count(link) == 1  # a 416 sends nothing and takes nothing


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_count_of_a_complete_transfer(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, max_downloads="1")

    response = _fetch(token)
    assert streamed(response) == DATA
    response.close()  # what the WSGI server does when the client hangs up

    assert _count(link) == 1
    assert _fetch(token).status_code == 404


def test_it_answers_404_after_expiry(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, expires_in_hours="1")
    assert _land(token).status_code == 200

    _expire(link)

    assert _land(token).status_code == 404
    assert _fetch(token).status_code == 404
    assert _count(link) == 0


def test_it_answers_404_once_revoked(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored)
    assert _land(token).status_code == 200

    response = alice_client.post(f"/files/{stored.id}/links/{link.pk}/revoke/")

    assert response.status_code == 302
    assert _land(token).status_code == 404
    assert _fetch(token).status_code == 404
    link.refresh_from_db()
    assert link.revoked_at is not None
    page = alice_client.get(f"/files/{stored.id}/").content.decode()
    assert "revoked" in page
    assert f"/links/{link.pk}/revoke/" not in page


def test_it_revokes_a_link_only_once(alice_client, stored) -> None:
    _, link = make_link(alice_client, stored)
    alice_client.post(f"/files/{stored.id}/links/{link.pk}/revoke/")
    revoked_at = ShareLink.objects.get().revoked_at

    alice_client.post(f"/files/{stored.id}/links/{link.pk}/revoke/")

    assert ShareLink.objects.get().revoked_at == revoked_at
    assert AuditEntry.objects.filter(event="link.revoked").count() == 1


BAD_TOKENS = [
    "A" * 43,  # the right shape, but no such link
    "A" * 42,
    "A" * 44,
    "A" * 41 + ".x",
    "A" * 41 + "%25",
    "A" * 42 + "+",
    "A" * 42 + "=",
    "A" * 42 + "\x00",
    "é" * 43,
    "A" * 10_000,
    "..",
]


def test_it_answers_dead_links_with_one_404_page(alice_client, stored) -> None:
    expired, expired_link = make_link(alice_client, stored)
    revoked, revoked_link = make_link(alice_client, stored)
    used_up, _ = make_link(alice_client, stored, max_downloads="1")
    _expire(expired_link)
    alice_client.post(f"/files/{stored.id}/links/{revoked_link.pk}/revoke/")
    streamed(_fetch(used_up))

    answers = []
    for token in [expired, revoked, used_up, *BAD_TOKENS]:
        for response in (_land(token), _fetch(token), _fetch(token, {"password": PASSWORD})):
            assert response.status_code == 404, token
            assert response["Referrer-Policy"] == "no-referrer"
            answers.append(response.content)
    # No route at all (a slash in the token): Django's own 404 page, the same page.
    answers.append(_land("A" * 21 + "/" + "A" * 21).content)

    assert len(set(answers)) == 1
    assert b"merger terms" not in answers[0]


# ---------------------------------------------------------------------------- passwords


def test_it_downloads_with_the_right_password(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, password=PASSWORD)

    response = _fetch(token, {"password": PASSWORD})

    assert streamed(response) == DATA
    assert _count(link) == 1


def test_it_refuses_a_wrong_password(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, password=PASSWORD, max_downloads="1")

    response = _fetch(token, {"password": PASSWORD + "!"})

    assert response.status_code == 403
    assert "Wrong password." in response.content.decode()
    assert DATA[:20] not in response.content
    assert _count(link) == 0
    assert response["Referrer-Policy"] == "no-referrer"


def test_it_has_no_way_around_the_password(client, alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, password=PASSWORD)

    with_query = client.get(f"/s/{token}/", {"password": PASSWORD})
    no_field = client.post(f"/s/{token}/")
    empty = client.post(f"/s/{token}/", {"password": ""})
    query_on_post = client.post(f"/s/{token}/?password={PASSWORD}")
    too_long = client.post(f"/s/{token}/", {"password": PASSWORD + "x" * 200})
    owner_url = client.get(f"/files/{stored.id}/download/")

    assert with_query.status_code == 200 and DATA[:20] not in with_query.content
    for refused in (no_field, empty, query_on_post, too_long):
        assert refused.status_code == 403
        assert DATA[:20] not in refused.content
    assert owner_url.status_code == 302
    assert owner_url["Location"].startswith("/accounts/login/")
    assert _count(link) == 0


def test_it_throttles_wrong_passwords_per_link(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, password=PASSWORD)
    other, _ = make_link(alice_client, stored, password=PASSWORD)
    limit = settings.LINK_PASSWORD_ATTEMPTS

    statuses = [_fetch(token, {"password": f"guess {n}"}).status_code for n in range(limit)]
    right = _fetch(token, {"password": PASSWORD})

    assert statuses == [403] * (limit - 1) + [429]
    assert right.status_code == 429
    assert right["Retry-After"] == str(settings.LINK_PASSWORD_WINDOW_SECONDS)
    assert DATA[:20] not in right.content
    assert _count(link) == 0
    # Per link: another link on the same file still takes its right password.
    assert streamed(_fetch(other, {"password": PASSWORD})) == DATA


def test_it_lets_the_right_password_in_after_the_window(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, password=PASSWORD)
    for n in range(settings.LINK_PASSWORD_ATTEMPTS):
        _fetch(token, {"password": f"guess {n}"})
    assert _fetch(token, {"password": PASSWORD}).status_code == 429

    window = timedelta(seconds=settings.LINK_PASSWORD_WINDOW_SECONDS + 1)
    ThrottleCounter.objects.update(window_start=timezone.now() - window)

    assert streamed(_fetch(token, {"password": PASSWORD})) == DATA
    assert _count(link) == 1


def test_it_does_not_count_right_passwords_as_attempts(alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, password=PASSWORD)
    limit = settings.LINK_PASSWORD_ATTEMPTS
    for n in range(limit - 1):
        assert _fetch(token, {"password": f"guess {n}"}).status_code == 403

    for _ in range(3):
        assert streamed(_fetch(token, {"password": PASSWORD})) == DATA

    # The limit-th wrong guess is the one refused with 429: the right ones took no attempt.
    assert _fetch(token, {"password": "last guess"}).status_code == 429
    assert _fetch(token, {"password": PASSWORD}).status_code == 429
    assert _count(link) == 3


@pytest.fixture
def redis_counters(settings):  # type: ignore[no-untyped-def]
    """Throttle counters in Redis (database 14 of the tests' Redis), as THROTTLE_REDIS_URL
    sets."""
    if not redis_is_up():
        pytest.skip("no Redis for the tests")
    settings.THROTTLE_REDIS_URL = redis_url(14)
    counters._redis.cache_clear()
    counters._redis().flushdb()
    yield counters._redis()
    counters._redis().flushdb()
    counters._redis.cache_clear()


def test_it_throttles_with_redis_counters_too(redis_counters, alice_client, stored) -> None:
    token, link = make_link(alice_client, stored, password=PASSWORD)
    limit = settings.LINK_PASSWORD_ATTEMPTS
    assert streamed(_fetch(token, {"password": PASSWORD})) == DATA

    statuses = [_fetch(token, {"password": f"guess {n}"}).status_code for n in range(limit)]

    assert statuses == [403] * (limit - 1) + [429]
    refused = _fetch(token, {"password": PASSWORD})
    assert refused.status_code == 429
    window = settings.LINK_PASSWORD_WINDOW_SECONDS
    assert 0 < int(refused["Retry-After"]) <= window
    assert not ThrottleCounter.objects.exists()  # nothing counted in the database
    # The count lives in Redis: with Redis emptied, the right password gets in again.
    redis_counters.flushdb()
    assert streamed(_fetch(token, {"password": PASSWORD})) == DATA
    assert _count(link) == 2


def test_it_counts_failures_from_every_client_together(alice_client, stored) -> None:
    # Each attempt from its own client and address: the count lives in the database.
    token, _ = make_link(alice_client, stored, password=PASSWORD)
    limit = settings.LINK_PASSWORD_ATTEMPTS

    for n in range(limit):
        _fetch(token, {"password": "nope"}, client=Client(REMOTE_ADDR=f"198.51.100.{n}"))

    assert _fetch(token, {"password": PASSWORD}).status_code == 429


# ---------------------------------------------------------------------------- lifecycle


def test_it_lists_links_for_the_owner(alice_client, stored) -> None:
    _, plain = make_link(alice_client, stored)
    _, limited = make_link(alice_client, stored, max_downloads="3", password=PASSWORD)

    page = alice_client.get(f"/files/{stored.id}/").content.decode()

    assert f"#{plain.pk}" in page and f"#{limited.pk}" in page
    assert "0 / 3" in page
    assert f"/files/{stored.id}/links/{plain.pk}/revoke/" in page
    assert limited.password_hash not in page


def test_it_deletes_links_and_shares_with_the_file(alice_client, bob, stored) -> None:
    token, _ = make_link(alice_client, stored)
    make_share(alice_client, stored, "bob")

    alice_client.post(f"/files/{stored.id}/delete/", {"confirm": "on"})

    assert not ShareLink.objects.exists()
    assert not Share.objects.exists()
    assert _land(token).status_code == 404
    assert _fetch(token).status_code == 404


# ---------------------------------------------------------------------------- what a password hides

SECRET_NAME = "HIV test result - J. Doe.pdf"


def _reveals(page: str, link: ShareLink) -> list[str]:
    """What a page shows about the file behind a link (its name, size, sharer, expiry,
    downloads left)."""
    shown = [
        SECRET_NAME,
        "1.4\xa0KiB",
        "alice",
        when(link.expires_at),
        "Downloads left",
        "Shared by",
    ]
    return [text for text in shown if text in page]


@pytest.fixture
def secret(alice: User) -> StoredFile:
    return make_file(alice, DATA, name=SECRET_NAME, content_type="application/pdf")


def test_it_shows_nothing_about_the_file_before_the_password(alice_client, secret) -> None:
    token, link = make_link(alice_client, secret, password=PASSWORD, max_downloads="3")
    visitor = Client()
    limit = settings.LINK_PASSWORD_ATTEMPTS

    landing = _land(token, client=visitor)
    head = visitor.head(f"/s/{token}/")
    wrong = [_fetch(token, {"password": f"guess {n}"}, client=visitor) for n in range(limit)]

    assert landing.status_code == 200
    assert "<title>Protected file · securefiles</title>" in landing.content.decode()
    assert 'name="password"' in landing.content.decode()
    assert [r.status_code for r in wrong] == [403] * (limit - 1) + [429]
    for response in (landing, *wrong):
        assert _reveals(response.content.decode(), link) == [], response.status_code
    assert "Wrong password." in wrong[0].content.decode()
    assert head.status_code == 200 and head.content == b""


def test_it_shows_the_file_once_this_browser_gave_the_password(alice_client, secret) -> None:
    token, link = make_link(alice_client, secret, password=PASSWORD, max_downloads="3")
    visitor = Client()

    wrong = _fetch(token, {"password": "nope"}, client=visitor)
    right = _fetch(token, {"password": PASSWORD}, client=visitor)
    after = _land(token, client=visitor).content.decode()
    again = _fetch(token, client=visitor)  # the page's button, without the password field
    other_browser = _land(token).content.decode()

    assert wrong.status_code == 403
    assert streamed(right) == DATA
    assert SECRET_NAME in after and f"<title>{SECRET_NAME} · securefiles</title>" in after
    assert re.search(r'class="downloads-left">2<', after)
    assert "Wrong password." not in after and 'name="password"' not in after
    assert streamed(again) == DATA
    assert _count(link) == 2
    assert _reveals(other_browser, link) == []


# ---------------------------------------------------------------------------- labels and words


def test_it_keeps_a_label_saying_whom_a_link_is_for(alice_client, admin_client, stored) -> None:
    _, link = make_link(alice_client, stored, label="for Dr Smith, St Mary's")
    _, unlabelled = make_link(alice_client, stored)

    page = alice_client.get(f"/files/{stored.id}/").content.decode()
    admin_list = admin_client.get("/admin/sharing/sharelink/").content.decode()
    created = AuditEntry.objects.get(event="link.created", link_id=link.pk)

    assert link.label == "for Dr Smith, St Mary's" and unlabelled.label == ""
    assert "for Dr Smith, St Mary&#x27;s" in page
    assert "for Dr Smith, St Mary&#x27;s" in admin_list
    assert 'label="for Dr Smith, St Mary\'s"' in created.detail


def test_it_refuses_a_label_over_100_characters(alice_client, stored) -> None:
    response = alice_client.post(
        f"/files/{stored.id}/links/", {"expires_in_hours": "24", "label": "x" * 101}
    )

    assert response.status_code == 400
    assert "at most 100 characters" in response.content.decode()
    assert not ShareLink.objects.exists()


def test_it_shows_the_owner_events_in_words(alice_client, admin_client, stored) -> None:
    token, _ = make_link(alice_client, stored, password=PASSWORD)
    _fetch(token, {"password": "nope"})

    page = alice_client.get(f"/files/{stored.id}/").content.decode()
    activity = page[page.index('id="activity-title"') :]
    admin_list = admin_client.get("/admin/audit/auditentry/").content.decode()

    assert "Wrong share link password" in activity
    assert "Share link created" in activity and "Uploaded" in activity
    assert "link.password_denied" not in activity and "link.created" not in activity
    assert "link.password_denied" in admin_list  # the admin keeps the codes


def test_it_has_words_for_every_event() -> None:
    from audit.events import EVENT_LABELS, Event, event_label

    codes = {value for name, value in vars(Event).items() if name.isupper()}

    assert codes <= set(EVENT_LABELS)
    assert all(event_label(code) != code for code in codes)
    assert event_label("some.future_event") == "some.future_event"


def test_it_gives_back_a_claim_that_sent_nothing(alice, alice_client) -> None:
    stored = make_file(alice, DATA, name="terms.pdf")
    token, link = make_link(alice_client, stored, max_downloads="1")
    path = blob_path(stored)
    blob = bytearray(path.read_bytes())
    blob[HEADER_SIZE + 3] ^= 0x01
    path.write_bytes(bytes(blob))
    visitor = Client()

    failed = _fetch(token, client=visitor)
    resume = visitor.get(f"/s/{token}/", HTTP_RANGE="bytes=1-")

    assert failed.status_code == 502
    assert _count(link) == 0  # a 502 sent nothing: no download taken
    assert resume.status_code == 200  # no grant: the landing page, not the file
    assert resume["Content-Type"].startswith("text/html")
