"""The portal refuses to start without usable master keys, and says how to make one.

Each test runs a fresh process, as an operator would: ``manage.py check`` (and so migrate
and runserver), and importing the WSGI module (what gunicorn does, running no checks).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from sharing.crypto import generate_key_entry

ROOT = Path(settings.BASE_DIR)
GOOD = generate_key_entry("k1")
OTHER = generate_key_entry("k2")
ENTRY = re.compile(r"k9:[A-Za-z0-9_-]{43}=")
UNSET = None


def _env(keys: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["SECRET_KEY"] = "settings-test-secret-key-0123456789-abcdefghijklmnop"
    env["DJANGO_SETTINGS_MODULE"] = "securefiles.settings"
    env.pop("ENCRYPTION_KEYS", None)
    if keys is not None:
        env["ENCRYPTION_KEYS"] = keys
    return env


def _start(args: tuple[str, ...], keys: str | None) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603  (our own interpreter and manage.py, no shell)
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(keys),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _run(*args: str, keys: str | None) -> subprocess.CompletedProcess[str]:
    return _finish(_start(args, keys))


CHECK = ("manage.py", "check")
IMPORT_WSGI = ("-c", "import securefiles.wsgi")
GENERATE = ("manage.py", "generate_encryption_key", "--id")


def _secret_of(entry: str) -> str:
    return entry.split(":", 1)[1]


def _weak(key_id: str) -> str:
    passphrase = b"correct horse battery staple 123"  # 32 bytes, but typed by a human
    return f"{key_id}:{base64.urlsafe_b64encode(passphrase).decode()}"


BAD_KEYS = {
    "missing": UNSET,
    "empty": "",
    "no id (the prototype's raw key)": "1234567890123456",
    "short key": "k1:1234567890123456",
    "not base64": "k1:!!!!not-base64!!!!",
    "duplicate ids": f"{GOOD},k1:{_secret_of(OTHER)}",
    "human-typed key": _weak("k1"),
}
WSGI_CASES = ["missing", "short key", "duplicate ids"]


@pytest.fixture(scope="module")
def ran() -> dict[tuple[tuple[str, ...], str | None], subprocess.CompletedProcess[str]]:
    """Every process of this module, started at once (each one is a second of start-up)."""
    runs = [(CHECK, keys) for keys in BAD_KEYS.values()]
    runs += [(IMPORT_WSGI, BAD_KEYS[name]) for name in WSGI_CASES]
    runs += [(CHECK, f"{GOOD},{OTHER}"), (IMPORT_WSGI, f"{GOOD},{OTHER}")]
    runs += [((*GENERATE, "k9"), UNSET), ((*GENERATE, "bad id!"), UNSET)]
    started = {run: _start(*run) for run in runs}
    return {run: _finish(process) for run, process in started.items()}


def _assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "ENCRYPTION_KEYS" in output
    assert "generate_encryption_key" in output
    for entry in (GOOD, OTHER):  # never echo key material into a log
        assert _secret_of(entry) not in output


@pytest.mark.parametrize("keys", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_it_fails_the_system_check_without_usable_keys(ran, keys) -> None:
    _assert_refused(ran[CHECK, keys])


@pytest.mark.parametrize("name", ["missing", "short key", "duplicate ids"])
def test_it_refuses_to_load_the_wsgi_application_without_usable_keys(ran, name) -> None:
    keys = BAD_KEYS[name]
    result = ran[IMPORT_WSGI, keys]

    _assert_refused(result)
    assert "ImproperlyConfigured" in result.stderr


def test_it_passes_the_checks_and_loads_with_good_keys(ran) -> None:
    keys = f"{GOOD},{OTHER}"

    check, wsgi = ran[CHECK, keys], ran[IMPORT_WSGI, keys]

    assert check.returncode == 0, check.stderr
    assert "no issues" in check.stdout
    assert wsgi.returncode == 0, wsgi.stderr


def test_it_generates_a_key_with_no_key_configured(ran) -> None:
    generated = ran[(*GENERATE, "k9"), UNSET]

    assert generated.returncode == 0, generated.stderr
    entry = generated.stdout.strip()
    assert ENTRY.fullmatch(entry), entry
    assert len(base64.urlsafe_b64decode(_secret_of(entry))) == 32
    check = _run(*CHECK, keys=entry)
    assert check.returncode == 0, check.stderr


def test_it_refuses_to_generate_a_key_with_a_bad_id(ran) -> None:
    result = ran[(*GENERATE, "bad id!"), UNSET]

    assert result.returncode != 0
    assert result.stdout.strip() == ""
