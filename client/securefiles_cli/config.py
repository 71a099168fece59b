"""Where the portal's URL and the token come from: SECUREFILES_URL and SECUREFILES_TOKEN
when set, else the config file that `securefiles login` writes
($XDG_CONFIG_HOME/securefiles/config.json, mode 0600 in a 0700 folder)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from securefiles_cli.errors import AUTH, CliError


def config_dir() -> Path:
    """$XDG_CONFIG_HOME/securefiles, or ~/.config/securefiles."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "securefiles"


def config_path() -> Path:
    return config_dir() / "config.json"


@dataclass(frozen=True)
class Settings:
    url: str  # the portal's base URL, no trailing slash
    token: str


def load() -> Settings:
    """The URL and token to use; CliError (exit AUTH) when either is missing."""
    stored: dict[str, str] = {}
    path = config_path()
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {path}: {exc}") from None
    url = os.environ.get("SECUREFILES_URL") or stored.get("url", "")
    token = os.environ.get("SECUREFILES_TOKEN") or stored.get("token", "")
    if not url or not token:
        raise CliError("not logged in: run `securefiles login URL`", AUTH)
    return Settings(url=url.rstrip("/"), token=token)


def save(settings: Settings) -> Path:
    """Write the config file, readable by its owner only (created 0600, never wider)."""
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = config_path()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an older, wider file is narrowed too
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": settings.url, "token": settings.token}, handle)
    return path


def state_path(name: str) -> Path:
    """A file the client keeps between runs (unfinished uploads), beside the config."""
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / name
