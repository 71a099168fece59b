"""Plain helpers the tests import (`from tests.helpers import ...`); fixtures are in conftest.

Files are stored, shared and uploaded through the real services, forms and views; clients
log in the way SecondFactorMiddleware accepts. tests/helpers_keys.py adds what the key and
storage-maintenance command tests need.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.contrib.auth.models import User
from django.http import HttpResponseBase, StreamingHttpResponse
from django.test import Client

from sharing import services
from sharing.crypto import FileKey
from sharing.models import Share, ShareLink, StoredFile
from sharing.storage import get_encrypted_storage
from sharing.storage.uploads import EncryptedUpload

MiB = 1024 * 1024
BOUNDARY = "----securefilesTestBoundary7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
UPLOAD_URL = "/files/upload/"

# Long and uncommon enough for the validators (minimum length 12).
ALICE_PASSWORD = "Quill-Harbor-7-Lantern"

# The share link as the owner's page shows it, once, right after creating it.
NEW_LINK_URL = re.compile(r"http://testserver/s/([A-Za-z0-9_-]+)/")


# ---------------------------------------------------------------------------- passwords


class CheapArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id with the smallest cost: link passwords are hashed with ``hasher="argon2"``
    explicitly, so an "argon2" hasher must stay configured even where Argon2's cost is not
    what a test is about (see the ``cheap_password_hashing`` fixture in conftest)."""

    time_cost = 1
    memory_cost = 8  # KiB, the minimum for one lane
    parallelism = 1


# The whole session hashes with these; tests marked ``argon2`` get the project's own list.
CHEAP_PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "tests.helpers.CheapArgon2PasswordHasher",
]


# ---------------------------------------------------------------------------- disk


def empty_dir(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def files_on_disk() -> list[Path]:
    """Every regular file under MEDIA_ROOT."""
    return sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())


def blob_path(stored: StoredFile) -> Path:
    return Path(settings.MEDIA_ROOT) / stored.blob.name


# ---------------------------------------------------------------------------- clients


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


def streamed(response: StreamingHttpResponse) -> bytes:
    return b"".join(response.streaming_content)


# ---------------------------------------------------------------------------- upload bodies


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


# ---------------------------------------------------------------------------- sharing


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


# ---------------------------------------------------------------------------- browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BROWSER_PASSWORD = "a long enough password 1"  # the ``users`` fixture's alice and bob

# The marks of every browser test module: skipped where Chromium is absent, and a
# transactional database (the live server's threads see what the test wrote).
BROWSER_TESTS = [
    pytest.mark.skipif(
        not shutil.which(CHROMIUM),
        reason=f"browser tests skipped: no Chromium at {CHROMIUM} (apt-get install chromium)",
    ),
    pytest.mark.django_db(transaction=True),
]


class Watch:
    """A browser context that records console errors and every request's origin."""

    def __init__(self, browser, origin: str, **options) -> None:
        self.context = browser.new_context(accept_downloads=True, **options)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.origin = origin
        self.failed: list[str] = []
        self.context.on("request", self._request)
        self.context.on("response", self._response)
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def _response(self, response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def _request(self, request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    def expect_clean(self, allowed_errors: tuple[str, ...] = ()) -> None:
        unexpected = [e for e in self.errors if not any(a in e for a in allowed_errors)]
        assert unexpected == [], self.failed
        assert self.foreign == []

    def close(self) -> None:
        self.context.close()


def log_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", BROWSER_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def drop_file(page, name: str, text: str) -> None:
    """Drag and drop a file onto the drop zone, as a person would from their desktop."""
    handle = page.evaluate_handle(
        """([name, text]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], name, {type: "text/plain"}));
            return transfer;
        }""",
        [name, text],
    )
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": handle})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": handle})


# ---------------------------------------------------------------------------- security headers

# A Django response, or the headers of a requests.Response (the live-server test).
Headers = HttpResponseBase | Mapping[str, str]
SCRIPT_UNSAFE = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'wasm-unsafe-eval'")


def csp_directives(response: Headers) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name.lower()] = values
    return directives


def assert_security_headers(response: Headers, *, referrer: str = "same-origin") -> None:
    """The headers every page and download carries (``response``: a response or headers)."""
    csp = csp_directives(response)
    # 'none' is stricter than 'self' (downloads use it): anything else is a failure.
    assert csp["default-src"] in (["'self'"], ["'none'"])
    for directive in ("script-src", "default-src"):
        assert not set(csp.get(directive, [])) & set(SCRIPT_UNSAFE), csp
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == referrer
    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]


class _Resources(HTMLParser):
    """Every URL a page loads or points to, and anything inline a strict CSP would block."""

    URL_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "srcset"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in self.URL_ATTRIBUTES and value is not None:
                self.urls += [value.split()[0]] if name == "srcset" else [value]
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}=…>")
        if tag == "style":
            self.inline.append("<style>")
        self._in_script = tag == "script"
        if tag == "script" and not dict(attrs).get("src"):
            self.inline.append("<script> without src")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("inline script")


def assert_first_party_only(html: bytes, *, host: str = "testserver") -> None:
    """Every URL in the page is relative or on ``host``, and nothing is inline."""
    parser = _Resources()
    parser.feed(html.decode())
    assert parser.urls, "a page with no link at all: the parser saw nothing"
    for url in parser.urls:
        parts = urlsplit(url)
        if parts.scheme == "data":
            continue
        assert parts.scheme in ("", "http", "https"), url
        assert parts.netloc in ("", host), url
        assert not url.startswith("//"), url
    assert parser.inline == []


# ---------------------------------------------------------------------------- API tokens


def make_token(
    user: User, scopes: Iterable[str] = ("read", "write", "share"), *, days: int = 30
) -> str:
    """A personal access token of ``user`` made through the service (the account page's
    path); returns the raw token, as the page shows it once."""
    from accounts import services as account_services
    from audit.actors import SYSTEM

    _token, raw = account_services.token_create(
        user=user, name="test", scopes=list(scopes), expires_in_days=days, actor=SYSTEM
    )
    return raw


def bearer(token: str) -> dict[str, str]:
    """Test-client keyword arguments that send ``token`` as a bearer token."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
