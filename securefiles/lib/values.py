"""Reading values typed by people (a search box) without raising."""

from __future__ import annotations

import uuid


def uuid_or_none(text: str) -> uuid.UUID | None:
    """The UUID ``text`` spells (any of the forms uuid.UUID reads), or None."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
