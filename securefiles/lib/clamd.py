"""A client for clamd's INSTREAM command (ClamAV's scanning daemon), fed chunk by chunk.

The protocol (clamd(8), "INSTREAM"): the command ``zINSTREAM\\0``, then chunks each
prefixed with its length as a 4-byte big-endian unsigned integer, a zero-length chunk to
end, then one NUL-terminated reply: ``stream: OK``, ``stream: <signature> FOUND``,
``INSTREAM size limit exceeded. ERROR`` (past clamd's StreamMaxLength, after which clamd
closes the connection) or ``<reason> ERROR``. An archive clamd could not scan whole (nested
past MaxRecursion, inflating past MaxScanSize, more than MaxFiles) gets ``stream: OK``, or
with ``AlertExceedsMax yes`` ``stream: Heuristics.Limits.Exceeded.<limit> FOUND``
(clamd.conf(5)): the latter is no verdict either, and is reported as a limit exceeded.
With ``AlertEncrypted yes``, password-protected content gets
``stream: Heuristics.Encrypted.<kind> FOUND``: no verdict, reported as EncryptedContent.

Own code rather than a library: ``clamd`` (PyPI) has had no release since 2014 and
``clamdpy`` (its fork) only scans a whole file object it reads itself, while the upload
paths push chunks as they arrive, alongside the encryption. No Django import here.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

_COMMAND = b"zINSTREAM\x00"
_END = struct.pack(">I", 0)
_REPLY_LIMIT = 4096  # bytes; a reply is one short line
_SIZE_LIMIT_REPLY = "INSTREAM size limit exceeded"
_LIMITS_HEURISTIC = "Heuristics.Limits.Exceeded"  # AlertExceedsMax: clamd stopped scanning
# AlertEncrypted (AlertEncryptedArchive, AlertEncryptedDoc): content clamd cannot decrypt,
# e.g. "Heuristics.Encrypted.Zip", "Heuristics.Encrypted.PDF".
_ENCRYPTED_HEURISTIC = "Heuristics.Encrypted."


class ClamdUnavailable(Exception):
    """clamd could not be reached, timed out, broke the connection or answered nonsense."""


class StreamLimitExceeded(Exception):
    """The stream went past clamd's StreamMaxLength, or its content past one of clamd's
    scan limits (AlertExceedsMax): clamd gave no verdict on the whole of it."""


class EncryptedContent(Exception):
    """clamd could not scan the stream's content: it is encrypted (a password-protected
    archive or document; clamd's AlertEncrypted heuristics). ``args[0]``: the heuristic's
    name, e.g. "Heuristics.Encrypted.Zip"."""


@dataclass(frozen=True)
class Address:
    """Where clamd listens: a Unix socket ``path``, or ``host`` and ``port`` (TCP)."""

    path: str = ""
    host: str = ""
    port: int = 0

    def connect(self, timeout: float) -> socket.socket:
        """An open connection; ``timeout`` in seconds for it and every later send or
        receive. Raises ClamdUnavailable."""
        try:
            if self.path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(self.path)
                return sock
            return socket.create_connection((self.host, self.port), timeout=timeout)
        except (OSError, ValueError, OverflowError) as exc:
            # ValueError: a host name IDNA cannot encode (UnicodeError, "a..b"); the
            # settings cannot catch every such name, and it must not become a 500.
            raise ClamdUnavailable(f"cannot connect to clamd: {exc}") from None


class InStream:
    """One INSTREAM scan: ``send`` chunks of the content in order, then ``verdict``.

    Holds one connection; a scan that is abandoned should be ``close``d. Raises
    ClamdUnavailable (connect, send, receive) and StreamLimitExceeded (from ``send`` or
    ``verdict``: clamd refused more bytes).
    """

    def __init__(self, address: Address, timeout: float) -> None:
        self._sock = address.connect(timeout)
        self._sent = 0
        try:
            self._sock.sendall(_COMMAND)
        except OSError as exc:
            self.close()
            raise ClamdUnavailable(f"clamd broke the connection: {exc}") from None

    def send(self, chunk: bytes | memoryview) -> None:
        """Pass ``chunk`` (any length; an empty one is skipped, it would end the stream)."""
        if not chunk:
            return
        try:
            self._sock.sendall(struct.pack(">I", len(chunk)))
            self._sock.sendall(chunk)
        except OSError:
            # clamd closes the connection when the stream passes StreamMaxLength, after
            # saying so: its reply tells that from a daemon that died.
            self._raise_reply()
        self._sent += len(chunk)

    def verdict(self) -> str | None:
        """End the stream and wait for clamd's answer: None if clean, else the name of
        the signature found (e.g. "Eicar-Test-Signature"). Closes the connection. Raises
        StreamLimitExceeded for a stream or content past clamd's limits, EncryptedContent
        for password-protected content clamd could not look into (AlertEncrypted)."""
        try:
            self._sock.sendall(_END)
        except OSError:
            self._raise_reply()
        reply = self._reply()
        self.close()
        if reply.endswith(" FOUND") and reply.startswith("stream: "):
            signature = reply.removeprefix("stream: ").removesuffix(" FOUND")
            if signature.startswith(_LIMITS_HEURISTIC):
                # Not malware found: clamd stopped at a limit, what lies past it unread.
                raise StreamLimitExceeded(f"clamd stopped scanning: {signature}")
            if signature.startswith(_ENCRYPTED_HEURISTIC):
                # Not malware found either: password-protected content, unreadable to it.
                raise EncryptedContent(signature)
            return signature
        if reply == "stream: OK":
            return None
        raise ClamdUnavailable(f"clamd answered {reply[:200]!r}")

    def close(self) -> None:
        """Drop the connection (clamd discards what it spooled of this stream)."""
        try:
            self._sock.close()
        except OSError:
            pass

    def _reply(self) -> str:
        """clamd's NUL-terminated reply, stripped. Raises StreamLimitExceeded when it is
        the size-limit refusal, ClamdUnavailable when none came."""
        data = b""
        try:
            while b"\x00" not in data and len(data) < _REPLY_LIMIT:
                received = self._sock.recv(_REPLY_LIMIT)
                if not received:
                    break
                data += received
        except OSError as exc:
            self.close()
            raise ClamdUnavailable(f"no answer from clamd: {exc}") from None
        reply = data.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
        if not reply:
            self.close()
            raise ClamdUnavailable("clamd closed the connection without an answer")
        if reply.startswith(_SIZE_LIMIT_REPLY):
            self.close()
            raise StreamLimitExceeded(f"clamd refused the stream after {self._sent} bytes")
        return reply

    def _raise_reply(self) -> None:
        """After a failed send: raise what clamd said before closing (or that it said
        nothing)."""
        reply = self._reply()
        self.close()
        raise ClamdUnavailable(f"clamd closed the stream: {reply[:200]!r}")
