"""The `securefiles` command (client/) against real gunicorn, as a user runs it.

A put larger than one chunk is killed mid-upload and run again: it continues the same
upload and the file arrives byte for byte. A get is killed mid-download: no file under
its final name, and the next run resumes with a Range and verifies the SHA-256. ls, share,
link and rm do what they say; errors are one line with a documented exit code. The kill
points are made by a stalling proxy (tests/stall_proxy.py), not by timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.api_live import LivePortal, live_portal, live_token
from tests.stall_proxy import StallProxy

MiB = 1024 * 1024
CLI = Path(sys.executable).parent / "securefiles"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    with live_portal(tmp_path_factory.mktemp("cli-live")) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(portal: LivePortal) -> Iterator[StallProxy]:
    port = int(portal.base.rsplit(":", 1)[1])
    stalling = StallProxy(port)
    yield stalling
    stalling.close()


@pytest.fixture
def home(tmp_path: Path, portal: LivePortal, proxy: StallProxy) -> dict[str, str]:
    """The CLI's environment, logged in as alice through the proxy (its own config dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREFILES_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    token = live_token(portal.env, "alice")
    login = _run(env | {"SECUREFILES_TOKEN": token}, "login", f"http://127.0.0.1:{proxy.port}")
    assert login.returncode == 0, login.stderr
    return env


def _run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603  (the installed command, fixed arguments)
        [str(CLI), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _start(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603
        [str(CLI), *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _kill_when_stalled(
    proxy: StallProxy, process: subprocess.Popen, written: Path | None = None
) -> None:
    """Kill ``process`` once the proxy holds its transfer (and, for a download, once the
    client has written some of what passed to ``written``)."""
    assert proxy.stalled.wait(60), "the transfer never reached the stall point"
    deadline = time.monotonic() + 30
    while written is not None and time.monotonic() < deadline:
        if written.exists() and written.stat().st_size >= MiB:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    proxy.release()  # the server sees its client gone


def test_login_stores_the_token_for_its_owner_only(home: dict[str, str]) -> None:
    path = Path(home["XDG_CONFIG_HOME"]) / "securefiles" / "config.json"

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["token"].startswith("sf_")


def test_put_killed_mid_upload_continues_where_it_stopped(
    home: dict[str, str], proxy: StallProxy, tmp_path: Path
) -> None:
    data = secrets.token_bytes(20 * MiB + 12345)  # three 8 MiB chunks
    source = tmp_path / "contract.bin"
    source.write_bytes(data)
    proxy.stall_after(up=12 * MiB)  # the first chunk passes, the second is cut

    first = _start(home, "put", str(source))
    _kill_when_stalled(proxy, first)
    remembered = json.loads(
        (Path(home["XDG_CONFIG_HOME"]) / "securefiles/uploads.json").read_text()
    )
    [upload_url] = remembered.values()
    second = _run(home, "--json", "put", str(source))

    assert second.returncode == 0, second.stderr
    [done] = json.loads(second.stdout)
    assert upload_url.rstrip("/").endswith(done["id"])  # the same upload, continued
    listed = json.loads(_run(home, "ls", "--json").stdout)
    assert {"id": done["id"], "name": "contract.bin", "size": len(data)}.items() <= next(
        item for item in listed if item["id"] == done["id"]
    ).items()
    fetched = _run(home, "get", done["id"], "-o", str(tmp_path / "back.bin"))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "back.bin").read_bytes() == data


def test_get_killed_mid_download_resumes_with_range(
    home: dict[str, str], proxy: StallProxy, tmp_path: Path
) -> None:
    data = secrets.token_bytes(9 * MiB + 777)
    source = tmp_path / "report.bin"
    source.write_bytes(data)
    [done] = json.loads(_run(home, "--json", "put", str(source)).stdout)
    target = tmp_path / "out" / "report.bin"
    target.parent.mkdir()
    proxy.stall_after(down=4 * MiB)

    part = target.with_name("report.bin.securefiles-part")
    first = _start(home, "get", done["id"], "-o", str(target))
    _kill_when_stalled(proxy, first, written=part)
    kept = part.stat().st_size
    assert not target.exists() and 0 < kept < len(data)
    del proxy.sent[:]
    second = _run(home, "get", done["id"], "-o", str(target))

    assert second.returncode == 0, second.stderr
    assert f"Range: bytes={kept}-".encode() in proxy.sent
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not part.exists()


def test_share_link_and_rm(home: dict[str, str], portal: LivePortal, tmp_path: Path) -> None:
    source = tmp_path / "minutes.txt"
    source.write_bytes(b"minutes of the board\n")
    [done] = json.loads(_run(home, "--json", "put", str(source)).stdout)

    shared = _run(home, "share", done["id"], "bob")
    link = _run(home, "link", done["id"], "--expires", "2", "--max-downloads", "1")
    bobs = live_token(portal.env, "bob", "read")
    seen_by_bob = requests.get(
        f"{portal.base}/api/v1/files/{done['id']}/content/",
        headers={"Authorization": f"Bearer {bobs}"},
        timeout=10,
    )
    landing = requests.get(link.stdout.strip(), timeout=10)
    removed = _run(home, "rm", done["id"])

    assert shared.returncode == 0 and "bob" in shared.stdout
    assert link.returncode == 0 and "/s/" in link.stdout
    assert landing.status_code == 200 and b"minutes.txt" in landing.content
    assert seen_by_bob.content == b"minutes of the board\n"
    assert removed.returncode == 0
    assert _run(home, "get", done["id"]).returncode == 4


def test_a_link_with_a_password_from_stdin(home: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "x.txt"
    source.write_bytes(b"x")
    [done] = json.loads(_run(home, "--json", "put", str(source)).stdout)

    made = subprocess.run(  # noqa: S603
        [str(CLI), "--json", "link", done["id"], "--password"],
        env=home, input="correct horse\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["has_password"] is True


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["get", "00000000-0000-0000-0000-000000000000"], 4),
        (["rm", "00000000-0000-0000-0000-000000000000"], 4),
        (["put", "/no/such/file"], 1),
        (["share", "00000000-0000-0000-0000-000000000000"], 2),
    ],
)
def test_errors_are_one_line_with_an_exit_code(
    home: dict[str, str], args: list[str], code: int
) -> None:
    result = _run(home, *args)

    assert result.returncode == code
    assert len(result.stderr.strip().splitlines()) == 1 or code == 2


def test_a_bad_token_is_exit_3(home: dict[str, str]) -> None:
    result = _run(home | {"SECUREFILES_TOKEN": "sf_" + "A" * 51}, "ls")

    assert result.returncode == 3
    assert result.stderr.startswith("securefiles: error:")
