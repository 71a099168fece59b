"""The portal's Prometheus metrics (prometheus-client), and the helpers that move them.

Every app may import this module; it imports no app. Labels are bounded and never carry a
file name, a user name, a token or a raw path: requests are labelled with the resolved
route name (``sharing:download``), never the URL.

Under gunicorn each worker is its own process: gunicorn.conf.py points
PROMETHEUS_MULTIPROC_DIR at a directory of its own before the workers start, and
prometheus-client then keeps every value in a memory-mapped file there, summed at scrape
time (its "multiprocess mode"). Without it (runserver, the test client) values live in this
process's ``REGISTRY``. The scrape itself is ops.views.metrics.
"""

from __future__ import annotations

import glob
import logging
import os
import struct
import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

# Where the metrics of this process are registered when not in multiprocess mode; a
# registry of our own, so nothing a library registers globally is ever exposed.
REGISTRY = CollectorRegistry(auto_describe=True)

# Transfer durations, seconds: from a 1 MiB file on a LAN to a multi-GiB one over a slow line.
TRANSFER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

HTTP_REQUESTS = Counter(
    "securefiles_http_requests",
    "Requests answered, by route name, method and status code.",
    ["view", "method", "status"],
    registry=REGISTRY,
)
THROTTLE_REFUSALS = Counter(
    "securefiles_throttle_refusals",
    "Requests refused as too many (429: login lockout, link passwords, API rate, ...), by route.",
    ["view"],
    registry=REGISTRY,
)
UPLOAD_BYTES = Counter(
    "securefiles_upload_bytes",
    "Plaintext bytes stored from uploads, by kind (form or tus).",
    ["kind"],
    registry=REGISTRY,
)
UPLOAD_SECONDS = Histogram(
    "securefiles_upload_seconds",
    "Duration of upload requests that stored bytes (a form upload, or one tus PATCH), seconds.",
    ["kind"],
    buckets=TRANSFER_BUCKETS,
    registry=REGISTRY,
)
DOWNLOAD_BYTES = Counter(
    "securefiles_download_bytes",
    "Verified plaintext bytes sent by downloads (owner, colleague, link and API).",
    registry=REGISTRY,
)
DOWNLOAD_SECONDS = Histogram(
    "securefiles_download_seconds",
    "Duration of downloads, from the request to the last byte sent (or the client leaving), "
    "seconds.",
    buckets=TRANSFER_BUCKETS,
    registry=REGISTRY,
)
INTEGRITY_FAILURES = Counter(
    "securefiles_integrity_failures",
    "Downloads stopped because the stored ciphertext failed authentication or was missing.",
    registry=REGISTRY,
)

# The HTTP methods the portal answers; anything else is counted as "other", so a client
# inventing methods cannot grow the label set.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def multiprocess_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR when set (under gunicorn), else ''."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def request_observed(*, view: str, method: str, status: int) -> None:
    """Count one answered request; a 429 is also counted as a throttle refusal.

    ``view`` is the resolved route name ("sharing:download"), or "none" when no route
    matched (a 404, or a middleware answering before URL resolution).
    """
    method = method if method in KNOWN_METHODS else "other"
    HTTP_REQUESTS.labels(view=view, method=method, status=str(status)).inc()
    if status == 429:
        THROTTLE_REFUSALS.labels(view=view).inc()


def upload_observed(*, kind: str, size: int, started: float) -> None:
    """Count ``size`` bytes stored by an upload of ``kind`` ("form" or "tus") that began at
    ``started`` (time.monotonic())."""
    UPLOAD_BYTES.labels(kind=kind).inc(size)
    UPLOAD_SECONDS.labels(kind=kind).observe(time.monotonic() - started)


def integrity_failure_observed() -> None:
    """Count one download stopped by a blob that failed authentication (or was missing)."""
    INTEGRITY_FAILURES.inc()


def download_counted(chunks: Iterator[bytes], started: float) -> Iterator[bytes]:
    """Yield ``chunks``, counting the bytes that were handed on; when the stream ends (the
    last byte, an integrity failure or a client that left), observe its duration since
    ``started`` (time.monotonic())."""
    try:
        for chunk in chunks:
            DOWNLOAD_BYTES.inc(len(chunk))
            yield chunk
    finally:
        DOWNLOAD_SECONDS.observe(time.monotonic() - started)


def exposition() -> bytes:
    """The text exposition format (version 0.0.4) of every counter and histogram above:
    summed over gunicorn's worker processes in multiprocess mode, this process's alone
    otherwise."""
    if not multiprocess_dir():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    _WorkerFilesCollector(registry)
    return generate_latest(registry)


class _WorkerFilesCollector(MultiProcessCollector):
    """prometheus-client's multiprocess collector, minus the value files it cannot read yet.

    A worker makes its file by opening it (0 bytes) and then growing it; a scrape in
    between, or after a worker was killed in between, made the stock collector raise
    (struct.error: a 500 for every scrape until the folder is emptied). Such a file holds
    no value yet, so it is left out and the other workers' sums are answered.
    """

    def collect(self) -> Iterable[Metric]:
        files = glob.glob(os.path.join(self._path, "*.db"))
        return self.merge([f for f in files if _readable(f)], accumulate=True)


def _readable(path: str) -> bool:
    """Whether the value file at ``path`` parses whole (a file gone meanwhile does not)."""
    try:
        for _ in MmapedDict.read_all_values_from_file(path):
            pass
    except (OSError, struct.error, RuntimeError, UnicodeDecodeError) as exc:
        logger.warning("metrics file %s skipped: %s", os.path.basename(path), type(exc).__name__)
        return False
    return True
