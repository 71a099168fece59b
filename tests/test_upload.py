"""POST /files/upload/: what gets stored, and that a refused upload leaves nothing behind."""

from __future__ import annotations

import io
import re
import unicodedata
from urllib.parse import unquote

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpResponseBase
from django.test import AsyncClient, Client
from django.test.client import FakePayload

from sharing.models import StoredFile
from tests.helpers import (
    BOUNDARY,
    MULTIPART,
    UPLOAD_URL,
    MiB,
    client_for,
    field_part,
    file_part,
    files_body,
    files_on_disk,
    make_file,
    multipart,
    post_body,
    streamed,
    upload,
)

pytestmark = pytest.mark.django_db


def _download(client: Client, stored: StoredFile) -> HttpResponseBase:
    return client.get(f"/files/{stored.id}/download/")


def _nothing_stored() -> bool:
    return not StoredFile.objects.exists() and files_on_disk() == []


class CountingInput(io.RawIOBase):
    """A wsgi.input that records how many bytes the application read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        line = self._data.readline(size)
        self.bytes_read += len(line)
        return line


def _post_counting(client: Client, body: bytes, **extra: str) -> tuple[HttpResponseBase, int]:
    """POST a body through a CountingInput; return the response and the bytes read."""
    wsgi_input = CountingInput(body)
    environ = {"CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": MULTIPART, **extra}
    response = post_body(client, b"", **environ, **{"wsgi.input": wsgi_input})
    return response, wsgi_input.bytes_read


# ---------------------------------------------------------------------------- success


def test_it_stores_one_file(alice, alice_client) -> None:
    response = upload(alice_client, ("notes.txt", b"hello world", "text/plain"))

    assert response.status_code == 302
    assert response["Location"] == "/"
    stored = StoredFile.objects.get()
    assert (stored.owner, stored.name, stored.size, stored.content_type) == (
        alice,
        "notes.txt",
        11,
        "text/plain",
    )
    assert len(files_on_disk()) == 1
    assert streamed(_download(alice_client, stored)) == b"hello world"


def test_it_stores_several_files_from_one_request(alice, alice_client) -> None:
    response = upload(
        alice_client,
        ("a.txt", b"first", "text/plain"),
        ("b.pdf", b"%PDF-1.7 second", "application/pdf"),
        ("c.bin", b"\x00\xff" * 1000, "application/octet-stream"),
    )

    assert response.status_code == 302
    rows = {f.name: f for f in StoredFile.objects.all()}
    assert {n: (f.owner, f.size, f.content_type) for n, f in rows.items()} == {
        "a.txt": (alice, 5, "text/plain"),
        "b.pdf": (alice, 15, "application/pdf"),
        "c.bin": (alice, 2000, "application/octet-stream"),
    }
    assert len(files_on_disk()) == 3
    assert streamed(_download(alice_client, rows["b.pdf"])) == b"%PDF-1.7 second"


def test_it_accepts_and_round_trips_an_empty_file(alice_client) -> None:
    response = upload(alice_client, ("empty.txt", b"", "text/plain"))

    assert response.status_code == 302
    stored = StoredFile.objects.get()
    assert stored.size == 0
    download = _download(alice_client, stored)
    assert download["Content-Length"] == "0"
    assert streamed(download) == b""


def test_it_keeps_both_files_with_the_same_name(alice_client) -> None:
    upload(alice_client, ("same.txt", b"one"))
    upload(alice_client, ("same.txt", b"two"))

    rows = StoredFile.objects.order_by("created_at")
    assert [f.name for f in rows] == ["same.txt", "same.txt"]
    assert [streamed(_download(alice_client, f)) for f in rows] == [b"one", b"two"]
    assert len({f.blob.name for f in rows}) == 2
    assert len(files_on_disk()) == 2


def test_it_stores_a_malformed_content_type_as_octet_stream(alice_client) -> None:
    upload(alice_client, ("x.html", b"<b>", "text/<script>alert(1)</script>"))

    assert StoredFile.objects.get().content_type == "application/octet-stream"


def test_it_shows_the_uploaded_names_in_the_listing(alice_client) -> None:
    upload(alice_client, ("<img src=x onerror=alert(1)>.txt", b"x"))
    response = alice_client.get("/")

    assert b"<img src=x" not in response.content
    assert b"&lt;img src=x onerror=alert(1)&gt;.txt" in response.content


# ---------------------------------------------------------------------------- names

HOSTILE_NAMES = {
    "traversal": "../../etc/passwd",
    "windows traversal": "..\\..\\boot.ini",
    "nul": "a\x00b.txt",
    "rtl override": "invoice\u202efdp.exe",
    "control characters": "bell\x07\x1b[31mred\x7f.txt",
    "quotes and semicolons": 'x"; filename="evil.exe',
    "line separator": "a\u2028b.txt",
    "non-ascii": "résumé – naïve 東京.pdf",
    "dots only": "...",
}


def _assert_safe_disposition(header: str) -> None:
    assert header.startswith("attachment; ")
    assert "\r" not in header and "\n" not in header
    # filename="ASCII" alone, or (RFC 6266 section 4.3) an ASCII filename= fallback
    # followed by filename* for a non-ASCII name.
    match = re.fullmatch(
        r"attachment; filename=\"([\x20-\x7e]*)\"(?:; filename\*=utf-8''(.*))?", header
    )
    assert match, header
    fallback, name = match[1], unquote(match[2]) if match[2] is not None else match[1]
    assert '"' not in fallback and "\\" not in fallback and "/" not in fallback
    assert fallback and not fallback.startswith(".")
    if match[2] is not None:
        # Only where the quoted form cannot carry the name: non-ASCII, or a quote in it.
        assert name != fallback, "filename* only when filename= had to change the name"
        assert re.fullmatch(r"[A-Za-z0-9%._~!$&'()*+,;=:@-]*", match[2]), match[2]
    assert "/" not in name and "\\" not in name
    assert not any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in name)
    assert name and not name.startswith(".")


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_it_sanitises_a_hostile_name(alice_client, name) -> None:
    response = upload(alice_client, (name, b"payload"))

    assert response.status_code == 302
    stored = StoredFile.objects.get()
    assert "\x00" not in stored.name and "/" not in stored.name
    download = _download(alice_client, stored)
    assert download.status_code == 200
    assert streamed(download) == b"payload"
    _assert_safe_disposition(download["Content-Disposition"])


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_it_sanitises_a_hostile_name_that_bypassed_the_parser(alice, alice_client, name) -> None:
    # Django's multipart parser already drops path parts and non-printable characters;
    # a name stored by another path (an import, the admin, a future API) must still
    # come out safe, so this stores it through the storage and service directly.
    stored = make_file(alice, b"payload", name=name)

    download = _download(alice_client, stored)

    assert download.status_code == 200
    _assert_safe_disposition(download["Content-Disposition"])
    listing = alice_client.get("/")
    assert listing.status_code == 200
    assert alice_client.get(f"/files/{stored.id}/").status_code == 200


def test_it_shows_the_rtl_override_nowhere_in_the_download_name(alice, alice_client) -> None:
    stored = make_file(alice, b"MZ", name="invoice\u202efdp.exe")

    header = _download(alice_client, stored)["Content-Disposition"]

    assert header == 'attachment; filename="invoice fdp.exe"'


def test_it_sends_rfc_6266_filename_star_with_an_ascii_fallback_for_a_non_ascii_name(
    alice_client,
) -> None:
    upload(alice_client, ("résumé 東京.pdf", b"x"))

    download = _download(alice_client, StoredFile.objects.get())

    assert download["Content-Disposition"] == (
        'attachment; filename="resume __.pdf"; '
        "filename*=utf-8''r%C3%A9sum%C3%A9%20%E6%9D%B1%E4%BA%AC.pdf"
    )


def test_it_truncates_a_long_name_to_255_characters(alice_client) -> None:
    # 900 characters still fit in the 1 KiB that Django allows for a part's headers.
    name = "n" * 896 + ".pdf"

    response = upload(alice_client, (name, b"long"))

    assert response.status_code == 302
    stored = StoredFile.objects.get()
    assert stored.name == "n" * 251 + ".pdf"
    header = _download(alice_client, stored)["Content-Disposition"]
    _assert_safe_disposition(header)
    assert len(header) < 300
    assert header.endswith('.pdf"')


def test_it_truncates_a_1000_character_name_stored_by_the_service(alice, alice_client) -> None:
    stored = make_file(alice, b"long", name="y" * 996 + ".txt")

    assert stored.name == "y" * 251 + ".txt"
    header = _download(alice_client, stored)["Content-Disposition"]
    _assert_safe_disposition(header)
    assert header.endswith('.txt"')
    assert len(header) < 250


def test_it_answers_400_to_a_1000_character_name(alice_client) -> None:
    # A part header over 1 KiB is refused by Django's parser (MultiPartParserError).
    response = upload(alice_client, ("x" * 996 + ".txt", b"too long a name"))

    assert response.status_code == 400
    assert _nothing_stored()


# ---------------------------------------------------------------------------- refusals


def test_it_answers_400_without_a_file_field(alice_client) -> None:
    response = post_body(alice_client, multipart([field_part("note", "hello")]))

    assert response.status_code == 400
    assert _nothing_stored()


def test_it_answers_400_to_a_file_under_another_field_name(alice_client) -> None:
    response = post_body(alice_client, multipart([file_part("a.txt", b"x" * 5000, field="other")]))

    assert response.status_code == 400
    assert _nothing_stored()


def test_it_answers_400_to_a_file_part_without_a_filename(alice_client) -> None:
    body = multipart([b'Content-Disposition: form-data; name="file"; filename=""\r\n\r\nabc'])

    assert post_body(alice_client, body).status_code == 400
    assert _nothing_stored()


def test_it_answers_400_to_an_empty_body(alice_client) -> None:
    assert post_body(alice_client, b"").status_code == 400
    assert _nothing_stored()


def test_it_answers_400_to_a_form_encoded_post(alice_client) -> None:
    response = alice_client.post(
        UPLOAD_URL, "file=abc", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert _nothing_stored()


MALFORMED = {
    "missing boundary": (files_body(("a.txt", b"x" * 1000)), "multipart/form-data"),
    "invalid boundary": (files_body(("a.txt", b"x" * 1000)), "multipart/form-data; boundary=\x01"),
    "wrong boundary": (files_body(("a.txt", b"x" * 1000)), "multipart/form-data; boundary=other"),
    "truncated body": (files_body(("a.txt", b"x" * 300_000))[:200_000], MULTIPART),
    "garbage": (bytes(range(256)) * 512, MULTIPART),
    "no part headers": (f"--{BOUNDARY}\r\nabc\r\n--{BOUNDARY}--\r\n".encode(), MULTIPART),
    "bad base64": (
        multipart(
            [
                b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\n" + b"QUJD" * 100 + b"QQ"
            ]
        ),
        MULTIPART,
    ),
}


@pytest.mark.parametrize(("body", "content_type"), MALFORMED.values(), ids=MALFORMED.keys())
def test_it_answers_400_to_a_malformed_body(alice_client, body, content_type) -> None:
    response = post_body(alice_client, body, content_type=content_type)

    assert response.status_code == 400
    assert _nothing_stored()


def test_it_stores_nothing_when_a_later_part_is_malformed(alice_client) -> None:
    # The first file completes (its blob is written and closed) before the parser meets
    # the bad base64 in the second part: the whole request is refused, no blob is left.
    body = multipart(
        [
            file_part("good.txt", b"g" * 300_000),
            b'Content-Disposition: form-data; name="file"; filename="b.txt"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b"QUJD" * 100 + b"QQ",
        ]
    )

    response = post_body(alice_client, body)

    assert response.status_code == 400
    assert _nothing_stored()


def test_it_stores_nothing_from_a_body_truncated_in_a_later_file(alice_client) -> None:
    # The body ends inside the second file (a client gone, a proxy cutting it short):
    # the first file is complete, but the request as a whole is not.
    body = files_body(("first.txt", b"1" * 300_000), ("second.txt", b"2" * 300_000))

    response = post_body(alice_client, body[:-100_000])

    assert response.status_code == 400
    assert _nothing_stored()


def test_it_answers_400_to_too_many_files(alice_client, settings) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3

    response = upload(alice_client, *[(f"{i}.txt", b"x" * 1000) for i in range(4)])

    assert response.status_code == 400
    assert _nothing_stored()


# ---------------------------------------------------------------------------- size limit


def test_it_answers_413_from_content_length_before_reading_the_body(
    alice_client, small_upload_limit
) -> None:
    body = files_body(("big.bin", b"x" * (small_upload_limit + 1)))

    response, bytes_read = _post_counting(alice_client, body)

    assert response.status_code == 413
    assert bytes_read == 0
    assert _nothing_stored()


def test_it_accepts_a_file_just_under_the_limit(alice_client, small_upload_limit) -> None:
    data = b"y" * (small_upload_limit - 1024)

    response = upload(alice_client, ("fits.bin", data))

    assert response.status_code == 302
    assert streamed(_download(alice_client, StoredFile.objects.get())) == data


def test_it_never_reads_past_a_content_length_that_lies_small(
    alice_client, small_upload_limit
) -> None:
    body = files_body(("big.bin", b"x" * 3 * small_upload_limit))

    response, bytes_read = _post_counting(alice_client, body, CONTENT_LENGTH="4096")

    # The multipart body ends early for Django, so no file is complete.
    assert response.status_code == 400
    assert bytes_read <= 4096
    assert _nothing_stored()


@pytest.mark.parametrize("content_length", ["abc", "-1", "", "1e6", " 12"])
def test_it_answers_400_to_a_bad_content_length(alice_client, content_length) -> None:
    body = files_body(("a.txt", b"x" * 1000))

    response = post_body(alice_client, body, CONTENT_LENGTH=content_length)

    assert response.status_code == 400
    assert _nothing_stored()


def test_it_reads_nothing_of_a_body_without_content_length(alice_client) -> None:
    # What a WSGI server passes for "Transfer-Encoding: chunked": no CONTENT_LENGTH.
    # Django reads no byte of such a body, so its size can never go unchecked.
    body = files_body(("a.txt", b"x" * 3 * MiB))
    wsgi_input = CountingInput(body)
    environ = {"CONTENT_TYPE": MULTIPART, "HTTP_TRANSFER_ENCODING": "chunked"}

    response = alice_client.generic("POST", UPLOAD_URL, **environ, **{"wsgi.input": wsgi_input})

    assert response.status_code == 400
    assert wsgi_input.bytes_read == 0
    assert _nothing_stored()


def _asgi_post(client: AsyncClient, body: bytes, content_length: int) -> HttpResponseBase:
    """POST through the ASGI handler, where the body is not cut at Content-Length."""
    headers = [
        (b"content-type", MULTIPART.encode()),
        (b"content-length", str(content_length).encode()),
    ]

    async def post() -> HttpResponseBase:
        return await client.request(
            method="POST", path=UPLOAD_URL, headers=headers, _body_file=FakePayload(body)
        )

    return async_to_sync(post)()


@pytest.fixture
def alice_async_client(alice) -> AsyncClient:
    client = AsyncClient()
    client.force_login(alice)
    return client


def test_it_answers_413_to_a_body_longer_than_its_content_length(
    alice_async_client, small_upload_limit
) -> None:
    body = files_body(("big.bin", b"x" * 3 * small_upload_limit))

    response = _asgi_post(alice_async_client, body, content_length=1000)

    assert response.status_code == 413
    assert _nothing_stored()


def test_it_stores_nothing_when_a_later_file_exceeds_the_limit(
    alice_async_client, small_upload_limit
) -> None:
    third = small_upload_limit // 3
    body = files_body(
        ("one.bin", b"1" * third), ("two.bin", b"2" * third), ("three.bin", b"3" * (third + 1024))
    )

    response = _asgi_post(alice_async_client, body, content_length=1000)

    assert response.status_code == 413
    assert _nothing_stored()


def test_it_accepts_an_asgi_upload_within_the_limit(alice_async_client, small_upload_limit) -> None:
    body = files_body(("ok.bin", b"o" * 1000))

    response = _asgi_post(alice_async_client, body, content_length=len(body))

    assert response.status_code == 302
    assert StoredFile.objects.get().size == 1000


# ---------------------------------------------------------------------------- who may upload


def test_it_redirects_anonymous_without_parsing_the_body(client) -> None:
    body = files_body(("a.txt", b"x" * 100_000))

    response, bytes_read = _post_counting(client, body)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/files/upload/"
    assert bytes_read == 0
    assert _nothing_stored()


@pytest.fixture
def alice_csrf_client(alice) -> Client:
    client = client_for(alice, enforce_csrf_checks=True)
    client.get("/")  # sets the CSRF cookie, as the listing page does in a browser
    return client


def _csrf_token(client: Client) -> str:
    return client.cookies["csrftoken"].value


def test_it_answers_403_without_a_csrf_token(alice_csrf_client) -> None:
    response = upload(alice_csrf_client, ("a.txt", b"x" * 100_000))

    assert response.status_code == 403
    assert _nothing_stored()


def test_it_answers_403_with_a_wrong_csrf_token(alice_csrf_client) -> None:
    body = multipart(
        [field_part("csrfmiddlewaretoken", "x" * 64), file_part("a.txt", b"x" * 100_000)]
    )

    response = post_body(alice_csrf_client, body)

    assert response.status_code == 403
    assert _nothing_stored()


def test_it_answers_403_without_a_csrf_cookie_before_reading_the_body(alice) -> None:
    client = client_for(alice, enforce_csrf_checks=True)
    body = multipart([field_part("csrfmiddlewaretoken", "x" * 64), file_part("a.txt", b"x")])

    response, bytes_read = _post_counting(client, body)

    assert response.status_code == 403
    assert bytes_read == 0
    assert _nothing_stored()


def test_it_answers_403_to_a_cross_origin_post_before_reading_the_body(alice_csrf_client) -> None:
    token = _csrf_token(alice_csrf_client)
    body = multipart([field_part("csrfmiddlewaretoken", token), file_part("a.txt", b"x")])

    response, bytes_read = _post_counting(
        alice_csrf_client, body, HTTP_ORIGIN="https://evil.example"
    )

    assert response.status_code == 403
    assert bytes_read == 0
    assert _nothing_stored()


def test_it_accepts_the_right_csrf_token_in_the_form(alice_csrf_client) -> None:
    token = _csrf_token(alice_csrf_client)
    body = multipart([field_part("csrfmiddlewaretoken", token), file_part("a.txt", b"ok")])

    response = post_body(alice_csrf_client, body)

    assert response.status_code == 302
    assert StoredFile.objects.get().name == "a.txt"
    assert len(files_on_disk()) == 1


def test_it_accepts_the_right_csrf_token_in_the_header(alice_csrf_client) -> None:
    token = _csrf_token(alice_csrf_client)

    response = upload(alice_csrf_client, ("a.txt", b"ok"), HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 302
    assert StoredFile.objects.count() == 1


# ---------------------------------------------------------------------------- names from browsers


def test_it_stores_quotes_and_line_breaks_as_the_browser_named_the_file(alice, alice_client):
    # helpers.file_part escapes '"', CR and LF as %22, %0D and %0A, as browsers do.
    response = upload(alice_client, ('my "draft"\r\nv2.txt', b"payload"))

    assert response.status_code == 302
    stored = StoredFile.objects.get()
    assert stored.name == 'my "draft"\r\nv2.txt'
    listing = alice_client.get("/").content.decode()
    assert "my &quot;draft&quot; v2.txt" in listing
    assert "%22" not in listing and "%0D" not in listing and "%0A" not in listing
    detail = alice_client.get(f"/files/{stored.id}/").content.decode()
    assert "my &quot;draft&quot; v2.txt" in detail and "%22" not in detail
    header = _download(alice_client, stored)["Content-Disposition"]
    # The existing sanitising still applies: no quote, CR or LF reaches the header, but the
    # percent-encoded filename* keeps the quotes, so the saved file is named as uploaded.
    assert header == (
        "attachment; filename=\"my _draft_ v2.txt\"; filename*=utf-8''my%20%22draft%22%20v2.txt"
    )


def test_it_decodes_only_the_three_escapes_browsers_make(alice_client) -> None:
    # "%" itself is never escaped by browsers: any other %XX is part of the real name.
    name = "100%25 sure %41 %0a %2F %22.txt"

    upload(alice_client, (name, b"x"))

    assert StoredFile.objects.get().name == '100%25 sure %41 %0a %2F ".txt'


def test_the_upload_answer_names_the_decoded_name(alice_client) -> None:
    response = upload(alice_client, ('a"b.txt', b"x"), HTTP_ACCEPT="application/json")

    assert response.status_code == 201
    assert response.json()["files"][0]["name"] == 'a"b.txt'


# ---------------------------------------------------------------------------- refusals say why


JSON_ACCEPT = {"HTTP_ACCEPT": "application/json"}
BROWSER_ACCEPT = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _too_many_files(client: Client, settings, accept: dict) -> HttpResponseBase:
    return upload(client, *[(f"{i}.txt", b"x") for i in range(101)], **accept)


def _too_large_declared(client: Client, settings, accept: dict) -> HttpResponseBase:
    settings.MAX_UPLOAD_MB, settings.MAX_UPLOAD_BYTES = 1, MiB
    return upload(client, ("big.bin", b"x" * (MiB + 1)), **accept)


def _over_quota(client: Client, settings, accept: dict) -> HttpResponseBase:
    settings.USER_QUOTA_MB = 1
    return upload(client, ("big.bin", b"x" * (MiB + 1)), **accept)


def _name_header_too_long(client: Client, settings, accept: dict) -> HttpResponseBase:
    return upload(client, ("x" * 996 + ".txt", b"too long a name"), **accept)


def _bad_multipart(client: Client, settings, accept: dict) -> HttpResponseBase:
    body = files_body(("a.txt", b"x"))
    return post_body(client, body, content_type="multipart/form-data", **accept)  # no boundary


def _too_many_fields(client: Client, settings, accept: dict) -> HttpResponseBase:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    parts = [field_part(f"f{i}", "v") for i in range(5)] + [file_part("a.txt", b"x")]
    return post_body(client, multipart(parts), **accept)


# Each refusal: how to provoke it, the status, and the limit (a number with its unit)
# that its message must name.
REFUSALS = {
    "101 files": (_too_many_files, 400, r"100 files"),
    "Content-Length over MAX_UPLOAD_MB": (_too_large_declared, 413, r"1 MiB"),
    "over quota": (_over_quota, 413, r"quota of 1\.0\sMiB"),
    "name header over Django's limit": (_name_header_too_long, 400, r"1024 bytes"),
    "not multipart": (_bad_multipart, 400, r"1024 MiB"),
    "too many fields": (_too_many_fields, 400, r"3 form fields"),
}


@pytest.mark.parametrize(("provoke", "status", "limit"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refusal_answers_json_naming_its_limit_to_the_script(
    alice_client, settings, provoke, status, limit
) -> None:
    response = provoke(alice_client, settings, JSON_ACCEPT)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert re.search(limit, body["error"]), body["error"]
    assert "Nothing was stored" in body["error"]
    assert body["usage"]["bytes"] == 0
    assert _nothing_stored()


@pytest.mark.parametrize(("provoke", "status", "limit"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refusal_answers_a_page_naming_its_limit_to_a_browser(
    alice_client, settings, provoke, status, limit
) -> None:
    response = provoke(alice_client, settings, BROWSER_ACCEPT)

    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    text = response.content.decode()
    assert re.search(limit, text.replace("\xa0", " ")), text
    assert _nothing_stored()


def test_a_csrf_refusal_answers_json_to_the_script(alice_csrf_client) -> None:
    response = upload(alice_csrf_client, ("a.txt", b"x"), **JSON_ACCEPT)

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert "security token" in response.json()["error"]
    assert _nothing_stored()


def test_a_csrf_refusal_answers_a_page_to_a_browser(alice_csrf_client) -> None:
    response = upload(alice_csrf_client, ("a.txt", b"x"), **BROWSER_ACCEPT)

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert b"security token" in response.content


def test_the_upload_answer_carries_the_new_usage_and_the_stored_options(
    alice, alice_client, settings
) -> None:
    settings.USER_QUOTA_MB = 10
    make_file(alice, b"o" * 1000, name="old.txt")
    body = multipart([field_part("expires_in_days", "7"), file_part("new.txt", b"n" * 2048)])

    response = post_body(alice_client, body, **JSON_ACCEPT)

    assert response.status_code == 201
    reply = response.json()
    assert reply["usage"] == {
        "bytes": 3048,
        "quota": 10 * MiB,
        "text": "Using 3.0\xa0KiB of 10.0\xa0MiB.",
        "short": "3.0\xa0KiB of 10.0\xa0MiB",
    }
    [stored] = reply["files"]
    assert stored["expires_at"] is not None
    # In the zone the page shows times in (UTC without a tz cookie), named.
    assert stored["expires_display"].startswith("Deleted automatically: ")
    assert stored["expires_display"].endswith(" UTC.")


def test_it_answers_413_naming_the_limit_when_a_file_outgrows_the_segment_counter(
    alice_client, monkeypatch
) -> None:
    # 2^32 segments of 1 MiB (4 PiB) cannot be uploaded in a test; the same check with a
    # counter of two segments (2 MiB at the storage's 1 MiB segments) can.
    monkeypatch.setattr("sharing.crypto.stream.MAX_SEGMENTS", 2)
    limit = 2 * MiB

    fits = upload(alice_client, ("fits.bin", b"f" * limit))
    too_big = upload(alice_client, ("big.bin", b"x" * (limit + 1)), HTTP_ACCEPT="application/json")

    assert fits.status_code == 302
    assert too_big.status_code == 413
    error = too_big.json()["error"]
    assert "too large for this segment size" in error and str(limit) in error
    assert list(StoredFile.objects.values_list("name", flat=True)) == ["fits.bin"]
    assert len(files_on_disk()) == 1
