"""Shared users and make_* helpers.

alice owns files, bob is another logged-in user, anonymous is pytest-django's ``client``.
Every test starts and ends with an empty MEDIA_ROOT, so "files on disk" assertions are
exact.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponseBase, StreamingHttpResponse
from django.test import Client

from sharing import services
from sharing.crypto import FileKey
from sharing.models import StoredFile
from sharing.storage import get_encrypted_storage
from sharing.uploads import EncryptedUpload

MiB = 1024 * 1024
BOUNDARY = "----securefilesTestBoundary7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
UPLOAD_URL = "/files/upload/"


# ---------------------------------------------------------------------------- disk


def _empty(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@pytest.fixture(autouse=True)
def media_root() -> Iterator[Path]:
    """MEDIA_ROOT (a temp dir from tests/testenv.py), empty before and after each test."""
    root = Path(settings.MEDIA_ROOT)
    _empty(root)
    yield root
    _empty(root)


def files_on_disk() -> list[Path]:
    """Every regular file under MEDIA_ROOT."""
    return sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())


def blob_path(stored: StoredFile) -> Path:
    return Path(settings.MEDIA_ROOT) / stored.blob.name


# ---------------------------------------------------------------------------- users


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", email="alice@example.com")


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob", email="bob@example.com")


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_superuser("root", email="root@example.com")


def client_for(user: User, **kwargs: object) -> Client:
    """A client logged in as ``user`` after a full login: with the second factor passed
    when the account has one (SecondFactorMiddleware refuses any other session)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client = Client(**kwargs)
    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


@pytest.fixture
def alice_client(alice: User) -> Client:
    return client_for(alice)


@pytest.fixture
def bob_client(bob: User) -> Client:
    return client_for(bob)


def verified_client_for(user: User) -> Client:
    """A client logged in with a confirmed TOTP authenticator, as the admin requires."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client = client_for(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    return verified_client_for(admin_user)


# ---------------------------------------------------------------------------- files


def _pieces(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def make_file(
    owner: User,
    data: bytes,
    *,
    name: str = "report.txt",
    content_type: str = "text/plain",
) -> StoredFile:
    """Store a file through the real storage and service (what the upload view does)."""
    key = FileKey.generate()
    blob = get_encrypted_storage().save_plaintext(_pieces(data), key)
    upload = EncryptedUpload(key=key, blob=blob, name=name, content_type=content_type)
    [stored] = services.file_create_many(owner=owner, uploads=[upload])
    return stored


def _quote_filename(name: str) -> str:
    # What browsers do (WHATWG multipart/form-data): only '"', CR and LF are escaped;
    # every other byte of the name, control characters included, is sent as is.
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def file_part(
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    field: str = "file",
) -> bytes:
    head = (
        f'Content-Disposition: form-data; name="{field}"; filename="{_quote_filename(name)}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    return head.encode() + data


def field_part(field: str, value: str) -> bytes:
    return f'Content-Disposition: form-data; name="{field}"\r\n\r\n{value}'.encode()


def multipart(parts: Iterable[bytes], boundary: str = BOUNDARY) -> bytes:
    """A complete multipart/form-data body from already formatted parts."""
    sep = f"--{boundary}\r\n".encode()
    body = b"".join(sep + part + b"\r\n" for part in parts)
    return body + f"--{boundary}--\r\n".encode()


def files_body(*files: tuple[str, bytes] | tuple[str, bytes, str]) -> bytes:
    return multipart(file_part(*spec) for spec in files)


def post_body(client: Client, body: bytes, **extra: object) -> HttpResponseBase:
    """POST a raw body to the upload view through the whole middleware stack."""
    content_type = str(extra.pop("content_type", MULTIPART))
    return client.generic("POST", UPLOAD_URL, body, content_type=content_type, **extra)


def upload(
    client: Client, *files: tuple[str, bytes] | tuple[str, bytes, str], **extra: object
) -> HttpResponseBase:
    """Upload (name, data[, content type]) files in one request through the real view."""
    return post_body(client, files_body(*files), **extra)


def streamed(response: StreamingHttpResponse) -> bytes:
    return b"".join(response.streaming_content)


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


# A real S3-compatible server (moto_server on loopback), started on first use.
from tests.s3server import moto_server  # noqa: E402, F401

# ---------------------------------------------------------------------------- passwords

# Long and uncommon enough for the validators (minimum length 12).
ALICE_PASSWORD = "Quill-Harbor-7-Lantern"


@pytest.fixture
def alice_with_password(alice: User) -> User:
    """alice with a real (Argon2-hashed) password, for tests that log in through the form."""
    alice.set_password(ALICE_PASSWORD)
    alice.save()
    return alice


# ---------------------------------------------------------------------------- sharing

import hashlib  # noqa: E402
import re  # noqa: E402

from sharing.models import Share, ShareLink  # noqa: E402

# The share link as the owner's page shows it, once, right after creating it.
NEW_LINK_URL = re.compile(r"http://testserver/s/([A-Za-z0-9_-]+)/")


@pytest.fixture
def charlie(db: None) -> User:
    """A logged-in user with no access to alice's files: the stranger."""
    return User.objects.create_user("charlie", email="charlie@example.com")


@pytest.fixture
def charlie_client(charlie: User) -> Client:
    return client_for(charlie)


def make_share(owner_client: Client, stored: StoredFile, username: str) -> Share:
    """Share a file through the owner's real form; return the new share."""
    response = owner_client.post(f"/files/{stored.id}/shares/", {"username": username})
    assert response.status_code == 302, response.content[:500]
    return Share.objects.get(file=stored, colleague__username=username)


def make_link(owner_client: Client, stored: StoredFile, **fields: object) -> tuple[str, ShareLink]:
    """Create a share link through the owner's real form; return its token and its row.

    The token exists only in the page that answers the POST, so it is read from there.
    """
    response = owner_client.post(f"/files/{stored.id}/links/", fields)
    assert response.status_code == 201, response.content[:500]
    [token] = NEW_LINK_URL.findall(response.content.decode())
    return token, ShareLink.objects.get(token_digest=hashlib.sha256(token.encode()).hexdigest())
