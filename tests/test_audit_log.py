"""The audit log: what is recorded for each security-relevant event, from where, and the
HMAC chain that `manage.py verify_audit_log` walks to detect edits, inserts and deletions."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from audit.actors import SYSTEM
from audit.chain import GENESIS_MAC, audit_key, canonical
from audit.events import Event
from audit.models import AuditEntry, AuditHead
from audit.selectors import verify_chain
from audit.services import audit_record
from sharing.models import StoredFile
from tests.helpers import (
    ALICE_PASSWORD,
    client_for,
    make_file,
    make_link,
    make_share,
    streamed,
    upload,
)

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
ALICE_IP, BOB_IP, VISITOR_IP, PROXY_IP = "192.0.2.10", "192.0.2.20", "198.51.100.7", "10.0.0.2"
UA = "Mozilla/5.0 (audit test)"


@pytest.fixture
def alice_web(alice: User) -> Client:
    return client_for(alice, REMOTE_ADDR=ALICE_IP, HTTP_USER_AGENT=UA)


@pytest.fixture
def bob_web(bob: User) -> Client:
    return client_for(bob, REMOTE_ADDR=BOB_IP, HTTP_USER_AGENT=UA + " bob")


@pytest.fixture
def stored(alice: User) -> StoredFile:
    return make_file(alice, b"minutes of the board", name="board minutes.docx")


def _last(event: str) -> AuditEntry:
    return AuditEntry.objects.filter(event=event).latest("seq")


def _fields(entry: AuditEntry) -> tuple:
    return (entry.actor, entry.ip, entry.user_agent, entry.file_id, entry.file_name)


def _verify(*args: str) -> str:
    out = StringIO()
    call_command("verify_audit_log", *args, stdout=out)
    return out.getvalue()


def _head() -> str:
    head = AuditHead.objects.get()
    return f"{head.seq}:{head.mac}"


# ---------------------------------------------------------------------------- events


def test_it_records_an_upload(alice_web) -> None:
    before = timezone.now()

    upload(alice_web, ("budget 2025.xlsx", b"numbers", "application/vnd.ms-excel"))

    stored = StoredFile.objects.get()
    entry = _last("file.upload")
    assert _fields(entry) == ("alice", ALICE_IP, UA, stored.id, "budget 2025.xlsx")
    assert entry.actor_user_id == stored.owner_id
    assert entry.detail == "size=7"
    assert before <= entry.created_at <= timezone.now()


def test_it_records_downloads_by_owner_and_colleague(alice_web, bob, bob_web, stored) -> None:
    make_share(alice_web, stored, "bob")

    streamed(alice_web.get(f"/files/{stored.id}/download/"))
    streamed(bob_web.get(f"/files/{stored.id}/download/"))

    owner, colleague = AuditEntry.objects.filter(event="file.download").order_by("seq")
    assert _fields(owner) == ("alice", ALICE_IP, UA, stored.id, "board minutes.docx")
    assert owner.detail == "via=owner"
    assert _fields(colleague) == ("bob", BOB_IP, UA + " bob", stored.id, "board minutes.docx")
    assert (colleague.detail, colleague.actor_user_id) == ("via=colleague", bob.pk)


def test_it_records_a_link_download_and_its_exhaustion(alice_web, stored) -> None:
    token, link = make_link(alice_web, stored, max_downloads="1")
    visitor = Client(REMOTE_ADDR=VISITOR_IP, HTTP_USER_AGENT="curl/8")

    streamed(visitor.post(f"/s/{token}/"))

    download, used_up = AuditEntry.objects.filter(link_id=link.pk).order_by("seq")[1:]
    assert (download.event, used_up.event) == ("file.download", "link.used_up")
    for entry in (download, used_up):
        assert _fields(entry) == (f"link {link.pk}", VISITOR_IP, "curl/8", stored.id, stored.name)
        assert entry.actor_user_id is None
    assert download.detail == "via=link count=1"


def test_it_records_shares_granted_and_revoked(alice_web, bob, stored) -> None:
    share = make_share(alice_web, stored, "bob")
    alice_web.post(f"/files/{stored.id}/shares/{share.pk}/revoke/")

    granted, revoked = _last("share.granted"), _last("share.revoked")
    for entry in (granted, revoked):
        assert _fields(entry) == ("alice", ALICE_IP, UA, stored.id, "board minutes.docx")
        assert entry.detail == "colleague=bob"
    assert granted.seq < revoked.seq


def test_it_records_links_created_and_revoked(alice_web, stored) -> None:
    _, link = make_link(alice_web, stored, max_downloads="4", password=PASSWORD)
    alice_web.post(f"/files/{stored.id}/links/{link.pk}/revoke/")

    created, revoked = _last("link.created"), _last("link.revoked")
    for entry in (created, revoked):
        assert _fields(entry) == ("alice", ALICE_IP, UA, stored.id, "board minutes.docx")
        assert entry.link_id == link.pk
    assert "max_downloads=4" in created.detail and "password=yes" in created.detail
    assert PASSWORD not in created.detail


def test_it_records_wrong_passwords_and_throttling(alice_web, stored) -> None:
    token, link = make_link(alice_web, stored, password=PASSWORD)
    visitor = Client(REMOTE_ADDR=VISITOR_IP, HTTP_USER_AGENT="curl/8")

    for _ in range(settings.LINK_PASSWORD_ATTEMPTS + 1):
        visitor.post(f"/s/{token}/", {"password": "letmein"})

    denied = AuditEntry.objects.filter(event="link.password_denied").order_by("seq")
    assert [e.detail for e in denied] == [
        f"failures={n}" for n in range(1, settings.LINK_PASSWORD_ATTEMPTS + 1)
    ]
    throttled = AuditEntry.objects.filter(event="link.throttled")
    assert throttled.count() == 2  # the attempt that reached the limit, and the next one
    for entry in [*denied, *throttled]:
        assert _fields(entry) == (f"link {link.pk}", VISITOR_IP, "curl/8", stored.id, stored.name)
        assert entry.link_id == link.pk
        assert "letmein" not in entry.detail


def test_it_records_access_to_a_file_that_is_not_yours(charlie, stored) -> None:
    charlie_web = client_for(charlie, REMOTE_ADDR="203.0.113.66", HTTP_USER_AGENT="probe")

    charlie_web.get(f"/files/{stored.id}/download/")
    charlie_web.post(f"/files/{stored.id}/delete/")

    entries = AuditEntry.objects.filter(event="file.access_denied").order_by("seq")
    assert [_fields(e) for e in entries] == [
        ("charlie", "203.0.113.66", "probe", stored.id, "board minutes.docx")
    ] * 2
    assert [e.detail for e in entries] == [
        f"path=/files/{stored.id}/download/",
        f"path=/files/{stored.id}/delete/",
    ]


def test_it_keeps_the_name_after_the_file_is_deleted(alice_web, stored) -> None:
    streamed(alice_web.get(f"/files/{stored.id}/download/"))

    alice_web.post(f"/files/{stored.id}/delete/", {"confirm": "on"})

    deleted = _last("file.delete")
    assert _fields(deleted) == ("alice", ALICE_IP, UA, stored.id, "board minutes.docx")
    names = AuditEntry.objects.filter(file_id=stored.id).values_list("file_name", flat=True)
    assert set(names) == {"board minutes.docx"}
    assert len(names) == 3  # upload, download, delete
    assert verify_chain().intact


def test_it_still_verifies_after_users_are_deleted(alice_web, bob, stored) -> None:
    make_share(alice_web, stored, "bob")

    bob.delete()
    User.objects.filter(username="alice").delete()

    assert _last("share.granted").detail == "colleague=bob"
    assert "audit log intact" in _verify()


def test_it_records_logins_through_the_login_page(alice_with_password) -> None:
    browser = Client(REMOTE_ADDR=ALICE_IP, HTTP_USER_AGENT=UA)

    failed = browser.post("/accounts/login/", {"username": "alice", "password": "not it"})
    succeeded = browser.post("/accounts/login/", {"username": "alice", "password": ALICE_PASSWORD})

    assert failed.status_code == 200 and succeeded.status_code == 302
    failure, success = _last("login.failure"), _last("login.success")
    assert (failure.actor, failure.ip, failure.user_agent) == ("anonymous", ALICE_IP, UA)
    assert failure.detail == "username=alice"
    assert (success.actor, success.ip, success.user_agent) == ("alice", ALICE_IP, UA)
    assert success.actor_user_id == alice_with_password.pk
    assert "not it" not in failure.detail
    assert not AuditEntry.objects.filter(detail__contains=ALICE_PASSWORD).exists()


# ---------------------------------------------------------------------------- client address


def test_it_ignores_x_forwarded_for_from_an_untrusted_peer(alice, stored, settings) -> None:
    settings.TRUSTED_PROXIES = [PROXY_IP]
    client = client_for(alice, REMOTE_ADDR=VISITOR_IP, HTTP_X_FORWARDED_FOR="1.2.3.4")

    client.get(f"/files/{stored.id}/download/")

    assert _last("file.download").ip == VISITOR_IP


def test_it_believes_x_forwarded_for_from_a_trusted_proxy(alice, stored, settings) -> None:
    settings.TRUSTED_PROXIES = [PROXY_IP]
    # The client may prepend anything; the proxy appends the address it saw.
    client = client_for(alice, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=f"6.6.6.6, {BOB_IP}")

    client.get(f"/files/{stored.id}/download/")

    assert _last("file.download").ip == BOB_IP


def test_it_knows_a_trusted_proxy_on_a_dual_stack_socket(alice, stored, settings) -> None:
    # The proxy is listed as an IPv4 address; a dual-stack listener reports it mapped.
    settings.TRUSTED_PROXIES = [PROXY_IP]
    client = client_for(
        alice, REMOTE_ADDR=f"::ffff:{PROXY_IP}", HTTP_X_FORWARDED_FOR=f"6.6.6.6, {BOB_IP}"
    )

    client.get(f"/files/{stored.id}/download/")

    assert _last("file.download").ip == BOB_IP


def test_it_keeps_the_proxy_address_without_a_forwarded_hop(alice, stored, settings) -> None:
    settings.TRUSTED_PROXIES = [PROXY_IP]
    client = client_for(alice, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR="not-an-ip")

    client.get(f"/files/{stored.id}/download/")

    assert _last("file.download").ip == PROXY_IP


def test_it_trusts_no_proxy_by_default(alice, stored) -> None:
    client = client_for(alice, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=BOB_IP)

    client.get(f"/files/{stored.id}/download/")

    assert _last("file.download").ip == PROXY_IP


def test_it_truncates_a_huge_user_agent(alice, stored) -> None:
    client_for(alice, HTTP_USER_AGENT="A" * 5000).get(f"/files/{stored.id}/download/")

    assert _last("file.download").user_agent == "A" * 300
    assert verify_chain().intact


@pytest.mark.parametrize("user_agent", ["evil\x00agent", "\x00"])
def test_it_records_a_user_agent_holding_a_nul(alice, alice_client, stored, user_agent) -> None:
    # PostgreSQL refuses NUL in text: the entry keeps the rest, the request still works.
    token, _ = make_link(alice_client, stored, password=PASSWORD)
    owner = client_for(alice, HTTP_USER_AGENT=user_agent)
    visitor = Client(HTTP_USER_AGENT=user_agent)
    start = AuditHead.objects.get().seq

    download = owner.get(f"/files/{stored.id}/download/")
    wrong = visitor.post(f"/s/{token}/", {"password": "nope"})
    right = visitor.post(f"/s/{token}/", {"password": PASSWORD})

    assert (download.status_code, wrong.status_code, right.status_code) == (200, 403, 200)
    assert streamed(right) == streamed(download)
    expected = user_agent.replace("\x00", "")
    entries = AuditEntry.objects.filter(seq__gt=start)
    assert entries.count() == 3  # owner's download, wrong password, link download
    assert set(entries.values_list("user_agent", flat=True)) == {expected}
    assert verify_chain().intact


# ---------------------------------------------------------------------------- activity page


def test_it_shows_the_owner_the_files_activity(alice_web, bob, bob_web, stored) -> None:
    make_share(alice_web, stored, "bob")
    streamed(bob_web.get(f"/files/{stored.id}/download/"))
    other = make_file(bob, b"bob's own", name="unrelated.txt")
    streamed(bob_web.get(f"/files/{other.id}/download/"))

    page = alice_web.get(f"/files/{stored.id}/").content.decode()
    activity = page[page.index('id="activity-title"') :]

    # Events in words (the admin and the CSV keep the codes).
    assert "Uploaded" in activity and "Shared with a colleague" in activity
    assert "Downloaded" in activity and BOB_IP in activity
    assert activity.count("Downloaded") == 1
    assert "file.download" not in activity


def test_it_hides_the_activity_from_everyone_else(alice_web, bob, bob_web, charlie_client, stored):
    make_share(alice_web, stored, "bob")

    # The colleague gets the read-only page, without the activity; a stranger the 404.
    colleague = bob_web.get(f"/files/{stored.id}/")
    stranger = charlie_client.get(f"/files/{stored.id}/")

    assert (colleague.status_code, stranger.status_code) == (200, 404)
    for response in (colleague, stranger):
        assert b'id="activity-title"' not in response.content
        assert (
            b"file.upload" not in response.content
            and b"Shared with a colleague" not in response.content
        )


# ---------------------------------------------------------------------------- the chain


@pytest.fixture
def chain(alice_web, bob, stored) -> list[AuditEntry]:
    """A few entries of every kind: log-in, upload, share, downloads, a link."""
    make_share(alice_web, stored, "bob")
    for _ in range(2):
        streamed(alice_web.get(f"/files/{stored.id}/download/"))
    make_link(alice_web, stored)
    entries = list(AuditEntry.objects.order_by("seq"))
    assert [e.seq for e in entries] == list(range(1, 7))
    return entries


def test_it_chains_every_entry_to_the_previous_one(chain) -> None:
    key = audit_key()
    prev = GENESIS_MAC
    for entry in chain:
        assert entry.prev_mac == prev
        expected = hmac.new(key, prev.encode() + canonical(entry), hashlib.sha256).hexdigest()
        assert entry.mac == expected
        prev = entry.mac


def test_it_verifies_an_intact_chain_and_prints_its_head(chain) -> None:
    output = _verify()

    assert "audit log intact: 6 entries verified" in output
    assert f"head: {_head()}" in output
    assert _head() == f"6:{chain[-1].mac}"


def test_it_verifies_an_empty_log(db) -> None:
    assert f"head: 0:{GENESIS_MAC}" in _verify()


def test_it_accepts_the_head_an_empty_log_printed(alice) -> None:
    recorded = _verify().split("head: ")[1].strip()
    assert recorded == f"0:{GENESIS_MAC}"
    assert "intact" in _verify("--expect-head", recorded)

    make_file(alice, b"later")

    assert "intact" in _verify("--expect-head", recorded)


@pytest.mark.parametrize(
    "change",
    [
        {"detail": "size=1"},
        {"actor": "mallory"},
        {"ip": "127.0.0.1"},
        {"file_name": "something else.docx"},
        {"created_at": timezone.now() - timedelta(days=400)},
        {"event": "file.upload"},
    ],
)
def test_it_detects_an_edited_entry(chain, change) -> None:
    AuditEntry.objects.filter(seq=3).update(**change)

    with pytest.raises(CommandError, match=r"BROKEN at entry #3: content .* \(entry edited\)") as e:
        _verify()

    assert e.value.returncode == 1
    assert "2 entries verified before it" in str(e.value)


def test_it_detects_a_deleted_entry(chain) -> None:
    AuditEntry.objects.filter(seq=3).delete()

    with pytest.raises(CommandError, match=r"BROKEN at entry #4: expected entry #3") as e:
        _verify()

    assert e.value.returncode == 1


def _forge(seq: int, prev_mac: str, mac: str) -> AuditEntry:
    return AuditEntry.objects.create(
        seq=seq,
        created_at=timezone.now(),
        actor="alice",
        event="file.download",
        detail="via=owner",
        prev_mac=prev_mac,
        mac=mac,
    )


@pytest.mark.parametrize("mac", ["0" * 64, "f" * 64, "not even hex", "é" * 64])
def test_it_detects_an_entry_appended_without_the_key(chain, mac) -> None:
    _forge(7, chain[-1].mac, mac)

    with pytest.raises(CommandError, match=r"BROKEN at entry #7: content"):
        _verify()


def test_it_detects_an_entry_that_claims_any_predecessor(chain) -> None:
    _forge(7, "ü" * 64, "ü" * 64)

    with pytest.raises(CommandError, match=r"BROKEN at entry #7: does not follow"):
        _verify()


def test_it_detects_an_entry_forged_with_a_guessed_key(chain) -> None:
    forged = _forge(7, chain[-1].mac, "")
    guessed = hmac.new(b"guess", chain[-1].mac.encode() + canonical(forged), hashlib.sha256)
    AuditEntry.objects.filter(pk=forged.pk).update(mac=guessed.hexdigest())
    AuditHead.objects.update(seq=7, mac=guessed.hexdigest())

    with pytest.raises(CommandError, match=r"BROKEN at entry #7: content"):
        _verify()


def test_it_detects_an_entry_swapped_in_for_another(chain) -> None:
    AuditEntry.objects.filter(seq=3).delete()
    _forge(3, chain[1].mac, chain[2].mac)  # even the old MAC does not fit new content

    with pytest.raises(CommandError, match=r"BROKEN at entry #3"):
        _verify()


def test_it_detects_entries_cut_off_the_end_by_the_head(chain) -> None:
    AuditEntry.objects.filter(seq__gte=4).delete()

    with pytest.raises(CommandError, match=r"BROKEN at entry #4: entries cut off the end"):
        _verify()


def test_it_detects_entries_cut_off_the_end_with_expect_head(chain) -> None:
    recorded = _verify().split("head: ")[1].strip()
    # The attacker trims the end and rewinds the head row to match.
    AuditEntry.objects.filter(seq__gte=4).delete()
    AuditHead.objects.update(seq=3, mac=chain[2].mac)
    assert "intact" in _verify()

    with pytest.raises(CommandError, match=r"BROKEN at entry #6: recorded head") as e:
        _verify("--expect-head", recorded)

    assert e.value.returncode == 1


def test_it_accepts_a_recorded_head_the_chain_has_grown_past(alice_web, chain, stored) -> None:
    recorded = _head()
    streamed(alice_web.get(f"/files/{stored.id}/download/"))

    assert "intact: 7 entries" in _verify("--expect-head", recorded)


def test_it_detects_a_recorded_head_that_differs(chain) -> None:
    with pytest.raises(CommandError, match=r"BROKEN at entry #6: recorded head"):
        _verify("--expect-head", f"6:{'a' * 64}")


@pytest.mark.parametrize("value", ["5", "x:y", f"five:{'a' * 64}", "5:abc"])
def test_it_refuses_a_malformed_expected_head(chain, value) -> None:
    with pytest.raises(CommandError, match="SEQ:MAC"):
        _verify("--expect-head", value)


def test_it_needs_the_audit_key_to_verify(chain, settings) -> None:
    settings.AUDIT_LOG_KEY = "a different key"

    with pytest.raises(CommandError, match=r"BROKEN at entry #1"):
        _verify()


def test_it_names_a_changed_audit_key_rather_than_an_edit(chain, settings) -> None:
    # AUDIT_LOG_KEY unset, SECRET_KEY changed: every entry fails, no link is broken.
    settings.AUDIT_LOG_KEY = ""
    settings.SECRET_KEY = "a new secret key " * 4

    with pytest.raises(CommandError) as caught:
        _verify()

    message = str(caught.value)
    assert caught.value.returncode == 1
    assert "BROKEN at entry #1" in message
    assert "the audit key is not the one the log was written with" in message
    assert "AUDIT_LOG_KEY / SECRET_KEY changed?" in message
    assert "entry edited" not in message


def test_it_still_calls_an_edit_of_entry_1_an_edit_when_the_key_is_right(chain) -> None:
    AuditEntry.objects.filter(seq=1).update(actor="mallory")
    AuditEntry.objects.filter(seq=4).update(detail="via=nobody")

    with pytest.raises(CommandError, match=r"BROKEN at entry #1: content .* \(entry edited\)"):
        _verify()


def test_it_says_which_entries_a_key_changed_midway_leaves_unverified(chain, settings) -> None:
    # Three entries under the old key, then the key changes and the chain goes on.
    AuditEntry.objects.filter(seq__gt=3).delete()
    AuditHead.objects.update(seq=3, mac=chain[2].mac)
    settings.AUDIT_LOG_KEY = "the new audit key"
    for _ in range(2):
        audit_record(event=Event.DOWNLOAD, actor=SYSTEM, detail="after the change")

    with pytest.raises(CommandError) as caught:
        _verify()

    message = str(caught.value)
    assert "entries #1 to #3 do not verify under the current audit key" in message
    assert "or those entries were edited" in message


def test_it_reports_broken_links_as_tampering_even_under_a_wrong_key(chain, settings) -> None:
    settings.AUDIT_LOG_KEY = "a different key"
    AuditEntry.objects.filter(seq=4).delete()

    with pytest.raises(CommandError) as caught:
        _verify()

    assert "audit key is not the one" not in str(caught.value)
    assert "entry edited" in str(caught.value)
