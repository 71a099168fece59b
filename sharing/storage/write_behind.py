"""Writing behind: a thread of its own writes ciphertext to a file descriptor while the
caller seals the next segments.

Copying a segment into the page cache is the kernel's work inside ``os.write``, and on
the development VM it was 41–51% of an upload's server CPU (perf:
``copy_folio_from_iter_atomic``; fresh page-cache pages cost a host fault there, see
bench/README.md "This VM's memory"). ``os.write`` releases the GIL, so a writer thread
overlaps that copy with the sealing (AES-GCM and hashlib release it too) on a second
core.

Only ciphertext passes through here. Nothing is durable until ``flush`` has returned and
the caller has fsynced: the storage's ``commit`` and ``sync`` do both before a row or an
offset names the bytes, so the thread changes when bytes are written, never what a row
promises.
"""

from __future__ import annotations

import os
import queue
import threading

# Segments queued ahead of the one being written: what an upload holds in memory beyond
# its own buffers (about 1 MiB each); two keep the writer busy while sealing goes on.
WRITE_BEHIND_SEGMENTS = 2

_FLUSH = object()  # a marker: the writer acknowledges it once all before it is written


class WriteBehind:
    """Write byte strings to ``fd`` in order, from a daemon thread named ``name``.

    ``write`` copies the data (the caller may reuse its buffer at once) and returns as soon
    as it is queued; at most WRITE_BEHIND_SEGMENTS are waiting. ``flush`` returns once
    everything queued is written. The first OSError of the thread (ENOSPC, EIO) is raised
    by the next ``write`` or ``flush``, and the writer then drops what was queued after
    it. ``close`` stops the thread without flushing (the caller flushes first if it
    keeps the bytes); it does not close ``fd``, which stays the caller's.
    """

    def __init__(self, fd: int, *, name: str = "write-behind") -> None:
        self._fd = fd
        self._queue: queue.Queue[bytes | object | None] = queue.Queue(WRITE_BEHIND_SEGMENTS)
        self._flushed = threading.Event()
        self._error: BaseException | None = None
        self._stopping = False
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name=name, daemon=True
        )
        self._thread.start()

    def write(self, data: bytes | memoryview) -> None:
        """Queue a copy of ``data`` for writing. Raises OSError of an earlier write,
        ValueError once closed."""
        self._check()
        self._queue.put(bytes(data))

    def flush(self) -> None:
        """Return once every queued byte is written. Raises the error of any write
        (OSError; anything else the writer met is raised as it was)."""
        self._check()
        self._flushed.clear()
        self._queue.put(_FLUSH)
        thread = self._thread
        while not self._flushed.wait(1.0):
            if thread is None or not thread.is_alive():  # never wait on a dead writer
                raise OSError("the blob writer stopped")
        self._check()

    def close(self) -> None:
        """Stop the writer; what is still queued is dropped. Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        while True:  # make room for the stop marker: the writer skips what remains
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                self._drain()
        thread.join()

    def _drain(self) -> None:
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return
        if item is _FLUSH:
            self._flushed.set()

    def _check(self) -> None:
        if self._thread is None:
            raise ValueError("write-behind is closed")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item is _FLUSH:
                self._flushed.set()
            elif self._error is None and not self._stopping:
                try:
                    self._write_all(item)  # type: ignore[arg-type]
                except BaseException as error:  # handed to the caller's next write or flush
                    self._error = error

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
