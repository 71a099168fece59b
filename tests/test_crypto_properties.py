"""Property tests of the blob reader: nothing but BlobIntegrityError for bad input, no
plaintext from a modified blob, and memory bounded by about one segment.

Deterministic (derandomized, no example database) so a CI run is reproducible.
"""

import gc
import hashlib
import io
import random
import struct
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sharing.crypto import (
    HEADER_SIZE,
    SEGMENT_SIZES,
    TAG_SIZE,
    BlobIntegrityError,
    DecryptingReader,
    FileKey,
    StreamEncryptor,
)
from tests.helpers_crypto import decrypt_bytes, encrypt_bytes

KIB = 1 << 10
MIB = 1 << 20
S = 64 * KIB
STEP = S + TAG_SIZE
MAX_SEGMENT = max(SEGMENT_SIZES)
KEY = FileKey.generate()


def deterministic(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def read_all(blob: bytes, how: str) -> bytes:
    reader = DecryptingReader(io.BytesIO(blob), KEY)
    if how == "segments":
        return b"".join(reader.segments())
    if how == "read":
        return reader.read()
    out = bytearray()
    while piece := reader.read(4099):
        out += piece
    return bytes(out)


READ_STYLES = st.sampled_from(["segments", "read", "read_small"])


def headers() -> st.SearchStrategy[bytes]:
    """Headers that are well-formed, nearly well-formed, or anything at all."""
    byte = st.integers(0, 255)
    return st.builds(
        struct.pack,
        st.just(">4sBBI32s7s"),
        st.just(b"SFEC") | st.binary(min_size=4, max_size=4),
        st.just(1) | byte,
        st.just(1) | byte,
        st.sampled_from(sorted(SEGMENT_SIZES)) | st.integers(0, 2**32 - 1),
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=7, max_size=7),
    )


def real_header() -> bytes:
    return StreamEncryptor(KEY, S).header  # a header this key really could have written


def bodies() -> st.SearchStrategy[bytes]:
    """Short arbitrary bodies, or long random ones around segment boundaries."""
    special = [0, 1, TAG_SIZE - 1, TAG_SIZE, STEP - 1, STEP, STEP + 1, 2 * STEP, 3 * STEP + 5]
    long_body = st.builds(
        random_bytes, st.sampled_from(special) | st.integers(0, 3 * STEP + 5), st.integers()
    )
    return st.binary(max_size=2048) | long_body


# ---------------------------------------------------------------------------- (a) junk


@deterministic(500)
@given(blob=st.binary(max_size=4096), how=READ_STYLES)
def test_it_rejects_arbitrary_bytes(blob: bytes, how: str) -> None:
    with pytest.raises(BlobIntegrityError):
        read_all(blob, how)


@deterministic(400)
@given(header=headers() | st.builds(real_header), body=bodies(), how=READ_STYLES)
def test_it_rejects_arbitrary_bytes_behind_a_plausible_header(
    header: bytes, body: bytes, how: str
) -> None:
    with pytest.raises(BlobIntegrityError):
        read_all(header + body, how)


# ---------------------------------------------------------------------------- (b) mutations


def an_offset(draw: st.DrawFn, length: int) -> int:
    """An offset in [0, length], often at or next to a segment boundary."""
    near_boundaries = [
        HEADER_SIZE + k * STEP + delta for k in range(6) for delta in (-TAG_SIZE, -1, 0, 1)
    ]
    candidates = [offset for offset in near_boundaries if 0 <= offset <= length]
    anywhere = st.integers(0, length) | st.builds(
        lambda fraction: round(fraction * length), st.floats(0, 1)
    )
    return draw(st.sampled_from(candidates) | anywhere if candidates else anywhere)


@st.composite
def mutated(draw: st.DrawFn, blob: bytes) -> tuple[bytes, list[str]]:
    out = bytearray(blob)
    log: list[str] = []
    kinds = ["flip", "delete", "insert", "duplicate", "truncate", "append", "swap"]
    for kind in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=3)):
        n = len(out)
        if kind == "flip" and n:
            at, mask = draw(st.integers(0, n - 1)), draw(st.integers(1, 255))
            out[at] ^= mask
        elif kind == "delete":
            start = an_offset(draw, n)
            end = draw(st.integers(start, n) | st.just(min(n, start + STEP)))
            del out[start:end]
        elif kind == "insert":
            at = an_offset(draw, n)
            out[at:at] = draw(st.binary(max_size=64) | st.builds(bytes, st.just(STEP)))
        elif kind == "duplicate":  # a copy of some range (e.g. a whole segment) elsewhere
            start = an_offset(draw, n)
            end = draw(st.integers(start, n) | st.just(min(n, start + STEP)))
            at = an_offset(draw, n)
            out[at:at] = out[start:end]
        elif kind == "truncate":
            del out[an_offset(draw, n) :]
        elif kind == "append":
            out += draw(st.binary(max_size=64))
        elif kind == "swap":  # two non-overlapping ranges of one length change places
            size = draw(st.sampled_from([STEP, TAG_SIZE]) | st.integers(0, n // 2))
            if 2 * size > n:
                size = n // 2
            a = draw(st.integers(0, n - 2 * size))
            b = draw(st.integers(a + size, n - size))
            first, second = bytes(out[a : a + size]), bytes(out[b : b + size])
            out[b : b + size], out[a : a + size] = first, second
        log.append(kind)
    return bytes(out), log


@deterministic(400)
@given(
    size=st.sampled_from([0, 1, S - 1, S, S + 1, 2 * S, 300 * KIB])
    | st.builds(lambda k, d: min(300 * KIB, max(0, k * S + d)), st.integers(0, 5), st.integers())
    | st.integers(0, 300 * KIB),
    seed=st.integers(),
    data=st.data(),
)
def test_it_never_returns_plaintext_from_a_modified_blob(
    size: int, seed: int, data: st.DataObject
) -> None:
    plaintext = random_bytes(size, seed)
    blob = encrypt_bytes(plaintext, KEY, S)
    changed, log = data.draw(mutated(blob), label="mutation")
    event(f"segments in the original: {len(blob) // STEP + 1}")
    if changed == blob:  # a no-op mutation (delete of nothing, swap of equal bytes, ...)
        event("no-op mutation")
        assert decrypt_bytes(changed, KEY) == plaintext
        return
    released: list[bytes] = []
    with pytest.raises(BlobIntegrityError):
        reader = DecryptingReader(io.BytesIO(changed), KEY)
        for segment in reader.segments():
            released.append(segment)
    event(f"segments released before the error: {len(released)}")
    # Whatever came out before the error is the genuine start of the file, in order.
    assert all(len(segment) == S for segment in released), log
    assert b"".join(released) == plaintext[: len(released) * S], log
    with pytest.raises(BlobIntegrityError):
        decrypt_bytes(changed, KEY)


@deterministic(100)
@given(
    size=st.integers(0, 3 * S + 3),
    seed=st.integers(),
    chunks=st.lists(st.sampled_from([1, 15, 4096, S - 1, S, S + 1]) | st.integers(1, 2 * S)),
    reads=st.integers(1, 2 * S),
)
def test_it_round_trips_any_chunking(size: int, seed: int, chunks: list[int], reads: int) -> None:
    plaintext = random_bytes(size, seed)
    encryptor = StreamEncryptor(KEY, S)
    parts, position = [encryptor.header], 0
    for chunk in chunks or [size or 1]:
        parts.extend(encryptor.update(plaintext[position : position + chunk]))
        position += chunk
    parts.extend(encryptor.update(plaintext[position:]))
    parts.append(encryptor.finalize())
    reader = DecryptingReader(io.BytesIO(b"".join(parts)), KEY)
    out = bytearray()
    while piece := reader.read(reads):
        out += piece
    assert out == plaintext


# ---------------------------------------------------------------------------- (c) memory


def peak_while(action: Callable[[], None]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_it_reads_garbage_behind_a_max_segment_header_in_bounded_memory() -> None:
    header = bytearray(real_header())
    struct.pack_into(">I", header, 6, MAX_SEGMENT)  # the largest size a reader accepts
    source = io.BytesIO(bytes(header) + random_bytes(50 * MIB, 1))

    readers = []

    def read() -> None:
        readers.append(DecryptingReader(source, KEY))
        with pytest.raises(BlobIntegrityError):
            readers[0].read()

    peak = peak_while(read)
    assert peak < 3 * MAX_SEGMENT, f"peak {peak / MIB:.1f} MiB"
    assert source.tell() <= HEADER_SIZE + MAX_SEGMENT + TAG_SIZE + 1  # stopped at segment 0


@pytest.mark.slow
def test_it_reads_a_20_mib_blob_with_1_mib_segments_in_bounded_memory() -> None:
    plaintext = random_bytes(20 * MIB, 2)
    blob = encrypt_bytes(plaintext, KEY, MIB)
    digest = hashlib.sha256(plaintext).hexdigest()
    del plaintext

    def by_segments() -> None:
        total = hashlib.sha256()
        for segment in DecryptingReader(io.BytesIO(blob), KEY).segments():
            total.update(segment)
        assert total.hexdigest() == digest

    def by_reads() -> None:
        total = hashlib.sha256()
        reader = DecryptingReader(io.BytesIO(blob), KEY)
        while piece := reader.read(64 * KIB):
            total.update(piece)
        assert total.hexdigest() == digest

    for action in (by_segments, by_reads):
        peak = peak_while(action)
        assert peak < 4 * MIB, f"{action.__name__}: peak {peak / MIB:.1f} MiB"


@pytest.mark.slow
def test_it_encrypts_a_stream_in_bounded_memory() -> None:
    chunk = random_bytes(64 * KIB, 3)

    def encrypt() -> None:
        encryptor = StreamEncryptor(KEY, MIB)
        written = len(encryptor.header)
        for _ in range(320):  # 20 MiB pushed in 64 KiB pieces, ciphertext discarded
            written += sum(len(segment) for segment in encryptor.update(chunk))
        written += len(encryptor.finalize())
        assert written == HEADER_SIZE + 20 * MIB + 20 * TAG_SIZE

    peak = peak_while(encrypt)
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB"
