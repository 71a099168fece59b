"""A share link's max_downloads stays exact under resumes: every response under a claim
counts its bytes against the claim's budget (sharing.models.LinkClaim), so no sequence of
ranged, repeated, broken or parallel requests delivers one complete copy more than the
limit (issue 12, README "Ranged and resumed downloads")."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import User
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from securefiles.lib.streams import StreamCut
from sharing import services
from sharing.models import LinkClaim, ShareLink, StoredFile
from sharing.views.links import METER_WINDOW_BYTES, REPEATED_CLICK_SECONDS
from sharing.views.streaming import SentCounter
from tests.helpers import MiB, client_for, make_file, make_link, streamed

# Closing a response fires request_finished, which closes the database connection as at
# the end of any real request: these run outside the test transaction.
pytestmark = pytest.mark.django_db(transaction=True)

DATA = bytes(range(256)) * (3 * MiB // 256 + 7)  # three segments and a bit
SIZE = len(DATA)


@pytest.fixture
def stored(alice: User) -> StoredFile:
    return make_file(alice, DATA, name="evidence.mp4", content_type="video/mp4")


def _ranged(
    client: Client, token: str, spec: str, method: str = "get", **extra: str
) -> HttpResponseBase:
    return getattr(client, method)(f"/s/{token}/", HTTP_RANGE=f"bytes={spec}", **extra)


def _count(link: ShareLink) -> int:
    link.refresh_from_db()
    return link.download_count


class Deliveries:
    """Every byte range a test got back, to count complete copies: a complete copy needs
    every position of the file, so the copies delivered are the least number of times
    any one position was delivered."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.spans: list[tuple[int, int]] = []  # [start, stop)

    def add(self, response: HttpResponseBase, body: bytes) -> None:
        if response.status_code == 200:
            assert body == DATA
            self.spans.append((0, len(body)))
        elif response.status_code == 206:
            first = int(response["Content-Range"].split(" ")[1].split("-")[0])
            assert body == DATA[first : first + len(body)]
            self.spans.append((first, first + len(body)))

    @property
    def total(self) -> int:
        return sum(stop - start for start, stop in self.spans)

    @property
    def complete_copies(self) -> int:
        steps = [0] * (self.size + 1)
        for start, stop in self.spans:
            steps[start] += 1
            steps[stop] -= 1
        least, running = None, 0
        for position in range(self.size):
            running += steps[position]
            least = running if least is None else min(least, running)
        return least or 0


def test_a_claims_budget_is_one_copy_and_less_than_one_more(settings) -> None:
    settings.LINK_RESUME_SLACK_MB = 64
    for size in (1, 2, 10, 4096, SIZE):
        assert services.link_claim_budget(size=size) == 2 * size - 1
    assert services.link_claim_budget(size=0) == 0
    assert services.link_claim_budget(size=100 * MiB) == 164 * MiB
    settings.LINK_RESUME_SLACK_MB = 1
    assert services.link_claim_budget(size=10 * MiB) == 11 * MiB
    settings.LINK_RESUME_SLACK_MB = 0
    assert services.link_claim_budget(size=10 * MiB) == 10 * MiB


def _claim_whole(token: str) -> tuple[Client, Deliveries, HttpResponseBase]:
    """A visitor's session that claimed and received the whole file, what it got, and
    the claiming response."""
    visitor = Client()
    got = Deliveries(SIZE)
    claim = visitor.post(f"/s/{token}/")
    got.add(claim, streamed(claim))
    claim.close()
    return visitor, got, claim


def test_bytes_0_again_and_again_gives_no_second_copy(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    visitor, got, _ = _claim_whole(token)

    for _ in range(5):
        assert _ranged(visitor, token, "0-").status_code == 404
        assert _ranged(visitor, token, "0-", method="post").status_code == 404

    assert got.complete_copies == 1
    assert _count(link) == 1
    assert LinkClaim.objects.get(link=link).sent == SIZE


def test_a_resume_may_resend_what_was_lost_but_never_a_copy(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    visitor, got, claim = _claim_whole(token)
    # Everything but the first byte fits in the slack (size - 1 for one download) ...
    rest = _ranged(visitor, token, "1-", HTTP_IF_RANGE=claim["ETag"])
    assert rest.status_code == 206
    got.add(rest, streamed(rest))
    rest.close()
    # ... and then nothing more, not even one byte: the grant has ended.
    assert _ranged(visitor, token, "0-0").status_code == 404
    assert _ranged(visitor, token, "-1").status_code == 404

    assert got.total == 2 * SIZE - 1
    assert got.complete_copies == 1
    assert _count(link) == 1


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_no_mix_of_ranges_from_every_claim_adds_a_copy(alice, stored, limit) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads=str(limit))
    got = Deliveries(SIZE)
    # What a recipient might try: small and large windows, suffixes, open ranges, from
    # every position, by GET and by POST, each claim in a session of its own.
    tries = [
        "0-",
        f"{SIZE // 2}-",
        "-1000",
        f"{MiB - 5}-{MiB + 5}",
        f"{SIZE - 1}-",
        "0-0",
        f"{SIZE // 3}-{2 * SIZE // 3}",
        "1-",
        "0-",
    ]
    for _ in range(limit + 1):
        visitor = Client()
        claim = visitor.post(f"/s/{token}/")
        if claim.status_code == 404:
            continue
        got.add(claim, streamed(claim))
        claim.close()
        for index, spec in enumerate(tries):
            response = _ranged(visitor, token, spec, method="post" if index % 2 else "get")
            if response.streaming:  # not the landing page of a spent grant
                got.add(response, streamed(response))
            response.close()

    # A POST under a spent grant takes a new claim (curl -C -), which may be spent on a
    # small range: fewer complete copies than claims, never more.
    assert _count(link) == limit
    assert 1 <= got.complete_copies <= limit
    assert got.total < (limit + 1) * SIZE


def test_a_response_closed_before_its_first_byte_costs_nothing(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    visitor = Client()

    response = visitor.post(f"/s/{token}/")
    assert response.status_code == 200
    response.close()  # the client left before the body: nothing was handed on
    assert LinkClaim.objects.get(link=link).sent == 0

    whole = _ranged(visitor, token, "0-")
    assert whole.status_code == 206
    assert streamed(whole) == DATA
    whole.close()
    assert _count(link) == 1


def test_a_broken_transfer_counts_what_was_handed_on(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    visitor = Client()

    response = visitor.post(f"/s/{token}/")
    chunks = iter(response.streaming_content)
    first, second = next(chunks), next(chunks)
    response.close()  # the client hung up after two chunks

    assert LinkClaim.objects.get(link=link).sent == len(first) + len(second)
    rest = _ranged(visitor, token, f"{len(first)}-")
    assert first + streamed(rest) == DATA
    rest.close()
    assert LinkClaim.objects.get(link=link).sent == SIZE + len(second)


def test_breaks_that_lose_bytes_in_transit_resume_under_a_limit_of_5(alice, stored) -> None:
    # Review finding: each claim's slack was below size / 5, so one break that lost a
    # segment in transit made the resume take a second download. The slack is a pool
    # of size - 1 now, shared by the link's downloads.
    token, link = make_link(client_for(alice), stored, max_downloads="5")
    visitor = Client()
    received = b""

    for method in ("post", "post", "get"):
        extra = {"HTTP_RANGE": f"bytes={len(received)}-"} if received else {}
        response = getattr(visitor, method)(f"/s/{token}/", **extra)
        assert response.status_code == (206 if received else 200)
        chunks = iter(response.streaming_content)
        received += next(chunks)
        next(chunks)  # handed to the server, lost with the connection
        response.close()
    rest = _ranged(visitor, token, f"{len(received)}-")

    assert rest.status_code == 206
    assert received + streamed(rest) == DATA
    rest.close()
    assert _count(link) == 1


def test_one_recipient_cannot_take_anothers_resume(alice, stored) -> None:
    # Review finding: with one pool for all, a recipient who fetched the file again
    # left another's broken download nothing to resume with. Each claim now has slack of
    # its own, (size - 1) // (2 x max_downloads), and only beyond it draws on the pool.
    token, link = make_link(client_for(alice), stored, max_downloads="3")
    own = services.link_claim_own_slack(size=SIZE, max_downloads=3)
    pool = services.link_pool_bytes(size=SIZE, max_downloads=3)
    assert 3 * own + pool == SIZE - 1
    greedy, got, _ = _claim_whole(token)
    again = _ranged(greedy, token, f"{SIZE - own - pool}-")  # its own slack and the pool
    got.add(again, streamed(again))
    again.close()
    assert not _ranged(greedy, token, "-1").streaming  # the landing page: nothing left
    link.refresh_from_db()
    assert link.resent == pool

    other = Client()
    broken = other.post(f"/s/{token}/")
    piece = next(iter(broken.streaming_content))
    broken.close()
    resume = _ranged(other, token, "0-")  # the piece again: within its own slack
    assert resume.status_code == 206
    assert streamed(resume) == DATA
    resume.close()
    assert len(piece) <= own
    assert not _ranged(other, token, "0-").streaming
    assert got.complete_copies == 1
    assert _count(link) == 2


def test_a_spent_grant_needs_a_new_claim(alice, stored, settings) -> None:
    settings.LINK_RESUME_SLACK_MB = 0
    token, link = make_link(client_for(alice), stored, max_downloads="2")
    visitor = Client()

    first = visitor.post(f"/s/{token}/")
    assert streamed(first) == DATA
    first.close()
    assert _ranged(visitor, token, "-10").status_code == 200  # landing page: no grant
    # curl -C - repeats its POST: with downloads left, that is a new claim.
    again = _ranged(visitor, token, "-10", method="post")
    assert again.status_code == 206
    assert streamed(again) == DATA[-10:]
    again.close()
    assert _count(link) == 2
    assert list(LinkClaim.objects.filter(link=link).values_list("number", "sent")) == [
        (1, SIZE),
        (2, 10),
    ]


def test_links_without_a_limit_resume_without_counting(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored)
    visitor = Client()

    first = visitor.post(f"/s/{token}/")
    streamed(first)
    first.close()
    for _ in range(3):
        again = _ranged(visitor, token, "0-")
        assert again.status_code == 206
        assert streamed(again) == DATA
        again.close()

    assert _count(link) == 1
    assert not LinkClaim.objects.filter(link=link).exists()


def test_a_grant_without_a_counted_claim_resumes_nothing(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    visitor = Client()
    first = visitor.post(f"/s/{token}/")
    streamed(first)
    first.close()

    # A grant as sessions held it before claims counted bytes: no claim id.
    session = visitor.session
    grant = session["link_grants"][str(link.pk)]
    session["link_grants"] = {str(link.pk): {"claim": grant["claim"], "until": grant["until"]}}
    session.save()

    assert _ranged(visitor, token, "1-").status_code == 404


def test_resumed_responses_ask_proxies_not_to_read_ahead(alice, stored) -> None:
    token, _ = make_link(client_for(alice), stored, max_downloads="1")
    visitor = Client()
    first = visitor.post(f"/s/{token}/", HTTP_RANGE="bytes=0-9")
    rest = _ranged(visitor, token, "10-")

    assert first["X-Accel-Buffering"] == rest["X-Accel-Buffering"] == "no"
    assert streamed(first) + streamed(rest) == DATA


def test_a_file_deleted_meanwhile_ends_the_grant(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    visitor = Client()
    first = visitor.post(f"/s/{token}/")
    first.close()
    client_for(alice).post(f"/files/{stored.id}/delete/")

    assert _ranged(visitor, token, "0-").status_code == 404
    assert not LinkClaim.objects.exists()


# ---------------------------------------------------------------------------- live server


def _session_after_claim(url: str) -> requests.Session:
    session = requests.Session()
    claim = session.post(url, headers={"Range": "bytes=0-0"}, timeout=30)
    assert claim.status_code == 206
    assert claim.content == DATA[:1]
    return session


def test_parallel_resumes_in_one_session_send_one_copy(alice, stored, live_server) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    url = f"{live_server.url}/s/{token}/"
    session = _session_after_claim(url)
    cookies = session.cookies.get_dict()
    start = threading.Barrier(8)
    answers: list[tuple[int, bytes]] = []

    def fetch() -> None:
        start.wait()
        response = requests.get(url, headers={"Range": "bytes=0-"}, cookies=cookies, timeout=60)
        answers.append((response.status_code, response.content))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # 1 byte was counted by the claim; the budget (2 x size - 1) leaves room for one
    # whole range more, never two, however the eight requests interleave.
    statuses = sorted(status for status, _ in answers)
    assert statuses == [206] + [404] * 7
    assert [body for status, body in answers if status == 206] == [DATA]
    assert _count(link) == 1


def test_a_connection_broken_mid_download_resumes_to_the_same_bytes(
    alice, stored, live_server
) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    url = f"{live_server.url}/s/{token}/"
    session = requests.Session()

    with session.post(url, stream=True, timeout=30) as broken:
        assert broken.status_code == 200
        received = broken.raw.read(SIZE // 2)
    # The socket is closed with half the file read; the server counted what it sent.
    resumed = session.get(
        url,
        headers={"Range": f"bytes={len(received)}-", "If-Range": broken.headers["ETag"]},
        timeout=30,
    )

    assert resumed.status_code == 206
    assert received + resumed.content == DATA
    assert _count(link) == 1
    assert requests.post(url, timeout=30).status_code == 404


def test_the_admin_shows_what_each_download_sent(alice, stored, admin_client) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="2")
    visitor, _, _ = _claim_whole(token)
    rest = _ranged(visitor, token, "-100")
    streamed(rest)
    rest.close()

    page = admin_client.get(f"/admin/sharing/sharelink/{link.pk}/change/")

    assert page.status_code == 200
    text = page.content.decode()
    budget = services.link_claim_budget(size=SIZE)
    assert f"<p>{SIZE + 100}</p>" in text  # sent: the whole file, then 100 bytes
    assert f"<p>{budget}</p>" in text


# ---------------------------------------------------------------------------- browsers

NAVIGATE = {"HTTP_SEC_FETCH_MODE": "navigate", "HTTP_SEC_FETCH_DEST": "document"}


def test_a_browser_is_sent_on_to_a_get_it_can_resume(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    browser = Client()

    clicked = browser.post(f"/s/{token}/", **NAVIGATE)
    twice = browser.post(f"/s/{token}/", **NAVIGATE)  # a double click takes nothing more
    assert clicked.status_code == twice.status_code == 303
    assert clicked["Location"] == twice["Location"] == f"/s/{token}/download/"
    assert _count(link) == 1
    assert LinkClaim.objects.get(link=link).sent == 0

    download = browser.get(f"/s/{token}/download/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="evidence.mp4"'
    assert download["X-Accel-Buffering"] == "no"
    assert download["Referrer-Policy"] == "no-referrer"
    chunks = iter(download.streaming_content)
    received = next(chunks)
    download.close()  # the network dropped

    # Browsers resume a GET download with Range and If-Range (never a POST one).
    resumed = browser.get(
        f"/s/{token}/download/",
        HTTP_RANGE=f"bytes={len(received)}-",
        HTTP_IF_RANGE=download["ETag"],
    )
    assert resumed.status_code == 206
    assert received + streamed(resumed) == DATA
    resumed.close()
    assert _count(link) == 1


def test_a_resume_refused_while_a_dead_connection_holds_its_bytes_works_later(
    alice, stored, settings
) -> None:
    # A file bigger than the slack (as a 1 GiB file is beyond 64 MiB): the first response
    # counted the whole file before its first byte. The network drops without the server
    # noticing (it holds that count until its send times out); the browser resumes at once.
    settings.LINK_RESUME_SLACK_MB = 1
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    browser = Client()
    browser.post(f"/s/{token}/", **NAVIGATE)
    stalled = browser.get(f"/s/{token}/download/")
    received = next(iter(stalled.streaming_content))
    resume = {"HTTP_RANGE": f"bytes={len(received)}-", "HTTP_IF_RANGE": stalled["ETag"]}

    too_soon = browser.get(f"/s/{token}/download/", **resume)
    assert too_soon.status_code == 404  # would exceed the claim's budget for now
    stalled.close()  # the server notices: what it did not send is given back

    resumed = browser.get(f"/s/{token}/download/", **resume)
    assert resumed.status_code == 206
    assert received + streamed(resumed) == DATA
    resumed.close()
    assert _count(link) == 1
    assert LinkClaim.objects.get(link=link).sent == SIZE


def test_a_download_taken_but_not_begun_keeps_its_page(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    browser = Client()
    assert browser.post(f"/s/{token}/", **NAVIGATE).status_code == 303
    # The browser did not follow the 303 (or went back); the recipient reloads the page.
    page = browser.get(f"/s/{token}/")
    assert page.status_code == 200
    assert b'class="big">Download' in page.content
    assert Client().get(f"/s/{token}/").status_code == 404  # used up for everyone else
    assert browser.post(f"/s/{token}/", **NAVIGATE)["Location"] == f"/s/{token}/download/"
    whole = browser.get(f"/s/{token}/download/")
    assert streamed(whole) == DATA
    whole.close()
    assert browser.get(f"/s/{token}/").status_code == 404  # begun: nothing to offer
    assert _count(link) == 1


def test_a_second_click_while_the_download_runs_takes_nothing(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="3")
    browser = Client()
    browser.post(f"/s/{token}/", **NAVIGATE)
    download = browser.get(f"/s/{token}/download/")
    next(iter(download.streaming_content))  # under way: the claim has sent bytes

    again = browser.post(f"/s/{token}/", **NAVIGATE)  # a double click
    assert again.status_code == 204  # the browser stays on the page
    assert _count(link) == 1
    download.close()

    # Later, a click is another download.
    taken = timezone.now() - timedelta(seconds=REPEATED_CLICK_SECONDS)
    LinkClaim.objects.filter(link=link).update(created_at=taken)
    later = browser.post(f"/s/{token}/", **NAVIGATE)
    assert later.status_code == 303
    assert _count(link) == 2


def test_the_download_url_gives_no_second_copy(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    browser = Client()
    browser.post(f"/s/{token}/", **NAVIGATE)
    whole = browser.get(f"/s/{token}/download/")
    assert streamed(whole) == DATA
    whole.close()

    ranged = browser.get(f"/s/{token}/download/", HTTP_RANGE="bytes=0-")  # ends the grant
    again = browser.get(f"/s/{token}/download/")
    stranger = Client().get(f"/s/{token}/download/")
    assert again.status_code == 303  # the landing page, which says the link is used up
    assert again["Location"] == f"/s/{token}/"
    assert ranged.status_code == 404
    assert stranger.status_code == 303
    assert Client().get(again["Location"]).status_code == 404
    assert Client().post(f"/s/{token}/", **NAVIGATE).status_code == 404
    assert _count(link) == 1


def test_a_browser_gives_the_password_then_downloads(alice, stored) -> None:
    token, link = make_link(
        client_for(alice), stored, max_downloads="2", password="correct horse battery"
    )
    browser = Client()

    wrong = browser.post(f"/s/{token}/", {"password": "nope"}, **NAVIGATE)
    right = browser.post(f"/s/{token}/", {"password": "correct horse battery"}, **NAVIGATE)
    assert wrong.status_code == 403
    assert right.status_code == 303
    download = browser.get(right["Location"])
    assert streamed(download) == DATA
    download.close()
    assert _count(link) == 1
    # Another browser without the password reaches nothing through the download URL.
    assert Client().get(right["Location"]).status_code == 303
    assert _count(link) == 1


def test_scripts_still_get_the_file_in_the_answer(alice, stored) -> None:
    token, link = make_link(client_for(alice), stored, max_downloads="1")

    response = Client().post(f"/s/{token}/")  # curl, wget, a script: no Sec-Fetch-Mode

    assert response.status_code == 200
    assert streamed(response) == DATA
    response.close()
    assert _count(link) == 1


def test_the_landing_page_says_a_broken_download_resumes(alice, stored, settings) -> None:
    settings.LINK_RESUME_MINUTES = 45
    limited, _ = make_link(client_for(alice), stored, max_downloads="1")
    unlimited, _ = make_link(client_for(alice), stored)

    page = Client().get(f"/s/{limited}/").content.decode()

    assert "your browser can resume it within 45 minutes" in page
    assert "resume it within" not in Client().get(f"/s/{unlimited}/").content.decode()


# ---------------------------------------------------------------------------- windows

BIG = os.urandom(20 * MiB + 3)


def test_a_dead_connection_holds_one_window_not_the_whole_file(alice) -> None:
    # Review finding: a response counted its whole length before its first byte, so
    # while a dead connection went unnoticed (up to CLIENT_IDLE_TIMEOUT_SECONDS) a resume
    # did not fit, and curl's resume took another download. Now a response counts
    # METER_WINDOW_BYTES at a time as it sends.
    stored = make_file(alice, BIG, name="scan.tiff")
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    visitor = Client()

    stalled = visitor.post(f"/s/{token}/")
    received = next(iter(stalled.streaming_content))
    assert LinkClaim.objects.get(link=link).sent == METER_WINDOW_BYTES
    # The network died; the server has not noticed yet (the response is still open).
    rest = _ranged(visitor, token, f"{len(received)}-", method="post")
    assert rest.status_code == 206
    assert received + streamed(rest) == BIG
    rest.close()
    stalled.close()

    assert _count(link) == 1
    assert LinkClaim.objects.get(link=link).sent == len(BIG)


def test_a_range_past_the_budget_is_cut_short_and_counted(alice) -> None:
    stored = make_file(alice, BIG, name="scan.tiff")
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    visitor = Client()
    whole = visitor.post(f"/s/{token}/")
    assert streamed(whole) == BIG
    whole.close()

    again = _ranged(visitor, token, "0-")  # its first window fits, the whole does not
    assert again.status_code == 206
    received = b""
    with pytest.raises(StreamCut):
        for piece in again.streaming_content:
            received += piece
    again.close()

    # The WSGI server breaks the connection short of Content-Length: no complete copy.
    assert int(again["Content-Length"]) == len(BIG) > len(received)
    assert received == BIG[: len(received)]
    # Counted: exactly what was handed on, up to one copy and size - 1 more at the most
    # (its own slack and the pool, max_downloads=1), less than a piece short of that.
    assert LinkClaim.objects.get(link=link).sent == len(BIG) + len(received)
    assert len(BIG) - 1 - SentCounter.PIECE_BYTES < len(received) <= len(BIG) - 1


def test_an_empty_file_gives_no_grant_to_fetch_it_again(alice) -> None:
    stored = make_file(alice, b"", name="empty.txt")
    token, link = make_link(client_for(alice), stored, max_downloads="1")
    browser = Client()

    clicked = browser.post(f"/s/{token}/", **NAVIGATE)
    again = browser.get(f"/s/{token}/download/")

    assert clicked.status_code == 200  # nothing to resume: no detour through a GET
    assert streamed(clicked) == b""
    clicked.close()
    assert again.status_code == 303
    assert browser.post(f"/s/{token}/", **NAVIGATE).status_code == 404
    assert _count(link) == 1
