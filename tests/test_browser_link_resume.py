"""A share-link download broken mid-way, resumed by Chromium itself, end to end.

Debian's Chromium (Playwright, as tests/test_browser.py) downloads a 12 MiB file through a
share link with max_downloads=1, through a loopback proxy (a thread here) that closes the
connection of the first /download/ response after 5 MiB: a clean close (FIN) before
Content-Length. Chromium's network stack fails that request with ERR_CONTENT_LENGTH_MISMATCH
(seen in its net log), which its download system turns into the interrupt reason
SERVER_CONTENT_LENGTH_MISMATCH; with a strong validator (the ETag) that reason resumes
automatically, at once, with `Range: bytes=<received>-` and `If-Range: <ETag>` on the GET
download URL, at most 5 times in a row; then the download stops as "Failed - File
incomplete" and chrome://downloads offers Resume (in the item's menu). Playwright reports
an interrupted download as "canceled", even one the user can still resume.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth.models import User

from audit.actors import SYSTEM
from audit.events import Event
from audit.models import AuditEntry
from sharing import services
from sharing.models import ShareLink, StoredFile
from tests.helpers import BROWSER_TESTS, MiB, Watch, make_file

pytestmark = BROWSER_TESTS

SIZE = 12 * MiB
CUT = 5 * MiB


@dataclass
class Exchange:
    """One request through the proxy and the head of its response."""

    request: dict[str, str]  # "line" (the request line) and the headers, lower-case
    response: dict[str, str] = field(default_factory=dict)  # "line" and the headers
    body_bytes: int = 0  # of the response, passed on to the browser
    cut: bool = False

    @property
    def path(self) -> str:
        return self.request["line"].split(" ")[1]

    @property
    def status(self) -> int:
        return int(self.response["line"].split(" ")[1])


def _head(raw: bytes) -> dict[str, str]:
    lines = raw.decode("latin-1").split("\r\n")
    head = {"line": lines[0]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        head[name.strip().lower()] = value.strip()
    return head


class CuttingProxy:
    """A loopback HTTP/1.1 proxy that passes everything through, except that it closes
    the connection (FIN both ways) of each of the first ``cuts`` responses to a
    /download/ request after ``cut_after`` bytes of its body. Logs the head of every
    request and response it carries (``exchanges``)."""

    def __init__(self, target_port: int, *, cut_after: int, cuts: int = 1) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def to(self, path: str) -> list[Exchange]:
        with self._lock:
            return [exchange for exchange in self.exchanges if exchange.path == path]

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket()
            # A small window, as a slow link's: what the server hands to its socket past
            # the cut (lost in transit, counted against the claim) stays small.
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            server.connect(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, server]
            waiting: list[Exchange] = []  # requests sent on, their responses not started
            for pump in (self._up, self._down):
                threading.Thread(target=pump, args=(client, server, waiting), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, waiting: list[Exchange]) -> None:
        """Browser to server, logging each request's head (its body is skipped)."""
        buffer, skip = b"", 0
        with suppress(OSError):
            while data := client.recv(65536):
                buffer += data
                while True:
                    dropped = min(skip, len(buffer))
                    buffer, skip = buffer[dropped:], skip - dropped
                    if skip or b"\r\n\r\n" not in buffer:
                        break
                    raw, _, buffer = buffer.partition(b"\r\n\r\n")
                    exchange = Exchange(request=_head(raw))
                    skip = int(exchange.request.get("content-length", "0"))
                    with self._lock:
                        self.exchanges.append(exchange)
                        waiting.append(exchange)
                server.sendall(data)
            server.shutdown(socket.SHUT_WR)

    def _down(self, client: socket.socket, server: socket.socket, waiting: list[Exchange]) -> None:
        """Server to browser. Chromium never pipelines: a connection's responses come in
        the order of its requests, each after the one before has ended."""
        buffer = b""
        current: Exchange | None = None
        left = 0  # body bytes of ``current`` still to come
        with suppress(OSError):
            while data := server.recv(65536):
                if current is None:
                    buffer += data
                    if b"\r\n\r\n" not in buffer:
                        continue
                    raw, _, data = buffer.partition(b"\r\n\r\n")
                    buffer = b""
                    with self._lock:
                        current = waiting.pop(0)
                        current.response = _head(raw)
                    length = current.response.get("content-length")
                    left = int(length) if length is not None else sys.maxsize
                    client.sendall(raw + b"\r\n\r\n")
                with self._lock:
                    cut = (
                        self.cuts_left > 0
                        and current.path.endswith("/download/")
                        and current.body_bytes + len(data) >= self.cut_after
                    )
                    if cut:
                        self.cuts_left -= 1
                        data = data[: self.cut_after - current.body_bytes]
                        current.cut = True
                current.body_bytes += len(data)
                client.sendall(data)
                if cut:
                    _close(client)  # before Content-Length: ERR_CONTENT_LENGTH_MISMATCH
                    _close(server)  # the server sees its client gone
                    return
                left -= len(data)
                if left <= 0:
                    current = None
            client.shutdown(socket.SHUT_WR)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _port(live_server) -> int:  # type: ignore[no-untyped-def]
    return int(live_server.url.rsplit(":", 1)[1])


def _shared(owner: User, data: bytes, *, max_downloads: int) -> tuple[StoredFile, ShareLink, str]:
    stored = make_file(owner, data, name="scan.bin", content_type="application/octet-stream")
    link, token = services.link_create(
        file=stored,
        actor=SYSTEM,
        created_by=owner,
        expires_in_hours=24,
        max_downloads=max_downloads,
        password="",
    )
    return stored, link, token


def _downloads_audited(link: ShareLink) -> list[str]:
    entries = AuditEntry.objects.filter(link_id=link.pk, event=Event.DOWNLOAD).order_by("seq")
    return list(entries.values_list("detail", flat=True))


def _posts(proxy: CuttingProxy, token: str) -> list[Exchange]:
    return [e for e in proxy.to(f"/s/{token}/") if e.request["line"].startswith("POST ")]


def _count(link: ShareLink) -> int:
    link.refresh_from_db()
    return link.download_count


def test_chromium_resumes_a_broken_link_download_by_itself(browser, live_server, users) -> None:
    data = os.urandom(SIZE)
    _, link, token = _shared(users[0], data, max_downloads=1)
    proxy = CuttingProxy(_port(live_server), cut_after=CUT)
    visitor = Watch(browser, proxy.url)
    try:
        visitor.page.goto(f"{proxy.url}/s/{token}/")
        with visitor.page.expect_download() as info:
            visitor.page.click("button:text-is('Download')")
        download = info.value
        saved = Path(download.path())  # waits for the end; raises if the download failed
        assert download.failure() is None
        assert download.suggested_filename == "scan.bin"
        got = saved.read_bytes()
    finally:
        proxy.close()

    # One POST took the download; the GET it was sent on to broke after 5 MiB, and
    # Chromium asked, with no one's help, for the rest of the same entity: a 206.
    assert [post.status for post in _posts(proxy, token)] == [303]
    first, resumed = proxy.to(f"/s/{token}/download/")
    assert (first.status, first.cut, first.body_bytes) == (200, True, CUT)
    assert "range" not in first.request
    assert resumed.request["range"] == f"bytes={CUT}-"
    assert resumed.request["if-range"] == first.response["etag"]
    assert resumed.status == 206  # a 200 (the whole file again) fails here
    assert resumed.response["content-range"] == f"bytes {CUT}-{SIZE - 1}/{SIZE}"
    assert not resumed.cut

    assert len(got) == SIZE
    assert got == data
    assert _count(link) == 1
    assert _downloads_audited(link) == [
        "via=link count=1",
        f"via=link resume of count=1 range=bytes {CUT}-{SIZE - 1}/{SIZE}",
    ]
    # The landing page refreshes itself after a download starts: the link, used up,
    # is then the one 404, as any used-up link.
    visitor.expect_clean(allowed_errors=("404",))
    visitor.close()


def test_two_quick_clicks_on_download_take_one_download(browser, live_server, users) -> None:
    data = os.urandom(MiB)
    _, link, token = _shared(users[0], data, max_downloads=3)
    proxy = CuttingProxy(_port(live_server), cut_after=0, cuts=0)
    visitor = Watch(browser, proxy.url)
    downloads = []
    visitor.page.on("download", lambda download: downloads.append(download))
    try:
        visitor.page.goto(f"{proxy.url}/s/{token}/")
        # A double click: the second as soon as the first has become a download (a
        # second click before that makes Chromium cancel the first navigation). Raw mouse
        # clicks return at once; a locator's click() waits a variable while.
        box = visitor.page.locator("button:text-is('Download')").bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        with visitor.page.expect_download():
            visitor.page.mouse.click(x, y)
        visitor.page.mouse.click(x, y)
        visitor.page.wait_for_timeout(1500)
        got = [Path(download.path()).read_bytes() for download in downloads]
    finally:
        proxy.close()

    # Both clicks reached the server (Playwright's dblclick() sends one POST only: the
    # browser drops the first submission). The first started the download; the second,
    # less than REPEATED_CLICK_SECONDS later, was answered 204 No Content: no second one.
    assert [post.status for post in _posts(proxy, token)] == [303, 204]
    assert got == [data]
    assert [e.status for e in proxy.to(f"/s/{token}/download/")] == [200]
    assert _count(link) == 1
    assert _downloads_audited(link) == ["via=link count=1"]
    visitor.expect_clean()
    visitor.close()


ITEM = "document.querySelector('downloads-manager').shadowRoot.querySelector('downloads-item')"
COMPLETE = 2  # chrome://downloads' State.kComplete (kInterrupted, its "Failed - ...", is 5)


def test_once_chromium_gives_up_the_user_resumes_from_the_downloads_page(
    browser, live_server, users
) -> None:
    """Broken 6 times in a row (the first response and Chromium's 5 resumes), the download
    stops as "Failed - File incomplete"; Resume on chrome://downloads finishes it.

    A larger file: each break loses what the server had handed to its socket beyond the
    cut (on loopback up to its send buffer, 4 MiB), which the claim counts as sent and
    draws from the link's pool of size - 1 resent bytes; six breaks of a 12 MiB file can
    use it all, and the Resume is then refused (README "Ranged and resumed downloads")."""
    size = 32 * MiB
    data = os.urandom(size)
    _, link, token = _shared(users[0], data, max_downloads=1)
    proxy = CuttingProxy(_port(live_server), cut_after=MiB, cuts=6)
    visitor = Watch(browser, proxy.url)
    try:
        visitor.page.goto(f"{proxy.url}/s/{token}/")
        with visitor.page.expect_download() as info:
            visitor.page.click("button:text-is('Download')")
        assert info.value.failure() == "canceled"  # Playwright's word for "interrupted"
        downloads = visitor.context.new_page()
        downloads.goto("chrome://downloads")
        stopped = downloads.evaluate(f"() => {ITEM}.data.lastReasonText")
        assert stopped == "Failed - File incomplete"
        downloads.locator("downloads-item #more-actions").click()  # the item's ⋮ menu
        downloads.locator("downloads-item #pause-or-resume").click()
        downloads.wait_for_function(f"() => {ITEM}.data.state === {COMPLETE}", timeout=20_000)
        got = Path(downloads.evaluate(f"() => {ITEM}.data.filePath")).read_bytes()
    finally:
        proxy.close()

    broken = proxy.to(f"/s/{token}/download/")
    assert [(e.request.get("range"), e.status, e.cut) for e in broken] == [
        (None, 200, True),
        *((f"bytes={n * MiB}-", 206, True) for n in range(1, 6)),
        (f"bytes={6 * MiB}-", 206, False),  # the user's Resume
    ]
    assert {e.request["if-range"] for e in broken[1:]} == {broken[0].response["etag"]}
    assert got == data
    assert _count(link) == 1
    assert _downloads_audited(link) == [
        "via=link count=1",
        *(
            f"via=link resume of count=1 range=bytes {n * MiB}-{size - 1}/{size}"
            for n in range(1, 7)
        ),
    ]
    visitor.close()
