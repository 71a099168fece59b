"""SQL functions SQLite lacks, registered on each of its connections.

SQLite's LIKE and lower() fold ASCII letters only, so "ÉTÉ" would not find "été". The
name search (sharing.selectors.name_contains) compares ``securefiles_casefold(name)``
with the casefolded query instead: Python's str.casefold, full Unicode case folding
(Unicode 15, section 3.13), so "STRASSE" also finds "Straße" there.
"""

from __future__ import annotations

from typing import Any

CASEFOLD = "securefiles_casefold"


def _casefold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def register(sender: Any, connection: Any, **kwargs: Any) -> None:
    """connection_created receiver: add CASEFOLD to a new SQLite connection."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(CASEFOLD, 1, _casefold, deterministic=True)
