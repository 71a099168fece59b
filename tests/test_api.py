"""What the API answers: paged file lists, metadata with the SHA-256, ranged content,
links whose token is shown once and works, and problem documents (RFC 9457) for every
error, unknown routes and wrong methods included; the OpenAPI document and a docs page
whose assets come from the portal under the usual CSP."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEntry
from sharing.models import ShareLink
from tests.helpers import bearer, csp_directives, make_file, make_token, streamed

pytestmark = pytest.mark.django_db

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def token(alice: User) -> dict[str, str]:
    return bearer(make_token(alice))


def _problem(response) -> dict:  # type: ignore[no-untyped-def]
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["status"] == response.status_code and body["type"].startswith("/api/v1/problems/")
    return body


def test_the_list_is_paged_searched_and_sorted(alice: User, client: Client, token) -> None:
    for name in ("b.txt", "a.txt", "c.pdf"):
        make_file(alice, name.encode(), name=name)

    page = client.get("/api/v1/files/?per_page=2&sort=name", **token).json()
    second = client.get("/api/v1/files/?per_page=2&sort=name&page=2", **token).json()
    found = client.get("/api/v1/files/?q=PDF", **token).json()

    assert (page["count"], page["pages"]) == (3, 2)
    assert [item["name"] for item in page["items"] + second["items"]] == [
        "a.txt", "b.txt", "c.pdf",
    ]  # fmt: skip
    assert [item["name"] for item in found["items"]] == ["c.pdf"]
    item = found["items"][0]
    assert item["sha256"] == hashlib.sha256(b"c.pdf").hexdigest()
    assert item["size"] == 5 and item["owner"] == "alice"
    assert client.get("/api/v1/files/?page=9", **token).json()["items"] == []


def test_shared_files_are_listed_apart(alice: User, bob: User, client: Client) -> None:
    stored = make_file(alice, DATA)
    from sharing.models import Share

    Share.objects.create(file=stored, colleague=bob)
    bobs = bearer(make_token(bob))

    assert client.get("/api/v1/files/", **bobs).json()["count"] == 0
    shared = client.get("/api/v1/files/?shared=true", **bobs).json()
    assert [item["id"] for item in shared["items"]] == [str(stored.id)]


def test_shared_files_are_searched_by_name_in_any_case(
    alice: User, bob: User, client: Client
) -> None:
    from sharing.models import Share

    wanted = make_file(alice, DATA, name="Überblick Q3.pdf")
    other = make_file(alice, DATA, name="notes.txt")
    make_file(alice, DATA, name="überblick private.pdf")  # not shared
    Share.objects.bulk_create([Share(file=wanted, colleague=bob), Share(file=other, colleague=bob)])

    found = client.get("/api/v1/files/?shared=true&q=ÜBERBLICK", **bearer(make_token(bob)))

    assert [item["id"] for item in found.json()["items"]] == [str(wanted.id)]


@pytest.mark.parametrize(
    "query", ["page=0", "per_page=201", "sort=owner", "page=x", "q=" + "a" * 201, "shared=maybe"]
)
def test_bad_parameters_are_a_400_problem(client: Client, token, query: str) -> None:
    response = client.get(f"/api/v1/files/?{query}", **token)

    assert response.status_code == 400
    assert _problem(response)["errors"]


def test_content_honours_range(alice: User, client: Client, token) -> None:
    stored = make_file(alice, DATA)
    url = f"/api/v1/files/{stored.id}/content/"

    whole = client.get(url, **token)
    part = client.get(url, HTTP_RANGE="bytes=100-199", **token)
    past = client.get(url, HTTP_RANGE="bytes=99999-", **token)

    assert whole.status_code == 200 and streamed(whole) == DATA
    assert whole["Content-Type"] == "application/octet-stream"
    assert part.status_code == 206 and streamed(part) == DATA[100:200]
    assert part["Content-Range"] == f"bytes 100-199/{len(DATA)}"
    assert past.status_code == 416 and past["Content-Range"] == f"bytes */{len(DATA)}"
    assert _problem(past)["type"] == "/api/v1/problems/range-not-satisfiable"
    details = AuditEntry.objects.filter(event="file.download").values_list("detail", flat=True)
    assert any("via=api owner" in detail for detail in details)


def test_a_new_links_token_is_shown_once_and_works(alice: User, client: Client, token) -> None:
    stored = make_file(alice, DATA)

    created = client.post(
        f"/api/v1/files/{stored.id}/links/",
        {"expires_in_hours": 2, "max_downloads": 1, "label": "auditor"},
        "application/json",
        **token,
    )

    assert created.status_code == 201
    body = created.json()
    assert body["url"].endswith(f"/s/{body['token']}/") and body["label"] == "auditor"
    assert client.get(f"/s/{body['token']}/").status_code == 200
    listed = client.get(f"/api/v1/files/{stored.id}/links/", **token).json()
    assert listed[0]["id"] == body["id"] and "token" not in listed[0]
    assert body["token"] not in ShareLink.objects.get().token_digest


@pytest.mark.parametrize(
    "body",
    [
        "[null, null]",
        "[]",
        "7",
        '"x"',
        '{"expires_in_hours": true}',
        '{"max_downloads": "3"}',
        '{"max_downloads": 2.5}',
    ],
)
def test_a_link_body_must_be_an_object(alice: User, client: Client, token, body: str) -> None:
    stored = make_file(alice, DATA)

    response = client.post(f"/api/v1/files/{stored.id}/links/", body, "application/json", **token)

    assert response.status_code == 400
    assert not ShareLink.objects.exists()


def test_a_whole_number_written_as_a_float_is_an_integer(
    alice: User, client: Client, token
) -> None:
    stored = make_file(alice, DATA)

    response = client.post(
        f"/api/v1/files/{stored.id}/links/",
        '{"expires_in_hours": 4.0, "max_downloads": 2.0}',
        "application/json",
        **token,
    )

    assert response.status_code == 201 and response.json()["max_downloads"] == 2


def test_a_link_past_the_maximum_is_refused(alice: User, client: Client, token, settings) -> None:
    settings.LINK_MAX_HOURS = 5
    stored = make_file(alice, DATA)

    response = client.post(
        f"/api/v1/files/{stored.id}/links/", {"expires_in_hours": 6}, "application/json", **token
    )

    assert response.status_code == 400 and _problem(response)["errors"]
    assert not ShareLink.objects.exists()


def test_sharing_with_nobody_is_a_share_refused_problem(alice: User, client: Client, token) -> None:
    stored = make_file(alice, DATA)

    response = client.post(
        f"/api/v1/files/{stored.id}/shares/", {"username": "nobody"}, "application/json", **token
    )

    assert response.status_code == 422
    assert _problem(response)["type"] == "/api/v1/problems/share-refused"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/nowhere/", 404),
        ("get", "/api/v2/files/", 404),
        ("get", "/api/v1/files/not-a-uuid/", 404),
        ("put", "/api/v1/me/", 405),
        ("post", "/api/v1/files/", 405),
    ],
)
def test_unknown_routes_and_methods_are_problems(
    client: Client, token, method: str, path: str, status: int
) -> None:
    response = getattr(client, method)(path, **token)

    assert response.status_code == status
    _problem(response)
    if status == 405:
        assert "GET" in response["Allow"]


@pytest.mark.parametrize(
    "body", ["{", "[]", "[null, null]", '{"username": 5}', "null", '{"username": ""}', '"x"']
)
def test_malformed_bodies_are_400(alice: User, client: Client, token, body: str) -> None:
    stored = make_file(alice, DATA)

    response = client.post(f"/api/v1/files/{stored.id}/shares/", body, "application/json", **token)

    assert response.status_code == 400
    _problem(response)


def test_a_nul_in_the_query_is_a_problem_not_a_500(client: Client, token) -> None:
    response = client.get("/api/v1/files/?q=a%00b", **token)

    assert response.status_code == 400
    _problem(response)


def test_no_cors_headers(client: Client, token) -> None:
    response = client.get("/api/v1/me/", HTTP_ORIGIN="https://evil.example", **token)

    assert not [name for name in response.headers if name.lower().startswith("access-control")]


def test_problem_types_describe_themselves(client: Client) -> None:
    response = client.get("/api/v1/problems/invalid-token")

    assert response.status_code == 200 and response.json()["status"] == 401
    assert client.get("/api/v1/problems/nonsense").status_code == 404


def test_the_openapi_document_names_every_endpoint(client: Client) -> None:
    schema = client.get("/api/v1/openapi.json").json()

    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert {"/api/v1/me/", "/api/v1/files/", "/api/v1/files/{file_id}/content/"} <= set(paths)
    errors = paths["/api/v1/files/{file_id}/"]["get"]["responses"]["404"]["content"]
    assert list(errors) == ["application/problem+json"]


def test_the_docs_page_serves_its_assets_itself(client: Client) -> None:
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'(?:src|href)="(?!/)', html) == []  # every asset from this origin
    # The one script element without src is Swagger UI's settings, a JSON data block that
    # no browser runs (so script-src 'self' lets the page work).
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [
        '<script type="application/json" id="swagger-settings">'
    ]
    assert csp_directives(response)["script-src"] == ["'self'"]
    assert b"/static/ninja/swagger-ui-bundle.js" in response.content
    assert client.get("/static/ninja/swagger-ui-bundle.js").status_code == 200


def test_every_operation_documents_the_413_any_big_body_gets(
    client: Client, token, settings
) -> None:
    # A body over DATA_UPLOAD_MAX_MEMORY_SIZE is refused before any view runs, whatever
    # the method: a GET with one answers 413 too, so the document must say so for reads.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.generic(
        "GET", "/api/v1/me/", b"x" * 2048, content_type="application/json", **token
    )

    assert response.status_code == 413
    assert _problem(response)["type"] == "/api/v1/problems/payload-too-large"
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "413" not in operation["responses"]
    ]
    assert undocumented == []


def test_a_file_is_shared_with_a_group_until_a_day_and_listed_so(
    alice: User, bob: User, client: Client, token
) -> None:
    from django.contrib.auth.models import Group

    from sharing.models import Share

    team = Group.objects.create(name="Litigation")
    team.user_set.add(alice, bob)
    stored = make_file(alice, DATA)
    url = f"/api/v1/files/{stored.id}/shares/"

    both = client.post(url, {"username": "bob", "group": "Litigation"}, "application/json", **token)
    neither = client.post(url, {}, "application/json", **token)
    past = client.post(
        url, {"group": "Litigation", "expires_on": "2000-01-01"}, "application/json", **token
    )
    assert [both.status_code, neither.status_code, past.status_code] == [422, 422, 422]
    assert not Share.objects.exists()

    created = client.post(
        url, {"group": "Litigation", "expires_on": "2999-12-31"}, "application/json", **token
    )
    assert created.status_code == 201
    listed = client.get(url, **token).json()
    assert [(s["colleague"], s["group"], s["expires_on"]) for s in listed] == [
        (None, "Litigation", "2999-12-31")
    ]
    member = bearer(make_token(bob))
    assert streamed(client.get(f"/api/v1/files/{stored.id}/content/", **member)) == DATA
