"""The `securefiles` command: login, ls, put, get, rm, share, link.

Output is for people (a table, progress bars on stderr) or, with --json, one JSON
document on stdout for scripts. Errors are one line on stderr, and the exit code says
what kind (securefiles_cli.errors).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from securefiles_cli import __version__, config, transfer
from securefiles_cli.errors import INTERRUPTED, OK, USAGE, CliError
from securefiles_cli.http import Portal

stdout = Console()
stderr = Console(stderr=True)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


@contextmanager
def _bar(name: str, total: int, quiet: bool) -> Iterator[transfer.Progress]:
    """A progress bar on stderr (none with --json or when stderr is no terminal)."""
    if quiet or not stderr.is_terminal:
        yield lambda done: None
        return
    columns = (
        "{task.description}", BarColumn(), DownloadColumn(binary_units=True),
        TransferSpeedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task(name, total=total)
        yield lambda done: progress.update(task, completed=done)


# -- commands


def cmd_login(args: argparse.Namespace) -> int:
    """Store the URL and a token (SECUREFILES_TOKEN, or asked for) after checking them."""
    token = os.environ.get("SECUREFILES_TOKEN") or getpass.getpass("Access token: ")
    settings = config.Settings(url=args.url.rstrip("/"), token=token.strip())
    me = Portal(settings).json("GET", "/me/")
    path = config.save(settings)
    if args.json:
        _print_json({"username": me["username"], "config": str(path)})
    else:
        stdout.print(f"Logged in to {settings.url} as {me['username']} ({path})")
    return OK


def _files(portal: Portal, args: argparse.Namespace) -> Iterator[dict]:
    page = 1
    while True:
        params = {"page": page, "per_page": 200, "q": args.search, "shared": args.shared}
        body = portal.json("GET", "/files/", params=params)
        yield from body["items"]
        if page >= body["pages"]:
            return
        page += 1


def cmd_ls(args: argparse.Namespace, portal: Portal) -> int:
    items = list(_files(portal, args))
    if args.json:
        _print_json(items)
        return OK
    stdout.print(listing(items))
    return OK


def listing(items: list[dict[str, Any]]) -> Table:
    """The table ``ls`` prints: id, name, size in bytes, upload time (UTC, to the second).

    An id is what the other commands take, so it is never shortened (rich would end it
    with "…" in a narrow terminal or a pipe, 80 columns); a long name wraps, whole.
    """
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("name", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("uploaded", no_wrap=True)
    for item in items:
        table.add_row(item["id"], item["name"], str(item["size"]), item["created_at"][:19])
    return table


def cmd_put(args: argparse.Namespace, portal: Portal) -> int:
    store = transfer.UploadStore()
    done = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise CliError(f"{name}: no such file")
        with _bar(path.name, path.stat().st_size, args.json) as progress:
            file_id = transfer.upload(portal, path, progress, store)
        done.append({"id": file_id, "name": path.name, "size": path.stat().st_size})
        if not args.json:
            stdout.print(f"{file_id}  {path.name}")
    if args.json:
        _print_json(done)
    return OK


def cmd_get(args: argparse.Namespace, portal: Portal) -> int:
    meta = portal.json("GET", f"/files/{args.id}/")
    target = Path(args.output) if args.output else Path(_safe_name(meta["name"]))
    if target.is_dir():
        target = target / _safe_name(meta["name"])
    if target.exists() and not args.force:
        raise CliError(f"{target} exists: give another -o PATH, or --force")
    with _bar(target.name, meta["size"], args.json) as progress:
        transfer.download(portal, args.id, target, progress, expected=meta)
    if args.json:
        _print_json({"id": meta["id"], "path": str(target), "size": meta["size"],
                     "sha256": meta["sha256"]})  # fmt: skip
    else:
        stdout.print(f"{target}  {meta['size']} bytes, SHA-256 verified")
    return OK


def _safe_name(name: str) -> str:
    """A server-given file name as a name in the current folder, never a path."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    return base or "download"


def cmd_rm(args: argparse.Namespace, portal: Portal) -> int:
    for file_id in args.ids:
        portal.request("DELETE", f"/files/{file_id}/")
        if not args.json:
            stdout.print(f"deleted {file_id}")
    if args.json:
        _print_json({"deleted": args.ids})
    return OK


def cmd_share(args: argparse.Namespace, portal: Portal) -> int:
    share = portal.json("POST", f"/files/{args.id}/shares/", json={"username": args.user})
    if args.json:
        _print_json(share)
    else:
        stdout.print(f"shared {args.id} with {share['colleague']}")
    return OK


def cmd_link(args: argparse.Namespace, portal: Portal) -> int:
    body: dict[str, Any] = {"expires_in_hours": args.expires, "max_downloads": args.max_downloads}
    if args.password:
        body["password"] = _read_password()
    link = portal.json("POST", f"/files/{args.id}/links/", json=body)
    if args.json:
        _print_json(link)
    else:
        stdout.print(link["url"], soft_wrap=True)
    return OK


def _read_password() -> str:
    """The link's password: asked for on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        return getpass.getpass("Link password: ")
    return sys.stdin.readline().rstrip("\n")


# -- the parser


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="securefiles",
        description="Upload, download, list and share files on a securefiles portal. "
        "SECUREFILES_URL and SECUREFILES_TOKEN override the stored login.",
    )
    root.add_argument("--version", action="version", version=f"securefiles {__version__}")
    root.add_argument("--json", action="store_true", help="print JSON for scripts")
    sub = root.add_subparsers(dest="command", required=True)

    login = sub.add_parser("login", help="store the portal's URL and an access token")
    login.add_argument("url", help="the portal, e.g. https://files.example.org")

    ls = sub.add_parser("ls", help="list your files")
    ls.add_argument("-q", "--search", default="", help="part of the name")
    ls.add_argument("--shared", action="store_true", help="files shared with you")

    put = sub.add_parser("put", help="upload files (run again to resume)")
    put.add_argument("files", nargs="+", metavar="FILE")

    get = sub.add_parser("get", help="download a file (run again to resume)")
    get.add_argument("id")
    get.add_argument("-o", "--output", help="where to write it (default: its name)")
    get.add_argument("--force", action="store_true", help="replace an existing file")

    rm = sub.add_parser("rm", help="delete files")
    rm.add_argument("ids", nargs="+", metavar="ID")

    share = sub.add_parser("share", help="share a file with a colleague")
    share.add_argument("id")
    share.add_argument("user", help="username or e-mail")

    link = sub.add_parser("link", help="make a share link and print its URL")
    link.add_argument("id")
    link.add_argument("--expires", type=int, metavar="HOURS", help="hours it lives")
    link.add_argument("--max-downloads", type=int, metavar="N")
    link.add_argument("--password", action="store_true", help="ask for a password")
    for command in sub.choices.values():  # --json after the command too
        # SUPPRESS: left out, it must not reset a --json given before the command.
        command.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return root


COMMANDS = {
    "ls": cmd_ls, "put": cmd_put, "get": cmd_get, "rm": cmd_rm, "share": cmd_share,
    "link": cmd_link,
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code (securefiles_cli.errors)."""
    args = parser().parse_args(argv)
    try:
        if args.command == "login":
            return cmd_login(args)
        return COMMANDS[args.command](args, Portal(config.load()))
    except CliError as exc:
        stderr.print(f"securefiles: error: {exc}", highlight=False, markup=False)
        return exc.code
    except KeyboardInterrupt:
        stderr.print("securefiles: interrupted; run the command again to continue")
        return INTERRUPTED
    except OSError as exc:
        stderr.print(f"securefiles: error: {exc.strerror or exc}: {exc.filename or ''}",
                     highlight=False, markup=False)  # fmt: skip
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


__all__ = ["USAGE", "main"]
