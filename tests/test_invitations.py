"""Invitations: an administrator adds a user (username and e-mail) and the user chooses a
password through a one-time link that expires; sending again replaces the link.

The lifecycle as the invitee and the administrator see it: the e-mail, the link (its
token 256 bits, stored only as a SHA-256), accepting it, using it twice, letting it expire,
resending, and a staff invitee sent on to enrol a second factor.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation
from audit.models import AuditEntry
from audit.selectors import verify_chain

pytestmark = pytest.mark.django_db

USERS = "/admin/auth/user/"
LINK = re.compile(r"https://files\.example\.org/accounts/invitation/([A-Za-z0-9_-]{43})/")
PASSWORD = "Velvet-Compass-42-Orchard"
INVALID = "This invitation link is not valid"


@pytest.fixture(autouse=True)
def site(settings) -> None:
    settings.SITE_URL = "https://files.example.org"


@pytest.fixture
def invite(admin_client, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Add a user in the admin as an administrator does; return the link's token."""

    def invite(username: str = "dora") -> str:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                f"{USERS}add/", {"username": username, "email": f"{username}@example.com"}
            )
        assert response.status_code == 302
        return _token_in(mail.outbox[-1].body)

    return invite


def _token_in(body: str) -> str:
    [token] = LINK.findall(body)
    return token


def _resend(admin_client, captured, user: User):  # type: ignore[no-untyped-def]
    data = {"action": "send_invitation", "_selected_action": [str(user.pk)], "index": "0"}
    with captured(execute=True):
        return admin_client.post(USERS, data, follow=True)


def _accept(client: Client, token: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    landing = client.get(f"/accounts/invitation/{token}/")
    if landing.status_code != 302:
        return landing
    assert landing["Location"] == "/accounts/invitation/accept/"
    form = client.get(landing["Location"])
    assert form.status_code == 200
    assert token not in form.content.decode()  # the form's page never carries the token
    return client.post(landing["Location"], {"new_password1": password, "new_password2": password})


def test_it_sends_a_link_with_a_256_bit_token_stored_hashed(invite) -> None:
    token = invite()

    dora = User.objects.get(username="dora")
    invitation = Invitation.objects.get(user=dora)
    assert invitation.token_digest == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) == 43  # secrets.token_urlsafe(32): 256 bits
    assert not dora.has_usable_password()
    assert mail.outbox[-1].to == ["dora@example.com"]
    assert "dora" in mail.outbox[-1].body
    [sent] = AuditEntry.objects.filter(event="user.invitation_sent")
    assert sent.actor == "root" and sent.detail.startswith("user=dora expires_at=")
    assert all(token not in entry.detail for entry in AuditEntry.objects.all())


def test_it_lets_the_invitee_choose_a_password_and_logs_them_in(invite) -> None:
    token = invite()
    visitor = Client()

    response = _accept(visitor, token)

    assert response.status_code == 302
    assert response["Location"] == "/"
    dora = User.objects.get(username="dora")
    assert dora.check_password(PASSWORD)
    assert not Invitation.objects.exists()
    assert visitor.get("/").status_code == 200
    [accepted] = AuditEntry.objects.filter(event="user.invitation_accepted")
    assert (accepted.actor, accepted.actor_user_id, accepted.detail) == (
        "dora",
        dora.pk,
        "user=dora",
    )
    assert verify_chain().intact


def test_it_refuses_a_link_used_once(invite) -> None:
    token = invite()
    _accept(Client(), token)

    again = _accept(Client(), token, password="Another-Harbour-99-Quill")

    assert again.status_code == 404
    assert INVALID in again.content.decode()
    assert User.objects.get(username="dora").check_password(PASSWORD)
    assert AuditEntry.objects.filter(event="user.invitation_accepted").count() == 1


def test_it_refuses_an_expired_link(invite) -> None:
    token = invite()
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = _accept(Client(), token)

    assert response.status_code == 404
    assert INVALID in response.content.decode()
    assert not User.objects.get(username="dora").has_usable_password()


def test_it_refuses_a_link_that_expired_while_the_form_was_open(invite) -> None:
    token = invite()
    visitor = Client()
    visitor.get(f"/accounts/invitation/{token}/")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = visitor.post(
        "/accounts/invitation/accept/", {"new_password1": PASSWORD, "new_password2": PASSWORD}
    )

    assert response.status_code == 404
    assert not User.objects.get(username="dora").has_usable_password()


def test_it_replaces_the_link_when_sent_again(
    admin_client, invite, django_capture_on_commit_callbacks
) -> None:
    old = invite()
    dora = User.objects.get(username="dora")

    page = _resend(admin_client, django_capture_on_commit_callbacks, dora)

    assert "Sent 1 invitation(s)." in page.content.decode()
    new = _token_in(mail.outbox[-1].body)
    assert new != old
    assert _accept(Client(), old).status_code == 404
    assert _accept(Client(), new).status_code == 302
    assert AuditEntry.objects.filter(event="user.invitation_sent").count() == 2


def test_it_sends_no_invitation_to_someone_with_a_password(
    admin_client, alice_with_password, django_capture_on_commit_callbacks
) -> None:
    page = _resend(admin_client, django_capture_on_commit_callbacks, alice_with_password)

    assert "Not sent" in page.content.decode() and "alice" in page.content.decode()
    assert not mail.outbox
    assert not Invitation.objects.exists()
    assert not AuditEntry.objects.filter(event="user.invitation_sent").exists()


def test_it_refuses_a_deactivated_invitee(invite) -> None:
    token = invite()
    User.objects.filter(username="dora").update(is_active=False)

    assert _accept(Client(), token).status_code == 404


def test_it_keeps_the_link_when_the_password_is_refused(invite) -> None:
    token = invite()
    visitor = Client()

    weak = _accept(visitor, token, password="password")
    retried = visitor.post(
        "/accounts/invitation/accept/", {"new_password1": PASSWORD, "new_password2": PASSWORD}
    )

    assert weak.status_code == 200 and "errorlist" in weak.content.decode()
    assert retried.status_code == 302
    assert User.objects.get(username="dora").check_password(PASSWORD)


@pytest.mark.parametrize("token", ["x", "A" * 43, "A" * 44, "accept-but-longer"])
def test_it_answers_a_made_up_link_with_the_invalid_page(client, token) -> None:
    response = client.get(f"/accounts/invitation/{token}/")

    assert response.status_code == 404
    assert INVALID in response.content.decode()


def test_it_sends_staff_on_to_enrol_a_second_factor(invite) -> None:
    token = invite()
    User.objects.filter(username="dora").update(is_staff=True)
    visitor = Client()

    _accept(visitor, token)

    home = visitor.get("/")
    assert home.status_code == 302
    assert home["Location"] == "/accounts/2fa/?reason=staff"


def test_it_offers_single_sign_on_once_in_the_page_and_never_in_its_title(invite, settings) -> None:
    settings.OIDC_ENABLED = True
    settings.OIDC_LOGIN_LABEL = "Sign in with Example Corp"
    client = Client()
    client.get(f"/accounts/invitation/{invite()}/")

    page = client.get("/accounts/invitation/accept/").content.decode()

    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)  # type: ignore[union-attr]
    assert "<" not in title and "Sign in with Example Corp" not in title
    assert page.count('href="/accounts/oidc/authenticate/"') == 1
