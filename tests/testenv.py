"""Loaded with `-p tests.testenv` before pytest-django reads the settings.

The suite runs on the project's real settings module with the embedded defaults; only the
secrets and the media folder come from here. No `.env` is read (SECUREFILES_ENV_FILE=""),
in this process or in the processes tests start, so a developer's `.env` (DEBUG=True,
HTTPS=True, ENCRYPTION_KEYS, ...) never changes what the suite sees. DATABASE_URL is
left as the caller set it (CI runs the suite once on SQLite, once on PostgreSQL).
"""

import os
import tempfile

from sharing.crypto import generate_key_entry

TEST_MEDIA_ROOT = tempfile.mkdtemp(prefix="securefiles-test-media-")

os.environ["SECUREFILES_ENV_FILE"] = ""
os.environ["SECRET_KEY"] = "test-only-secret-key-not-for-production-0123456789"
os.environ["ENCRYPTION_KEYS"] = generate_key_entry("test1")
os.environ["MEDIA_ROOT"] = TEST_MEDIA_ROOT
os.environ["DEBUG"] = "False"
# Scanning is off unless a test turns it on with its own clamd (tests/clamd.py).
os.environ["CLAMD_SOCKET"] = ""
os.environ["CLAMD_HOST"] = ""
_DB_DIR = TEST_MEDIA_ROOT + "-db"
os.makedirs(_DB_DIR, exist_ok=True)
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_DB_DIR}/base.sqlite3")
if os.environ["DATABASE_URL"].startswith("sqlite"):
    # Files, never SQLite's in-memory database: for an in-memory database the live server
    # (browser tests) hands the test thread's one connection to all its request threads,
    # which then use it at the same time (corrupt savepoints, even segmentation faults).
    # With files, every thread opens its own connection.
    os.environ["DATABASE_TEST_NAME"] = os.path.join(_DB_DIR, "test.sqlite3")
# Jobs run at once in the process that queues them (django-tasks' immediate backend), so a
# test sees an e-mail in mail.outbox right after the request. The tests of the queue itself
# (tests/test_jobs*.py) switch to the database queue and run real `db_worker` processes.
os.environ.setdefault("TASKS_BACKEND", "immediate")
