"""A real clamd (Debian's clamav-daemon) for the scanning tests, on a Unix socket.

Everything lives in a TemporaryDirectory under /dev/shm (memory-backed): the socket, the
clamd.conf, the signature database and clamd's own TemporaryDirectory, where it spools
INSTREAM data (plaintext). The database is made here, with no download: one body
signature (.ndb) of the EICAR test string, so EICAR anywhere in a file is found.
StreamMaxLength, MaxFileSize and MaxScanSize are 2 MiB, small enough for the over-limit
tests, and AlertExceedsMax is on (README, "Malware scanning"). No clamd installed is a
failure, not a skip (.ci/run installs it).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# The EICAR anti-malware test file (https://www.eicar.org/download-anti-malware-testfile/),
# 68 bytes; every scanner reports it, and it does nothing.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
# The name our database gives it; clamd adds ".UNOFFICIAL" for an unsigned database.
SIGNATURE = "Securefiles.Test.EICAR.UNOFFICIAL"
STREAM_MAX_BYTES = 2 * 1024 * 1024
CLAMD = "/usr/sbin/clamd"
READY_WITHIN_SECONDS = 60  # loading one signature takes about a second


class Clamd:
    """One clamd process on ``socket_path``; ``stop()`` kills it (SIGKILL, as a crash),
    ``start()`` starts it again on the same socket."""

    def __init__(self, root: Path, signatures: dict[str, bytes] | None = None) -> None:
        """``signatures``: more body signatures (name: bytes found anywhere) to load."""
        self.root = root
        self.socket_path = str(root / "clamd.sock")
        self._process: subprocess.Popen[bytes] | None = None
        (root / "tmp").mkdir()
        (root / "db").mkdir()
        (root / "db" / "securefiles-test.ndb").write_text(
            f"Securefiles.Test.EICAR:0:*:{EICAR.hex()}\n"
            + "".join(f"{name}:0:*:{body.hex()}\n" for name, body in (signatures or {}).items())
        )
        (root / "clamd.conf").write_text(
            "\n".join(
                [
                    "Foreground yes",
                    f"LocalSocket {self.socket_path}",
                    f"DatabaseDirectory {root / 'db'}",
                    f"TemporaryDirectory {root / 'tmp'}",
                    f"StreamMaxLength {STREAM_MAX_BYTES}",
                    f"MaxFileSize {STREAM_MAX_BYTES}",
                    # As the README asks: an archive clamd cannot scan whole (too deep,
                    # inflating past MaxScanSize) is reported, not answered "OK".
                    f"MaxScanSize {STREAM_MAX_BYTES}",
                    "AlertExceedsMax yes",
                    # As the README asks: password-protected content is reported
                    # (Heuristics.Encrypted.*), so it is never marked "scanned".
                    "AlertEncrypted yes",
                    f"LogFile {root / 'clamd.log'}",
                    "SelfCheck 0",
                    "",
                ]
            )
        )

    def start(self) -> None:
        if shutil.which(CLAMD) is None:
            pytest.fail(f"{CLAMD} is missing: apt-get install clamav-daemon (.ci/run does)")
        self._process = subprocess.Popen(  # noqa: S603 (a fixed command line)
            [CLAMD, "-c", str(self.root / "clamd.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_WITHIN_SECONDS
        while not self._answers_ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "clamd.log").read_text(errors="replace")
                pytest.fail(f"clamd did not start:\n{log[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)  # a frozen clamd dies as well
            self._process.kill()
            self._process.wait()
        Path(self.socket_path).unlink(missing_ok=True)

    def freeze(self) -> None:
        """SIGSTOP: clamd's socket still accepts connections, but nothing answers (a hung
        daemon: the portal's CLAMD_TIMEOUT_SECONDS runs out)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def spooled(self) -> list[Path]:
        """Files clamd left in its TemporaryDirectory."""
        return [p for p in (self.root / "tmp").rglob("*") if p.is_file()]

    def _answers_ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(self.socket_path)
                sock.sendall(b"zPING\x00")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False


def clamd_in_shm(signatures: dict[str, bytes] | None = None) -> Iterator[Clamd]:
    """A started Clamd in a fresh directory under /dev/shm, stopped and removed after."""
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="securefiles-clamd-") as root:
        daemon = Clamd(Path(root), signatures)
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()


@pytest.fixture(scope="session")
def clamd_daemon() -> Iterator[Clamd]:
    """The session's clamd, shared by the tests that do not stop it."""
    yield from clamd_in_shm()


@pytest.fixture
def own_clamd() -> Iterator[Clamd]:
    """A clamd for one test, which may stop (kill) and restart it."""
    yield from clamd_in_shm()
