"""The directory where gunicorn's workers keep their Prometheus metrics (multiprocess mode).

Used by gunicorn.conf.py in the master process, before any worker starts, so this module
imports neither Django nor prometheus-client (which picks its value store when a metric is
created, from PROMETHEUS_MULTIPROC_DIR). See securefiles.lib.metrics.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def prepare(configured: str) -> tuple[Path, bool]:
    """Make the metrics directory ready and return it, with whether it is a temporary one.

    ``configured`` is METRICS_DIR: that directory (created, mode 0700), emptied of the
    ``*.db`` files a previous run left (counters start from zero at each start, as a
    restarted process's would; nothing else in it is touched). When empty, a fresh
    temporary directory, unique to this gunicorn instance, so two instances on one host
    never mix their counts. Raises OSError if the directory cannot be made or cleaned.
    """
    if not configured:
        return Path(tempfile.mkdtemp(prefix="securefiles-metrics-")), True
    path = Path(configured)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path, False


def remove(path: Path) -> None:
    """Remove a temporary metrics directory made by ``prepare`` (at gunicorn's exit)."""
    shutil.rmtree(path, ignore_errors=True)


def export(path: Path) -> None:
    """Name ``path`` to prometheus-client in this process and the workers it forks."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
