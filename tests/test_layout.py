"""The layers run one way, as the README's "Code layout" says, and nothing imports upward.

crypto <- storage <- services and selectors <- views, admin, commands; between apps
throttle and audit <- accounts <- sharing; securefiles.lib imports no app. Read from the
source with ast, so a new upward import fails here before it becomes a cycle.
"""

from __future__ import annotations

import ast
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
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


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
        ("throttle", ("audit", "accounts", "sharing")),
        ("audit", ("accounts", "sharing", "throttle")),
        ("accounts", ("sharing",)),
        ("securefiles/lib", ("accounts", "audit", "sharing", "throttle")),
        # The format is pure Python: readable and testable without Django.
        ("sharing/crypto", ("django", "sharing.storage", "sharing.services", "sharing.models")),
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
    folders = ("sharing/views", "sharing/admin", "sharing/management", "accounts/views.py")
    offenders = []
    for folder in folders:
        paths = [ROOT / folder] if folder.endswith(".py") else (ROOT / folder).rglob("*.py")
        for path in paths:
            if "audit_record" in path.read_text():
                offenders.append(str(path.relative_to(ROOT)))

    assert offenders == []
