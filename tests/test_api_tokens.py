"""Personal access tokens: made on the account page (shown once), used as bearer tokens,
scoped, expiring, revocable by their user and by staff, dead with their user, rate
limited per token, and never stored or logged in the clear."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core import serializers
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AccessToken
from audit.models import AuditEntry
from sharing.models import StoredFile
from tests.helpers import bearer, client_for, make_file, make_token, streamed

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"sf_[A-Za-z0-9_-]{51}")


def _create(client: Client, **fields: object) -> tuple[int, str]:
    data = {"name": "nightly", "scopes": ["read", "write"], "expires_in_days": "7", **fields}
    response = client.post("/accounts/tokens/", data)
    found = TOKEN_RE.findall(response.content.decode())
    return response.status_code, found[0] if found else ""


def _problem(response) -> dict:  # type: ignore[no-untyped-def]
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)


def test_it_creates_a_token_shown_once_and_stores_only_its_digest(alice_client: Client) -> None:
    status, raw = _create(alice_client)

    assert status == 201
    row = AccessToken.objects.get()
    assert raw == f"sf_{row.prefix}{raw[11:]}" and len(raw) == 54
    assert row.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert row.scopes == "read,write"
    assert timedelta(days=6, hours=23) < row.expires_at - timezone.now() <= timedelta(days=7)
    page = alice_client.get("/accounts/tokens/")
    assert raw not in page.content.decode() and f"sf_{row.prefix}" in page.content.decode()
    entry = AuditEntry.objects.get(event="token.created")
    assert entry.actor == "alice" and f"token=sf_{row.prefix}" in entry.detail
    assert raw[11:] not in entry.detail


@pytest.mark.parametrize(
    "fields",
    [
        {"expires_in_days": "11"},
        {"expires_in_days": "0"},
        {"scopes": ["admin"]},
        {"scopes": []},
        {"name": ""},
    ],
)
def test_it_refuses_a_bad_token_form(alice_client: Client, settings, fields: dict) -> None:
    settings.API_TOKEN_MAX_DAYS = 10

    status, raw = _create(alice_client, **fields)

    assert (status, raw) == (400, "")
    assert not AccessToken.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client: Client) -> None:
    response = client.post("/accounts/tokens/", {"name": "x", "scopes": ["read"]})

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not AccessToken.objects.exists()


def test_a_user_with_a_second_factor_must_give_a_current_code(alice: User) -> None:
    device = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    client = client_for(alice)

    assert _create(client) == (400, "")
    status, raw = _create(client, code=str(totp(device.bin_key)).zfill(6))

    assert status == 201 and raw
    assert AccessToken.objects.count() == 1


def test_a_wrong_code_makes_no_token(alice: User) -> None:
    device = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    wrong = str((int(totp(device.bin_key)) + 1) % 1_000_000).zfill(6)

    assert _create(client_for(alice), code=wrong) == (400, "")
    assert not AccessToken.objects.exists()


def test_a_token_authenticates_and_records_its_last_use(alice: User, client: Client) -> None:
    raw = make_token(alice)

    response = client.get("/api/v1/me/", **bearer(raw), REMOTE_ADDR="192.0.2.7")

    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert response.json()["token"]["prefix"] == raw[:11]
    row = AccessToken.objects.get()
    assert row.last_used_ip == "192.0.2.7" and row.last_used_at is not None
    assert "sessionid" not in response.cookies  # a token request opens no session


def test_a_revoked_token_is_refused(alice: User, alice_client: Client, client: Client) -> None:
    raw = make_token(alice)
    token = AccessToken.objects.get()

    response = alice_client.post(f"/accounts/tokens/{token.pk}/revoke/")

    assert response.status_code == 302
    refused = client.get("/api/v1/me/", **bearer(raw))
    assert refused.status_code == 401
    assert _problem(refused)["type"] == "/api/v1/problems/invalid-token"
    assert 'error="invalid_token"' in refused["WWW-Authenticate"]
    assert AuditEntry.objects.filter(event="token.revoked", actor="alice").count() == 1


def test_nobody_else_can_revoke_a_token(alice: User, bob_client: Client) -> None:
    make_token(alice)
    token = AccessToken.objects.get()

    assert bob_client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    assert AccessToken.objects.get().revoked_at is None


def test_an_expired_token_is_refused(alice: User, client: Client) -> None:
    raw = make_token(alice)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.get("/api/v1/me/", **bearer(raw))

    assert response.status_code == 401
    assert _problem(response)["type"] == "/api/v1/problems/invalid-token"


def test_a_deactivated_users_token_is_dead(alice: User, client: Client) -> None:
    raw = make_token(alice)
    alice.is_active = False
    alice.save()

    assert client.get("/api/v1/me/", **bearer(raw)).status_code == 401


@pytest.mark.parametrize(
    "raw",
    ["", "sf_", "sf_" + "A" * 51, "Bearer", "sf_" + "A" * 200, "sf_" + "é" * 51, "x\x00y"],
)
def test_malformed_and_unknown_tokens_are_one_401(alice: User, client: Client, raw: str) -> None:
    make_token(alice)

    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert response.status_code == 401
    assert _problem(response)["type"] == "/api/v1/problems/invalid-token"


def test_a_token_without_the_scope_is_refused_and_changes_nothing(
    alice: User, client: Client
) -> None:
    stored = make_file(alice, b"keep me")
    raw = make_token(alice, ["read", "share"])

    response = client.delete(f"/api/v1/files/{stored.id}/", **bearer(raw))

    assert response.status_code == 403
    problem = _problem(response)
    assert problem["type"] == "/api/v1/problems/insufficient-scope" and problem["scope"] == "write"
    assert StoredFile.objects.filter(pk=stored.id).exists()


def test_staff_list_and_revoke_tokens_in_the_admin(
    alice: User, admin_client: Client, client: Client
) -> None:
    raw = make_token(alice)
    token = AccessToken.objects.get()

    listing = admin_client.get("/admin/accounts/accesstoken/")
    assert listing.status_code == 200 and f"sf_{token.prefix}" in listing.content.decode()
    assert raw[11:] not in listing.content.decode() and token.digest not in listing.content.decode()
    response = admin_client.post(
        "/admin/accounts/accesstoken/",
        {"action": "tokens_revoke", "_selected_action": [token.pk]},
    )

    assert response.status_code == 302
    assert client.get("/api/v1/me/", **bearer(raw)).status_code == 401
    entry = AuditEntry.objects.get(event="token.revoked")
    assert entry.actor == "root" and "user=alice" in entry.detail


def test_requests_are_limited_per_token(alice: User, client: Client, settings) -> None:
    settings.API_RATE_LIMIT = 3
    first, second = make_token(alice), make_token(alice)

    answers = [client.get("/api/v1/me/", **bearer(first)).status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]
    refused = client.get("/api/v1/me/", **bearer(first))
    assert _problem(refused)["type"] == "/api/v1/problems/too-many-requests"
    assert 1 <= int(refused["Retry-After"]) <= settings.API_RATE_WINDOW_SECONDS
    assert client.get("/api/v1/me/", **bearer(second)).status_code == 200


def test_session_requests_need_csrf_and_token_requests_do_not(alice: User) -> None:
    first, second = make_file(alice, b"one"), make_file(alice, b"two")
    session = client_for(alice, enforce_csrf_checks=True)

    refused = session.delete(f"/api/v1/files/{first.id}/")
    assert refused.status_code == 403
    assert _problem(refused)["type"] == "/api/v1/problems/csrf-failed"
    session.get("/accounts/tokens/")  # sets the CSRF cookie
    csrf = session.cookies["csrftoken"].value
    assert session.delete(f"/api/v1/files/{first.id}/", HTTP_X_CSRFTOKEN=csrf).status_code == 204
    tokens_client = Client(enforce_csrf_checks=True)
    response = tokens_client.delete(f"/api/v1/files/{second.id}/", **bearer(make_token(alice)))
    assert response.status_code == 204
    assert not StoredFile.objects.exists()


def test_a_session_without_its_second_factor_is_refused(alice: User) -> None:
    session = client_for(alice)
    TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)  # enrolled elsewhere

    response = session.get("/api/v1/me/")

    assert response.status_code == 403
    assert _problem(response)["type"] == "/api/v1/problems/second-factor-required"


def test_the_raw_token_is_in_no_row_and_no_log_line(
    alice: User, alice_client: Client, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stored = make_file(alice, b"data")
    status, raw = _create(alice_client, scopes=["read", "write", "share"])
    assert status == 201
    client.get("/api/v1/me/", **bearer(raw))
    assert streamed(client.get(f"/api/v1/files/{stored.id}/content/", **bearer(raw))) == b"data"
    client.post(f"/api/v1/files/{stored.id}/links/", {}, "application/json", **bearer(raw))
    client.get("/api/v1/nowhere/", **bearer(raw))
    client.get("/api/v1/me/", **bearer(raw[:-1] + "x"))  # a wrong secret, logged as refused

    dump = "".join(
        serializers.serialize("json", model.objects.all()) for model in apps.get_models()
    )
    secret = raw[11:]
    assert secret not in dump
    assert secret not in caplog.text and raw[:-1] not in caplog.text


def test_the_limit_holds_with_redis_counters_too(alice: User, client: Client, settings) -> None:
    from tests.test_throttle import redis_is_up, redis_url
    from throttle import counters, keys

    if not redis_is_up():
        pytest.skip("no Redis for the tests")
    settings.THROTTLE_REDIS_URL = redis_url(3)
    settings.API_RATE_LIMIT = 2
    counters._redis.cache_clear()
    raw = make_token(alice)
    try:
        answers = [client.get("/api/v1/me/", **bearer(raw)).status_code for _ in range(3)]
        assert answers == [200, 200, 429]
        assert counters.failures(keys.api_token_key(raw[3:11]), 60) == 3
    finally:
        counters.reset(keys.api_token_key(raw[3:11]))
        counters._redis.cache_clear()


def test_tus_patches_do_not_count_against_the_token_limit(
    alice: User, client: Client, settings
) -> None:
    from tests.test_tus import OCTETS, TUS

    settings.API_RATE_LIMIT = 2
    headers = {**TUS, **bearer(make_token(alice))}
    created = client.post("/files/uploads/", HTTP_UPLOAD_LENGTH=str(3 * 2**20), **headers)
    location = created["Location"]

    offsets = []
    for part in range(3):  # a multi-GiB upload is many such PATCHes: none is refused
        answer = client.generic(
            "PATCH", location, b"x" * 2**20, content_type=OCTETS,
            HTTP_UPLOAD_OFFSET=str(part * 2**20), **headers,
        )  # fmt: skip
        offsets.append((answer.status_code, answer["Upload-Offset"]))

    assert created.status_code == 201
    assert offsets == [(204, str(n * 2**20)) for n in (1, 2, 3)]
    assert client.post("/files/uploads/", HTTP_UPLOAD_LENGTH="10", **headers).status_code == 201
    refused = client.post("/files/uploads/", HTTP_UPLOAD_LENGTH="10", **headers)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
