"""How an administrator's change reads in an audit entry: ``field: old -> new``."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)  # quoted, with any line break escaped: one line per change
    if isinstance(value, tuple):
        return "[" + ", ".join(_describe(item) for item in value) + "]"
    return "none" if value is None else str(value)


def state_changes(*, before: Any, after: Any) -> list[str]:
    """``field: old -> new`` for every field of two instances of one dataclass that
    differs, in the dataclass's field order (strings quoted, tuples as lists, None as
    "none"). Raises TypeError if ``before`` is not a dataclass instance."""
    changes = []
    for field in fields(before):
        old, new = getattr(before, field.name), getattr(after, field.name)
        if old != new:
            changes.append(f"{field.name}: {_describe(old)} -> {_describe(new)}")
    return changes
