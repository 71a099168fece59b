"""CPU time, page faults and memory of the gunicorn processes, read from /proc.

No psutil: every figure comes from /proc/<pid>/stat and /proc/<pid>/status (Linux only).
"""

from __future__ import annotations

import os
import threading
from contextlib import suppress
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

# (user CPU seconds, system CPU seconds, minor page faults), summed over processes.
Counters = tuple[float, float, int]


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3, state, is index 0);
    None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def children_of(pid: int) -> list[int]:
    """Direct children: /proc/<pid>/task/*/children if the kernel has it, else a scan."""
    found: set[int] = set()
    task_dir = Path(f"/proc/{pid}/task")
    have_children_files = False
    with suppress(OSError):
        for task in task_dir.iterdir():
            path = task / "children"
            if path.exists():
                have_children_files = True
                found.update(int(x) for x in path.read_text().split())
    if have_children_files:
        return sorted(found)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields and int(fields[1]) == pid:  # field 4: ppid
                found.add(int(entry.name))
    return sorted(found)


def status_kib(pid: int, key: str) -> int | None:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM), in KiB; None if absent or gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def hwm_kib(pids: list[int]) -> dict[int, int]:
    """Lifetime peak RSS (VmHWM) in KiB of each process; 0 for a process that is gone."""
    return {pid: status_kib(pid, "VmHWM") or 0 for pid in pids}


def proc_counters(pids: list[int]) -> Counters:
    """Summed (user CPU s, system CPU s, minor page faults) of processes (0 if gone)."""
    user = system = faults = 0
    for pid in pids:
        fields = stat_fields(pid)
        if fields:
            faults += int(fields[7])  # field 10: minflt
            user += int(fields[11])  # field 14: utime, in clock ticks
            system += int(fields[12])  # field 15: stime
    return user / CLK_TCK, system / CLK_TCK, faults


def counter_delta(before: Counters, after: Counters) -> dict[str, float]:
    """What the processes used between two `proc_counters` readings (CPU in seconds)."""
    return {
        "user_cpu_seconds": after[0] - before[0],
        "system_cpu_seconds": after[1] - before[1],
        "cpu_seconds": (after[0] + after[1]) - (before[0] + before[1]),
        "minor_page_faults": after[2] - before[2],
    }


class RssSampler(threading.Thread):
    """Sample VmRSS of the gunicorn master and its workers every `interval` seconds.

    Peaks are kept per phase (the main thread sets `phase`): for the master, for any one
    worker, and for the sum over workers, all in KiB.
    """

    def __init__(self, master_pid: int, interval: float = 0.05) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.master_pid = master_pid
        self.interval = interval
        self.phase = "startup"
        self.peaks: dict[str, dict[str, int]] = {}
        self.workers_seen: set[int] = set()
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def snapshot(self) -> tuple[int, dict[int, int]]:
        """(master RSS KiB, {worker pid: RSS KiB})."""
        master = status_kib(self.master_pid, "VmRSS") or 0
        workers = {}
        for pid in children_of(self.master_pid):
            rss = status_kib(pid, "VmRSS")
            if rss is not None:
                workers[pid] = rss
        return master, workers

    def sample(self) -> None:
        """Take one sample now and fold it into the current phase's peaks."""
        master, workers = self.snapshot()
        with self._lock:
            self.workers_seen.update(workers)
            peak = self.peaks.setdefault(
                self.phase, {"master_kib": 0, "worker_kib": 0, "workers_sum_kib": 0, "samples": 0}
            )
            peak["master_kib"] = max(peak["master_kib"], master)
            peak["worker_kib"] = max(peak["worker_kib"], max(workers.values(), default=0))
            peak["workers_sum_kib"] = max(peak["workers_sum_kib"], sum(workers.values()))
            peak["samples"] += 1

    def run(self) -> None:
        """Sample until `stop` is called."""
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        """Stop sampling (waits up to 5 s for the thread); safe to call twice."""
        self._stop_event.set()
        self.join(timeout=5)
