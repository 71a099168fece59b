"""What `securefiles ls` prints in a pipe or a narrow terminal (80 columns): every id in
full, since the other commands take it, and every name whole."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from rich.console import Console

# This checkout's client, not whichever copy the environment installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "client"))

from securefiles_cli.main import listing  # noqa: E402

ITEM = {
    "id": "0ae46077-95fb-483c-98d4-54c300c23e31",
    "name": "Q3 board minutes - acquisition of Northwind Holdings (final, signed).pdf",
    "size": 20_000_000,
    "created_at": "2026-11-30T06:29:10.208Z",
}


def _printed(width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(listing([ITEM]))
    return out.getvalue()


def test_ls_prints_each_id_whole_at_80_columns() -> None:
    printed = _printed(80)

    assert ITEM["id"] in printed
    assert "…" not in printed
    assert "20000000" in printed


def test_ls_wraps_a_long_name_without_cutting_it() -> None:
    printed = "".join(_printed(80).split())  # the name's pieces, read row after row

    for other in ("id", "name", "size", "uploaded", ITEM["id"], "20000000", "2026-11-30T06:29:10"):
        printed = printed.replace(other, "", 1)
    assert printed == "".join(ITEM["name"].split())
