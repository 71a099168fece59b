"""Case-insensitive "contains" in every script, on PostgreSQL and on SQLite alike.

``<field>__unicode_icontains=q`` is Django's ``icontains`` on PostgreSQL, where
``UPPER(col::text) LIKE UPPER('%q%')`` folds every script (and a trigram GIN index on
``upper(col)`` serves it). SQLite's LIKE and upper() fold ASCII letters only, so "ÉTÉ"
would not find "été" there: the lookup compares ``securefiles_casefold(col)`` with the
casefolded pattern instead, Python's str.casefold (Unicode full case folding, Unicode
Standard section 3.13), registered on each SQLite connection. ``%`` and ``_`` in ``q``
are literal characters, as with ``icontains``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, TextField
from django.db.models.lookups import IContains

CASEFOLD = "securefiles_casefold"


def _casefold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def register(sender: Any, connection: Any, **kwargs: Any) -> None:
    """connection_created receiver: add CASEFOLD to a new SQLite connection."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(CASEFOLD, 1, _casefold, deterministic=True)


class UnicodeIContains(IContains):
    """``icontains`` that folds case in every script on SQLite too (module docstring).

    Its ``lookup_name`` stays "icontains", the key of the backends' operator tables; it is
    registered under "unicode_icontains".
    """

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        sql = f"{CASEFOLD}({lhs_sql}) LIKE {CASEFOLD}({rhs_sql}) ESCAPE '\\'"
        return sql, [*lhs_params, *rhs_params]


CharField.register_lookup(UnicodeIContains, lookup_name="unicode_icontains")
TextField.register_lookup(UnicodeIContains, lookup_name="unicode_icontains")
