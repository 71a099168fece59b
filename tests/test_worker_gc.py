"""A gunicorn worker freezes what it made at start (gunicorn.conf.py,
freeze_startup_objects), so that a full garbage collection, and the request that sets it
off, does not walk Django's and the app's ~160,000 long-lived objects. Checked in a fresh
interpreter: the frozen count, and how many objects the collector still tracks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import gc, runpy, sys
sys.path.insert(0, {root!r})
conf = runpy.run_path({conf!r})
before = gc.get_freeze_count()
conf["freeze_startup_objects"]()
print(before, gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_a_worker_freezes_what_it_made_at_start_out_of_the_collectors_reach() -> None:
    probe = PROBE.format(root=str(ROOT), conf=str(ROOT / "gunicorn.conf.py"))
    done = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    before, frozen, tracked = map(int, done.stdout.split())

    assert before == 0 and frozen > 1000
    assert tracked < frozen // 10  # what the next full collection still walks
