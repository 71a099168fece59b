"""ENCRYPTION_KEYS parsing: what a master key must look like, and how a mistake is reported."""

import base64
import os
import random

import pytest

from sharing.crypto import (
    KeyConfigError,
    KeyProblem,
    KeyUnwrapError,
    MasterKey,
    generate_key_entry,
    parse_keyring,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def random_secret(seed: int) -> bytes:
    return random.Random(seed).randbytes(32)


def entry(key_id: str, seed: int) -> str:
    return f"{key_id}:{b64(random_secret(seed))}"


GOOD = entry("k1", 1)
GOOD_SECRET = b64(random_secret(1))


def _mixed_alphabets() -> str:
    """A key whose encoding has a '+' or '/' and a '-' or '_' once its URL-safe
    characters are partly turned back into standard ones: decodes, but mixes alphabets."""
    for seed in range(1000):
        urlsafe = b64(random_secret(seed))
        standard = base64.b64encode(random_secret(seed)).decode()
        differ = [i for i, (a, b) in enumerate(zip(urlsafe, standard, strict=True)) if a != b]
        if len(differ) >= 2:
            cut = differ[0] + 1
            return standard[:cut] + urlsafe[cut:]
    raise AssertionError("no seed gives two alphabet-specific characters")


MIXED = _mixed_alphabets()

REJECTED = {
    "empty": "",
    "whitespace": " \t\n ",
    "missing colon": "k1" + GOOD_SECRET,
    "only an id": "k1",
    "only an id and a colon": "k1:",
    "empty id": ":" + GOOD_SECRET,
    "space in id": "k 1:" + GOOD_SECRET,
    "slash in id": "k/1:" + GOOD_SECRET,
    "colon-looking id": "k1=:" + GOOD_SECRET,
    "non-ascii id": "clé:" + GOOD_SECRET,
    "id too long": "k" * 33 + ":" + GOOD_SECRET,
    "id and key swapped": GOOD_SECRET + ":k1",
    "key pasted as the id": GOOD_SECRET + ":" + GOOD_SECRET,
    "not base64 at all": "k1:this is not base64!",
    "base64 with junk appended": GOOD + "!",
    "base64 with junk inside": "k1:" + GOOD_SECRET[:10] + "*" + GOOD_SECRET[10:],
    "non-ascii key": "k1:ключ" + GOOD_SECRET,
    "16-byte key": "k1:" + b64(os.urandom(16)),
    "31-byte key": "k1:" + b64(random_secret(2)[:31]),
    "33-byte key": "k1:" + b64(random_secret(3) + b"\x9f"),
    "64-byte key": "k1:" + b64(random_secret(4) + random_secret(5)),
    "digits typed by a human": "k1:1234567890123456",
    "a typed passphrase": "k1:" + b64(b"correct horse battery staple 123"),
    "32 printable ascii": "k1:" + b64(bytes(range(0x41, 0x41 + 32))),
    "32 equal bytes": "k1:" + b64(b"\x9c" * 32),
    "32 zero bytes": "k1:" + b64(bytes(32)),
    "few distinct bytes": "k1:" + b64(bytes([0x80 + i % 15 for i in range(32)])),
    "duplicate ids": f"{GOOD},{entry('k1', 6)}",
    "same secret under two ids": f"{GOOD},k2:{GOOD_SECRET}",
    "same secret, other alphabet": f"{GOOD},k2:{base64.b64encode(random_secret(1)).decode()}",
    "empty entry": f"{GOOD},,{entry('k2', 7)}",
    "mixed base64 alphabets": "k1:" + MIXED,
    "space after the colon": "k1: " + GOOD_SECRET,
    "space before the colon": "k1 :" + GOOD_SECRET,
    "line break inside the key": "k1:" + GOOD_SECRET[:20] + "\n" + GOOD_SECRET[20:],
    "tab inside the key": "k1:" + GOOD_SECRET[:20] + "\t" + GOOD_SECRET[20:],
    "trailing comma": f"{GOOD},",
    "one bad among good ones": f"{GOOD},{entry('k2', 8)},k3:short",
}


@pytest.mark.parametrize("value", REJECTED.values(), ids=REJECTED.keys())
def test_it_rejects_unusable_encryption_keys(value: str) -> None:
    with pytest.raises(KeyConfigError) as caught:
        parse_keyring(value)
    message = str(caught.value)
    assert "ENCRYPTION_KEYS" in message
    assert "generate_encryption_key" in message
    assert isinstance(caught.value, KeyProblem)
    # The message never repeats key material.
    for piece in value.replace(",", ":").split(":"):
        if len(piece) >= 16:
            assert piece not in message


def test_it_accepts_several_keys_with_the_first_as_primary() -> None:
    value = f" {entry('2025-b', 11)} , {entry('k_1.old', 12)},{entry('K-3', 13)}\n"
    keyring = parse_keyring(value)
    assert keyring.ids == ("2025-b", "k_1.old", "K-3")
    assert keyring.primary.key_id == "2025-b"
    assert keyring.primary.secret == random_secret(11)
    assert keyring.get("k_1.old") == MasterKey(key_id="k_1.old", secret=random_secret(12))
    assert keyring.get("K-3").secret == random_secret(13)


def test_it_accepts_both_base64_alphabets() -> None:
    # A secret whose encoding has characters that differ between the two alphabets.
    seed = next(
        seed
        for seed in range(1000)
        if set("+/") & set(base64.b64encode(random_secret(seed)).decode())
        and set("-_") & set(b64(random_secret(seed)))
    )
    standard = base64.b64encode(random_secret(seed)).decode()
    urlsafe = b64(random_secret(seed))
    assert standard != urlsafe
    assert parse_keyring("k1:" + standard).primary.secret == random_secret(seed)
    assert parse_keyring("k1:" + urlsafe).primary.secret == random_secret(seed)


def test_it_accepts_the_longest_id() -> None:
    key_id = "a" * 32
    assert parse_keyring(entry(key_id, 14)).primary.key_id == key_id


def test_it_raises_unwrap_error_for_an_unknown_key_id() -> None:
    keyring = parse_keyring(f"{entry('k1', 21)},{entry('k2', 22)}")
    for unknown in ("k3", "", "K1", "k1 "):
        with pytest.raises(KeyUnwrapError) as caught:
            keyring.get(unknown)
        assert isinstance(caught.value, KeyProblem)


def test_it_generates_entries_that_parse() -> None:
    entries = [generate_key_entry(key_id) for key_id in ("k1", "k2", "2026.rotated_x-1")]
    keyring = parse_keyring(",".join(entries))
    assert keyring.ids == ("k1", "k2", "2026.rotated_x-1")
    assert len({key.secret for key in keyring.keys}) == 3
    assert all(len(key.secret) == 32 for key in keyring.keys)
    assert generate_key_entry("k1") != generate_key_entry("k1")


@pytest.mark.parametrize("key_id", ["", "k 1", "k:1", "k,1", "x" * 33])
def test_it_refuses_to_generate_an_entry_with_a_bad_id(key_id: str) -> None:
    with pytest.raises(KeyConfigError):
        generate_key_entry(key_id)


def test_it_names_the_problem_of_a_key_with_mixed_alphabets() -> None:
    # Without the rule, the mixed spelling decoded to the very same 32 bytes: accepted.
    with pytest.raises(KeyConfigError, match="mixes the standard"):
        parse_keyring("k1:" + MIXED)


def test_it_names_the_problem_of_whitespace_inside_an_entry() -> None:
    with pytest.raises(KeyConfigError, match="whitespace inside it"):
        parse_keyring("k1: " + GOOD_SECRET)
