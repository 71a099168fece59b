"""An upgrade loses nothing: a database built and filled at the last release's migration
state migrates forward with every row intact, the audit chain verifying, every file
downloading, the share and the link working and the second factor still logging in.

The schema is taken back to PRE_MOVE, filled through the historical models of that state
(never the current classes, whose app labels change when models move to new apps), then
migrated forward to every leaf migration and checked with the current models through real
HTTP requests.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Model
from django.db.models.fields.files import FieldFile
from django.test import Client
from django.utils import timezone

from audit.chain import audit_key, compute_mac
from audit.selectors import verify_chain
from sharing.crypto import VERSION, FileKey, seal_sha256, wrap_key
from sharing.storage import get_encrypted_storage
from sharing.storage.keyring import get_keyring
from tests.helpers import client_for, streamed

# The state of the release before the models move out of `sharing` (RecoveryCode to
# `accounts`, AuditEntry and AuditHead to `audit`, ThrottleCounter to `throttle`): every
# app's latest migration on main then, from MigrationLoader(connection).graph.leaf_nodes().
# Frozen on purpose: migrations added later (the new apps' too) are what the upgrade runs.
PRE_MOVE = [
    ("admin", "0003_logentry_add_action_flag_choices"),
    ("auth", "0012_alter_user_first_name_max_length"),
    ("axes", "0010_accessattemptexpiration"),
    ("contenttypes", "0002_remove_content_type_name"),
    ("otp_totp", "0003_add_timestamps"),
    ("sessions", "0001_initial"),
    ("sharing", "0008_storedfile_origin"),
]

# Where each filled model lives at PRE_MOVE: (app label, model name).
FILLED = [
    ("auth", "User"),
    ("otp_totp", "TOTPDevice"),
    ("sharing", "RecoveryCode"),
    ("sharing", "StorageQuota"),
    ("sharing", "StoredFile"),
    ("sharing", "Share"),
    ("sharing", "ShareLink"),
    ("sharing", "ThrottleCounter"),
    ("sharing", "AuditEntry"),
    ("sharing", "AuditHead"),
]

GENESIS_MAC = "0" * 64
CAROL_PASSWORD = "Copper-Meadow-42-Window"
LINK_PASSWORD = "correct horse battery staple"
RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ALICE_DATA = bytes(range(256)) * (6 * 1024) + b"tail"  # 1.5 MiB + 4 bytes: two segments
CAROL_DATA = "Befund, vertraulich: Ünïcödé\n".encode() * 40


# ---------------------------------------------------------------------------- helpers


def model(name: str) -> type[Model]:
    """The current model class called ``name``, in whichever app holds it now."""
    found = [m for m in django_apps.get_models() if m.__name__ == name]
    assert len(found) == 1, f"expected one model named {name}, found {found}"
    return found[0]


def _plain(value: object) -> object:
    """A column value as comparable bytes/str: BinaryField reads back as memoryview on
    PostgreSQL, a FileField as a FieldFile on an instance."""
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, FieldFile):
        return value.name
    return value


def _inserted(objects: list[Model]) -> list[dict[str, object]]:
    """Every column of each object as inserted, ordered by primary key."""
    rows = [
        {field.attname: _plain(getattr(obj, field.attname)) for field in obj._meta.concrete_fields}
        for obj in objects
    ]
    return sorted(rows, key=lambda row: str(row["id"]))


def _stored(manager: Any, columns: list[dict[str, object]]) -> list[dict[str, object]]:
    """The rows of a table, with the columns that ``columns`` (rows as inserted) have.

    Columns a later migration adds are not compared: an upgrade may add, never lose.
    """
    names = list(columns[0]) if columns else ["id"]
    rows = [{k: _plain(v) for k, v in row.items()} for row in manager.all().values(*names)]
    return sorted(rows, key=lambda row: str(row["id"]))


def _recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _recovery_digest(code: str) -> str:
    # As the portal stores them: SHA-256 of the code upper-cased, without dashes.
    return hashlib.sha256(code.strip().upper().replace("-", "").encode()).hexdigest()


def _pieces(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _ancestors(executor: MigrationExecutor, nodes: list[tuple[str, str]]) -> set:
    graph = executor.loader.graph
    return {step for node in nodes for step in graph.forwards_plan(node)}


# Left applied when going back: the job queue's table (django-tasks-db), whose data
# migrations cannot be reversed; it references no table of the portal's.
KEPT_APPS = {"django_tasks_database"}


def _to_pre_move() -> MigrationExecutor:
    """Migrate back to PRE_MOVE; apps that did not exist then are unapplied entirely."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    missing = [node for node in PRE_MOVE if node not in executor.loader.graph.nodes]
    assert not missing, f"PRE_MOVE names migrations that no longer exist: {missing}"
    known = {app for app, _ in PRE_MOVE}
    later_apps = sorted({app for app, _ in leaves} - known - KEPT_APPS)
    executor.migrate([*PRE_MOVE, *((app, None) for app in later_apps)])
    executor.loader.build_graph()
    applied = {
        node
        for node in executor.loader.applied_migrations
        if node in executor.loader.graph.nodes and node[0] not in KEPT_APPS
    }
    assert applied == _ancestors(executor, PRE_MOVE)
    return executor


def _to_leaves() -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    executor.loader.build_graph()
    return executor


# ---------------------------------------------------------------------------- filling


def _fill(hist: Any) -> dict[str, Any]:
    """Fill the PRE_MOVE schema through its historical models; return what went in."""
    now = timezone.now()
    User = hist.get_model(*settings.AUTH_USER_MODEL.split("."))
    TOTPDevice = hist.get_model("otp_totp", "TOTPDevice")
    RecoveryCode = hist.get_model("sharing", "RecoveryCode")
    StorageQuota = hist.get_model("sharing", "StorageQuota")
    StoredFile = hist.get_model("sharing", "StoredFile")
    Share = hist.get_model("sharing", "Share")
    ShareLink = hist.get_model("sharing", "ShareLink")
    ThrottleCounter = hist.get_model("sharing", "ThrottleCounter")
    AuditEntry = hist.get_model("sharing", "AuditEntry")
    AuditHead = hist.get_model("sharing", "AuditHead")
    objects: dict[str, list[Model]] = {name: [] for _, name in FILLED}

    def add(obj: Model) -> Model:
        obj.save(force_insert=True)
        objects[type(obj).__name__].append(obj)
        return obj

    def user(username: str, password: str = "") -> Model:
        hashed = make_password(password or None)  # no password: an unusable one
        return add(User(username=username, email=f"{username}@example.com", password=hashed))

    alice, bob, carol = user("alice"), user("bob"), user("carol", CAROL_PASSWORD)
    assert carol.password.startswith("argon2")

    device = add(TOTPDevice(user=carol, name="phone", confirmed=True))
    codes = [_recovery_code() for _ in range(3)]
    for index, code in enumerate(codes):
        used_at = now - timedelta(days=3) if index == 0 else None
        add(RecoveryCode(user=carol, code_digest=_recovery_digest(code), used_at=used_at))
    add(StorageQuota(user=alice, quota_mb=50))

    def stored_file(owner: Model, data: bytes, name: str, content_type: str) -> Model:
        # What make_file / services.file_create_many do, written through the real storage.
        key = FileKey.generate()
        blob = get_encrypted_storage().save_plaintext(_pieces(data), key)
        master = get_keyring().primary
        return add(
            StoredFile(
                id=key.file_id,
                owner=owner,
                name=name,
                content_type=content_type,
                size=blob.plaintext_size,
                digest=blob.digest,
                sha256_sealed=seal_sha256(key, blob.sha256),
                blob=blob.name,
                wrapped_key=wrap_key(key, master),
                key_id=master.key_id,
                format_version=VERSION,
                origin="upload",
                expires_at=now + timedelta(days=30) if owner == carol else None,
            )
        )

    report = stored_file(alice, ALICE_DATA, "merger terms.pdf", "application/pdf")
    finding = stored_file(carol, CAROL_DATA, "Befund März.txt", "text/plain")
    share = add(Share(file=report, colleague=bob))
    token = secrets.token_urlsafe(32)
    link = add(
        ShareLink(
            file=report,
            created_by=alice,
            token_digest=hashlib.sha256(token.encode()).hexdigest(),
            expires_at=now + timedelta(days=7),
            max_downloads=5,
            download_count=1,
            refunds=1,
            password_hash=make_password(LINK_PASSWORD, hasher="argon2"),
            label="for the auditors",
        )
    )
    window_start = now - timedelta(minutes=1)
    counters = {
        "link": f"link-password:{link.pk}",
        "otp": f"otp-login:{carol.pk}",
        "reset": "password-reset-ip:203.0.113.9",
    }
    for name, count in (("link", 2), ("otp", 3), ("reset", 7)):
        add(ThrottleCounter(key=counters[name], window_start=window_start, count=count))

    # The chain, MAC'd with the current functions (they read attributes only).
    prev_mac = GENESIS_MAC
    events: list[tuple[Model, str, Model | None, str, int | None]] = [
        (alice, "file.upload", report, f"size={report.size}", None),
        (carol, "file.upload", finding, f"size={finding.size}", None),
        (carol, "2fa.enrolled", None, "", None),
        (alice, "share.granted", report, "colleague=bob", None),
        (alice, "link.created", report, "password=yes label='for the auditors'", link.pk),
    ]
    for seq, (actor, event, file, detail, link_id) in enumerate(events, start=1):
        entry = AuditEntry(
            seq=seq,
            created_at=timezone.now(),
            actor=actor.username,
            actor_user_id=actor.pk,
            ip="192.0.2.10",
            user_agent="Mozilla/5.0 (upgrade test)",
            event=event,
            file_id=file.pk if file else None,
            file_name=file.name if file else "",
            link_id=link_id,
            detail=detail,
            prev_mac=prev_mac,
        )
        entry.mac = compute_mac(audit_key(), prev_mac, entry)
        add(entry)
        prev_mac = entry.mac
    add(AuditHead(pk=1, seq=len(events), mac=prev_mac))

    return {
        "objects": objects,
        "users": {"alice": alice.pk, "bob": bob.pk, "carol": carol.pk},
        "device": device.pk,
        "codes": codes,
        "files": {"report": report.pk, "finding": finding.pk},
        "share": share.pk,
        "link": link.pk,
        "token": token,
        "counters": counters,
        "audit_entries": len(events),
    }


# ---------------------------------------------------------------------------- the test


@pytest.mark.argon2  # the old release stored Argon2 hashes; they must still verify
@pytest.mark.django_db(transaction=True)
def test_an_upgrade_from_the_last_release_keeps_every_row_file_link_and_factor() -> None:
    try:
        executor = _to_pre_move()
        hist = executor.loader.project_state(PRE_MOVE, at_end=True).apps
        for app_label, name in FILLED:
            assert not hist.get_model(app_label, name).objects.exists(), name
        filled = _fill(hist)
        expected = {name: _inserted(objs) for name, objs in filled["objects"].items()}
        for app_label, name in FILLED:  # what the database holds is what went in
            rows = _stored(hist.get_model(app_label, name).objects, expected[name])
            assert rows == expected[name], name

        # Every migration after PRE_MOVE (the new apps' included) runs, and nothing else.
        graph = executor.loader.graph
        plan = executor.migration_plan(graph.leaf_nodes())
        assert not any(backwards for _, backwards in plan)
        assert {(m.app_label, m.name) for m, _ in plan} == {
            node
            for node in set(graph.nodes) - _ancestors(executor, PRE_MOVE)
            if node[0] not in KEPT_APPS
        }
        executor = _to_leaves()
        assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []

        _check_upgraded(filled, expected)
    finally:
        _to_leaves()  # whatever happened, later tests get the fully migrated schema


def _check_upgraded(filled: dict[str, Any], expected: dict[str, list[dict]]) -> None:
    # -- every row, every column it had at PRE_MOVE, read through the current models
    for _, name in FILLED:
        assert _stored(model(name).objects, expected[name]) == expected[name], name

    report = verify_chain()
    assert report.intact, report
    assert report.checked == report.head_seq == filled["audit_entries"]

    User, StoredFile = model("User"), model("StoredFile")
    alice, bob, carol = (User.objects.get(pk=pk) for pk in filled["users"].values())
    report_file = StoredFile.objects.get(pk=filled["files"]["report"])
    finding = StoredFile.objects.get(pk=filled["files"]["finding"])
    assert model("StorageQuota").objects.get(user=alice).quota_mb == 50
    # Each file got its name sort's key (sharing 0019), and the name sort lists it.
    assert (report_file.sort_name, finding.sort_name) == ("merger terms.pdf", "befund märz.txt")

    # -- every file downloads, byte-identical, for its owner
    alice_client = client_for(alice)
    response = alice_client.get(f"/files/{report_file.pk}/download/")
    assert response.status_code == 200
    assert streamed(response) == ALICE_DATA
    carol_client = client_for(carol)  # carol has a factor: a verified session
    response = carol_client.get(f"/files/{finding.pk}/download/")
    assert response.status_code == 200
    assert streamed(response) == CAROL_DATA
    by_name = carol_client.get("/", {"sort": "name", "page": "1"}).content.decode()
    assert f"/files/{finding.pk}/download/" in by_name

    # -- the share: bob gets the file shared with him, and only that one
    bob_client = client_for(bob)
    response = bob_client.get(f"/files/{report_file.pk}/download/")
    assert response.status_code == 200
    assert streamed(response) == ALICE_DATA
    assert bob_client.get(f"/files/{finding.pk}/download/").status_code == 404
    # ... and finds it by name: the share was given its file's name (sharing 0018)
    searched = bob_client.get("/", {"q": report_file.name[1:-1]}).content.decode()
    assert f"/files/{report_file.pk}/download/" in searched.split('id="shared-title"', 1)[1]

    # -- the link: its password, its count and its throttle counter still hold
    ShareLink, ThrottleCounter = model("ShareLink"), model("ThrottleCounter")
    counters = filled["counters"]
    token = filled["token"]
    visitor = Client()
    assert visitor.get(f"/s/{token}/").status_code == 200
    refused = visitor.post(f"/s/{token}/", {"password": "not the password"})
    assert refused.status_code == 403
    assert ThrottleCounter.objects.get(key=counters["link"]).count == 3  # 2 before, +1
    response = visitor.post(f"/s/{token}/", {"password": LINK_PASSWORD})
    assert response.status_code == 200
    assert streamed(response) == ALICE_DATA
    link = ShareLink.objects.get(pk=filled["link"])
    assert (link.download_count, link.max_downloads, link.refunds) == (2, 5, 1)
    assert link.downloads_left == 3
    assert ThrottleCounter.objects.get(key=counters["link"]).count == 3  # right one given back

    # -- carol logs in with her password and an unused recovery code; a used one is refused
    RecoveryCode = model("RecoveryCode")
    used, fresh, spare = filled["codes"]
    stranger = Client()
    assert _password_step(stranger, "carol").status_code == 302
    refused = stranger.post("/accounts/login/code/", {"code": used})
    assert refused.status_code == 200 and b"That code is not valid" in refused.content
    assert "_auth_user_id" not in stranger.session

    browser = Client()
    step = _password_step(browser, "carol")
    assert step.status_code == 302 and step["Location"] == "/accounts/login/code/"
    done = browser.post("/accounts/login/code/", {"code": fresh.lower()})
    assert done.status_code == 302
    assert browser.session["_auth_user_id"] == str(carol.pk)
    response = browser.get(f"/files/{finding.pk}/download/")
    assert response.status_code == 200
    assert streamed(response) == CAROL_DATA
    spent = {row.code_digest: row.used_at for row in RecoveryCode.objects.filter(user=carol)}
    assert spent[_recovery_digest(fresh)] is not None
    assert spent[_recovery_digest(spare)] is None
    old = next(
        row for row in expected["RecoveryCode"] if row["code_digest"] == _recovery_digest(used)
    )
    assert spent[_recovery_digest(used)] == old["used_at"]
    # 3 before; the wrong code counted one, the right one was given back.
    assert ThrottleCounter.objects.get(key=counters["otp"]).count == 4
    assert ThrottleCounter.objects.get(key=counters["reset"]).count == 7

    # -- the chain still verifies with what the current code appended after the upgrade
    report = verify_chain()
    assert report.intact, report
    assert report.checked == report.head_seq > filled["audit_entries"]
    AuditEntry = model("AuditEntry")
    # alice, carol, bob, the link and carol's new session: five downloads, one refusal.
    assert AuditEntry.objects.filter(event="file.download").count() == 5
    assert AuditEntry.objects.filter(event="file.access_denied", actor="bob").count() == 1
    assert AuditEntry.objects.filter(event="link.password_denied").count() == 1
    assert AuditEntry.objects.filter(event="login.failure", detail__contains="carol").exists()


def _password_step(client: Client, username: str) -> Any:
    return client.post("/accounts/login/", {"username": username, "password": CAROL_PASSWORD})
