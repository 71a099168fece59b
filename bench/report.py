"""The results: one JSON document and the table printed at the end, with the HTTP speeds
set against the raw speeds measured in the same run.

Sizes are in MiB (2**20 bytes), speeds in MiB/s, times in seconds, RSS in MiB (KiB where
a key says so).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from Crypto import __version__ as pycryptodome_version

from bench.common import MIB, mib_s


@dataclass(frozen=True)
class Transfers:
    """What the client and /proc measured around the upload and the download."""

    up: dict[str, Any]  # client.upload's figures
    down: dict[str, Any]  # client.download's figures
    up_server: dict[str, float]  # procstat.counter_delta of the workers during the upload
    down_server: dict[str, float]  # and during the download
    hwm_before_kib: dict[int, int]  # worker VmHWM before the transfers
    hwm_kib: dict[int, int]  # and at the end
    peaks: dict[str, dict[str, int]]  # RssSampler.peaks
    sample_interval: float  # seconds between RSS samples
    extras: dict[str, Any]  # the lean download, ranged, parallel and tus figures (bench.scenarios)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The CPU flags that matter to AES-GCM and SHA-256 speed."""
    wanted = {"aes", "pclmulqdq", "vaes", "vpclmulqdq", "avx2", "avx512f", "sha_ni"}
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(wanted & set(line.split(":", 1)[1].split()))
    return []


def _machine(load_at_start: float) -> dict[str, Any]:
    """The machine and the software versions, with the load at the start and now."""
    return {
        # Other work on the machine skews everything; the run adds ~2 itself.
        "load_average_1min_start_end": [load_at_start, os.getloadavg()[0]],
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        "pycryptodome": pycryptodome_version,
    }


def _transfer(t: Transfers, size: int) -> dict[str, Any]:
    """Speeds (MiB/s), times (s) and CPU (s) of the upload and the download of `size` bytes."""
    up_cpu = t.up_server["cpu_seconds"]
    down_cpu = t.down_server["cpu_seconds"]
    return {
        "upload_mib_s": mib_s(size, t.up["seconds"]),
        "download_mib_s": mib_s(size, t.down["seconds"]),
        "upload_seconds": t.up["seconds"],
        "upload_send_seconds": t.up["send_seconds"],
        "upload_response_after_last_byte_seconds": t.up["response_after_last_byte_seconds"],
        "upload_body_bytes": t.up["body_bytes"],
        "download_seconds": t.down["seconds"],
        "download_time_to_headers_seconds": t.down["time_to_headers_seconds"],
        "download_content_length": t.down["content_length"],
        "sha256_verified": True,
        "upload_server_cpu_seconds": up_cpu,
        "download_server_cpu_seconds": down_cpu,
        "upload_server": t.up_server,
        "download_server": t.down_server,
        "upload_mib_per_server_cpu_s": mib_s(size, up_cpu),
        "download_mib_per_server_cpu_s": mib_s(size, down_cpu),
        "upload_client_cpu_seconds": t.up["client_cpu_seconds"],
        "download_client_cpu_seconds": t.down["client_cpu_seconds"],
    }


def _ratios(transfer: dict[str, Any], raw: dict[str, Any]) -> dict[str, float]:
    """HTTP over raw format speed, and raw format over bare AES-GCM speed."""
    return {
        "upload_over_raw_encrypt": transfer["upload_mib_s"] / raw["format_encrypt_mib_s"],
        "download_over_raw_decrypt": transfer["download_mib_s"] / raw["format_decrypt_mib_s"],
        "raw_encrypt_over_bare_gcm": raw["format_encrypt_mib_s"] / raw["bare_gcm_encrypt_mib_s"],
        "raw_decrypt_over_bare_gcm": raw["format_decrypt_mib_s"] / raw["bare_gcm_decrypt_mib_s"],
    }


def _extras(t: Transfers, size: int, raw: dict[str, Any]) -> dict[str, Any]:
    """The lean-client download, the ranges and the parallel downloads, with their ratios:
    lean download over raw decrypt, end range over start range, parallel over one."""
    lean = t.extras["lean_download"]
    lean_mib_s = mib_s(size, lean["seconds"])
    extras: dict[str, Any] = {
        "lean_download_mib_s": lean_mib_s,
        "lean_download_over_raw_decrypt": lean_mib_s / raw["format_decrypt_mib_s"],
        # Over all `repeat` lean downloads, as is the client CPU.
        "lean_download_server_cpu_seconds": lean["server"]["cpu_seconds"] / lean["repeat"],
        "lean_download_client_cpu_seconds": lean["client_cpu_seconds"],  # the best one's
        "lean_download": lean,
    }
    if "ranged" in t.extras:
        extras["ranged"] = t.extras["ranged"]
    if "parallel" in t.extras:
        extras.update(_parallel(t.extras["parallel"], lean, size, lean_mib_s))
    if "tus_upload" in t.extras:
        tus = t.extras["tus_upload"]
        extras["tus_upload_mib_s"] = tus["mib_s"]
        extras["tus_upload_over_raw_encrypt"] = tus["mib_s"] / raw["format_encrypt_mib_s"]
        extras["tus_upload_mib_per_server_cpu_s"] = mib_s(size, tus["server"]["cpu_seconds"])
        extras["tus_upload"] = tus
    return extras


def _parallel(
    parallel: dict[str, Any], lean: dict[str, Any], size: int, lean_mib_s: float
) -> dict[str, Any]:
    """The parallel downloads' ratio to one, and what bounds it on this machine.

    A download's CPU (server + client, per GiB) should not grow when several run at once:
    *cpu_per_gib_parallel_over_one* near 1 means they scale, and the wall-clock ratio is
    then bounded by the cores: one lean download already keeps `cores_one` cores busy
    (the server's request thread, its read-ahead and the client), so N of them can go at
    most `cpus / cores_one` times as fast, N at most (*cpu_bound_on_ratio*)."""
    count, gib = parallel["count"], size / (1 << 30)
    one_cpu = lean["server"]["cpu_seconds"] / lean["repeat"] + lean["client_cpu_seconds"]
    rounds = parallel["rounds"]
    ratios = [r["aggregate_mib_s"] / lean_mib_s for r in rounds]
    own = [q for q, r in zip(ratios, rounds, strict=True) if r["one_worker_each"]]
    par_cpu = statistics.median(
        (r["server_cpu_seconds"] + r["client_cpu_seconds"]) / count for r in rounds
    )
    cpus = os.cpu_count() or 1
    cores_one = one_cpu / lean["seconds"]
    return {
        "parallel": parallel,
        "parallel_aggregate_over_one": parallel["aggregate_mib_s"] / lean_mib_s,
        "parallel_ratios": ratios,
        "parallel_rounds_one_worker_each": len(own),
        "parallel_ratio_one_worker_each_median": statistics.median(own) if own else None,
        "cpu_s_per_gib_one": one_cpu / gib,
        "cpu_s_per_gib_parallel": par_cpu / gib,
        "cpu_per_gib_parallel_over_one": par_cpu / one_cpu,
        "cores_one": cores_one,
        "cpu_bound_on_ratio": min(count, cpus / cores_one),
    }


def _memory(t: Transfers) -> dict[str, Any]:
    """Worker and master RSS in MiB: baseline, peak per transfer, VmHWM."""
    baseline = t.peaks["baseline"]["worker_kib"] / 1024
    up_peak = t.peaks["upload"]["worker_kib"] / 1024
    down_peak = t.peaks["download"]["worker_kib"] / 1024
    measured = [p["worker_kib"] / 1024 for name, p in t.peaks.items() if name != "startup"]
    return {
        "baseline_worker_rss_mib": baseline,
        "upload_peak_worker_rss_mib": up_peak,
        "download_peak_worker_rss_mib": down_peak,
        # Every phase: the extra downloads (lean, ranged, parallel) count too.
        "peak_increase_mib": max(measured) - baseline,
        "worker_vmhwm_before_transfers_mib": max(t.hwm_before_kib.values(), default=0) / 1024,
        "worker_vmhwm_mib": max(t.hwm_kib.values(), default=0) / 1024,
        "worker_vmhwm_by_pid_mib": {str(pid): kib / 1024 for pid, kib in t.hwm_kib.items()},
        "master_peak_rss_mib": max(p["master_kib"] for p in t.peaks.values()) / 1024,
        "peaks_by_phase_kib": t.peaks,
        "sample_interval_s": t.sample_interval,
    }


def build_results(
    size_mb: int,
    workers: int,
    threads: int,
    load_at_start: float,
    raw: dict[str, Any],
    t: Transfers,
    output: Path,
) -> dict[str, Any]:
    """The whole JSON document of one run of `size_mb` MiB (what the table shows, and more)."""
    size = size_mb * MIB
    transfer = _transfer(t, size)
    return {
        "units": "MiB = 2**20 bytes; speeds in MiB/s; RSS in MiB",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "size_mib": size_mb,
        "size_bytes": size,
        "workers": workers,
        "threads": threads,
        "machine": _machine(load_at_start),
        "transfer": transfer,
        "raw": raw,
        "ratios": _ratios(transfer, raw),
        "extra_downloads": _extras(t, size, raw),
        "server_memory": _memory(t),
        "results_path": str(output),
    }


def write_results(results: dict[str, Any], path: Path) -> None:
    """Write the JSON document to `path`, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


Rows = list[tuple[str, str]]


def _speed_rows(r: dict[str, Any]) -> Rows:
    """HTTP and raw speeds in MiB/s, then their ratios."""
    t, raw, ratio = r["transfer"], r["raw"], r["ratios"]
    return [
        ("HTTP upload   (POST /files/upload/)", f"{t['upload_mib_s']:9.1f} MiB/s"),
        ("HTTP download (GET .../download/)", f"{t['download_mib_s']:9.1f} MiB/s"),
        ("raw format encrypt (StreamEncryptor)", f"{raw['format_encrypt_mib_s']:9.1f} MiB/s"),
        ("raw format decrypt (DecryptingReader)", f"{raw['format_decrypt_mib_s']:9.1f} MiB/s"),
        ("bare AES-256-GCM encrypt, 1 MiB", f"{raw['bare_gcm_encrypt_mib_s']:9.1f} MiB/s"),
        ("bare AES-256-GCM decrypt, 1 MiB", f"{raw['bare_gcm_decrypt_mib_s']:9.1f} MiB/s"),
        ("SHA-256 (hashlib), 1 MiB", f"{raw['sha256_mib_s']:9.1f} MiB/s"),
        ("", ""),
        ("upload / raw encrypt", f"{ratio['upload_over_raw_encrypt']:9.2f}"),
        ("download / raw decrypt", f"{ratio['download_over_raw_decrypt']:9.2f}"),
        ("raw encrypt / bare GCM encrypt", f"{ratio['raw_encrypt_over_bare_gcm']:9.2f}"),
        ("raw decrypt / bare GCM decrypt", f"{ratio['raw_decrypt_over_bare_gcm']:9.2f}"),
    ]


def _extra_rows(x: dict[str, Any]) -> Rows:
    """The lean download, the ranged and the parallel figures and their ratios."""
    rows = [
        (
            f"HTTP download, lean client (best of {x['lean_download']['repeat']})",
            f"{x['lean_download_mib_s']:9.1f} MiB/s",
        ),
        ("lean download / raw decrypt", f"{x['lean_download_over_raw_decrypt']:9.2f}"),
        (
            "  server CPU (mean) / client CPU, lean",
            f"{x['lean_download_server_cpu_seconds']:.2f} s / "
            f"{x['lean_download_client_cpu_seconds']:.2f} s",
        ),
    ]
    if "ranged" in x:
        r = x["ranged"]
        rows += [
            (
                f"1 MiB range at start / end (median of {r['repeat']})",
                f"{r['start_median_ms']:7.1f} / {r['end_median_ms']:.1f} ms",
            ),
            ("range at end / range at start", f"{r['end_over_start']:9.2f}"),
        ]
    if "parallel" in x:
        rows += _parallel_rows(x)
    if "tus_upload" in x:
        rows += _tus_rows(x)
    return rows


def _parallel_rows(x: dict[str, Any]) -> Rows:
    """The parallel downloads: the median round, every round's ratio, and the CPU bound."""
    p = x["parallel"]
    cpu = ", ".join(f"{s:.2f}" for s in p["worker_cpu_seconds"].values())
    own = x["parallel_ratio_one_worker_each_median"]
    return [
        (
            f"{p['count']} parallel lean downloads (median of {p['repeat']})",
            f"{p['aggregate_mib_s']:9.1f} MiB/s in all",
        ),
        ("parallel aggregate / one lean download", f"{x['parallel_aggregate_over_one']:9.2f}"),
        ("  every round", ", ".join(f"{q:.2f}" for q in x["parallel_ratios"])),
        (
            "  rounds with a worker per download",
            f"{x['parallel_rounds_one_worker_each']} of {p['repeat']}"
            + (f", median {own:.2f}" if own is not None else ""),
        ),
        ("  CPU s of each worker, median round", cpu),
        (
            "  CPU s per GiB (server + client), one / parallel",
            f"{x['cpu_s_per_gib_one']:.2f} / {x['cpu_s_per_gib_parallel']:.2f}"
            f" (x{x['cpu_per_gib_parallel_over_one']:.2f})",
        ),
        (
            "  cores one download keeps busy; bound on ratio",
            f"{x['cores_one']:.2f}; {x['cpu_bound_on_ratio']:.2f}",
        ),
    ]


def _tus_rows(x: dict[str, Any]) -> Rows:
    """The tus upload's speed, its ratio, where its time went and its CPU."""
    t = x["tus_upload"]
    return [
        (
            f"tus upload, {t['chunk_bytes'] // MIB} MiB PATCHes ({t['patches']})",
            f"{x['tus_upload_mib_s']:9.1f} MiB/s",
        ),
        ("tus upload / raw encrypt", f"{x['tus_upload_over_raw_encrypt']:9.2f}"),
        (
            "  tus: sending / waiting for answers",
            f"{t['send_seconds']:.2f} s / {t['answer_wait_seconds']:.2f} s of {t['seconds']:.2f} s",
        ),
        (
            "  tus: last PATCH's wait / median other",
            f"{t['last_patch_wait_seconds']:.2f} s / {t['patch_median_wait_seconds'] * 1000:.0f} ms"
            f" (completion ~{t['read_back_estimate_seconds'] / t['seconds']:.0%})",
        ),
        (
            "  server CPU / client CPU, tus",
            f"{t['server']['cpu_seconds']:.2f} s / {t['client_cpu_seconds']:.2f} s",
        ),
    ]


def _cpu_rows(t: dict[str, Any]) -> Rows:
    """Server and client CPU seconds per transfer, page faults, MiB per CPU-second."""
    up, down = t["upload_server"], t["download_server"]
    return [
        (
            "server CPU per transfer (workers)",
            f"upload {t['upload_server_cpu_seconds']:.2f} s, "
            f"download {t['download_server_cpu_seconds']:.2f} s",
        ),
        (
            "  of which system (kernel) CPU",
            f"upload {up['system_cpu_seconds']:.2f} s, download {down['system_cpu_seconds']:.2f} s",
        ),
        (
            "server minor page faults per transfer",
            f"upload {up['minor_page_faults']:.0f}, download {down['minor_page_faults']:.0f}",
        ),
        (
            "server MiB per worker CPU-second",
            f"upload {t['upload_mib_per_server_cpu_s']:.1f}, "
            f"download {t['download_mib_per_server_cpu_s']:.1f}",
        ),
        (
            "client CPU per transfer",
            f"upload {t['upload_client_cpu_seconds']:.2f} s, "
            f"download {t['download_client_cpu_seconds']:.2f} s",
        ),
    ]


def _memory_rows(mem: dict[str, Any]) -> Rows:
    """Worker RSS baseline and peaks, VmHWM, master RSS, in MiB."""
    return [
        ("worker RSS baseline (before transfers)", f"{mem['baseline_worker_rss_mib']:9.1f} MiB"),
        ("worker RSS peak during upload", f"{mem['upload_peak_worker_rss_mib']:9.1f} MiB"),
        ("worker RSS peak during download", f"{mem['download_peak_worker_rss_mib']:9.1f} MiB"),
        ("worker RSS increase (max peak - baseline)", f"{mem['peak_increase_mib']:9.1f} MiB"),
        (
            "worker VmHWM before transfers / at end",
            f"{mem['worker_vmhwm_before_transfers_mib']:9.1f} / {mem['worker_vmhwm_mib']:.1f} MiB",
        ),
        ("master RSS peak", f"{mem['master_peak_rss_mib']:9.1f} MiB"),
    ]


def table_rows(r: dict[str, Any]) -> Rows:
    """(label, value) rows of the table; ("", "") is an empty line."""
    machine = r["machine"]
    load = "{:.2f} / {:.2f} ({} CPUs)".format(
        *machine["load_average_1min_start_end"], machine["cpu_count"]
    )
    blank = ("", "")
    return [
        ("file size", f"{r['size_mib']:.0f} MiB ({r['size_bytes']} bytes)"),
        (
            "server",
            f"gunicorn gthread, {r['workers']} worker(s) x {r['threads']} threads, loopback",
        ),
        blank,
        *_speed_rows(r),
        blank,
        *_extra_rows(r["extra_downloads"]),
        blank,
        *_cpu_rows(r["transfer"]),
        blank,
        *_memory_rows(r["server_memory"]),
        blank,
        ("1-min load average, start / end", load),
    ]


def print_table(r: dict[str, Any]) -> None:
    """Print the results table to stdout."""
    rows = table_rows(r)
    width = max(len(label) for label, _ in rows)
    print()
    print("securefiles transfer benchmark  (MiB = 2**20 bytes; speeds in MiB/s)")
    print("-" * (width + 34))
    for label, value in rows:
        print(f"{label:<{width}}  {value}" if label else "")
    print("-" * (width + 34))
    print(f"results written to {r['results_path']}")
