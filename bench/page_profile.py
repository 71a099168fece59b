"""Where a page's time goes, in-process: for each URL, per request, the wall time, the
process's CPU time, the time spent in the database (every statement, timed around the
driver call) and in rendering its template; optionally a cProfile of the requests.

Runs against a database the metadata benchmark filled (its "bench" user; the admin pages
need the benchmark's staff session, which this script makes with a forced login and a
TOTP device marked verified). The requests go through Django's test client, so the whole
middleware stack runs as under gunicorn, without the HTTP parsing and sockets.

    BENCH_DATABASE_URL=postgres://... .venv/bin/python bench/page_profile.py / /?sort=name
    .venv/bin/python bench/page_profile.py --profile 25 /       # also the top 25 functions

Figures are milliseconds: medians over --requests requests after 3 unmeasured ones.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", nargs="+", help="paths to request, e.g. / or /?sort=name")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="the benchmark's database (default: BENCH_DATABASE_URL)",
    )
    parser.add_argument("--username", default="bench")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument("--queries", action="store_true", help="print each statement's time")
    parser.add_argument(
        "--explain",
        type=float,
        metavar="MS",
        help="EXPLAIN ANALYZE each statement of one request that took MS ms or more",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time two pages that show nothing (/__floor__/: an empty response; "
        "/__floor__/base/: base.html), through the same middleware: the per-request floor",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if not args.database_url:
        raise SystemExit("--database-url or BENCH_DATABASE_URL is needed")
    _set_up_django(args.database_url)
    client = _client_for(args.username)
    urls = list(args.urls)
    if args.floor:
        urls[:0] = _add_floor_pages()
    for url in urls:
        figures = measure(client, url, args.requests)
        print(
            f"{url:50} wall {figures['wall']:6.1f}  cpu {figures['cpu']:6.1f}  "
            f"db {figures['db']:6.1f} ({figures['queries']:.0f} queries)  "
            f"template {figures['template']:6.1f}  bytes {figures['bytes']:.0f}"
        )
        if args.queries or args.explain is not None:
            print_queries(client, url, explain_from=args.explain)
        if args.profile:
            profile(client, url, args.requests, args.profile)
    return 0


def _set_up_django(database_url: str) -> None:
    from bench.server import bench_env

    env = bench_env(Path("/tmp"), 0, 16, 1, 1, "bench", "unused")  # noqa: S108 (no files)
    env.update(DATABASE_URL=database_url, STAFF_REQUIRE_2FA="False", ALLOWED_HOSTS="testserver")
    # The keys the data was written under: a login's audit entry is chained under the key
    # derived from SECRET_KEY, and one signed with another would fail verify_audit_log.
    env.update(_stored_keys(database_url))
    os.environ.update(env)
    import django

    django.setup()


def _stored_keys(database_url: str) -> dict[str, str]:
    """SECRET_KEY and ENCRYPTION_KEYS as bench/metadata.py stored them with its rows
    (none in a database it did not fill)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT to_regclass('bench_keys')").fetchone() == (None,):
            return {}
        return dict(conn.execute("SELECT name, value FROM bench_keys").fetchall())


def _add_floor_pages() -> list[str]:
    """Two logged-in pages that show nothing, added to the site's URLs for this process."""
    from django.contrib.auth.decorators import login_required
    from django.http import HttpRequest, HttpResponse
    from django.shortcuts import render
    from django.urls import clear_url_caches, path

    import securefiles.urls

    def empty(request: HttpRequest) -> HttpResponse:
        return HttpResponse("")

    def base(request: HttpRequest) -> HttpResponse:
        return render(request, "base.html")

    securefiles.urls.urlpatterns += [
        path("__floor__/", login_required(empty)),
        path("__floor__/base/", login_required(base)),
    ]
    clear_url_caches()
    return ["/__floor__/", "/__floor__/base/"]


def _client_for(username: str) -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = get_user_model().objects.get(username=username)
    client = Client()
    client.force_login(user)
    device, _ = TOTPDevice.objects.get_or_create(
        user=user, name="page-profile", defaults={"confirmed": True}
    )
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def measure(client: Any, url: str, count: int) -> dict[str, float]:
    """Medians of wall, CPU, database and template time (ms) of ``count`` requests."""
    rows: dict[str, list[float]] = {k: [] for k in ("wall", "cpu", "db", "template", "queries")}
    size = 0
    for n in range(count + 3):
        with _timed_database() as db, _timed_templates() as template:
            wall, cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        size = len(response.content)
        if n >= 3:
            spent = {"wall": wall, "cpu": cpu, "db": db[0], "template": template[0]}
            for key, value in spent.items():
                rows[key].append(value * 1000)
            rows["queries"].append(db[1])
    figures = {key: statistics.median(values) for key, values in rows.items()}
    figures["bytes"] = size
    return figures


@contextmanager
def _timed_database() -> Iterator[list[float]]:
    """[seconds in the database, statements] for the requests run inside."""
    from django.db import connection

    spent = [0.0, 0]

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, ctx)
        finally:
            spent[0] += time.perf_counter() - started
            spent[1] += 1

    with connection.execute_wrapper(wrapper):
        yield spent


@contextmanager
def _timed_templates() -> Iterator[list[float]]:
    """[seconds rendering the response's template] (the outermost render only)."""
    from django.template.backends.django import Template

    spent = [0.0]
    original = Template.render

    def render(self: Any, *args: Any, **kwargs: Any) -> str:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    Template.render = render  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        Template.render = original  # type: ignore[method-assign]


def print_queries(client: Any, url: str, explain_from: float | None = None) -> None:
    """Each statement of one request of ``url``, with its time (ms) at the client; then
    the plan (EXPLAIN ANALYZE, BUFFERS) of each that took ``explain_from`` ms or more."""
    from django.db import connection

    slow: list[tuple[str, Any]] = []

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, ctx)
        finally:
            spent = (time.perf_counter() - started) * 1000
            print(f"  {spent:6.2f} ms  {sql[:160]}")
            if explain_from is not None and spent >= explain_from and sql.startswith("SELECT"):
                slow.append((sql, params))

    with connection.execute_wrapper(wrapper):
        client.get(url)
    for sql, params in slow:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            print(f"\n{sql}\n" + "\n".join(row[0] for row in cursor.fetchall()))


def profile(client: Any, url: str, count: int, top: int) -> None:
    """cProfile of ``count`` requests of ``url``: the ``top`` functions by own time and
    by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        client.get(url)
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


if __name__ == "__main__":
    sys.exit(main())
