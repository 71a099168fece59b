"""End-to-end transfer benchmark: HTTP upload and download through gunicorn, against the
raw speed of the encrypted format and of bare AES-256-GCM on the same machine.

    .venv/bin/python bench/transfer.py [--size-mb 256] [--workers 1] [--threads 4]

Everything runs in a throw-away temp dir (own SQLite DB, MEDIA_ROOT, SECRET_KEY and
ENCRYPTION_KEYS); only 127.0.0.1 is contacted; gunicorn is always stopped and the temp
dir removed. Units: MiB = 2**20 bytes, speeds in MiB/s. See bench/README.md.

Not a test: it asserts only that the round trip is byte-exact.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script (`python bench/transfer.py`, as make bench and the READMEs do), Python
# puts bench/ first on sys.path, not the repository root: add the root so that the
# `bench`, `sharing` and `tests` packages import.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.client import (  # noqa: E402
    check_round_trip,
    download,
    find_file_id,
    login,
    new_session,
    upload,
    write_random_file,
)
from bench.common import MIB, log  # noqa: E402
from bench.procstat import (  # noqa: E402
    RssSampler,
    children_of,
    counter_delta,
    hwm_kib,
    proc_counters,
)
from bench.rawspeed import measure_raw  # noqa: E402
from bench.report import Transfers, build_results, print_table, write_results  # noqa: E402
from bench.scenarios import (  # noqa: E402
    TUS_CHUNK,
    check_tus_upload,
    lean_download,
    parallel_downloads,
    ranged,
    tus_upload,
)
from bench.server import (  # noqa: E402
    Site,
    prepare_site,
    shut_down,
    start_gunicorn,
    wait_for_gunicorn,
)

RESULTS = ROOT / "bench" / "results" / "latest.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see bench/README.md); exits with a usage error on bad values."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=256, help="file size in MiB (256)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (1)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument(
        "--raw-repeat", type=int, default=3, help="passes of each raw measure, best kept (3)"
    )
    parser.add_argument(
        "--deadline", type=int, default=900, help="abort the whole run after this many s (900)"
    )
    parser.add_argument(
        "--download-repeat", type=int, default=3, help="lean downloads, best kept (3)"
    )
    parser.add_argument(
        "--range-repeat", type=int, default=10, help="1 MiB ranges at each end, 0 skips (10)"
    )
    parser.add_argument(
        "--parallel", type=int, default=0, help="also N downloads at once, 0 skips (0)"
    )
    parser.add_argument(
        "--parallel-repeat", type=int, default=3, help="rounds of parallel downloads (3)"
    )
    parser.add_argument(
        "--tus", action="store_true", help="also a tus upload in the page's PATCHes (off)"
    )
    parser.add_argument(
        "--tus-chunk-mb",
        type=int,
        default=TUS_CHUNK // MIB,
        help="tus PATCH size in MiB; 0, the upload page's chunkSize, is the whole file (0)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.workers < 1 or args.threads < 1 or args.raw_repeat < 1:
        parser.error("sizes and counts must be >= 1")
    if args.tus_chunk_mb < 0:
        parser.error("--tus-chunk-mb must be >= 0")
    if args.parallel_repeat < 1:
        parser.error("--parallel-repeat must be >= 1")
    if args.download_repeat < 1 or args.range_repeat < 0 or args.parallel < 0 or args.parallel == 1:
        parser.error("--range-repeat must be >= 0 and --parallel 0 or >= 2")
    return args


def _on_deadline(signum: int, frame: object) -> None:
    """SIGALRM handler: abort the run (main's cleanup still stops gunicorn)."""
    raise TimeoutError("benchmark deadline reached")


def log_in_and_settle(site: Site, sampler: RssSampler) -> requests.Session:
    """Log in, load / once to warm the worker, then take the RSS baseline (2 samples)."""
    session = new_session()
    login(session, site.base, site.username, site.password)
    session.get(site.base + "/", timeout=30).raise_for_status()  # warm the worker
    time.sleep(0.3)
    sampler.phase = "baseline"
    sampler.sample()
    time.sleep(0.2)
    sampler.sample()
    return session


def timed_on_server(
    sampler: RssSampler, phase: str, workers: list[int], transfer: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run `transfer` as RSS phase `phase`; return its figures and the workers' CPU use."""
    counters_before = proc_counters(workers)
    sampler.phase = phase
    figures = transfer()
    used = counter_delta(counters_before, proc_counters(workers))
    # One sample at the end, so that the phase has one even when the transfer took less
    # than the sampler's interval (a small file: the report needs every phase's peak).
    sampler.sample()
    return figures, used


def run_extras(
    args: argparse.Namespace,
    site: Site,
    session: requests.Session,
    sampler: RssSampler,
    workers: list[int],
    file_id: str,
    source: Path,
) -> dict[str, Any]:
    """The lean-client download, the ranges at both ends, the parallel downloads and the
    tus upload, each in its own RSS phase; every answer is checked against `source`."""
    extras: dict[str, Any] = {}
    log(f"download, lean client, {args.download_repeat} x")
    lean, lean_server = timed_on_server(
        sampler,
        "lean download",
        workers,
        lambda: lean_download(session, site.base, file_id, source, args.download_repeat),
    )
    extras["lean_download"] = {**lean, "server": lean_server}
    if args.range_repeat:
        log(f"1 MiB ranges at the start and the end, {args.range_repeat} x each")
        extras["ranged"], _ = timed_on_server(
            sampler,
            "ranged",
            workers,
            lambda: ranged(session, site.base, file_id, source, args.range_repeat),
        )
    if args.parallel:
        if args.workers < args.parallel:
            log(f"warning: {args.parallel} parallel downloads on {args.workers} worker(s)")
        log(f"{args.parallel} parallel downloads, lean client, {args.parallel_repeat} x")
        extras["parallel"], _ = timed_on_server(
            sampler,
            "parallel",
            workers,
            lambda: parallel_downloads(
                session, site.base, file_id, source, args.parallel, workers, args.parallel_repeat
            ),
        )
    if args.tus:
        chunk = args.tus_chunk_mb * MIB
        log(f"tus upload, {f'{args.tus_chunk_mb} MiB' if chunk else 'one'} PATCH(es), lean client")
        tus, tus_server = timed_on_server(
            sampler, "tus upload", workers, lambda: tus_upload(session, site.base, source, chunk)
        )
        extras["tus_upload"] = {**tus, "server": tus_server}
        sampler.phase = "between"
        log("checking the tus upload against the file (untimed)")
        check_tus_upload(session, site.base, tus["file_id"], source)
    sampler.phase = "after"
    return extras


def run_transfers(
    args: argparse.Namespace,
    site: Site,
    proc: subprocess.Popen[bytes],
    sampler: RssSampler,
    source: Path,
    sha256: str,
) -> Transfers:
    """Upload `source`, download it back and check it byte for byte, measuring both."""
    session = log_in_and_settle(site, sampler)
    workers = children_of(proc.pid)
    # VmHWM already includes the login: Argon2 (Django's default cost) takes ~100 MiB.
    hwm_before_kib = hwm_kib(workers)
    log("upload")
    up, up_server = timed_on_server(
        sampler, "upload", workers, lambda: upload(session, site.base, source)
    )
    sampler.phase = "between"
    file_id = find_file_id(session, site.base)
    log("download")
    down, down_server = timed_on_server(
        sampler, "download", workers, lambda: download(session, site.base, file_id)
    )
    check_round_trip(down, source.stat().st_size, sha256)
    extras = run_extras(args, site, session, sampler, workers, file_id, source)
    sampler.sample()
    hwm_end_kib = hwm_kib(children_of(proc.pid))
    if children_of(proc.pid) != workers:
        log(f"warning: workers changed during the run ({workers} -> {sorted(hwm_end_kib)})")
    sampler.stop()
    return Transfers(
        up=up,
        down=down,
        up_server=up_server,
        down_server=down_server,
        hwm_before_kib=hwm_before_kib,
        hwm_kib=hwm_end_kib,
        peaks=sampler.peaks,
        sample_interval=sampler.interval,
        extras=extras,
    )


def main(argv: list[str] | None = None) -> int:
    """Measure the raw speeds, then one upload and one download through gunicorn; print
    the table and write the JSON. Gunicorn and the temp dir go away however it ends."""
    args = parse_args(argv)
    signal.signal(signal.SIGALRM, _on_deadline)
    signal.alarm(args.deadline)
    load_at_start = os.getloadavg()[0]
    if load_at_start > 1.0:
        log(f"warning: load average {load_at_start:.2f} before the run; figures will be noisy")
    tmp = Path(tempfile.mkdtemp(prefix="securefiles-bench-"))
    site: Site | None = None
    proc: subprocess.Popen[bytes] | None = None
    sampler: RssSampler | None = None
    succeeded = False
    try:
        log(f"temp dir {tmp}; writing {args.size_mb} MiB of random data")
        source = tmp / "plain.bin"
        source_sha256 = write_random_file(source, args.size_mb * MIB)
        log(f"raw format and GCM speed, {args.size_mb} MiB x {args.raw_repeat} passes")
        raw = measure_raw(args.size_mb * MIB, args.raw_repeat)
        site = prepare_site(tmp, args.size_mb, args.workers, args.threads)
        proc = start_gunicorn(site)
        wait_for_gunicorn(proc, site)
        sampler = RssSampler(proc.pid)
        sampler.start()
        transfers = run_transfers(args, site, proc, sampler, source, source_sha256)
        results = build_results(
            args.size_mb, args.workers, args.threads, load_at_start, raw, transfers, args.output
        )
        write_results(results, args.output)
        print_table(results)
        succeeded = True
        return 0
    finally:
        signal.alarm(0)
        if sampler is not None:
            sampler.stop()
        if site is not None and proc is not None:
            seen = sampler.workers_seen if sampler is not None else set()
            shut_down(proc, site, seen, succeeded)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
