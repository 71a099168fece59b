"""Load test: many clients doing mixed work against gunicorn on PostgreSQL (bench/README.md).

`make load` runs 50 clients for 60 s, `make load-ci` 10 clients for 15 s. Each client lists
its files, uploads 1-20 MiB by form and by tus (one PATCH or 8 MiB PATCHes), downloads
its files and claims share links, checking every byte against the SHA-256 of what it
uploaded. Prints errors, mismatches, p50/p95 latencies and throughput, writes them as JSON,
and exits 1 on any error or mismatch. Traffic goes to 127.0.0.1 only; the run is bounded
by --seconds plus the per-request timeouts, and stopped at --deadline whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/load.py` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.client import login, new_session  # noqa: E402
from bench.common import MIB, log  # noqa: E402
from bench.loadwork import LoadClient, Payloads, Tally  # noqa: E402
from bench.procstat import children_of  # noqa: E402
from bench.server import (  # noqa: E402
    Site,
    bench_env,
    run_manage,
    shut_down,
    start_gunicorn,
    wait_for_gunicorn,
)
from tests.live_gunicorn import free_port, recreate_postgres_database  # noqa: E402

CREATE_USERS = """
import os
from django.contrib.auth import get_user_model
for n in range(int(os.environ["LOAD_USERS"])):
    get_user_model().objects.create_user(f"load{n}", password=os.environ["BENCH_PASSWORD"])
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; see bench/README.md for each option."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--users", type=int, default=10, help="clients share these accounts")
    parser.add_argument("--min-mb", type=int, default=1)
    parser.add_argument("--max-mb", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn.conf.py's default")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn.conf.py's default")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--port", type=int, default=0, help="on 127.0.0.1; 0: a free one")
    parser.add_argument("--deadline", type=float, default=600, help="seconds for everything")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LOAD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/load"),
        help="PostgreSQL database whose name contains 'load': created if missing, WIPED",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "load.json")
    return parser.parse_args(argv)


def recreate_database(url: str) -> None:
    """DROP and CREATE the database of `url` (through the "postgres" database);
    SystemExit unless it is PostgreSQL and its name contains "load"."""
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not parsed.scheme.startswith("postgres") or "load" not in name:
        raise SystemExit(f"refusing to wipe {name!r}: a PostgreSQL database named *load*")
    recreate_postgres_database(url)


def prepare(tmp: Path, args: argparse.Namespace) -> Site:
    """A migrated portal on PostgreSQL with `args.users` users load0, load1, ..."""
    password = "Load-Test-" + os.urandom(9).hex()
    env = bench_env(
        tmp, args.port or free_port(), args.max_mb, args.workers, args.threads, "load0", password
    )
    env.update(DATABASE_URL=args.database_url, LOAD_USERS=str(args.users))
    env.pop("THROTTLE_REDIS_URL", None)  # counters in the database, the default
    log(f"wipe and migrate {urlparse(args.database_url).path.lstrip('/')}")
    recreate_database(args.database_url)
    run_manage(env, "migrate", "--noinput", "--verbosity", "0", timeout=600)
    run_manage(env, "shell", "--no-imports", "-c", CREATE_USERS)
    return Site(tmp, env, f"http://{env['GUNICORN_BIND']}", "load0", password, args.workers)


def sessions(site: Site, users: int) -> list[dict[str, str]]:
    """Log each user in once (Argon2 costs ~100 MiB a hash): their cookies."""
    cookies = []
    for n in range(users):
        session = new_session()
        login(session, site.base, f"load{n}", site.password)
        cookies.append({c.name: c.value or "" for c in session.cookies})
    return cookies


def drive(site: Site, args: argparse.Namespace) -> tuple[Tally, float]:
    """Run the clients for `args.seconds`; their tally and the wall time in seconds."""
    tally = Tally()
    payloads = Payloads(args.max_mb * MIB, args.seed)
    logged_in = sessions(site, args.users)
    clients = [
        LoadClient(
            site.base,
            logged_in[n % args.users],
            tally,
            payloads,
            random.Random(args.seed * 1000 + n),  # noqa: S311 (reproducible choices)
            (args.min_mb * MIB, args.max_mb * MIB),
        )
        for n in range(args.clients)
    ]
    log(f"{args.clients} clients for {args.seconds:g} s")
    start = time.perf_counter()
    threads = [
        threading.Thread(target=c.run_until, args=(start + args.seconds,), daemon=True)
        for c in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:  # each operation is bounded by its timeouts
        thread.join(timeout=max(1.0, start + args.seconds + 300 - time.perf_counter()))
    if any(thread.is_alive() for thread in threads):
        tally.failed("run", RuntimeError("a client was still busy 300 s after the end"))
    return tally, time.perf_counter() - start


def percentile(values: list[float], share: float) -> float:
    """The `share` (0-1) quantile of `values`, nearest-rank, in the values' unit."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def summarise(tally: Tally, wall: float, args: argparse.Namespace) -> dict[str, Any]:
    """The figures as a JSON-ready dict: latencies in milliseconds, speeds in MiB/s."""
    latencies = {
        name: {
            "count": len(values),
            "p50_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        }
        for name, values in sorted(tally.latencies.items())
    }
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "workers": args.workers,
        "threads": args.threads,
        "wall_seconds": round(wall, 1),
        "errors": len(tally.errors),
        "mismatches": tally.mismatches,
        "error_lines": tally.errors[:50],
        "latencies": latencies,
        "uploaded_mib": round(tally.bytes_up / MIB, 1),
        "downloaded_mib": round(tally.bytes_down / MIB, 1),
        "upload_mib_s": round(tally.bytes_up / MIB / wall, 1),
        "download_mib_s": round(tally.bytes_down / MIB / wall, 1),
        "load_average": round(os.getloadavg()[0], 2),
    }


def print_table(result: dict[str, Any]) -> None:
    """The figures, readable."""
    print(
        f"\nload: {result['clients']} clients, {result['wall_seconds']} s, "
        f"{result['workers']} workers x {result['threads']} threads "
        f"(load average {result['load_average']})"
    )
    print(f"{'operation':<34}{'count':>7}{'p50 ms':>10}{'p95 ms':>10}")
    for name, row in result["latencies"].items():
        print(f"{name:<34}{row['count']:>7}{row['p50_ms']:>10}{row['p95_ms']:>10}")
    print(
        f"uploaded {result['uploaded_mib']} MiB ({result['upload_mib_s']} MiB/s), "
        f"downloaded and checked {result['downloaded_mib']} MiB "
        f"({result['download_mib_s']} MiB/s)"
    )
    print(f"errors: {result['errors']}, hash mismatches: {result['mismatches']}")
    for line in result["error_lines"]:
        print(f"  {line}")


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Prepare, serve, drive, stop: the summary."""
    site = prepare(tmp, args)
    proc = start_gunicorn(site)
    _SERVERS.append(proc)
    workers_seen: set[int] = set()
    succeeded = False
    try:
        wait_for_gunicorn(proc, site)
        workers_seen.update(children_of(proc.pid))
        tally, wall = drive(site, args)
        succeeded = not tally.errors
        return summarise(tally, wall, args)
    finally:
        shut_down(proc, site, workers_seen, succeeded)


_SERVERS: list[subprocess.Popen[bytes]] = []  # killed by the deadline


def _stop_at_deadline() -> None:
    """The hard bound: kill gunicorn's process group (ours) and exit 3 at once."""
    log("deadline reached: stopping")
    for proc in _SERVERS:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    os._exit(3)


def main(argv: list[str] | None = None) -> int:
    """Run once; 0 if no error and no mismatch, else 1."""
    args = parse_args(argv)
    timer = threading.Timer(args.deadline, _stop_at_deadline)
    timer.daemon = True
    timer.start()
    with tempfile.TemporaryDirectory(prefix="securefiles-load-") as tmp:
        result = run(args, Path(tmp))
    print_table(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    return 1 if result["errors"] or result["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
