"""The name search: any case in any script, partial words, NFC and NFD alike, literal
wildcards, an empty and a 200-character query; the same answers on SQLite and PostgreSQL
(the whole suite runs on both)."""

from __future__ import annotations

import re
import unicodedata

import pytest

from audit.actors import Actor
from audit.services import audit_record
from tests.helpers import make_file

pytestmark = pytest.mark.django_db

NAMES = (
    "Résumé final.pdf",
    "ÉTÉ 2024 photos.zip",
    "Straße plan.dwg",
    "Quarterly REPORT.xlsx",
    "100%_done.txt",
    "Δελτίο τύπου.docx",
    "договор аренды.pdf",
    "契約書.pdf",
)


@pytest.fixture
def named_files(alice):
    return [make_file(alice, b"x", name=name) for name in NAMES]


def found(client, query: str) -> set[str]:
    response = client.get("/", {"q": query})
    assert response.status_code == 200
    table = response.content.decode().split('id="my-files"', 1)[1].split("</table>", 1)[0]
    return set(re.findall(r'class="filename">([^<]+)</a>', table))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("résumé", {"Résumé final.pdf"}),
        ("RÉSUMÉ", {"Résumé final.pdf"}),
        ("sumé fi", {"Résumé final.pdf"}),
        ("été", {"ÉTÉ 2024 photos.zip"}),
        ("straße", {"Straße plan.dwg"}),
        ("STRAßE", {"Straße plan.dwg"}),
        ("report", {"Quarterly REPORT.xlsx"}),
        ("arterl", {"Quarterly REPORT.xlsx"}),
        ("δελτίο", {"Δελτίο τύπου.docx"}),
        ("ДОГОВОР", {"договор аренды.pdf"}),
        ("契約", {"契約書.pdf"}),
        ("%_", {"100%_done.txt"}),
        ("_", {"100%_done.txt"}),
        ("%", {"100%_done.txt"}),
        ("resume", set()),  # accents count (README "Metadata at scale")
        ("nothing like it", set()),
    ],
)
def test_it_finds_names_by_any_part_in_any_case(alice_client, named_files, query, expected):
    assert found(alice_client, query) == expected


def test_a_decomposed_query_finds_a_composed_name_and_the_reverse(alice, alice_client):
    make_file(alice, b"x", name=unicodedata.normalize("NFD", "Café décomposé.txt"))
    make_file(alice, b"x", name="Crème brûlée.txt")

    assert found(alice_client, "café") == {unicodedata.normalize("NFD", "Café décomposé.txt")}
    assert found(alice_client, unicodedata.normalize("NFD", "crème")) == {"Crème brûlée.txt"}


def test_an_empty_query_lists_every_file(alice_client, named_files):
    assert found(alice_client, "") == set(NAMES)
    assert found(alice_client, "   ") == set(NAMES)


def test_a_200_character_query_is_answered_and_a_longer_one_cut_to_200(alice, alice_client):
    long_name = "é" * 250 + ".txt"
    make_file(alice, b"x", name=long_name)

    assert len(found(alice_client, "É" * 200)) == 1
    response = alice_client.get("/", {"q": "é" * 5000})
    assert response.status_code == 200
    assert 'value="' + "é" * 200 + '"' in response.content.decode()


def test_the_search_covers_the_files_shared_with_me(alice, bob, bob_client):
    from sharing.models import Share

    shared = make_file(alice, b"x", name="Übersicht Mandant.pdf")
    make_file(alice, b"x", name="übersicht private.pdf")  # not shared
    Share.objects.create(file=shared, colleague=bob)

    page = bob_client.get("/", {"q": "ÜBERSICHT"}).content.decode()
    section = page.split('id="shared-title"', 1)[1]

    assert "Übersicht Mandant.pdf" in section and "private" not in section


def test_every_way_of_sharing_records_the_file_name_the_search_reads(alice, bob, charlie):
    from django.contrib.auth.models import Group

    from audit.actors import Actor
    from sharing import services
    from sharing.models import Share

    team = Group.objects.create(name="team")
    alice.groups.add(team)
    by_service = make_file(alice, b"x", name="by service.txt")
    by_group = make_file(alice, b"x", name="by group.txt")
    by_bulk = make_file(alice, b"x", name="by bulk.txt")
    actor = Actor(label="alice", user_id=alice.pk)
    services.share_grant(file=by_service, query="bob", actor=actor)
    services.share_grant_group(file=by_group, group_name="team", actor=actor)
    Share.objects.bulk_create([Share(file_id=by_bulk.pk, colleague=charlie)])  # id only

    names = dict(Share.objects.values_list("file_id", "file_name"))

    assert names == {f.pk: f.name for f in (by_service, by_group, by_bulk)}


def test_the_admin_search_finds_names_owners_and_ids(alice, admin_client, named_files):
    listing = admin_client.get("/admin/sharing/storedfile/", {"q": "résumé"}).content.decode()
    by_owner = admin_client.get("/admin/sharing/storedfile/", {"q": "ALIC"}).content.decode()
    by_id = admin_client.get(
        "/admin/sharing/storedfile/", {"q": str(named_files[2].id)}
    ).content.decode()

    assert "Résumé final.pdf" in listing and "Straße" not in listing
    assert all(name.split(".")[0][:4] in by_owner for name in NAMES[:4])
    assert "Straße plan.dwg" in by_id and "Résumé" not in by_id


def _audit_actors(admin_client, query: str) -> list[str]:
    response = admin_client.get("/admin/audit/auditentry/", {"q": query})
    assert response.status_code == 200
    return re.findall(r'class="field-actor">([^<]+)<', response.content.decode())


def test_the_audit_search_finds_actors_by_any_part_in_any_case(admin_client):
    for label in ("Zoë Adler", "alice via token sf_AbCd1234", "request 7 visitor", "bob"):
        audit_record(event="file.download", actor=Actor(label=label))

    assert _audit_actors(admin_client, "ZOË") == ["Zoë Adler"]
    assert _audit_actors(admin_client, "oë ad") == ["Zoë Adler"]
    assert _audit_actors(admin_client, "sf_abcd") == ["alice via token sf_AbCd1234"]
    assert _audit_actors(admin_client, "VISITOR") == ["request 7 visitor"]
    assert _audit_actors(admin_client, "zoe") == []  # accents count, as in file names
    assert _audit_actors(admin_client, "nobody here") == []
