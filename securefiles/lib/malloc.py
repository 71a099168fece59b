"""glibc malloc tuning for a process that streams files in 1 MiB segments.

Every upload and download moves each MiB through a few short-lived buffers of about
1 MiB (the segment read from the socket, its ciphertext, the plaintext released). With
glibc's defaults, a request thread allocates them in its own arena, and each free of the
arena's top chunk beyond M_TRIM_THRESHOLD gives the pages back to the kernel (shrink_heap,
MADV_DONTNEED): the next segment faults every 4 KiB page in again. Measured with
bench/transfer.py (1 GiB, one gunicorn worker, issue 12): a form upload took ~254,000
minor faults (one per page of data) and 4.4 CPU-s, a one-PATCH tus upload 5.5 CPU-s; with
the thresholds below, ~2,800 faults and 3.0 / 2.6 CPU-s. On a VM with free page reporting
each such fault can also be a host fault, which made the wall-clock figures swing.

The cost is memory kept for reuse: at most M_TRIM_THRESHOLD of free space at the top of
each arena (a gthread worker has about one arena per thread), and only what a request
actually used at its peak. Blocks above M_MMAP_THRESHOLD still come from mmap and go back
to the kernel when freed.

Source: mallopt(3), glibc malloc/arena.c (heap_trim applies trim_threshold to thread
arenas). Setting either parameter turns off glibc's dynamic threshold adjustment, which
is the point: the adjustment never raises the trim threshold of a thread arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

# mallopt(3) parameter numbers (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MIB = 1 << 20
TRIM_THRESHOLD_BYTES = 32 * MIB
MMAP_THRESHOLD_BYTES = 4 * MIB


def tune_for_streaming() -> bool:
    """Set glibc's trim threshold to 32 MiB and mmap threshold to 4 MiB for this process.

    Returns True when both settings took, False on a C library without mallopt (musl,
    macOS) or when glibc refused a value; never raises. Safe to call more than once and
    after threads have started (mallopt takes the main arena's lock).
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    done = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and done
    if not done:
        logger.warning("mallopt refused the streaming thresholds; glibc defaults stay")
    return done
