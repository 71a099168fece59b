"""A loopback TCP proxy that can stall a transfer part-way, so a live test can kill a
client in the middle of an upload or a download at a known point rather than by timing.

Bytes flow freely until a direction's budget (``up``: client to server, ``down``: server
to client) is spent; then that direction stops forwarding and ``stalled`` is set. Every
byte sent upstream is kept (``sent``) so a test can read the requests' headers.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class StallProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.budget: dict[str, int | None] = {"up": None, "down": None}
        self.stalled = threading.Event()
        self.sent = bytearray()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stall_after(self, *, up: int | None = None, down: int | None = None) -> None:
        """From now on, forward at most ``up`` / ``down`` more bytes each way."""
        with self._lock:
            self.budget = {"up": up, "down": down}
            self.stalled.clear()

    def release(self) -> None:
        """Forward everything again: stalled connections are dropped (the server sees its
        client gone), new ones flow freely."""
        self.stall_after()
        self.drop_connections()

    def drop_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.drop_connections()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"), daemon=True).start()

    def _take(self, direction: str, size: int) -> int:
        """How many of ``size`` bytes may pass now (0: stalled)."""
        with self._lock:
            left = self.budget[direction]
            if left is None:
                return size
            allowed = min(left, size)
            self.budget[direction] = left - allowed
            if allowed < size:
                self.stalled.set()
            return allowed

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                allowed = self._take(direction, len(data))
                if direction == "up":
                    self.sent += data[:allowed]
                sink.sendall(data[:allowed])
                if allowed < len(data):
                    return  # stalled: nothing more passes until the connection is dropped
            sink.shutdown(socket.SHUT_WR)
