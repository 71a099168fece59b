"""Decrypting ahead: a thread of its own pulls verified segments while the caller uses
the previous ones (sends them to a client, hashes them).

AES-GCM in pycryptodome (cffi), hashlib on buffers over 2 KiB, socket sends and file
reads all release the GIL, so the two threads overlap on two cores. Nothing Django here.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

# Verified segments held ready ahead of the one in use: what a transfer holds in memory
# beyond the segment in use and the one being decrypted (1 MiB each).
READ_AHEAD_SEGMENTS = 2


class _End:
    """The producer's last item: the chunks ran out (``error`` None) or raised ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def read_ahead(
    chunks: Iterator[bytes], depth: int = READ_AHEAD_SEGMENTS, *, name: str = "read-ahead"
) -> Iterator[bytes]:
    """Yield what ``chunks`` yields, pulled from it by a thread named ``name``, at most
    ``depth`` items ahead.

    The thread only runs ``chunks``: a DecryptingReader releases a segment only once its
    tag verified, so nothing unverified reaches the queue, and the plaintext stays in
    memory. An error of ``chunks`` is raised here, in order, after everything yielded
    before it. Closing this generator (client gone, response closed) stops the thread and
    waits for it, then closes ``chunks``, so the caller may close the reader afterwards.
    """
    ready: queue.Queue[bytes | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: bytes | _End) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.25)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
        except BaseException as error:  # handed over to the consuming thread
            put(_End(error))
            return
        put(_End())

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
            del item  # a used segment is not kept while the next one is awaited
    finally:
        stop.set()
        while not ready.empty():  # room for a producer waiting to put, so it sees stop
            ready.get_nowait()
        thread.join()
        close = getattr(chunks, "close", None)
        if close is not None:  # after the join: the generator is no longer running
            close()
