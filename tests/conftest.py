"""Fixtures only; the helpers tests call are in tests/helpers.py.

alice owns files, bob is another logged-in user, charlie a stranger, anonymous is
pytest-django's ``client``. Every test starts and ends with an empty MEDIA_ROOT, so "files
on disk" assertions are exact. Passwords are hashed cheaply for the whole session, except
in tests marked ``argon2``.

With TESTS_DATABASE_ONLY=1 (CI's PostgreSQL run, .ci/run) only the tests that reach the
suite's database run: those using pytest-django's database fixtures (a live server
included) or marked ``database_url``; the others do the same work on any engine, and the
SQLite run has done it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.helpers", "tests.helpers_keys")

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

# A real clamd on a Unix socket under /dev/shm: the session's, and one a test may kill.
from tests.clamd import clamd_daemon, own_clamd  # noqa: E402, F401
from tests.helpers import (  # noqa: E402
    ALICE_PASSWORD,
    BROWSER_PASSWORD,
    CHEAP_PASSWORD_HASHERS,
    CHROMIUM,
    CHROMIUM_ARGS,
    MiB,
    client_for,
    empty_dir,
    verified_client_for,
)

# A real S3-compatible server (moto_server on loopback), started on first use.
from tests.s3server import moto_server  # noqa: E402, F401

# ---------------------------------------------------------------------------- selection

DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
    }
)


def reaches_the_database(item: pytest.Item) -> bool:
    """Whether a test uses the suite's database: through pytest-django (its fixtures or
    ``django_db`` marker), or, marked ``database_url``, through servers and commands."""
    return bool(DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))) or any(
        item.get_closest_marker(name) for name in ("django_db", "database_url")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """TESTS_DATABASE_ONLY=1: deselect the tests that never reach the suite's database.
    A deselected test whose module names PostgreSQL is an error: it must be marked
    ``database_url`` if it uses DATABASE_URL's server, or it would silently not run."""
    if os.environ.get("TESTS_DATABASE_ONLY") != "1":
        return
    kept = [item for item in items if reaches_the_database(item)]
    dropped = [item for item in items if not reaches_the_database(item)]
    modules = {item.path for item in dropped}
    unmarked = sorted(str(path) for path in modules if "postgres" in path.read_text().lower())
    if unmarked:
        raise pytest.UsageError(
            "TESTS_DATABASE_ONLY=1 would skip tests that name PostgreSQL; mark those that use"
            f" DATABASE_URL's server with @pytest.mark.database_url: {unmarked}"
        )
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept


# ---------------------------------------------------------------------------- passwords


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[list[str]]:
    """MD5 (and a minimal-cost Argon2 for link passwords) for the whole session: hundreds of
    users and links are not about Argon2's cost. Yields the project's own hashers."""
    project_hashers = list(settings.PASSWORD_HASHERS)
    with override_settings(PASSWORD_HASHERS=CHEAP_PASSWORD_HASHERS):
        yield project_hashers


@pytest.fixture(autouse=True)
def _argon2_when_marked(
    request: pytest.FixtureRequest, cheap_password_hashing: list[str]
) -> Iterator[None]:
    """Tests marked ``argon2`` hash with the project's real PASSWORD_HASHERS."""
    if request.node.get_closest_marker("argon2") is None:
        yield
        return
    with override_settings(PASSWORD_HASHERS=cheap_password_hashing):
        yield


# ---------------------------------------------------------------------------- disk


@pytest.fixture(autouse=True)
def media_root() -> Iterator[Path]:
    """MEDIA_ROOT (a temp dir from tests/testenv.py), empty before and after each test."""
    root = Path(settings.MEDIA_ROOT)
    empty_dir(root)
    yield root
    empty_dir(root)


# ---------------------------------------------------------------------------- users


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", email="alice@example.com")


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob", email="bob@example.com")


@pytest.fixture
def charlie(db: None) -> User:
    """A logged-in user with no access to alice's files: the stranger."""
    return User.objects.create_user("charlie", email="charlie@example.com")


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_superuser("root", email="root@example.com")


@pytest.fixture
def alice_with_password(alice: User) -> User:
    """alice with a real password, for tests that log in through the form."""
    alice.set_password(ALICE_PASSWORD)
    alice.save()
    return alice


@pytest.fixture
def alice_client(alice: User) -> Client:
    return client_for(alice)


@pytest.fixture
def bob_client(bob: User) -> Client:
    return client_for(bob)


@pytest.fixture
def charlie_client(charlie: User) -> Client:
    return client_for(charlie)


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    return verified_client_for(admin_user)


# ---------------------------------------------------------------------------- settings, logs


@pytest.fixture
def small_upload_limit(settings) -> int:
    """MAX_UPLOAD_MB = 1 (1 MiB), as an operator would set it."""
    settings.MAX_UPLOAD_MB = 1
    settings.MAX_UPLOAD_BYTES = MiB
    return MiB


@pytest.fixture
def sharing_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog that also sees the "sharing" loggers (they do not propagate to the root)."""
    logger = logging.getLogger("sharing")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


# ---------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """Chromium through Playwright's sync API, for one browser test module."""
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM calls made here are
    # plain synchronous set-up and assertions, never inside that loop's callbacks. Allowed
    # for these tests only: `check --deploy` elsewhere in the run must not see it.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def users(db: None) -> tuple[User, User]:
    """alice and bob with BROWSER_PASSWORD, for the browser tests' login form."""
    alice = User.objects.create_user("alice", "alice@example.org", password=BROWSER_PASSWORD)
    bob = User.objects.create_user("bob", "bob@example.org", password=BROWSER_PASSWORD)
    return alice, bob
