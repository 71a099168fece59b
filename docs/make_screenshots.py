"""Regenerate the screenshots in docs/screenshots/ (desktop and phone widths).

    .venv/bin/python docs/make_screenshots.py

Serves the portal with gunicorn on loopback against a throwaway database and media
folder, fills it with a few example files, and photographs the main pages with Debian's
Chromium driven by Playwright. Nothing leaves the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SIZES = {"desktop": (1280, 860), "phone": (390, 844)}
PASSWORD = "correct horse battery staple"

sys.path.insert(0, str(ROOT))
from sharing.crypto import generate_key_entry  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(workdir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "SECRET_KEY": "screenshots-" + os.urandom(16).hex(),
        "ENCRYPTION_KEYS": generate_key_entry("shots"),
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "MEDIA_ROOT": str(workdir / "media"),
        "DEBUG": "False",
        "ALLOWED_HOSTS": "127.0.0.1",
        "USER_QUOTA_MB": "500",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
    }


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


SEED = f"""
from django.contrib.auth.models import User
for name in ("alice", "bob"):
    User.objects.create_user(name, name + "@example.org", password={PASSWORD!r})
"""


def wait_for(url: str, process: subprocess.Popen) -> None:
    for _ in range(100):
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited")
        try:
            urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 (loopback)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def upload_examples(page: Page, workdir: Path) -> None:
    examples = {
        "Engagement letter – Müller GmbH.pdf": b"%PDF-1.5\n" + os.urandom(180_000),
        "Discharge summary 2026-11.docx": os.urandom(64_000),
        "Incident timeline.csv": b"time,host,event\n" * 2000,
        "Scan of passport.jpg": os.urandom(1_400_000),
    }
    paths = []
    for name, data in examples.items():
        path = workdir / name
        path.write_bytes(data)
        paths.append(str(path))
    page.set_input_files("#id_file", paths)
    page.click("#upload-submit")  # files wait for Upload, with the options shown
    expect(page.locator(".upload-item.done")).to_have_count(4, timeout=30_000)


def shoot(page: Page, name: str) -> None:
    for label, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(OUT / f"{name}-{label}.png"), full_page=True)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="securefiles-shots-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = environment(workdir, port)
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "shell", "-c", SEED)
        server = subprocess.Popen(  # noqa: S603 (fixed argv)
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "securefiles.wsgi",
                "-c",
                "gunicorn.conf.py",
                "--access-logfile",
                "/dev/null",
            ],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{base}/accounts/login/", server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page()
                page.goto(f"{base}/accounts/login/")
                shoot(page, "login")
                log_in(page, base, "alice")
                upload_examples(page, workdir)
                shoot(page, "upload-progress")
                page.goto(base + "/")
                shoot(page, "files")
                page.click("text=Details >> nth=0")
                page.fill("#id_username", "bob")
                page.click("button:text-is('Share')")
                page.fill("#id_password", "s3cret-link")
                page.fill("#id_max_downloads", "3")
                page.click("button:text-is('Create link')")
                shoot(page, "file-page")
                link = page.input_value("#new-link-url")
                visitor = browser.new_page()
                visitor.goto(link)
                shoot(visitor, "share-landing")
                visitor.goto(base + "/s/" + "x" * 43 + "/")
                shoot(visitor, "not-found")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    print("\n".join(sorted(p.name for p in OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
