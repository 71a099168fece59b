"""gunicorn settings for production.

Threaded workers, because a multi-GiB transfer holds a thread for minutes; the timeout is
the worker heartbeat (the gthread worker keeps beating while a thread streams), raised so
a slow client on a big file is not killed. Behind nginx, also set
`proxy_request_buffering off;` and `proxy_max_temp_file_size 0;` or nginx writes plaintext
request bodies to its own temp files.
"""

import os

from gunicorn.glogging import Logger

from sharing.log_filters import redact


class RedactingLogger(Logger):
    """gunicorn's logger, with share-link tokens cut out of access and error log lines."""

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in atoms.items()}

    def error(self, msg, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().error(redact(str(msg)), *args, **kwargs)


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
logger_class = RedactingLogger
