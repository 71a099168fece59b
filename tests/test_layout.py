"""The layers run one way, as the README's "Code layout" says, and nothing imports upward.

crypto <- storage <- services and selectors <- views, admin, commands; between apps
throttle and audit <- accounts <- sharing; securefiles.lib imports no app. Read from the
source with ast, so a new upward import fails here before it becomes a cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(folder: str) -> dict[str, set[str]]:
    """Every module a package's files import (absolute names), by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = _absolute(path, node.level, node.module or "")
                names.add(module)
                names.update(f"{module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


def _absolute(path: Path, level: int, module: str) -> str:
    """The absolute name of a (possibly relative) `from ... import`'s module."""
    if not level:
        return module
    package = path.relative_to(ROOT).with_suffix("").parts[:-level]
    return ".".join([*package, module] if module else package)


def _offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path} imports {name}"
        for path, names in _imports(folder).items()
        for name in sorted(names)
        if name.startswith(forbidden)
    ]


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("throttle", ("audit", "accounts", "sharing", "filerequests", "api")),
        ("audit", ("accounts", "sharing", "filerequests", "throttle", "api")),
        ("accounts", ("sharing", "filerequests", "api")),
        # The HTTP API sits above sharing: nothing below it imports it.
        ("sharing", ("api", "filerequests")),
        # File requests sit above sharing (its files_recording signal calls them back).
        ("filerequests", ("api",)),
        (
            "filerequests/services.py",
            ("filerequests.views", "filerequests.admin", "filerequests.receivers"),
        ),
        ("filerequests/selectors.py", ("filerequests.services", "filerequests.views")),
        # Inside accounts too: middleware and the admin site do not reach into views.
        ("accounts/middleware.py", ("accounts.views", "accounts.admin")),
        ("accounts/admin_site.py", ("accounts.views",)),
        ("accounts/services.py", ("accounts.views", "accounts.admin", "accounts.middleware")),
        ("securefiles/lib", ("accounts", "audit", "sharing", "throttle")),
        # The format is pure Python: readable and testable without Django.
        (
            "sharing/crypto",
            ("django", "accounts", "audit", "throttle", "securefiles")
            + tuple(f"sharing.{name}" for name in ("storage", "services", "selectors", "models"))
            + tuple(f"sharing.{name}" for name in ("views", "admin", "management")),
        ),
        (
            "sharing/storage",
            ("sharing.services", "sharing.selectors", "sharing.views", "sharing.admin"),
        ),
        ("sharing/services", ("sharing.views", "sharing.admin", "sharing.management")),
        ("sharing/selectors.py", ("sharing.services", "sharing.views", "sharing.admin")),
    ],
)
def test_nothing_imports_upward(folder: str, forbidden: tuple[str, ...]) -> None:
    if folder.endswith(".py"):
        names = _imports(str(Path(folder).parent))[folder]
        offenders = [f"{folder} imports {n}" for n in sorted(names) if n.startswith(forbidden)]
    else:
        offenders = _offenders(folder, forbidden)

    assert offenders == []


def test_views_admin_and_commands_never_record_audit_entries_themselves() -> None:
    # Every audit entry is written by a service, with the write it records.
    folders = (
        "sharing/views",
        "sharing/admin",
        "sharing/management",
        "sharing/signals.py",
        "accounts/views.py",
        "accounts/admin.py",
        "accounts/signals.py",
        "accounts/middleware.py",
        "audit/admin.py",
        "securefiles/middleware.py",
        "api",
        "filerequests/views",
        "filerequests/admin.py",
        "filerequests/receivers.py",
    )
    offenders = []
    for folder in folders:
        paths = [ROOT / folder] if folder.endswith(".py") else (ROOT / folder).rglob("*.py")
        for path in paths:
            if "audit_record" in path.read_text():
                offenders.append(str(path.relative_to(ROOT)))

    assert offenders == []


ORM_WRITE = (
    r"\.save\(",
    r"\.delete\(",
    r"\.create\(",
    r"\.update\(",
    r"bulk_create\(",
    r"bulk_update\(",
)


def test_views_admin_commands_and_receivers_write_no_rows_themselves() -> None:
    # Every write goes through a service (storage.delete of a blob is not a row).

    pattern = re.compile("|".join(ORM_WRITE))
    folders = ("sharing/views", "sharing/admin", "sharing/management", "accounts/admin.py")
    offenders = []
    for folder in (
        *folders,
        "accounts/views.py",
        "accounts/signals.py",
        "sharing/signals.py",
        "api",
        "filerequests/views",
        "filerequests/admin.py",
        "filerequests/receivers.py",
    ):
        paths = [ROOT / folder] if folder.endswith(".py") else (ROOT / folder).rglob("*.py")
        for path in paths:
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                code = line.split("#", 1)[0]
                if pattern.search(code) and "objects." in code:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")

    assert offenders == []
