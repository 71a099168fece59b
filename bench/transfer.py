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
import hashlib
import io
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from Crypto import __version__ as pycryptodome_version  # noqa: E402
from Crypto.Cipher import AES  # noqa: E402

from sharing.crypto import (  # noqa: E402
    DecryptingReader,
    FileKey,
    StreamEncryptor,
    ciphertext_size,
    generate_key_entry,
)

MIB = 1 << 20
FEED_SIZE = 1024 * 1024  # what the upload handler is given per call (UPLOAD_CHUNK_SIZE)
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESULTS = ROOT / "bench" / "results" / "latest.json"
UUID_RE = re.compile(
    r"/files/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/download/"
)


def mib_s(nbytes: int, seconds: float) -> float:
    return nbytes / MIB / seconds if seconds > 0 else float("inf")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3, state, is index 0)."""
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
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[1]) == pid:  # field 4: ppid
                found.add(int(entry.name))
    return sorted(found)


def status_kib(pid: int, key: str) -> int | None:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM), in KiB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_counters(pids: list[int]) -> tuple[float, float, int]:
    """Summed (user CPU s, system CPU s, minor page faults) of processes (0 if gone)."""
    user = system = faults = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            faults += int(fields[7])  # field 10: minflt
            user += int(fields[11])  # field 14: utime, in clock ticks
            system += int(fields[12])  # field 15: stime
    return user / CLK_TCK, system / CLK_TCK, faults


def counter_delta(
    before: tuple[float, float, int], after: tuple[float, float, int]
) -> dict[str, float]:
    return {
        "user_cpu_seconds": after[0] - before[0],
        "system_cpu_seconds": after[1] - before[1],
        "cpu_seconds": (after[0] + after[1]) - (before[0] + before[1]),
        "minor_page_faults": after[2] - before[2],
    }


class RssSampler(threading.Thread):
    """Sample VmRSS of the gunicorn master and its workers every `interval` seconds.

    Peaks are kept per phase (the main thread sets `phase`): for the master, for any one
    worker, and for the sum over workers.
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
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


# ---------------------------------------------------------------------------- raw speeds


class _BlobSink:
    """Where the raw encryptor's sealed segments go: one preallocated, pre-touched blob,
    as the upload path writes each segment straight to its sink without keeping it."""

    def __init__(self, size: int) -> None:
        self._buffer = bytearray(b"\x00" * size)
        self._filled = 0

    def write(self, segment: memoryview) -> None:
        self._buffer[self._filled : self._filled + len(segment)] = segment
        self._filled += len(segment)

    def blob(self) -> bytes:
        return bytes(self._buffer[: self._filled])


def measure_raw(size: int, repeat: int) -> dict[str, Any]:
    """Format encrypt/decrypt of `size` bytes in memory, bare GCM and SHA-256 on 1 MiB.

    Each figure is the best of `repeat` passes: they are ceilings.
    """
    plaintext = os.urandom(size)
    key = FileKey.generate()
    enc_times, dec_times = [], []
    for _ in range(repeat):
        # Sealed segments go to a pre-touched blob (see _BlobSink), fed 1 MiB views.
        sink = _BlobSink(ciphertext_size(size))
        source = memoryview(plaintext)
        start = time.perf_counter()
        encryptor = StreamEncryptor(key)
        sink.write(memoryview(encryptor.header))
        for offset in range(0, size, FEED_SIZE):
            encryptor.update_into(source[offset : offset + FEED_SIZE], sink.write)
        encryptor.finalize_into(sink.write)
        enc_times.append(time.perf_counter() - start)
        blob = sink.blob()
        del sink

        start = time.perf_counter()
        count = 0
        for segment in DecryptingReader(io.BytesIO(blob), key).segments():
            count += len(segment)
        dec_times.append(time.perf_counter() - start)
        if count != size:
            raise AssertionError(f"raw decrypt returned {count} bytes, expected {size}")
        del blob

    buffers = max(1, size // MIB)
    buffer = plaintext[:MIB]
    del plaintext
    gcm_key = os.urandom(32)
    gcm_enc, gcm_dec, sha = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        for index in range(buffers):
            nonce = index.to_bytes(12, "big")
            AES.new(gcm_key, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(buffer)
        gcm_enc.append(time.perf_counter() - start)

        nonce = b"\xff" * 12
        sealed, tag = AES.new(gcm_key, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(buffer)
        start = time.perf_counter()
        for _index in range(buffers):
            AES.new(gcm_key, AES.MODE_GCM, nonce=nonce).decrypt_and_verify(sealed, tag)
        gcm_dec.append(time.perf_counter() - start)

        start = time.perf_counter()
        digest = hashlib.sha256()
        for _index in range(buffers):
            digest.update(buffer)
        sha.append(time.perf_counter() - start)

    gcm_bytes = buffers * MIB
    return {
        "format_encrypt_mib_s": mib_s(size, min(enc_times)),
        "format_decrypt_mib_s": mib_s(size, min(dec_times)),
        "bare_gcm_encrypt_mib_s": mib_s(gcm_bytes, min(gcm_enc)),
        "bare_gcm_decrypt_mib_s": mib_s(gcm_bytes, min(gcm_dec)),
        "sha256_mib_s": mib_s(gcm_bytes, min(sha)),
        "encrypt_feed_bytes": FEED_SIZE,
        "repeat": repeat,
    }


# ---------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def run_manage(env: dict[str, str], *args: str, timeout: float = 180) -> None:
    result = subprocess.run(  # noqa: S603 (fixed argv, our own interpreter)
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"manage.py {args[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


CREATE_USER = """
import os
from django.contrib.auth import get_user_model
get_user_model().objects.create_user(
    os.environ["BENCH_USERNAME"], password=os.environ["BENCH_PASSWORD"]
)
"""


def start_gunicorn(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).with_name("gunicorn")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gunicorn"]
    command += ["securefiles.wsgi", "-c", str(ROOT / "gunicorn.conf.py")]
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(  # noqa: S603 (fixed argv)
            command,
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so a stuck tree can be killed
        )


def wait_until_up(
    proc: subprocess.Popen[bytes], base: str, workers: int, log_path: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    probe = requests.Session()
    probe.trust_env = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{tail(log_path)}")
        with suppress(requests.RequestException):
            if probe.get(base + "/accounts/login/", timeout=2).status_code == 200:
                if len(children_of(proc.pid)) >= workers:
                    return
        time.sleep(0.1)
    raise TimeoutError(f"gunicorn did not answer within {timeout:.0f} s:\n{tail(log_path)}")


def stop_gunicorn(proc: subprocess.Popen[bytes], worker_pids: set[int]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # graceful: idle workers exit at once
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group we created, master alive
            proc.wait(timeout=10)
    for pid in worker_pids:  # a worker orphaned by a dying master: only if still ours
        fields = _stat_fields(pid)
        if fields and int(fields[2]) == proc.pid:  # field 5: process group
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def tail(path: Path, lines: int = 30) -> str:
    with suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# ---------------------------------------------------------------------------- client


class MultipartFileBody:
    """multipart/form-data body streamed from a file, with an exact length.

    requests sees `__len__` and sends Content-Length (no chunked encoding); urllib3 sends
    each item of `__iter__` with sendall, so the client holds one 1 MiB piece at a time.
    """

    def __init__(self, path: Path, fields: dict[str, str], filename: str) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.boundary = "----securefilesbench" + secrets.token_hex(16)
        parts = []
        for name, value in fields.items():
            parts.append(
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n"
            )
        parts.append(
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        self.preamble = "".join(parts).encode()
        self.epilogue = f"\r\n--{self.boundary}--\r\n".encode()
        self.first_byte_at: float | None = None
        self.last_byte_at: float | None = None

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self.preamble) + self.size + len(self.epilogue)

    def __iter__(self) -> Iterator[bytes]:
        self.first_byte_at = time.perf_counter()
        yield self.preamble
        with open(self.path, "rb") as source:
            while chunk := source.read(MIB):
                yield chunk
        yield self.epilogue
        self.last_byte_at = time.perf_counter()


def write_random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(MIB, remaining))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def login(session: requests.Session, base: str, username: str, password: str) -> None:
    url = base + "/accounts/login/"
    page = session.get(url, timeout=10)
    page.raise_for_status()
    token = session.cookies.get("csrftoken")
    if not token:
        raise RuntimeError("login page set no csrftoken cookie")
    response = session.post(
        url,
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": url},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login failed: HTTP {response.status_code}")


def upload(session: requests.Session, base: str, path: Path) -> dict[str, Any]:
    token = session.cookies.get("csrftoken")  # rotated by the login
    if token is None:
        raise RuntimeError("no CSRF cookie after logging in")
    body = MultipartFileBody(path, {"csrfmiddlewaretoken": token}, "bench.bin")
    request = requests.Request(
        "POST",
        base + "/files/upload/",
        data=body,
        headers={
            "Content-Type": body.content_type,
            "Content-Length": str(len(body)),
            "X-CSRFToken": token,
            "Referer": base + "/",
        },
    )
    prepared = session.prepare_request(request)
    if "Transfer-Encoding" in prepared.headers or prepared.headers["Content-Length"] != str(
        len(body)
    ):
        raise RuntimeError("the upload would not be sent with an exact Content-Length")
    client_cpu = time.process_time()
    response = session.send(prepared, allow_redirects=False, timeout=(5, 300))
    done = time.perf_counter()
    client_cpu = time.process_time() - client_cpu
    if response.status_code != 302:
        raise RuntimeError(f"upload failed: HTTP {response.status_code}\n{response.text[:800]}")
    assert body.first_byte_at is not None and body.last_byte_at is not None
    return {
        "seconds": done - body.first_byte_at,
        "send_seconds": body.last_byte_at - body.first_byte_at,
        "response_after_last_byte_seconds": done - body.last_byte_at,
        "body_bytes": len(body),
        "client_cpu_seconds": client_cpu,
    }


def find_file_id(session: requests.Session, base: str) -> str:
    page = session.get(base + "/", timeout=30)
    page.raise_for_status()
    ids = UUID_RE.findall(page.text)
    if len(set(ids)) != 1:
        raise RuntimeError(f"expected exactly one file on the home page, found {sorted(set(ids))}")
    return ids[0]


def download(session: requests.Session, base: str, file_id: str, size: int) -> dict[str, Any]:
    url = f"{base}/files/{file_id}/download/"
    digest = hashlib.sha256()
    received = 0
    client_cpu = time.process_time()
    start = time.perf_counter()
    with session.get(url, stream=True, timeout=(5, 120)) as response:
        headers_at = time.perf_counter()
        if response.status_code != 200:
            raise RuntimeError(f"download failed: HTTP {response.status_code}")
        length = response.headers.get("Content-Length")
        for chunk in response.iter_content(MIB):
            digest.update(chunk)
            received += len(chunk)
    done = time.perf_counter()
    return {
        "seconds": done - start,
        "time_to_headers_seconds": headers_at - start,
        "content_length": int(length) if length is not None else None,
        "received_bytes": received,
        "sha256": digest.hexdigest(),
        "client_cpu_seconds": time.process_time() - client_cpu,
    }


# ---------------------------------------------------------------------------- report


def cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    wanted = {"aes", "pclmulqdq", "vaes", "vpclmulqdq", "avx2", "avx512f", "sha_ni"}
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(wanted & set(line.split(":", 1)[1].split()))
    return []


def print_table(r: dict[str, Any]) -> None:
    t, raw, mem, ratio = r["transfer"], r["raw"], r["server_memory"], r["ratios"]
    rows: list[tuple[str, str]] = [
        ("file size", f"{r['size_mib']:.0f} MiB ({r['size_bytes']} bytes)"),
        (
            "server",
            f"gunicorn gthread, {r['workers']} worker(s) x {r['threads']} threads, loopback",
        ),
        ("", ""),
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
        ("", ""),
        (
            "server CPU per transfer (workers)",
            f"upload {t['upload_server_cpu_seconds']:.2f} s, "
            f"download {t['download_server_cpu_seconds']:.2f} s",
        ),
        (
            "  of which system (kernel) CPU",
            f"upload {t['upload_server']['system_cpu_seconds']:.2f} s, "
            f"download {t['download_server']['system_cpu_seconds']:.2f} s",
        ),
        (
            "server minor page faults per transfer",
            f"upload {t['upload_server']['minor_page_faults']:.0f}, "
            f"download {t['download_server']['minor_page_faults']:.0f}",
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
        ("", ""),
        ("worker RSS baseline (before transfers)", f"{mem['baseline_worker_rss_mib']:9.1f} MiB"),
        ("worker RSS peak during upload", f"{mem['upload_peak_worker_rss_mib']:9.1f} MiB"),
        ("worker RSS peak during download", f"{mem['download_peak_worker_rss_mib']:9.1f} MiB"),
        ("worker RSS increase (peak - baseline)", f"{mem['peak_increase_mib']:9.1f} MiB"),
        (
            "worker VmHWM before transfers / at end",
            f"{mem['worker_vmhwm_before_transfers_mib']:9.1f} / {mem['worker_vmhwm_mib']:.1f} MiB",
        ),
        ("master RSS peak", f"{mem['master_peak_rss_mib']:9.1f} MiB"),
        ("", ""),
        (
            "1-min load average, start / end",
            "{:.2f} / {:.2f} ({} CPUs)".format(
                *r["machine"]["load_average_1min_start_end"], r["machine"]["cpu_count"]
            ),
        ),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    print("securefiles transfer benchmark  (MiB = 2**20 bytes; speeds in MiB/s)")
    print("-" * (width + 34))
    for label, value in rows:
        print(f"{label:<{width}}  {value}" if label else "")
    print("-" * (width + 34))
    print(f"results written to {r['results_path']}")


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.workers < 1 or args.threads < 1 or args.raw_repeat < 1:
        parser.error("sizes and counts must be >= 1")
    return args


def _on_deadline(signum: int, frame: object) -> None:
    raise TimeoutError("benchmark deadline reached")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = args.size_mb * MIB
    signal.signal(signal.SIGALRM, _on_deadline)
    signal.alarm(args.deadline)

    load_at_start = os.getloadavg()
    if load_at_start[0] > 1.0:
        log(f"warning: load average {load_at_start[0]:.2f} before the run; figures will be noisy")
    tmp = Path(tempfile.mkdtemp(prefix="securefiles-bench-"))
    proc: subprocess.Popen[bytes] | None = None
    sampler: RssSampler | None = None
    succeeded = False
    try:
        log(f"temp dir {tmp}; writing {args.size_mb} MiB of random data")
        source = tmp / "plain.bin"
        source_sha256 = write_random_file(source, size)

        log(f"raw format and GCM speed, {args.size_mb} MiB x {args.raw_repeat} passes")
        raw = measure_raw(size, args.raw_repeat)

        port = free_port()
        base = f"http://{HOST}:{port}"
        username, password = "bench", secrets.token_urlsafe(24)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "securefiles.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ENCRYPTION_KEYS": generate_key_entry("bench"),
            "DEBUG": "False",
            "ALLOWED_HOSTS": HOST,
            "HTTPS": "False",
            "CSRF_TRUSTED_ORIGINS": "",
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "MEDIA_ROOT": str(tmp / "media"),
            "MAX_UPLOAD_MB": str(args.size_mb + 16),  # room for the multipart framing
            "LOG_LEVEL": "WARNING",
            "GUNICORN_BIND": f"{HOST}:{port}",
            "GUNICORN_WORKERS": str(args.workers),
            "GUNICORN_THREADS": str(args.threads),
            "GUNICORN_TIMEOUT": "600",
            "BENCH_USERNAME": username,
            "BENCH_PASSWORD": password,
            "PYTHONUNBUFFERED": "1",
        }
        log("migrate and create the user")
        run_manage(env, "migrate", "--noinput", "--verbosity", "0")
        run_manage(env, "shell", "--no-imports", "-c", CREATE_USER)

        log(f"starting gunicorn on {base}")
        gunicorn_log = tmp / "gunicorn.log"
        proc = start_gunicorn(env, gunicorn_log)
        wait_until_up(proc, base, args.workers, gunicorn_log)
        sampler = RssSampler(proc.pid)
        sampler.start()

        session = requests.Session()
        session.trust_env = False  # no proxy, no netrc: loopback only
        login(session, base, username, password)
        session.get(base + "/", timeout=30).raise_for_status()  # warm the worker
        time.sleep(0.3)
        sampler.phase = "baseline"
        sampler.sample()
        time.sleep(0.2)
        sampler.sample()

        workers = children_of(proc.pid)
        # VmHWM already includes the login: Argon2 (Django's default cost) takes ~100 MiB.
        hwm_before_kib = {pid: status_kib(pid, "VmHWM") or 0 for pid in workers}
        counters_before = proc_counters(workers)
        log("upload")
        sampler.phase = "upload"
        up = upload(session, base, source)
        up_server = counter_delta(counters_before, proc_counters(workers))
        sampler.phase = "between"
        file_id = find_file_id(session, base)

        log("download")
        counters_before = proc_counters(workers)
        sampler.phase = "download"
        down = download(session, base, file_id, size)
        down_server = counter_delta(counters_before, proc_counters(workers))
        sampler.phase = "after"
        sampler.sample()

        if down["content_length"] != size:
            raise AssertionError(f"Content-Length {down['content_length']} != {size}")
        if down["received_bytes"] != size or down["sha256"] != source_sha256:
            raise AssertionError("downloaded bytes differ from the uploaded file")

        hwm_kib = {pid: status_kib(pid, "VmHWM") or 0 for pid in children_of(proc.pid)}
        if children_of(proc.pid) != workers:
            log(f"warning: workers changed during the run ({workers} -> {sorted(hwm_kib)})")
        sampler.stop()
        peaks = sampler.peaks

        upload_s = mib_s(size, up["seconds"])
        download_s = mib_s(size, down["seconds"])
        up_cpu = up_server["cpu_seconds"]
        down_cpu = down_server["cpu_seconds"]
        baseline = peaks["baseline"]["worker_kib"] / 1024
        up_peak = peaks["upload"]["worker_kib"] / 1024
        down_peak = peaks["download"]["worker_kib"] / 1024
        results: dict[str, Any] = {
            "units": "MiB = 2**20 bytes; speeds in MiB/s; RSS in MiB",
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "size_mib": args.size_mb,
            "size_bytes": size,
            "workers": args.workers,
            "threads": args.threads,
            "machine": {
                # Other work on the machine skews everything; the run adds ~2 itself.
                "load_average_1min_start_end": [load_at_start[0], os.getloadavg()[0]],
                "cpu": cpu_model(),
                "cpu_count": os.cpu_count(),
                "cpu_flags": cpu_flags(),
                "python": platform.python_version(),
                "pycryptodome": pycryptodome_version,
            },
            "transfer": {
                "upload_mib_s": upload_s,
                "download_mib_s": download_s,
                "upload_seconds": up["seconds"],
                "upload_send_seconds": up["send_seconds"],
                "upload_response_after_last_byte_seconds": up["response_after_last_byte_seconds"],
                "upload_body_bytes": up["body_bytes"],
                "download_seconds": down["seconds"],
                "download_time_to_headers_seconds": down["time_to_headers_seconds"],
                "download_content_length": down["content_length"],
                "sha256_verified": True,
                "upload_server_cpu_seconds": up_cpu,
                "download_server_cpu_seconds": down_cpu,
                "upload_server": up_server,
                "download_server": down_server,
                "upload_mib_per_server_cpu_s": mib_s(size, up_cpu),
                "download_mib_per_server_cpu_s": mib_s(size, down_cpu),
                "upload_client_cpu_seconds": up["client_cpu_seconds"],
                "download_client_cpu_seconds": down["client_cpu_seconds"],
            },
            "raw": raw,
            "ratios": {
                "upload_over_raw_encrypt": upload_s / raw["format_encrypt_mib_s"],
                "download_over_raw_decrypt": download_s / raw["format_decrypt_mib_s"],
                "raw_encrypt_over_bare_gcm": raw["format_encrypt_mib_s"]
                / raw["bare_gcm_encrypt_mib_s"],
                "raw_decrypt_over_bare_gcm": raw["format_decrypt_mib_s"]
                / raw["bare_gcm_decrypt_mib_s"],
            },
            "server_memory": {
                "baseline_worker_rss_mib": baseline,
                "upload_peak_worker_rss_mib": up_peak,
                "download_peak_worker_rss_mib": down_peak,
                "peak_increase_mib": max(up_peak, down_peak) - baseline,
                "worker_vmhwm_before_transfers_mib": max(hwm_before_kib.values(), default=0) / 1024,
                "worker_vmhwm_mib": max(hwm_kib.values(), default=0) / 1024,
                "worker_vmhwm_by_pid_mib": {str(pid): kib / 1024 for pid, kib in hwm_kib.items()},
                "master_peak_rss_mib": max(p["master_kib"] for p in peaks.values()) / 1024,
                "peaks_by_phase_kib": peaks,
                "sample_interval_s": sampler.interval,
            },
            "results_path": str(args.output),
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        print_table(results)
        succeeded = True
        return 0
    finally:
        signal.alarm(0)
        if sampler is not None:
            sampler.stop()
        if proc is not None:
            workers_seen = sampler.workers_seen if sampler is not None else set()
            stop_gunicorn(proc, workers_seen | set(children_of(proc.pid)))
            if not succeeded or proc.returncode not in (0, None):
                log(
                    f"gunicorn exit code {proc.returncode}; log tail:\n{tail(tmp / 'gunicorn.log')}"
                )
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
