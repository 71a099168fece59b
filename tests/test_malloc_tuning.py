"""The malloc tuning (securefiles.lib.malloc) keeps a request thread's 1 MiB segment
buffers instead of faulting their pages in again for every segment (issue 12's upload
figures). Observed as the kernel counts it: minor page faults per MiB allocated, in a
fresh interpreter, by a thread holding three 1 MiB buffers at a time as the streaming
paths do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import resource, sys, threading
sys.path.insert(0, {root!r})
if {tuned!r}:
    from securefiles.lib.malloc import tune_for_streaming
    assert tune_for_streaming()
MIB = 1 << 20
out = {{}}
def work():
    for _ in range(5):
        bufs = [bytearray(MIB) for _ in range(3)]
        del bufs
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(100):
        bufs = [bytes(bytearray(MIB)) for _ in range(3)]
        del bufs
    out["faults"] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
t = threading.Thread(target=work)
t.start()
t.join()
print(out["faults"] / 300)
"""


def _faults_per_mib(tuned: bool) -> float:
    """Minor faults per MiB allocated by a thread of a fresh interpreter."""
    code = PROBE.format(root=str(ROOT), tuned=tuned)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return float(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt, RUSAGE_THREAD")
def test_tuned_process_reuses_segment_buffers_instead_of_faulting_them_in() -> None:
    untuned, tuned = _faults_per_mib(False), _faults_per_mib(True)
    # glibc's defaults give each MiB back to the kernel: ~256 faults (one per 4 KiB page).
    assert untuned > 128, f"the probe no longer shows glibc's trimming ({untuned} faults/MiB)"
    assert tuned < 8, f"{tuned} minor faults per MiB with the tuning"
