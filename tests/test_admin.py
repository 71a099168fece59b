"""The admin shows file metadata only: never content, never a way to add a file."""

from __future__ import annotations

import pytest

from sharing.models import StoredFile
from tests.helpers import make_file, upload

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/sharing/storedfile/"
MARKER = b"ADMIN-MUST-NEVER-SHOW-3f9a1c"


def test_it_lists_files_with_name_and_owner(alice, bob, admin_client) -> None:
    make_file(alice, b"1", name="alpha-plan.txt")
    make_file(bob, b"2", name="bravo-budget.xlsx")

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "alpha-plan.txt" in html and "bravo-budget.xlsx" in html
    assert ">alice<" in html and ">bob<" in html


def test_it_finds_files_by_name(alice, admin_client) -> None:
    make_file(alice, b"1", name="alpha-plan.txt")
    make_file(alice, b"2", name="bravo-budget.xlsx")

    response = admin_client.get(CHANGELIST, {"q": "bravo"})

    assert response.status_code == 200
    assert b"bravo-budget.xlsx" in response.content
    assert b"alpha-plan.txt" not in response.content


@pytest.mark.parametrize("query", ["not-a-uuid", "%", "'", "0" * 40, "a" * 500])
def test_it_does_not_fail_on_any_search(alice, admin_client, query) -> None:
    make_file(alice, b"1", name="alpha-plan.txt")

    assert admin_client.get(CHANGELIST, {"q": query}).status_code == 200


def test_it_answers_400_to_a_nul_in_the_search(alice, admin_client) -> None:
    # PostgreSQL refuses NUL in a parameter; the query string is refused before any query.
    assert admin_client.get(CHANGELIST, {"q": "a\x00b"}).status_code == 400


def test_it_finds_a_file_by_exact_id(alice, admin_client) -> None:
    stored = make_file(alice, b"1", name="alpha-plan.txt")
    make_file(alice, b"2", name="bravo-budget.xlsx")

    response = admin_client.get(CHANGELIST, {"q": str(stored.id)})

    assert b"alpha-plan.txt" in response.content
    assert b"bravo-budget.xlsx" not in response.content


def test_it_never_shows_file_content(alice_client, admin_client) -> None:
    upload(alice_client, ("marked.txt", b"prefix " + MARKER + b" suffix", "text/plain"))
    stored = StoredFile.objects.get()

    pages = [
        admin_client.get(CHANGELIST),
        admin_client.get(CHANGELIST, {"q": "marked"}),
        admin_client.get(f"{CHANGELIST}{stored.pk}/change/"),
        admin_client.get(f"{CHANGELIST}{stored.pk}/delete/"),
        admin_client.get(f"{CHANGELIST}{stored.pk}/history/"),
    ]

    for page in pages:
        assert page.status_code == 200
        assert MARKER not in page.content
    assert b"marked.txt" in pages[2].content
    assert bytes(stored.wrapped_key).hex().encode() not in pages[2].content


def test_it_has_no_add_page(admin_client) -> None:
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}add/", {"name": "x"}).status_code == 403
    assert not StoredFile.objects.exists()


def test_it_does_not_change_a_file_from_its_page(alice, admin_client) -> None:
    stored = make_file(alice, b"1", name="original.txt")

    admin_client.post(f"{CHANGELIST}{stored.pk}/change/", {"name": "renamed.txt"})

    stored.refresh_from_db()
    assert stored.name == "original.txt"


def test_it_keeps_ordinary_users_out(alice_client) -> None:
    response = alice_client.get(CHANGELIST)

    assert response.status_code == 403
    assert b"The administration is for staff" in response.content


def test_it_labels_the_second_factor_section_for_people(admin_client) -> None:
    index = admin_client.get("/admin/").content.decode()

    assert "Second factors" in index
    assert "OTP_TOTP" not in index and "Otp_Totp" not in index
