"""Drop clients that stop sending or receiving in the middle of a request.

gunicorn's `timeout` is the worker heartbeat (an hour, for multi-GiB transfers), and a
gthread thread reads a request body or writes a response with a blocking socket that has
no timeout of its own: a client that sent `Content-Length: 100` and two bytes, then
nothing, held a thread for as long as it kept the connection open. A few of them (one per
thread) stopped the server answering anyone.

The kernel's per-call socket timeouts (SO_RCVTIMEO, SO_SNDTIMEO) bound every single
recv() and send() to CLIENT_IDLE_TIMEOUT_SECONDS instead: a transfer that moves at all
keeps going however long it takes, a client that goes silent (or stops reading a
download) for that long gets an error on its thread, which is then freed. They are set
at the socket level rather than with `socket.settimeout()` because Python's timeout is the
total time of a whole `sendall()` (a 1 MiB download segment to a slow client would fail
although it is moving), and because gunicorn switches its sockets between blocking and
non-blocking, which resets a Python timeout but leaves the kernel's in place.

- `ClientIdleTimeoutMiddleware` (securefiles.wsgi) sets them on each request's socket and
  turns a stalled body read into a 400 (`ClientIdle`, a BadRequest) instead of a 500;
  gunicorn then closes the connection (reading its body failed). On a stall, it also shuts
  down the socket's read side, because gunicorn's close of a failed connection otherwise
  waits up to 2 s for the client, on the worker's main thread.
- gunicorn.conf.py sets them on the listening sockets too: Linux copies them to every
  accepted connection, so a client stalling inside its request line or headers is dropped
  as well (gunicorn itself waits only 5 seconds for a connection's *first* byte), and turns
  the socket error gunicorn then logs into one line without a traceback.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from django.core.exceptions import BadRequest

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Sock(Protocol):
    def setsockopt(self, level: int, optname: int, value: bytes) -> None: ...


def _stop_reading(sock: Any) -> None:
    # gunicorn closes a failed connection "gracefully": it waits up to 2 s for the client
    # to close its side, on the worker's main thread (no accept, no dispatch meanwhile).
    # A stalled client never does; with our read side shut down, that wait ends at once.
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


class ClientIdle(BadRequest):
    """The client sent no byte of its request body for CLIENT_IDLE_TIMEOUT_SECONDS.

    A BadRequest, so Django answers it with its 400 page (not a 500); gunicorn then closes
    the connection, because reading the body failed.
    """


def set_idle_timeout(sock: _Sock, seconds: int) -> None:
    """Bound each recv() and send() on `sock` to `seconds` (an integer, >= 1).

    Sets SO_RCVTIMEO and SO_SNDTIMEO: a blocking call that moves no byte for that long
    fails with BlockingIOError (EAGAIN), one that moves some returns them. Raises OSError
    if the socket refuses the options (e.g. it is closed).
    """
    timeval = struct.pack("@ll", seconds, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


# Offset of tcpi_last_data_recv (u32, milliseconds) in Linux's struct tcp_info: eight u8
# fields, then rto, ato, snd_mss, rcv_mss, unacked, sacked, lost, retrans, fackets,
# last_data_sent, last_ack_sent (include/uapi/linux/tcp.h).
_TCPI_LAST_DATA_RECV = 52
_MIN_WAIT = 0.05  # seconds: a wait already used up still gets this long for buffered bytes


def silent_for(sock: Any) -> float:
    """Seconds since the client last sent a byte on ``sock`` (Linux TCP_INFO); 0.0 where
    the kernel cannot tell (another system, a closed socket)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        (millis,) = struct.unpack_from("=I", info, _TCPI_LAST_DATA_RECV)
    except (OSError, AttributeError, struct.error):
        return 0.0
    return millis / 1000


def _set_receive_timeout(sock: Any, seconds: float) -> None:
    whole = int(seconds)
    timeval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)


def is_idle_error(exc: BaseException | None) -> bool:
    """Whether `exc` is a socket call that gave up on an idle client.

    True for BlockingIOError with EAGAIN/EWOULDBLOCK (the kernel's SO_RCVTIMEO/SO_SNDTIMEO
    on a blocking socket), TimeoutError (a Python-level socket timeout) and ClientIdle.
    """
    if isinstance(exc, ClientIdle | TimeoutError):
        return True
    return isinstance(exc, BlockingIOError) and exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)


class _IdleInput:
    """`wsgi.input`, with an idle socket turned into ClientIdle.

    Django's HttpRequest.read() turns any OSError into UnreadablePostError, which nothing
    handles (a 500 with a traceback); ClientIdle is a BadRequest, answered with a 400.
    """

    def __init__(self, stream: Any, sock: Any, seconds: int, length: int = 0) -> None:
        self._stream = stream
        self._sock = sock
        self._seconds = seconds
        self._left = length  # body bytes (CONTENT_LENGTH) the application has not read

    @property
    def unread(self) -> bool:
        """Whether the application left part of a Content-Length body unread."""
        return self._left > 0

    def _idle(self) -> ClientIdle:
        _stop_reading(self._sock)
        return ClientIdle(f"no byte of the request body for {self._seconds} s")

    def _arm(self) -> None:
        # The idle time counts from the client's last byte, not from when a thread took
        # the request: a connection that stalled while queued behind others (every thread
        # busy with stalled clients) has used its wait already, and is dropped at once
        # instead of holding a thread for a whole idle timeout more. So N stalled clients
        # cost about one idle timeout in all, not N / threads of them.
        remaining = self._seconds - silent_for(self._sock)
        try:
            _set_receive_timeout(self._sock, max(remaining, _MIN_WAIT))
        except OSError:
            pass  # the client is gone; the read will tell

    def read(self, size: int | None = -1) -> bytes:
        self._arm()
        try:
            data: bytes = self._stream.read(size)
        except OSError as exc:
            if is_idle_error(exc):
                raise self._idle() from exc
            raise
        self._left = self._left - len(data) if data or size == 0 else 0
        return data

    def readline(self, size: int | None = -1) -> bytes:
        self._arm()
        try:
            data: bytes = self._stream.readline(size)
        except OSError as exc:
            if is_idle_error(exc):
                raise self._idle() from exc
            raise
        self._left = self._left - len(data) if data or size == 0 else 0
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class ClientIdleTimeoutMiddleware:
    """WSGI middleware: a client idle for `seconds` in the middle of a request is dropped.

    Only under gunicorn (it needs `environ["gunicorn.socket"]`); elsewhere (runserver,
    the test client) the request passes unchanged. A stalled body read raises ClientIdle
    (400); a stalled response write fails inside gunicorn, which closes the connection.
    """

    def __init__(self, app: WSGIApp, seconds: int) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            try:
                set_idle_timeout(sock, self.seconds)
            except OSError:
                pass  # the client is gone already; reading will tell
            body = _IdleInput(environ["wsgi.input"], sock, self.seconds, _length(environ))
            environ["wsgi.input"] = body
            start_response = _closing_if_unread(start_response, body)
        result = self.app(environ, start_response)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if sock is None or (file_wrapper is not None and isinstance(result, file_wrapper)):
            return result  # gunicorn sends a file wrapper with sendfile(); keep it one
        return _Response(result, sock)


def _length(environ: dict[str, Any]) -> int:
    """The request's Content-Length in bytes (0 if absent or malformed)."""
    value = environ.get("CONTENT_LENGTH") or ""
    return int(value) if value.isascii() and value.isdigit() else 0


def _closing_if_unread(start_response: Callable[..., Any], body: _IdleInput) -> Callable[..., Any]:
    """start_response, which first tells gunicorn to close the connection if the
    application answers without having read the whole body (a refused upload: 413 and
    the like).

    gunicorn keeps such a connection only if it can drain the rest within 64 KiB and 5 s;
    otherwise it closes it after an answer that said ``Connection: keep-alive``, and a
    client that believed it would send its next request into a closed socket. A WSGI
    application cannot send Connection itself (a hop-by-hop header, PEP 3333; gunicorn
    drops it), so the answer's own server is asked: gunicorn's start_response is a method
    of its Response, whose force_close() makes it send ``Connection: close`` and close
    (RFC 9112 section 9.6). Elsewhere nothing changes.
    """

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
        if body.unread and callable(force_close):
            force_close()
        return start_response(status, headers, exc_info)

    return start


class _Response:
    """The application's response iterable; if the server closes it before it was sent to
    the end (a client that stopped reading, or went away), the socket's read side is shut
    down so that gunicorn's close does not wait for the client."""

    def __init__(self, result: Iterable[bytes], sock: Any) -> None:
        self._result = result
        self._sock = sock
        self._finished = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._result
        self._finished = True

    def close(self) -> None:
        if not self._finished:
            _stop_reading(self._sock)
        close = getattr(self._result, "close", None)
        if close is not None:
            close()


class DropIdleTracebacks(logging.Filter):
    """Log "Bad Request: no byte of the request body for N s" as one line, no traceback.

    A stalled client is routine, not a bug: its record keeps its message and level,
    only the exception info is removed. Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_idle_error(record.exc_info[1]):
            record.exc_info = None
            record.exc_text = None
        return True
