"""Metadata at scale: how long pages take with 10,000 and 100,000 files for one user,
10,000 files shared with them, a file with 1,000 links and shares, and the admin with a
million files and five million audit entries; audited writes per second under concurrent
writers; verify_audit_log's time and peak memory. PostgreSQL only (README "Metadata at
scale"). Issue 17's goals: p95 <= 50 ms per user page (flat from 10k to 100k), <= 300 ms
per admin page.

    .venv/bin/python bench/metadata.py                       # the issue's figures
    .venv/bin/python bench/metadata.py --files 20000 --audit 100000 --admin-files 0  # CI

The database named by --database-url (its name must contain "bench") is wiped and
migrated; gunicorn (1 worker, 1 thread) serves it on loopback; every page is requested
--requests times after 3 unmeasured ones, through a logged-in session. Times are wall
clock in milliseconds at the client. Not a test: it fails only if a page does not answer
200 or a step crashes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.client import login, new_session  # noqa: E402
from bench.common import log  # noqa: E402
from bench.server import (  # noqa: E402
    HOST,
    Site,
    bench_env,
    run_manage,
    shut_down,
    start_gunicorn,
    wait_for_gunicorn,
)
from tests.live_gunicorn import free_port  # noqa: E402

PER_PAGE = 50  # sharing.views.files.FILES_PER_PAGE
Results = dict[str, dict[str, float]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/securefiles_bench"
        ),
        help="a PostgreSQL database whose name contains 'bench' (created if missing, wiped)",
    )
    parser.add_argument("--small", type=int, default=10_000, help="files at the first size")
    parser.add_argument("--files", type=int, default=100_000, help="files at the second size")
    parser.add_argument("--shared", type=int, default=10_000, help="files shared with the user")
    parser.add_argument("--links", type=int, default=1_000, help="links and shares on one file")
    parser.add_argument("--admin-files", type=int, default=1_000_000, help="0: no admin step")
    parser.add_argument("--audit", type=int, default=5_000_000, help="audit entries in all")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--write-seconds", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="TEXT",
        help="time only the pages whose name contains one of these (e.g. 'search an owner')",
    )
    parser.add_argument(
        "--no-writes", action="store_true", help="pages phase: skip the audited writes"
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="files, audit phases: skip verify_audit_log"
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        metavar="SECONDS",
        help="how long the server keeps a database connection (DATABASE_URL ?conn_max_age=; "
        "60, the portal's default on PostgreSQL: README 'Metadata at scale'); 0 connects "
        "for every request",
    )
    parser.add_argument(
        "--phase",
        choices=["all", "user", "files", "audit", "pages", "verify"],
        default="all",
        help="all in one run, or four runs (each under 10 minutes) in this order: user "
        "(wipe, the user's pages at both sizes), files (the admin's files, a fifth of the "
        "audit log, verify), audit (the rest of the log, verify), pages (the user's pages "
        "at the size there is, the admin's pages, the audited writes; again on a quieter "
        "machine if need be); verify: only time verify_audit_log over the log there is",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if "bench" not in (urlparse(args.database_url).path or ""):
        raise SystemExit("--database-url must name a database whose name contains 'bench'")
    with tempfile.TemporaryDirectory(prefix="metadata-bench-") as tmp:
        site = prepare(
            Path(tmp), args.database_url, reuse=args.phase in ("files", "audit", "pages", "verify")
        )
        # gunicorn's only: the benchmark's own connection is made already.
        site.env["DATABASE_URL"] = _with_conn_max_age(args.database_url, args.conn_max_age)
        results = run(site, args)
    print_results(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def prepare(tmp: Path, database_url: str, *, reuse: bool) -> Site:
    """Wipe and migrate the benchmark database (unless ``reuse``: then keep its rows and
    the keys the earlier phase stored with them, which the audit chain was written
    under); set up Django here with the site's environment."""
    port = free_port()
    password = os.urandom(12).hex()
    env = bench_env(tmp, port, 16, 1, 1, "bench", password)
    # A throw-away site: its staff user logs in with a password only.
    env.update(DATABASE_URL=database_url, STAFF_REQUIRE_2FA="False")
    if reuse:
        env.update(_stored_keys(env))
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    if reuse:
        from django.core.management import call_command

        # The data may predate this checkout's migrations (a phase run after an upgrade).
        call_command("migrate", verbosity=0)
        user = get_user_model().objects.get(username="bench")
        user.set_password(password)
        user.save()
        from django_otp.plugins.otp_totp.models import TOTPDevice

        # The earlier phase's device would send the login to the code step.
        TOTPDevice.objects.filter(user=user).delete()
    else:
        _create_database(database_url)
        _wipe_and_migrate(env)
        get_user_model().objects.create_superuser("bench", "bench@x.test", password)
    return Site(tmp, env, f"http://{HOST}:{port}", "bench", password, 1)


KEYS = ("SECRET_KEY", "ENCRYPTION_KEYS")


def _wipe_and_migrate(env: dict[str, str]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        # The keys go with the rows, for the later phases (a throw-away database).
        cursor.execute("CREATE TABLE bench_keys (name text PRIMARY KEY, value text)")
        for name in KEYS:
            cursor.execute("INSERT INTO bench_keys VALUES (%s, %s)", [name, env[name]])
    connection.close()
    log("migrate")
    run_manage(env, "migrate", "--noinput", "--verbosity", "0", timeout=600)


def _with_conn_max_age(url: str, seconds: int) -> str:
    """``url`` with ``conn_max_age`` and ``conn_health_checks`` (django-environ reads them)."""
    parsed = urlparse(url)
    options = "&".join(
        part
        for part in (parsed.query, f"conn_max_age={seconds}", "conn_health_checks=true")
        if part
    )
    return parsed._replace(query=options).geturl()


def _create_database(url: str) -> None:
    """CREATE DATABASE for ``url`` if it does not exist (through the "postgres" database)."""
    import psycopg
    from psycopg import sql

    name = urlparse(url).path.lstrip("/")
    maintenance = urlparse(url)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _stored_keys(env: dict[str, str]) -> dict[str, str]:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        return dict(conn.execute("SELECT name, value FROM bench_keys").fetchall())


def run(site: Site, args: argparse.Namespace) -> dict[str, object]:
    """The phase's steps with gunicorn serving; the figures by section."""
    results: dict[str, object] = {
        "load_before": round(os.getloadavg()[0], 2),
        "conn_max_age": args.conn_max_age,
    }
    if args.phase == "verify":  # no server: the command alone, on the data there is
        verified = verify_log(site)
        results[f"verify_audit_log, {verified['entries']} entries"] = verified
        results["load_after"] = round(os.getloadavg()[0], 2)
        return results
    if args.phase in ("all", "user"):
        pages = add_user_data(args)
    proc = start_gunicorn(site)
    succeeded = False
    try:
        wait_for_gunicorn(proc, site)
        session = new_session()
        login(session, site.base, site.username, site.password)
        verify_second_factor(session)
        if args.phase in ("all", "user"):
            measure_user_pages(session, site, args, pages, results)
        if args.phase in ("all", "files"):
            add_admin_files(args)
            add_audit(site, args.audit // 5, results, verify=not args.no_verify)
        if args.phase in ("all", "audit"):
            add_audit(site, args.audit - args.audit // 5, results, verify=not args.no_verify)
        if args.phase in ("all", "pages"):
            results["admin"] = admin_pages(session, site, args)
        if args.phase == "pages":
            files = _existing_files()
            results[f"user pages, {_own_rows(_bench_user())} files"] = user_pages(
                session, site, args, *files
            )
        if args.phase in ("all", "pages") and not args.no_writes:
            results["audited writes"] = audited_writes(args.writers, args.write_seconds)
        succeeded = True
    finally:
        shut_down(proc, site, set(), succeeded)
    results["load_after"] = round(os.getloadavg()[0], 2)
    return results


def add_user_data(args: argparse.Namespace) -> tuple[object, object]:
    """The shares with the bench user, and two real files (one with --links links and
    shares); returns those two files."""
    from bench import metadata_data as data

    user = _bench_user()
    colleagues = data.add_users("colleague", max(args.links, 1))
    owner2 = data.add_users("sharer", 1)[0]
    data.add_files(owner2, args.shared)
    data.add_shares(data.file_ids_of(owner2), [user.pk] * args.shared)
    detail = data.real_file(user, "contract Überprüfung.pdf")
    busy = data.real_file(user, "busy file.pdf")
    data.add_shares([busy.id] * args.links, colleagues[: args.links])
    data.add_links(busy, args.links)
    return detail, busy


def _existing_files() -> tuple[object, object]:
    from sharing.models import StoredFile

    found = StoredFile.objects.filter(owner=_bench_user())
    return found.get(name="contract Überprüfung.pdf"), found.get(name="busy file.pdf")


def measure_user_pages(
    session: requests.Session,
    site: Site,
    args: argparse.Namespace,
    files: tuple[object, object],
    results: dict[str, object],
) -> None:
    from bench import metadata_data as data

    user = _bench_user()
    for size in (args.small, args.files):
        data.add_files(user.pk, size - _own_rows(user), start=_own_rows(user))
        _analyze()
        results[f"user pages, {size} files"] = user_pages(session, site, args, *files)


def verify_second_factor(session: requests.Session) -> None:
    """Mark the logged-in session as having passed a TOTP step, as the admin requires (the
    benchmark does not measure the code step; tests.helpers.verified_client_for does the
    same in the test suite)."""
    from importlib import import_module

    from django.conf import settings
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=_bench_user(), name="bench", confirmed=True)
    store = import_module(settings.SESSION_ENGINE).SessionStore(
        session_key=session.cookies["sessionid"]
    )
    store[DEVICE_ID_SESSION_KEY] = device.persistent_id
    store.save()


def _bench_user() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="bench")


def _own_rows(user: Any) -> int:
    from sharing.models import StoredFile

    return StoredFile.objects.filter(owner=user).count()


def _analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def user_pages(
    session: requests.Session, site: Site, args: argparse.Namespace, detail: object, busy: object
) -> Results:
    """p50/p95 of each user page, in ms."""
    pages = {
        "/ (newest first, with shared list)": "/",
        "/?sort=name": "/?sort=name",
        "/?sort=-name": "/?sort=-name",
        "/?sort=size": "/?sort=size",
        "/?sort=-size": "/?sort=-size",
        "/?sort=date": "/?sort=date",
        "deep page by Next link (-date)": _deep_link(session, site, "-date"),
        "deep page by Next link (name)": _deep_link(session, site, "name"),
        "middle page by number (OFFSET)": f"/?page={_pages(session, site) // 2}",
        # The name sort's stored key (sharing 0019): its page ids are read index-only too.
        "middle page by number, name (OFFSET)": f"/?sort=name&page={_pages(session, site) // 2}",
        "last page": f"/?page={_pages(session, site)}",
        # 100 matches at either size (doc-0001200 to doc-0001299): the same page at both.
        "/?q=doc-00012 (search)": "/?q=doc-00012",
        "/?q=résumé (non-ASCII search)": "/?q=r%C3%A9sum%C3%A9",
        "shared with me, page 100 by Next link": _shared_deep_link(100),
        "shared with me, page 100 by number (OFFSET)": "/?shared_page=100",
        "file page": f"/files/{detail.id}/",  # type: ignore[attr-defined]
        f"file page, {args.links} links + shares": f"/files/{busy.id}/",  # type: ignore[attr-defined]
    }
    return _timed_pages(session, site, args, pages)


def _timed_pages(
    session: requests.Session, site: Site, args: argparse.Namespace, pages: dict[str, str]
) -> Results:
    """p50/p95 of each page whose name contains one of --only (all without it)."""
    wanted = {
        name: path
        for name, path in pages.items()
        if not args.only or any(part in name for part in args.only)
    }
    return {name: timed(session, site.base + path, args.requests) for name, path in wanted.items()}


def _shared_deep_link(number: int) -> str:
    """The Next link a user follows to page ``number`` of "shared with me" (the cursor of
    the last share of the page before, as sharing.views.paging writes it), or page 1 if
    the list is shorter."""
    from sharing import selectors
    from sharing.views.paging import Cursor

    shares = selectors.shares_with_me(user=_bench_user())
    index = (number - 1) * PER_PAGE - 1
    before = shares[index : index + 1] if index >= 0 else []
    if not before:
        return "/"
    cursor = Cursor(before[0].created_at, before[0].pk).encode()
    return f"/?shared_page={number}&shared_after={cursor}"


def _pages(session: requests.Session, site: Site) -> int:
    from sharing.models import StorageUsage

    files = StorageUsage.objects.get(user__username="bench").files
    return max(1, -(-files // PER_PAGE))


def _deep_link(session: requests.Session, site: Site, ordering: str) -> str:
    """The Next link a user would follow from the page before the middle one: the cursor
    of its last row, as sharing.views.paging writes it."""
    from sharing import selectors
    from sharing.views.paging import Cursor

    user = _bench_user()
    middle = _pages(session, site) // 2
    files = selectors.files_owned_by(user=user, ordering=ordering)
    last = files[(middle - 1) * PER_PAGE - 1]
    cursor = Cursor(last.seek_key, last.id).encode()  # type: ignore[attr-defined]
    sort = "" if ordering == "-date" else f"&sort={ordering}"
    return f"/?page={middle}&after={cursor}{sort}"


def timed(session: requests.Session, url: str, count: int) -> dict[str, float]:
    """Request ``url`` 3 times unmeasured, then ``count`` times; p50 and p95 in ms."""
    times = []
    for n in range(count + 3):
        started = time.perf_counter()
        response = session.get(url, timeout=60, allow_redirects=False)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        if n >= 3:
            times.append(elapsed)
    times.sort()
    return {
        "p50": round(statistics.median(times), 1),
        "p95": round(times[max(0, int(len(times) * 0.95 + 0.5) - 1)], 1),
    }


def add_admin_files(args: argparse.Namespace) -> None:
    """Files for 100 more owners, up to --admin-files in all."""
    from bench import metadata_data as data
    from sharing.models import StoredFile

    owners = data.add_users("owner", 100)
    missing = args.admin_files - StoredFile.objects.count()
    if missing <= 0:
        return
    log(f"adding {missing} files for 100 owners")
    with data.IndexesOff(data.FILES):
        for owner in owners:
            data.add_files(owner, missing // len(owners), recount=False)
    for owner in owners:
        data.recount_usage(owner)


def add_audit(site: Site, count: int, results: dict[str, object], *, verify: bool = True) -> None:
    """Append ``count`` entries to the chain, then (``verify``) time verify_audit_log
    over all."""
    from bench import metadata_data as data

    actors = [f"owner-{i:05}" for i in range(1, 101)] + ["bench"]
    names = [f"doc-{i:07} report.pdf" for i in range(0, 100_000, 7)]
    log(f"adding {count} audit entries")
    started = time.perf_counter()
    with data.IndexesOff(data.AUDIT):
        data.add_audit_entries(count, actors=actors, file_names=names)
    log(f"audit entries added in {time.perf_counter() - started:.0f} s")
    if not verify:
        return
    verified = verify_log(site)
    results[f"verify_audit_log, {verified['entries']} entries"] = verified


def admin_pages(session: requests.Session, site: Site, args: argparse.Namespace) -> Results:
    """p50/p95 of the admin's lists, filters and searches, in ms."""
    from django.contrib.auth import get_user_model

    from bench import metadata_data as data

    _analyze()
    owner = get_user_model().objects.filter(username__startswith="owner-").first() or _bench_user()
    pages = {
        "files": "/admin/sharing/storedfile/",
        "files, page 50": "/admin/sharing/storedfile/?p=50",
        "files, search a name": "/admin/sharing/storedfile/?q=doc-0000777",
        "files, search an owner": "/admin/sharing/storedfile/?q=owner-00042",
        "files, owner filter": f"/admin/sharing/storedfile/?owner={owner.pk}",
        "files, key filter": f"/admin/sharing/storedfile/?key_id={data.KEY_ID}",
        "audit": "/admin/audit/auditentry/",
        "audit, page 50": "/admin/audit/auditentry/?p=50",
        "audit, event filter": "/admin/audit/auditentry/?event=share.granted",
        "audit, search an actor": "/admin/audit/auditentry/?q=owner-00042",
        "audit, search a file name": "/admin/audit/auditentry/?q=doc-0000777",
        "audit, search an IP": "/admin/audit/auditentry/?q=10.3.0.4",
    }
    return _timed_pages(session, site, args, pages)


def audited_writes(writers: int, seconds: float) -> dict[str, float]:
    """Entries per second that ``writers`` threads (each its own connection) append."""
    from django.db import connection

    from audit.actors import Actor
    from audit.services import audit_record

    done = [0] * writers
    stop = time.perf_counter() + seconds

    def write(slot: int) -> None:
        actor = Actor(label=f"writer-{slot}")
        while time.perf_counter() < stop:
            audit_record(event="file.download", actor=actor, detail="bench")
            done[slot] += 1
        connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"writers": writers, "entries": sum(done), "per_second": round(sum(done) / elapsed)}


def verify_log(site: Site) -> dict[str, float]:
    """verify_audit_log's wall time (s) and peak RSS (MiB, GNU time's %M: the command's
    own, not the fork of this process it started from)."""
    peak_file = site.tmp / "verify.peak"
    command = ["/usr/bin/time", "-f", "%M", "-o", str(peak_file)]
    command += [sys.executable, str(ROOT / "manage.py"), "verify_audit_log"]
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 (fixed argv)
        command, cwd=ROOT, env=site.env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"verify_audit_log failed:\n{done.stdout}{done.stderr}")
    checked = int(done.stdout.split("intact: ", 1)[1].split()[0])
    peak_mib = int(peak_file.read_text().split()[-1]) // 1024  # %M is in KiB
    return {"entries": checked, "seconds": round(elapsed, 1), "peak_rss_mib": peak_mib}


def print_results(results: dict[str, object]) -> None:
    for section, figures in results.items():
        if not isinstance(figures, dict):
            print(f"{section}: {figures}")
            continue
        print(f"\n## {section}")
        for name, value in figures.items():
            if isinstance(value, dict):
                print(f"  {name:45} p50 {value['p50']:7.1f} ms   p95 {value['p95']:7.1f} ms")
            else:
                print(f"  {name:45} {value}")


if __name__ == "__main__":
    sys.exit(main())
