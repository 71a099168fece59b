"""The extra scenarios: a lean download client, byte ranges at both ends of the file,
parallel downloads, and a tus upload in the upload page's 8 MiB PATCHes.

The lean client talks http.client directly and reads each response into one reused
1 MiB buffer (one kernel-to-user copy per byte, as a browser or curl does), where
requests' iter_content copies each MiB two or three more times, and checks a whole file
by comparing it with the source file instead of hashing it. On a 2-core machine that
leaves the server the CPU the benchmark client would otherwise take.

Sizes are in bytes, times in seconds (time.perf_counter), speeds in MiB/s.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.common import MIB, mib_s
from bench.procstat import counter_delta, proc_counters, stat_fields


def _read_full(response: http.client.HTTPResponse, view: memoryview) -> int:
    """Fill `view` from the response body (fewer bytes only at its end); the count."""
    filled = 0
    while filled < len(view) and (count := response.readinto(view[filled:])):
        filled += count
    return filled


def lean_get(
    base: str,
    cookies: str,
    path: str,
    range_header: str | None = None,
    expected: Path | None = None,
    offset: int = 0,
) -> dict[str, Any]:
    """GET `path` over a new connection, read into one reused 1 MiB buffer; the clock
    runs from sending the request to the last byte.

    With `expected`, each MiB is compared with the bytes of that file at `offset` onwards
    (`matches`: a memcmp and a page-cache read, ~6x cheaper than SHA-256, whose CPU the
    server would lose on a 2-core machine); without, the body is hashed (`sha256`)."""
    url = urlsplit(base)
    headers = {"Cookie": cookies}
    if range_header is not None:
        headers["Range"] = range_header
    buffer, reference = bytearray(MIB), bytearray(MIB)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    matches = expected is not None
    source = open(expected, "rb", buffering=0) if expected is not None else None  # noqa: SIM115
    received = 0
    client_cpu = time.process_time()
    start = time.perf_counter()
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=120)
    try:
        connection.connect()
        assert connection.sock is not None
        # As urllib3 does: without it, delayed ACKs add ~40 ms to the first response.
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        headers_at = time.perf_counter()
        if source is not None:
            source.seek(offset)
        while count := _read_full(response, view):
            if source is None:
                digest.update(view[:count])
            elif count == MIB:
                matches = matches and source.readinto(reference) == MIB and buffer == reference
            else:
                matches = matches and bytes(view[:count]) == source.read(count)
            received += count
        status, length = response.status, response.getheader("Content-Length")
    finally:
        connection.close()
        if source is not None:
            source.close()
    done = time.perf_counter()
    return {
        "status": status,
        "seconds": done - start,
        "time_to_headers_seconds": headers_at - start,
        "content_length": int(length) if length is not None else None,
        "received_bytes": received,
        "sha256": digest.hexdigest() if expected is None else None,
        "matches": matches,
        "client_cpu_seconds": time.process_time() - client_cpu,
    }


def cookie_header(session: requests.Session) -> str:
    """The session's cookies as one Cookie header (the lean client has no cookie jar)."""
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


def lean_download(
    session: requests.Session, base: str, file_id: str, source: Path, repeat: int = 1
) -> dict[str, Any]:
    """The whole file through the lean client, `repeat` times on new connections: the
    fastest one's figures, with every time in `all_seconds` (a worker's first request
    pays its imports and its database connection). Each is compared with `source` byte
    for byte: AssertionError if one differs or is short, RuntimeError unless it is a 200."""
    runs = []
    for _ in range(repeat):
        figures = lean_get(
            base, cookie_header(session), f"/files/{file_id}/download/", None, source
        )
        if figures["status"] != 200:
            raise RuntimeError(f"lean download failed: HTTP {figures['status']}")
        _check_whole(figures, source)
        runs.append(figures)
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "repeat": repeat, "all_seconds": [r["seconds"] for r in runs]}


def _check_whole(figures: dict[str, Any], source: Path) -> None:
    """AssertionError unless a lean download is the whole of `source`, byte for byte."""
    size = source.stat().st_size
    if not figures["matches"] or figures["received_bytes"] != size:
        raise AssertionError("a lean download differs from the uploaded file")
    if figures["content_length"] != size:
        raise AssertionError(f"Content-Length {figures['content_length']} != {size}")


def _slice_sha256(source: Path, start: int, stop: int) -> str:
    with open(source, "rb") as plain:
        plain.seek(start)
        return hashlib.sha256(plain.read(stop - start)).hexdigest()


def ranged(
    session: requests.Session, base: str, file_id: str, source: Path, repeat: int
) -> dict[str, Any]:
    """`repeat` GETs of the first and of the last MiB of the file (`Range: bytes=a-b`),
    interleaved, after one unmeasured request of each; each answer checked (206, length,
    bytes). Returns the times per request and the ratio end / start of their medians."""
    size = source.stat().st_size
    length = min(MIB, size)
    spans = {"start": (0, length), "end": (size - length, size)}
    expected = {name: _slice_sha256(source, *span) for name, span in spans.items()}
    cookies, path = cookie_header(session), f"/files/{file_id}/download/"
    times: dict[str, list[float]] = {"start": [], "end": []}
    for attempt in range(repeat + 1):
        for name, (first, stop) in spans.items():
            got = lean_get(base, cookies, path, f"bytes={first}-{stop - 1}")
            if got["status"] != 206 or got["received_bytes"] != stop - first:
                raise RuntimeError(f"range {name}: HTTP {got['status']}, {got['received_bytes']} B")
            if got["sha256"] != expected[name]:
                raise AssertionError(f"range {name}: bytes differ from the file")
            if attempt:  # the first round warms the worker and the page cache
                times[name].append(got["seconds"])
    start_ms = statistics.median(times["start"]) * 1000
    end_ms = statistics.median(times["end"]) * 1000
    return {
        "range_bytes": length,
        "repeat": repeat,
        "start_ms": [t * 1000 for t in times["start"]],
        "end_ms": [t * 1000 for t in times["end"]],
        "start_median_ms": start_ms,
        "end_median_ms": end_ms,
        "end_over_start": end_ms / start_ms,
    }


def _parallel_once(
    base: str, cookies: str, path: str, source: Path, count: int, workers: list[int]
) -> dict[str, Any]:
    """One round of `count` lean downloads at once (see parallel_downloads)."""
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def one() -> None:
        try:
            barrier.wait()
            results.append(lean_get(base, cookies, path, None, source))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    before = {pid: proc_counters([pid]) for pid in workers}
    client_cpu = time.process_time()
    threads = [threading.Thread(target=one) for _ in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    client_cpu = time.process_time() - client_cpu
    if errors:
        raise errors[0]
    if any(r["status"] != 200 for r in results):
        raise RuntimeError("a parallel download failed")
    for figures in results:
        _check_whole(figures, source)
    per_worker = {
        str(pid): counter_delta(before[pid], proc_counters([pid]))["cpu_seconds"]
        for pid in workers
        if stat_fields(pid) is not None
    }
    server_cpu = sum(per_worker.values())
    busy = [cpu for cpu in per_worker.values() if cpu > 0.25 * server_cpu / count]
    return {
        "seconds": seconds,
        "aggregate_mib_s": mib_s(sum(r["received_bytes"] for r in results), seconds),
        "each_mib_s": [mib_s(r["received_bytes"], r["seconds"]) for r in results],
        "worker_cpu_seconds": per_worker,
        "server_cpu_seconds": server_cpu,
        "client_cpu_seconds": client_cpu,
        # gthread workers race to accept: did every download get a worker of its own?
        "one_worker_each": len(busy) >= min(count, len(workers)),
    }


def parallel_downloads(
    session: requests.Session,
    base: str,
    file_id: str,
    source: Path,
    count: int,
    workers: list[int],
    repeat: int = 3,
) -> dict[str, Any]:
    """`repeat` rounds of `count` lean downloads of the whole file at once, each on its own
    connection and thread, each compared with `source`. Per round: the aggregate speed
    (all the bytes over the time from the first request to the last byte of the
    slowest), each worker's CPU seconds (who served them), the server's and the client's
    CPU seconds. The round with the median aggregate is reported at the top level, every
    round under `rounds`."""
    cookies, path = cookie_header(session), f"/files/{file_id}/download/"
    rounds = [_parallel_once(base, cookies, path, source, count, workers) for _ in range(repeat)]
    median = sorted(rounds, key=lambda r: r["aggregate_mib_s"])[len(rounds) // 2]
    return {"count": count, "repeat": repeat, **median, "rounds": rounds}


# The upload page's chunkSize (static/js/upload.js): 0 is tus-js-client's default,
# Infinity, the whole file in one PATCH (the server acknowledges it in batches as it
# streams in, so a cut costs no more than with small PATCHes).
TUS_CHUNK = 0


def _tus_create(session: requests.Session, base: str, size: int, token: str) -> str:
    """POST /files/uploads/ (tus creation) for `size` bytes; the new upload's path."""
    response = session.post(
        base + "/files/uploads/",
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(size),
            "Upload-Metadata": "filename YmVuY2gtdHVzLmJpbg==",  # bench-tus.bin
            "X-CSRFToken": token,
        },
        timeout=30,
    )
    if response.status_code != 201:
        raise RuntimeError(f"tus creation failed: HTTP {response.status_code} {response.text}")
    return urlsplit(response.headers["Location"]).path


def _tus_patch(
    connection: http.client.HTTPConnection,
    path: str,
    headers: dict[str, str],
    source: Any,
    offset: int,
    length: int,
    view: memoryview,
) -> tuple[float, float, int]:
    """One PATCH of `length` bytes of `source` at `offset`, sent from the reused buffer
    behind `view`: (seconds to send the body, seconds from its last byte to the answer,
    the Upload-Offset answered). RuntimeError unless a 204."""
    connection.putrequest("PATCH", path, skip_accept_encoding=True)
    for name, value in {**headers, "Upload-Offset": str(offset)}.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(length))
    connection.endheaders()
    start, left = time.perf_counter(), length
    source.seek(offset)
    while left:
        count = source.readinto(view[: min(len(view), left)])
        if not count:
            raise RuntimeError("the source file is shorter than its size")
        connection.send(view[:count])
        left -= count
    sent = time.perf_counter()
    response = connection.getresponse()
    response.read()
    answered = time.perf_counter()
    if response.status != 204:
        raise RuntimeError(f"tus PATCH at {offset}: HTTP {response.status}")
    return sent - start, answered - sent, int(response.getheader("Upload-Offset") or -1)


def tus_upload(
    session: requests.Session, base: str, source: Path, chunk: int = TUS_CHUNK
) -> dict[str, Any]:
    """Upload `source` with tus 1.0.0 in PATCHes of `chunk` bytes on one keep-alive
    http.client connection, each body sent from one reused 1 MiB buffer (no hashing).
    The clock runs from the first PATCH's first byte to the completing PATCH's answer,
    which comes after the server's completion: recording the file, and with more than
    one PATCH its verifying read-back of the whole blob (one PATCH from byte 0 is hashed
    as it is sealed). The creation is not timed. Also each PATCH's send time and wait
    for its answer: the completing PATCH's wait minus the others' median is the
    completion (the read-back, if any, and the recording)."""
    token = session.cookies.get("csrftoken")
    if token is None:
        raise RuntimeError("no CSRF cookie after logging in")
    size = source.stat().st_size
    chunk = chunk or size  # 0: the whole file in one PATCH
    path = _tus_create(session, base, size, token)
    headers = {
        "Cookie": cookie_header(session),
        "X-CSRFToken": token,
        "Tus-Resumable": "1.0.0",
        "Content-Type": "application/offset+octet-stream",
    }
    url = urlsplit(base)
    view = memoryview(bytearray(MIB))
    sends: list[float] = []
    waits: list[float] = []
    offset = 0
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=300)
    client_cpu = time.process_time()
    try:
        connection.connect()
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with open(source, "rb", buffering=0) as plain:
            start = time.perf_counter()
            while offset < size:
                length = min(chunk, size - offset)
                send, wait, answered = _tus_patch(
                    connection, path, headers, plain, offset, length, view
                )
                if answered != offset + length:
                    raise RuntimeError(f"tus PATCH at {offset}: Upload-Offset {answered}")
                sends.append(send)
                waits.append(wait)
                offset = answered
            done = time.perf_counter()
    finally:
        connection.close()
    client_cpu = time.process_time() - client_cpu
    other_waits = statistics.median(waits[:-1]) if len(waits) > 1 else 0.0
    return {
        "chunk_bytes": chunk,
        "patches": len(sends),
        "seconds": done - start,
        "mib_s": mib_s(size, done - start),
        "send_seconds": sum(sends),
        "answer_wait_seconds": sum(waits),
        "patch_median_wait_seconds": other_waits,
        "last_patch_wait_seconds": waits[-1],
        # The completing PATCH waits for the completion (a read-back after several
        # PATCHes); the others only for their last segment's seal, fsync and row update.
        "read_back_estimate_seconds": waits[-1] - other_waits,
        "client_cpu_seconds": client_cpu,
        "file_id": path.rstrip("/").rsplit("/", 1)[1],
    }


def check_tus_upload(session: requests.Session, base: str, file_id: str, source: Path) -> None:
    """Download the tus-uploaded file through the lean client and compare it with
    `source` byte for byte: AssertionError if it differs, RuntimeError unless a 200."""
    figures = lean_get(base, cookie_header(session), f"/files/{file_id}/download/", None, source)
    if figures["status"] != 200:
        raise RuntimeError(f"the tus-uploaded file: HTTP {figures['status']}")
    _check_whole(figures, source)
