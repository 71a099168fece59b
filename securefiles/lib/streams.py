"""A response body stopped on purpose before its Content-Length."""

from __future__ import annotations


class StreamCut(Exception):  # noqa: N818 (what it is, as the WSGI server sees it)
    """Raised by a response's body iterator to stop sending before the promised
    Content-Length (a share link's byte budget ran out mid-range). The WSGI server then
    breaks the connection, so no client takes the bytes for a complete body (RFC 9112
    section 6.3) and it may resume later. Routine, not a bug: gunicorn logs one line
    (gunicorn.conf.py)."""
