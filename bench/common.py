"""Units and progress output shared by the benchmark modules.

Sizes are in bytes unless a name says MiB (2**20 bytes); speeds are in MiB/s.
"""

from __future__ import annotations

import sys

MIB = 1 << 20


def mib_s(nbytes: int, seconds: float) -> float:
    """Speed in MiB/s of `nbytes` bytes moved in `seconds` seconds (inf if no time passed)."""
    return nbytes / MIB / seconds if seconds > 0 else float("inf")


def log(message: str) -> None:
    """Write one progress line to stderr (the results table goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
