"""Optional TOTP second factor: enrolment, recovery codes, the login code step, the admin.

Threat model, as the README states it: django-otp keeps each TOTP secret in clear in its
table (otp_totp_totpdevice.key). Whoever reads the database can mint codes for every
enrolled user, but still needs the password, which is stored only as an Argon2 hash;
recovery codes are stored only as SHA-256 digests. test_it_keeps_the_totp_secret_in_clear
pins that documented behaviour, so a change to it is a deliberate one.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import segno
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.http import HttpResponseBase
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import RecoveryCode
from accounts.views import PENDING_KEY
from audit.models import AuditEntry
from tests.helpers import ALICE_PASSWORD, client_for

pytestmark = pytest.mark.django_db

LOGIN_URL = "/accounts/login/"
CODE_URL = "/accounts/login/code/"
ENROL_URL = "/accounts/2fa/"
CODE_RE = re.compile(r"<code>([A-Z0-9]{4}(?:-[A-Z0-9]{4}){3})</code>")


def _token(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows now (or ``steps_ahead`` 30-second steps later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def _wrong_token(device: TOTPDevice) -> str:
    valid = {_token(device, steps_ahead=step) for step in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


def _enrol(client: Client, user: User) -> list[str]:
    """Enrol through /accounts/2fa/ as a user would; return the recovery codes shown."""
    client.get(ENROL_URL)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(ENROL_URL, {"code": _token(device)})
    assert response.status_code == 200
    return CODE_RE.findall(response.content.decode())


def _with_device(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def _password_step(
    client: Client, user: User, password: str = ALICE_PASSWORD, **data: str
) -> HttpResponseBase:
    return client.post(LOGIN_URL, {"username": user.get_username(), "password": password, **data})


def _session_user_id(client: Client) -> str | None:
    key = client.cookies.get("sessionid")
    if key is None or not key.value:
        return None
    session = Session.objects.filter(session_key=key.value).first()
    return session.get_decoded().get("_auth_user_id") if session else None


def _home_redirects_to_login(client: Client) -> bool:
    response = client.get("/")
    return response.status_code == 302 and response["Location"].startswith(LOGIN_URL)


class _Images(HTMLParser):
    """The page's image sources, links, and the text of its ``<code class="secret">``."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []
        self.secret = ""
        self._in_secret = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.sources.append(values.get("src") or "")
        if tag == "a":
            self.links.append(values.get("href") or "")
        self._in_secret = tag == "code" and "secret" in (values.get("class") or "").split()

    def handle_data(self, data: str) -> None:
        if self._in_secret:
            self.secret += data

    def handle_endtag(self, tag: str) -> None:
        self._in_secret = False


def _enrol_page(client: Client) -> _Images:
    response = client.get(ENROL_URL)
    assert response.status_code == 200
    parser = _Images()
    parser.feed(response.content.decode())
    return parser


# ---------------------------------------------------------------------------- enrolment


def test_it_shows_a_qr_code_made_here_and_the_secret(alice, alice_client) -> None:
    response = alice_client.get(ENROL_URL)

    assert response.status_code == 200
    device = TOTPDevice.objects.get(user=alice, confirmed=False)
    parser = _Images()
    parser.feed(response.content.decode())
    [qr] = [src for src in parser.sources if src.startswith("data:")]
    assert qr.startswith("data:image/svg+xml")
    assert all(src.startswith(("/", "data:")) for src in parser.sources)
    # The QR code is the one made from the device's otpauth:// URI, here, on the server.
    assert qr == segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2)
    assert response["Cache-Control"].count("no-store") == 1


def test_it_shows_the_key_in_base32_as_authenticator_apps_take_it(alice, alice_client) -> None:
    page = _enrol_page(alice_client)
    device = TOTPDevice.objects.get(user=alice, confirmed=False)

    shown = page.secret.strip()
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{1,4})*", shown), shown  # RFC 4648, in fours
    typed = shown.replace(" ", "")
    assert "=" not in typed
    assert base64.b32decode(typed) == device.bin_key
    assert device.bin_key.hex() not in page.secret


def test_it_puts_issuer_account_and_the_shown_key_in_the_otpauth_uri(
    alice, alice_client, settings
) -> None:
    page = _enrol_page(alice_client)
    device = TOTPDevice.objects.get(user=alice, confirmed=False)

    [uri] = [href for href in page.links if href.startswith("otpauth://")]
    [qr] = [src for src in page.sources if src.startswith("data:")]
    assert uri == device.config_url
    assert qr == segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == f"/{settings.OTP_TOTP_ISSUER}:alice"
    assert query["issuer"] == [settings.OTP_TOTP_ISSUER]
    assert query["secret"] == [page.secret.replace(" ", "").strip()]
    assert (query["digits"], query["period"]) == (["6"], ["30"])


def test_it_confirms_a_code_from_the_key_typed_by_hand(alice, alice_client) -> None:
    typed = _enrol_page(alice_client).secret.replace(" ", "").strip()
    app = TOTP(base64.b32decode(typed))  # what an authenticator app computes from it

    response = alice_client.post(ENROL_URL, {"code": f"{app.token():06d}"})

    assert len(CODE_RE.findall(response.content.decode())) == 10
    assert TOTPDevice.objects.get(user=alice).confirmed


def test_it_offers_copy_download_and_print_for_recovery_codes(alice, alice_client) -> None:
    alice_client.get(ENROL_URL)
    device = TOTPDevice.objects.get(user=alice, confirmed=False)

    body = alice_client.post(ENROL_URL, {"code": _token(device)}).content.decode()

    for button in ("copy-codes", "download-codes", "print-codes"):
        assert f'id="{button}"' in body
    assert '<script src="/static/js/recovery.js" defer></script>' in body
    assert re.findall(r"<script(?![^>]*\bsrc=)", body) == []  # no inline script (CSP)
    assert "onclick" not in body


def test_it_refuses_a_wrong_confirmation_code(alice, alice_client) -> None:
    alice_client.get(ENROL_URL)
    device = TOTPDevice.objects.get(user=alice)

    response = alice_client.post(ENROL_URL, {"code": _wrong_token(device)})

    assert response.status_code == 200
    assert b"That code is not valid" in response.content
    assert not TOTPDevice.objects.filter(user=alice, confirmed=True).exists()
    assert not RecoveryCode.objects.exists()
    assert CODE_RE.findall(response.content.decode()) == []


def test_it_confirms_the_right_code_and_shows_ten_recovery_codes_once(alice, alice_client) -> None:
    codes = _enrol(alice_client, alice)

    assert len(codes) == len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=alice).confirmed
    assert AuditEntry.objects.filter(event="2fa.enrolled", actor="alice").count() == 1
    later = alice_client.get(ENROL_URL)
    assert later.status_code == 200
    assert b"10 recovery codes left" in later.content
    assert CODE_RE.findall(later.content.decode()) == []
    assert not any(code.encode() in later.content for code in codes)


def _every_stored_value() -> str:
    """Every value of every row in the database (sessions decoded), as one string."""
    values: list[str] = []
    for model in apps.get_models():
        for row in model.objects.all():
            values += [repr(getattr(row, field.attname)) for field in model._meta.concrete_fields]
    values += [repr(session.get_decoded()) for session in Session.objects.all()]
    return "\n".join(values)


def test_it_stores_recovery_codes_only_as_sha256_digests(alice, alice_client) -> None:
    codes = _enrol(alice_client, alice)

    digests = set(RecoveryCode.objects.filter(user=alice).values_list("code_digest", flat=True))
    assert digests == {hashlib.sha256(code.replace("-", "").encode()).hexdigest() for code in codes}
    everything = _every_stored_value()
    for code in codes:
        assert code not in everything
        assert code.replace("-", "") not in everything


def test_it_keeps_the_totp_secret_in_clear_as_documented(alice, alice_client) -> None:
    _enrol(alice_client, alice)

    device = TOTPDevice.objects.get(user=alice)
    assert device.key == device.bin_key.hex()  # django-otp's storage: the README says so


# ---------------------------------------------------------------------------- login step


def test_it_asks_for_a_code_before_any_session(alice_with_password, client) -> None:
    _with_device(alice_with_password)

    response = _password_step(client, alice_with_password)

    assert response.status_code == 302
    assert response["Location"] == CODE_URL
    assert _session_user_id(client) is None
    assert _home_redirects_to_login(client)
    assert not AuditEntry.objects.filter(event="login.success").exists()


def test_it_logs_in_with_a_valid_totp_code(alice_with_password, client) -> None:
    device = _with_device(alice_with_password)
    _password_step(client, alice_with_password)

    response = client.post(CODE_URL, {"code": _token(device)})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert _session_user_id(client) == str(alice_with_password.pk)
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/").status_code == 200


def test_it_refuses_a_replayed_totp_code(alice_with_password, client) -> None:
    device = _with_device(alice_with_password)
    code = _token(device)
    _password_step(client, alice_with_password)
    client.post(CODE_URL, {"code": code})
    other = Client()
    _password_step(other, alice_with_password)

    response = other.post(CODE_URL, {"code": code})

    assert response.status_code == 200
    assert _session_user_id(other) is None


def test_it_refuses_a_wrong_code(alice_with_password, client) -> None:
    device = _with_device(alice_with_password)
    _password_step(client, alice_with_password)

    response = client.post(CODE_URL, {"code": _wrong_token(device)})

    assert response.status_code == 200
    assert b"That code is not valid" in response.content
    assert _session_user_id(client) is None
    assert AuditEntry.objects.filter(
        event="login.failure", detail__contains="second-factor"
    ).exists()


def test_it_logs_in_with_a_recovery_code_once(alice_with_password, client) -> None:
    codes = _enrol(client_for(alice_with_password), alice_with_password)
    _password_step(client, alice_with_password)

    response = client.post(CODE_URL, {"code": codes[3].lower()})

    assert response.status_code == 302
    assert _session_user_id(client) == str(alice_with_password.pk)
    again = Client()
    _password_step(again, alice_with_password)
    assert again.post(CODE_URL, {"code": codes[3]}).status_code == 200
    assert _session_user_id(again) is None
    assert again.post(CODE_URL, {"code": codes[4]}).status_code == 302
    assert client_for(alice_with_password).get(ENROL_URL).content.count(b"8 recovery codes") == 1


def test_it_locks_the_code_step_after_ten_wrong_codes(alice_with_password, client) -> None:
    device = _with_device(alice_with_password)
    _password_step(client, alice_with_password)
    for _ in range(10):
        assert client.post(CODE_URL, {"code": _wrong_token(device)}).status_code == 200

    response = client.post(CODE_URL, {"code": _token(device)})

    assert response.status_code == 429
    assert b"Too many attempts" in response.content
    assert _session_user_id(client) is None
    assert AuditEntry.objects.filter(
        event="login.locked_out", detail__contains="second-factor"
    ).exists()
    # Starting over with the password does not reopen the code step.
    fresh = Client()
    _password_step(fresh, alice_with_password)
    assert fresh.post(CODE_URL, {"code": _token(device)}).status_code == 429


def test_it_expires_a_pending_second_step(alice_with_password, client) -> None:
    device = _with_device(alice_with_password)
    _password_step(client, alice_with_password)
    session = client.session
    session[PENDING_KEY] = {**session[PENDING_KEY], "at": time.time() - 301}
    session.save()

    response = client.post(CODE_URL, {"code": _token(device)})

    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    assert _session_user_id(client) is None


def test_it_sends_the_code_page_without_a_password_step_to_login(client) -> None:
    response = client.get(CODE_URL)

    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL


def test_it_honours_next_through_the_code_step(alice_with_password, client) -> None:
    device = _with_device(alice_with_password)
    _password_step(client, alice_with_password, next="/accounts/password_change/")

    response = client.post(CODE_URL, {"code": _token(device)})

    assert response["Location"] == "/accounts/password_change/"


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/x", "http:///evil.example"]
)
def test_it_does_not_follow_an_off_site_next(alice_with_password, client, next_url) -> None:
    device = _with_device(alice_with_password)
    _password_step(client, alice_with_password, next=next_url)

    response = client.post(CODE_URL, {"code": _token(device)})

    assert response.status_code == 302
    assert response["Location"] == "/"


# ---------------------------------------------------------------------------- staff, admin


@pytest.fixture
def staff(db: None) -> User:
    user = User.objects.create_user("sam", password=ALICE_PASSWORD, is_staff=True)
    return user


def test_it_sends_staff_without_a_device_to_enrol(staff) -> None:
    client = client_for(staff)

    for url in ("/", "/admin/", "/files/upload/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{ENROL_URL}?reason=staff", url
    page = client.get(f"{ENROL_URL}?reason=staff")
    assert page.status_code == 200
    assert b"Your administrator requires staff to use two-factor authentication" in page.content


def test_it_gives_no_staff_reason_to_a_user_who_is_not_staff(alice_client) -> None:
    for reason in ("staff", "admin"):
        page = alice_client.get(f"{ENROL_URL}?reason={reason}")
        assert page.status_code == 200
        assert b"requires staff" not in page.content
        assert b"open only to staff" not in page.content


def test_it_lets_staff_without_a_device_in_when_2fa_is_optional(staff, settings) -> None:
    settings.STAFF_REQUIRE_2FA = False

    assert client_for(staff).get("/").status_code == 200


def test_it_keeps_an_unverified_superuser_out_of_the_admin(admin_user) -> None:
    _with_device(admin_user)
    client = Client()
    client.force_login(admin_user)  # logged in, but no second factor in this session

    response = client.get("/admin/", follow=True)

    assert response.redirect_chain
    assert not response.request["PATH_INFO"].startswith("/admin/")
    assert client.get("/admin/sharing/storedfile/").status_code == 302


ADMIN_URLS = ("/admin/", "/admin/sharing/storedfile/", "/admin/login/?next=/admin/")


@pytest.mark.parametrize("enrolled", [True, False])
def test_it_tells_a_logged_in_user_who_is_not_staff_that_the_admin_is_for_staff(
    alice, alice_client, enrolled
) -> None:
    if enrolled:
        _enrol(alice_client, alice)  # verified in this session by the enrolment

    for url in ADMIN_URLS:
        response = alice_client.get(url)
        assert response.status_code == 403, url
        body = response.content.decode()
        assert "The administration is for staff" in body
        assert 'href="/"' in body  # a way home
        assert 'name="password"' not in body  # never a login form for a logged-in user


def test_it_sends_unverified_staff_from_the_admin_login_to_the_code_step(admin_user) -> None:
    _with_device(admin_user)
    client = Client()
    client.force_login(admin_user)

    response = client.get("/admin/login/?next=/admin/auth/user/")

    assert response.status_code == 302
    assert response["Location"].startswith(CODE_URL)


def test_it_sends_staff_without_a_factor_from_the_admin_to_enrol_saying_why(
    staff, settings
) -> None:
    settings.STAFF_REQUIRE_2FA = False
    client = client_for(staff)

    for url in ADMIN_URLS:
        response = client.get(url)
        assert response.status_code == 302, url
        target = urlsplit(response["Location"])
        assert target.path == ENROL_URL, url
        assert parse_qs(target.query)["reason"] == ["admin"], url
        assert parse_qs(target.query)["next"][0].startswith("/admin/"), url
    page = client.get(response["Location"])
    assert b"The administration is open only to staff who log in with two-factor" in page.content


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [("/admin/auth/user/", "/admin/auth/user/"), ("https://evil.example/", "/admin/")],
)
def test_it_sends_verified_staff_from_the_admin_login_onwards(
    admin_client, next_url, expected
) -> None:
    response = admin_client.get(f"/admin/login/?next={next_url}")

    assert response.status_code == 302
    assert response["Location"] == expected


def test_it_opens_the_admin_to_verified_staff(admin_client) -> None:
    assert admin_client.get("/admin/").status_code == 200


def test_it_opens_the_admin_after_password_and_code(admin_user, client) -> None:
    admin_user.set_password(ALICE_PASSWORD)
    admin_user.save()
    device = _with_device(admin_user)
    _password_step(client, admin_user, next="/admin/")

    response = client.post(CODE_URL, {"code": _token(device)})

    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


# ---------------------------------------------------------------------------- turning it off


def _remove(client: Client, password: str, code: str = "") -> HttpResponseBase:
    return client.post("/accounts/2fa/remove/", {"password": password, "code": code})


def _current_code(user: User) -> str:
    # The next step's code: the enrolment just spent this step's (no replays).
    return _token(TOTPDevice.objects.get(user=user, confirmed=True), steps_ahead=1)


def test_it_keeps_the_device_without_the_password(alice_with_password) -> None:
    client = client_for(alice_with_password)
    _enrol(client, alice_with_password)

    response = _remove(client, "not-my-password", _current_code(alice_with_password))

    assert response.status_code == 302
    assert TOTPDevice.objects.filter(user=alice_with_password, confirmed=True).exists()
    assert RecoveryCode.objects.filter(user=alice_with_password).count() == 10
    assert b"Wrong password or code" in client.get(ENROL_URL).content


@pytest.mark.parametrize("code", ["", "000000"])
def test_it_keeps_the_device_with_the_password_alone(alice_with_password, code) -> None:
    client = client_for(alice_with_password)
    _enrol(client, alice_with_password)
    device = TOTPDevice.objects.get(user=alice_with_password, confirmed=True)
    wrong = _wrong_token(device) if code else ""

    response = _remove(client, ALICE_PASSWORD, wrong)

    assert response.status_code == 302
    assert TOTPDevice.objects.filter(user=alice_with_password, confirmed=True).exists()
    assert not AuditEntry.objects.filter(event="2fa.removed").exists()


def test_it_turns_2fa_off_with_the_password_and_a_recovery_code(alice_with_password) -> None:
    client = client_for(alice_with_password)
    codes = _enrol(client, alice_with_password)

    assert _remove(client, ALICE_PASSWORD, codes[0]).status_code == 302

    assert not TOTPDevice.objects.filter(user=alice_with_password).exists()


def test_it_turns_2fa_off_with_the_password_and_a_code(alice_with_password, client) -> None:
    owner = client_for(alice_with_password)
    _enrol(owner, alice_with_password)

    response = _remove(owner, ALICE_PASSWORD, _current_code(alice_with_password))

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=alice_with_password).exists()
    assert not RecoveryCode.objects.filter(user=alice_with_password).exists()
    assert AuditEntry.objects.filter(event="2fa.removed", actor="alice").count() == 1
    assert _password_step(client, alice_with_password)["Location"] == "/"


def test_it_refuses_to_turn_2fa_off_by_get(alice_with_password) -> None:
    client = client_for(alice_with_password)
    _enrol(client, alice_with_password)

    assert client.get("/accounts/2fa/remove/").status_code == 405
    assert TOTPDevice.objects.filter(user=alice_with_password).exists()


# An account without a usable password (single sign-on) has no password to give: the code
# (or a recovery code) is then the whole proof, and still required.


def test_an_account_without_a_password_turns_2fa_off_with_a_code(alice) -> None:
    client = client_for(alice)
    _enrol(client, alice)
    assert 'name="password"' not in client.get(ENROL_URL).content.decode()

    response = _remove(client, "", _current_code(alice))

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=alice).exists()
    assert AuditEntry.objects.filter(event="2fa.removed", actor="alice").count() == 1


def test_an_account_without_a_password_keeps_2fa_without_a_code(alice) -> None:
    client = client_for(alice)
    _enrol(client, alice)

    response = _remove(client, "", "")

    assert response.status_code == 302
    assert TOTPDevice.objects.filter(user=alice, confirmed=True).exists()
