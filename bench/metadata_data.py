"""Rows for the metadata benchmark, written fast on PostgreSQL (bench/metadata.py).

Runs inside the benchmark's Django process (settings from the benchmark's environment).
File rows are made by INSERT ... SELECT generate_series on the server and audit entries by
COPY; their blobs do not exist (no list page opens one). The one file whose page is
measured is stored for real, through the storage and the upload service. The audit
entries form a valid chain under the site's audit key, so verify_audit_log can walk it.
Secondary indexes of a table are dropped for a bulk load and built again after it.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from django.contrib.auth import get_user_model
from django.db import connection

from audit.chain import GENESIS_MAC, audit_key, compute_mac
from audit.models import AuditEntry, AuditHead
from bench.common import log
from securefiles.lib.auth_types import User
from sharing import services
from sharing.crypto import FileKey
from sharing.models import Share, ShareLink, StoredFile
from sharing.storage import get_encrypted_storage
from sharing.storage.uploads import EncryptedUpload

FILES = StoredFile._meta.db_table
AUDIT = AuditEntry._meta.db_table
KEY_ID = "bench"  # the master key id of the benchmark's ENCRYPTION_KEYS


def add_users(prefix: str, count: int) -> list[int]:
    """``count`` users named ``<prefix>-00001``... without a usable password; their ids."""
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"{prefix}-{i:05}", password="!", email=f"{prefix}{i}@x.test")
        for i in range(1, count + 1)
    )
    return [user.pk for user in users]


def add_files(owner_id: int, count: int, *, start: int = 0, recount: bool = True) -> None:
    """``count`` file rows for one owner, named ``doc-<n> <word>.pdf`` (one in seven with a
    non-ASCII word), a second apart, newest last; then (``recount``) the owner's usage is
    recounted, as the services would have kept it."""
    if count <= 0:
        return
    with connection.cursor() as cursor:
        # FILES is the model's table name; every value is a parameter.
        cursor.execute(
            f"""
            INSERT INTO {FILES} (id, owner_id, name, content_type, size, digest,
                sha256_sealed, created_at, blob, wrapped_key, key_id, format_version, origin,
                scan_state)
            SELECT gen_random_uuid(), %s,
                'doc-' || lpad(i::text, 7, '0')
                    || CASE WHEN i %% 7 = 0 THEN ' Résumé ÉTÉ' ELSE ' report' END || '.pdf',
                'application/pdf', (i * 7919) %% 5000000, '\\x00'::bytea, ''::bytea,
                now() - interval '400 days' + i * interval '1 second',
                'bench/' || %s || '/' || i, '\\x00'::bytea, %s, 1, 'upload', 'off'
            FROM generate_series(%s, %s) AS i
            """,  # noqa: S608
            [owner_id, owner_id, KEY_ID, start + 1, start + count],
        )
    if recount:
        recount_usage(owner_id)


def recount_usage(owner_id: int) -> None:
    services.usage_recount(user_id=owner_id)


def real_file(owner: User, name: str) -> StoredFile:
    """A file stored through the real storage and service, whose page can be shown (as
    tests.helpers.make_file, which the benchmark does not import)."""
    key = FileKey.generate()
    blob = get_encrypted_storage().save_plaintext(iter([b"benchmark content\n" * 100]), key)
    upload = EncryptedUpload(key=key, blob=blob, name=name, content_type="application/pdf")
    [stored] = services.file_create_many(owner=owner, uploads=[upload])
    return stored


def add_shares(file_ids: list[uuid.UUID], colleague_ids: list[int]) -> None:
    """One share per (file, colleague) pair given in step."""
    Share.objects.bulk_create(
        (Share(file_id=f, colleague_id=c) for f, c in zip(file_ids, colleague_ids, strict=True)),
        batch_size=5000,
    )


def add_links(file: StoredFile, count: int) -> None:
    """``count`` link rows on a file (random token digests; no token is ever shown)."""
    expires = datetime.now(UTC) + timedelta(days=7)
    ShareLink.objects.bulk_create(
        (
            ShareLink(
                file=file,
                created_by_id=file.owner_id,
                token_digest=secrets.token_hex(32),
                expires_at=expires,
                label=f"for client {i}",
            )
            for i in range(count)
        ),
        batch_size=5000,
    )


def file_ids_of(owner_id: int) -> list[uuid.UUID]:
    return list(StoredFile.objects.filter(owner_id=owner_id).values_list("id", flat=True))


class IndexesOff:
    """Drop a table's secondary indexes (not its primary key or unique constraints) for a
    bulk load and build them again after it, then ANALYZE."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.definitions: list[tuple[str, str]] = []

    def __enter__(self) -> IndexesOff:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "JOIN pg_class c ON c.relname = i.indexname "
                "JOIN pg_index x ON x.indexrelid = c.oid "
                "WHERE i.tablename = %s AND NOT x.indisunique AND NOT x.indisprimary",
                [self.table],
            )
            self.definitions = list(cursor.fetchall())
            for name, _definition in self.definitions:
                cursor.execute(f'DROP INDEX "{name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '512MB'")
            for _name, definition in self.definitions:
                cursor.execute(definition)
            cursor.execute(f'VACUUM ANALYZE "{self.table}"')
        log(
            f"{self.table}: {len(self.definitions)} indexes rebuilt in "
            f"{time.perf_counter() - started:.0f} s"
        )


def add_audit_entries(count: int, *, actors: list[str], file_names: list[str]) -> None:
    """Append ``count`` entries to the audit chain (valid MACs), by COPY; the head follows."""
    head = AuditHead.objects.get_or_create(pk=1)[0]
    columns = (
        "seq, created_at, actor, actor_user_id, ip, user_agent, event, file_id, "
        "file_name, link_id, detail, prev_mac, mac"
    )
    last_mac = head.mac or GENESIS_MAC
    with connection.cursor() as cursor, cursor.copy(f"COPY {AUDIT} ({columns}) FROM STDIN") as copy:
        for entry in _chain(head.seq, last_mac, count, actors, file_names):
            copy.write_row(
                (
                    entry.seq,
                    entry.created_at,
                    entry.actor,
                    entry.actor_user_id,
                    entry.ip,
                    entry.user_agent,
                    entry.event,
                    entry.file_id,
                    entry.file_name,
                    entry.link_id,
                    entry.detail,
                    entry.prev_mac,
                    entry.mac,
                )
            )
            last_mac = entry.mac
    AuditHead.objects.filter(pk=1).update(seq=head.seq + count, mac=last_mac)


EVENTS = ("file.download", "file.upload", "login.success", "share.granted", "link.created")


def _chain(
    seq: int, prev_mac: str, count: int, actors: list[str], file_names: list[str]
) -> Iterator[SimpleNamespace]:
    key = audit_key()
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / max(count, 1)
    for n in range(count):
        entry = SimpleNamespace(
            seq=seq + n + 1,
            created_at=start + n * step,
            actor=actors[n % len(actors)],
            actor_user_id=None,
            ip=f"10.{n % 250}.{(n // 250) % 250}.{n % 7 + 1}",
            user_agent="Mozilla/5.0 (bench)",
            event=EVENTS[n % len(EVENTS)],
            file_id=None,
            file_name=file_names[n % len(file_names)],
            link_id=None,
            detail=f"via=owner n={n}",
            prev_mac=prev_mac,
        )
        entry.mac = compute_mac(key, prev_mac, entry)  # type: ignore[arg-type]
        prev_mac = entry.mac
        yield entry
