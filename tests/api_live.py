"""A live portal for the API's live tests: gunicorn on loopback with a user and a token."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.live_gunicorn import ROOT, create_user, free_port, manage, running_gunicorn, server_env

PASSWORD = "Quill-Harbor-7-Lantern"


def live_token(env: dict[str, str], username: str, scopes: str = "read,write,share") -> str:
    """A new access token of ``username`` in the portal of ``env`` (made by the service,
    as the account page makes it); the raw token."""
    code = (
        "from django.contrib.auth.models import User; from accounts import services; "
        "from audit.actors import SYSTEM; "
        f"print(services.token_create(user=User.objects.get(username={username!r}), "
        f"name='live', scopes={scopes.split(',')!r}, expires_in_days=1, actor=SYSTEM)[1])"
    )
    result = subprocess.run(  # noqa: S603  (our own interpreter and manage.py)
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class LivePortal:
    base: str
    env: dict[str, str]
    log: Path


@contextmanager
def live_portal(tmp: Path, **settings: str) -> Iterator[LivePortal]:
    """A migrated portal with users alice and bob under gunicorn; stopped on exit."""
    env = server_env(tmp, free_port(), **settings)
    manage(env, "migrate", "--noinput")
    create_user(env, "alice", PASSWORD)
    create_user(env, "bob", PASSWORD)
    log = tmp / "gunicorn.log"
    with running_gunicorn(env, log) as base:
        yield LivePortal(base, env, log)
