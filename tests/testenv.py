"""Loaded with `-p tests.testenv` before pytest-django reads the settings.

The suite runs on the project's real settings module; only the secrets and the media
folder come from here, so no developer's `.env` leaks into a test run. DATABASE_URL is
left as the caller set it (CI runs the suite once on SQLite, once on PostgreSQL).
"""

import os
import tempfile

from sharing.crypto import generate_key_entry

TEST_MEDIA_ROOT = tempfile.mkdtemp(prefix="securefiles-test-media-")

os.environ["SECRET_KEY"] = "test-only-secret-key-not-for-production-0123456789"
os.environ["ENCRYPTION_KEYS"] = generate_key_entry("test1")
os.environ["MEDIA_ROOT"] = TEST_MEDIA_ROOT
os.environ["DEBUG"] = "False"
os.environ.setdefault("DATABASE_URL", "sqlite:///:memory:")
if os.environ["DATABASE_URL"].startswith("sqlite"):
    # A file, not the shared in-memory database: the browser tests' live server handles
    # parallel uploads on several threads, each of which needs its own connection.
    os.environ["DATABASE_TEST_NAME"] = os.path.join(TEST_MEDIA_ROOT + "-db", "test.sqlite3")
    os.makedirs(TEST_MEDIA_ROOT + "-db", exist_ok=True)
