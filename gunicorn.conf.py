"""gunicorn settings for production.

Threaded workers, because a multi-GiB transfer holds a thread for minutes; the timeout is
the worker heartbeat (the gthread worker keeps beating while a thread streams), raised so
a slow client on a big file is not killed. Behind nginx, also set
`proxy_request_buffering off;` and `proxy_max_temp_file_size 0;` or nginx writes plaintext
request bodies to its own temp files.

The heartbeat does not drop anyone: a client that stops sending (or reading) mid-request
is dropped by CLIENT_IDLE_TIMEOUT_SECONDS, a per-recv()/send() socket timeout
(securefiles.client_idle). The application sets it on each request's socket (body and
response); `post_worker_init` below sets it on the listening sockets too, which Linux
copies to every accepted connection, so it also covers a client stalling inside its
request line or headers. gunicorn itself only bounds the wait for a connection's first
byte (5 s in a thread, then `keepalive` seconds in the poller) and the drain of an unread
body (5 s); once a request has begun, its threads read and write with no timeout at all.
"""

import gc
import os
import sys
from typing import Any

from gunicorn.glogging import Logger

from securefiles import metrics_dir
from securefiles.client_idle import is_idle_error, set_idle_timeout
from securefiles.lib.streams import StreamCut
from securefiles.log_filters import redact


class RedactingLogger(Logger):
    """gunicorn's logger, with share-link tokens cut out of access and error log lines."""

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in atoms.items()}

    def error(self, msg, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().error(redact(str(msg)), *args, **kwargs)

    def exception(self, msg, *args, **kwargs):  # type: ignore[no-untyped-def]
        # gunicorn logs a socket timeout with a traceback ("Socket error processing
        # request."); a client dropped for idling is routine, so one line is enough.
        if is_idle_error(sys.exc_info()[1]):
            self.info("Closed a connection idle for too long: %s", sys.exc_info()[1])
            return
        if isinstance(sys.exc_info()[1], StreamCut):
            self.info("Cut a response short on purpose: %s", sys.exc_info()[1])
            return
        super().exception(redact(str(msg)), *args, **kwargs)


def post_worker_init(worker: Any) -> None:
    """Set the client idle timeout (seconds) on the listening sockets.

    Runs in each worker once the application (and so the settings) is loaded. Accepted
    connections inherit the options on Linux, so a client that stalls before its headers
    are complete is dropped too. Raises OSError if a listener refuses the options.
    """
    from django.conf import settings

    for listener in worker.sockets:
        set_idle_timeout(listener, settings.CLIENT_IDLE_TIMEOUT_SECONDS)
    freeze_startup_objects()


def freeze_startup_objects() -> None:
    """Move the objects the worker has made so far (Django, the app: ~160,000) out of the
    garbage collector's reach (gc.freeze). They live as long as the worker; left in the
    oldest generation, every full collection walked them all, and the request that set one
    off waited for it: 100 ms at load 1.4 (bench/page_profile.py, the metadata pages;
    bench/README.md). Garbage is collected first, so none of it is kept for good."""
    gc.collect()
    gc.freeze()


# A worker's requests after which it freezes again what it has made since: the first
# requests load what Django builds lazily (the URL resolver, compiled templates, the
# translation catalogues, the ORM's caches: tens of thousands of objects for the life of
# the worker), and a full collection then walked them all, 20-90 ms for the request that
# set it off (a p95 of 40 requests went from ~45 to 56-68 ms when two of them did).
FREEZE_AFTER_REQUESTS = frozenset({1, 10, 100, 1000})


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """After the worker's requests in FREEZE_AFTER_REQUESTS (its count, ``worker.nr``),
    freeze what it has made since the last freeze (freeze_startup_objects). The response
    is sent by then; the collection delays only that thread's next request, four times
    in the life of a worker."""
    if worker.nr in FREEZE_AFTER_REQUESTS:
        freeze_startup_objects()


# Prometheus metrics: each worker writes its values to memory-mapped files in one directory
# that the master prepares before any worker starts, and the scrape sums them
# (securefiles.lib.metrics). METRICS_DIR names it (emptied of old values at each start);
# unset, a temporary directory of this instance's own, removed at exit.
_metrics_path, _metrics_path_is_temporary = None, False


def on_starting(server: Any) -> None:
    """Prepare the metrics directory and export it to the workers (master, once)."""
    global _metrics_path, _metrics_path_is_temporary
    _metrics_path, _metrics_path_is_temporary = metrics_dir.prepare(
        os.environ.get("METRICS_DIR", "")
    )
    metrics_dir.export(_metrics_path)


def child_exit(server: Any, worker: Any) -> None:
    """Drop the live-gauge files of a worker that exited (prometheus-client's bookkeeping)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the temporary metrics directory (a configured METRICS_DIR is kept)."""
    if _metrics_path is not None and _metrics_path_is_temporary:
        metrics_dir.remove(_metrics_path)


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "3600"))
graceful_timeout = 60
keepalive = 5
# Request lines and headers only; bodies are limited by MAX_UPLOAD_MB in the upload view.
limit_request_line = 8190
accesslog = "-"
# gunicorn 27's control socket is one path per user ($XDG_RUNTIME_DIR or ~/.gunicorn), so a
# second instance on the host took over the first's; nothing here uses it (restart with
# signals to the master: TERM stops gracefully, HUP reloads).
control_socket_disable = True
logger_class = RedactingLogger
# gunicorn takes SCRIPT_NAME and PATH_INFO from request headers when the peer is a trusted
# forwarder (FORWARDED_ALLOW_IPS, 127.0.0.1 by default): a client behind a local proxy that
# passes headers with underscores (most but nginx do) could then strip a prefix of its
# choice from the path, so /x/admin/ got past a proxy's rule for /admin/ and was served as
# /admin/. The portal is always mounted at /: trust neither.
forwarder_headers = ""
