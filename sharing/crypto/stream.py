"""Streaming authenticated encryption for stored files, and master-key handling.

Pure Python over pycryptodome: nothing here imports Django, so the format can be read and
tested on its own. The byte layout is specified in ``docs/FORMAT.md``; in short:

    blob    = header || segment_0 || ... || segment_n          (n >= 0, last one flagged)
    header  = magic "SFEC" | version u8 | suite u8 | segment size u32be | salt[32] | prefix[7]
    segment = AES-256-GCM(content key, nonce, plaintext segment) || tag[16]
    nonce   = prefix[7] || segment index u32be || last flag u8 (0x00 or 0x01)
    content key = HKDF-SHA-256(data key, salt, info = label || header || file UUID)
"""

from __future__ import annotations

import io
import secrets
import struct
from collections.abc import Callable, Iterator
from hashlib import sha256
from typing import TYPE_CHECKING, BinaryIO

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

if TYPE_CHECKING:
    pass

from sharing.crypto.aead import KEY_SIZE, TAG_SIZE, Buffer, InvalidTag, gcm_open, gcm_seal_into
from sharing.crypto.ahead import read_ahead
from sharing.crypto.keys import FileKey, keyed_digest

MAGIC = b"SFEC"


VERSION = 1


SUITE_AES256GCM_HKDF_SHA256 = 1


SALT_SIZE = 32


PREFIX_SIZE = 7


_HEADER = struct.Struct(">4sBBI32s7s")


HEADER_SIZE = _HEADER.size  # 49 bytes


DEFAULT_SEGMENT_SIZE = 1 << 20


# A reader accepts only these plaintext segment sizes: a header cannot make it allocate
# more than 4 MiB, and every size here is one a writer of this project may have used.
SEGMENT_SIZES = frozenset(1 << n for n in range(16, 23))  # 64 KiB .. 4 MiB


MAX_SEGMENTS = 1 << 32  # the counter is 32 bits; GCM nonces must never repeat


_CONTENT_LABEL = b"securefiles/v1 content key"


class BlobIntegrityError(Exception):
    """The blob is not an authentic, complete encryption of a file under this key.

    One error for every failure (bad tag, truncation, trailing bytes, unknown version,
    wrong key, wrong file): a caller cannot tell them apart, so neither can an attacker.
    """


class FileTooLarge(ValueError):
    """A plaintext longer than one blob can hold at this segment size.

    ``limit`` is that size in bytes (MAX_SEGMENTS segments of ``segment_size`` bytes): the
    32-bit segment counter would otherwise wrap and reuse GCM nonces.
    """

    def __init__(self, limit: int, segment_size: int) -> None:
        super().__init__(
            f"file too large for this segment size: at most {limit} bytes "
            f"({MAX_SEGMENTS} segments of {segment_size} bytes)"
        )
        self.limit = limit
        self.segment_size = segment_size


def max_plaintext_size(segment_size: int) -> int:
    """The largest plaintext, in bytes, one blob can hold with this segment size."""
    return MAX_SEGMENTS * segment_size


def _pack_header(segment_size: int, salt: bytes, prefix: bytes) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, SUITE_AES256GCM_HKDF_SHA256, segment_size, salt, prefix)


def _parse_header(header: bytes) -> tuple[int, bytes, bytes]:
    """Return (segment size, salt, prefix), or raise for anything this reader does not know."""
    if len(header) != HEADER_SIZE:
        raise BlobIntegrityError("blob is shorter than its header")
    magic, version, suite, segment_size, salt, prefix = _HEADER.unpack(header)
    if magic != MAGIC or version != VERSION or suite != SUITE_AES256GCM_HKDF_SHA256:
        raise BlobIntegrityError("unknown blob format or version")
    if segment_size not in SEGMENT_SIZES:
        raise BlobIntegrityError("unsupported segment size")
    return segment_size, salt, prefix


def _content_key(key: FileKey, header: bytes, salt: bytes) -> bytes:
    # The header and the file id are in `info`: a blob moved onto another row, or a header
    # with an altered segment size or prefix, yields a different key and fails segment 0.
    info = _CONTENT_LABEL + header + key.file_id.bytes
    return HKDF(key.data_key, KEY_SIZE, salt, SHA256, context=info)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= MAX_SEGMENTS:
        raise BlobIntegrityError("segment counter exhausted")
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class PlaintextDigests:
    """The digests a file's row keeps, computed over its plaintext fed in order.

    ``update`` takes the plaintext bytes exactly as they are sealed (or read back), in
    file order; ``sha256()`` is their SHA-256 (FIPS 180-4, 32 bytes) and ``keyed(key)``
    the keyed digest over it (keys.keyed_digest). One code for every writer: the form
    upload (StreamEncryptor), a resumable upload carried by one request, and the
    verifying read-back (measure_all), so the row's digests agree whichever made them.
    ``size`` counts the bytes fed.
    """

    def __init__(self) -> None:
        self._sha256 = sha256()
        self.size = 0

    def update(self, data: Buffer) -> None:
        """Feed the next plaintext bytes (any buffer; not kept)."""
        self._sha256.update(data)
        self.size += memoryview(data).nbytes

    def sha256(self) -> bytes:
        """SHA-256 of everything fed so far (32 bytes)."""
        return self._sha256.digest()

    def keyed(self, key: FileKey) -> bytes:
        """The keyed digest (keys.keyed_digest) of everything fed so far."""
        return keyed_digest(key, self._sha256.digest())


class StreamEncryptor:
    """Encrypt plaintext pushed in arbitrary chunks; memory stays about one segment.

    ``header`` is emitted first; ``update`` returns whole sealed segments as they fill;
    ``finalize`` seals the last (possibly empty) segment with the last-segment flag.
    It also counts the plaintext and hashes it (SHA-256, one pass) on the way.
    """

    def __init__(self, key: FileKey, segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        if segment_size not in SEGMENT_SIZES:
            raise ValueError(f"segment size must be one of {sorted(SEGMENT_SIZES)}")
        self._segment_size = segment_size
        self._prefix = secrets.token_bytes(PREFIX_SIZE)
        salt = secrets.token_bytes(SALT_SIZE)
        self.header = _pack_header(segment_size, salt, self._prefix)
        self._key: bytes | None = _content_key(key, self.header, salt)
        self._file_key: FileKey | None = key
        self._digests = PlaintextDigests()
        # One segment's worth of plaintext, allocated once: a growing bytearray re-faults
        # fresh pages from the kernel for every MiB that passes through.
        self._buffer = bytearray(segment_size)
        self._filled = 0
        self._out = bytearray(segment_size + TAG_SIZE)  # one sealed segment, reused
        self._index = 0
        self._finished = False
        self._digest = b""
        self.plaintext_size = 0

    def update(self, data: bytes) -> list[bytes]:
        """Take plaintext; return the segments it completed (possibly none)."""
        sealed: list[bytes] = []
        self.update_into(data, lambda segment: sealed.append(bytes(segment)))
        return sealed

    def update_into(self, data: Buffer, write: Callable[[memoryview], object]) -> None:
        """Take plaintext; pass each completed segment to ``write``.

        The view ``write`` gets is reused for the next segment: write must consume it
        (copy or send it) before returning. The upload path writes it straight out.
        """
        if self._finished:
            raise ValueError("encryptor already finalized")
        size = self._segment_size
        # Refused before any of it is taken: past this the 32-bit segment counter would
        # wrap and GCM nonces repeat. MAX_SEGMENTS is read here, not bound at import.
        limit = max_plaintext_size(size)
        count = memoryview(data).nbytes
        if self.plaintext_size + count > limit:
            raise FileTooLarge(limit, size)
        self._digests.update(data)
        self.plaintext_size += count
        with memoryview(data).cast("B") as view:
            offset = 0
            while offset < len(view):
                if self._filled == size:
                    # More data follows a full segment, so it is not the last one (which
                    # must carry the last-segment flag): seal it now, flag clear.
                    self._seal_into(self._buffer, last=False, write=write)
                    self._filled = 0
                take = min(size - self._filled, len(view) - offset)
                self._buffer[self._filled : self._filled + take] = view[offset : offset + take]
                self._filled += take
                offset += take

    def finalize(self) -> bytes:
        """Seal and return the final segment."""
        sealed: list[bytes] = []
        self.finalize_into(lambda segment: sealed.append(bytes(segment)))
        return sealed[0]

    def finalize_into(self, write: Callable[[memoryview], object]) -> None:
        """Seal the final segment and pass it to ``write`` (same rules as update_into).

        Afterwards the encryptor holds no key: the content key and the file key are
        dropped (the keyed digest is computed first), so nothing keeps them alive.
        """
        file_key = self._file_key
        if self._finished or file_key is None:  # only finalize drops the key
            raise ValueError("encryptor already finalized")
        self._finished = True
        with memoryview(self._buffer) as view:
            self._seal_into(view[: self._filled], last=True, write=write)
        self._buffer, self._filled, self._out = bytearray(), 0, bytearray()
        self._digest = self._digests.keyed(file_key)
        self._key, self._file_key = None, None

    def sha256(self) -> bytes:
        """SHA-256 of all plaintext seen so far."""
        return self._digests.sha256()

    def digest(self) -> bytes:
        """The keyed digest of all plaintext seen so far (see keyed_digest)."""
        if self._file_key is None:
            return self._digest  # finalized: computed before the key was dropped
        return self._digests.keyed(self._file_key)

    def _seal_into(
        self, plaintext: Buffer, *, last: bool, write: Callable[[memoryview], object]
    ) -> None:
        if self._key is None:
            raise ValueError("encryptor already finalized")
        nonce = _nonce(self._prefix, self._index, last)
        self._index += 1
        with memoryview(self._out) as out:
            length = gcm_seal_into(self._key, nonce, plaintext, out)
            write(out[:length])


def new_header(segment_size: int = DEFAULT_SEGMENT_SIZE) -> bytes:
    """A fresh 49-byte blob header (random salt and nonce prefix) for ``segment_size``
    plaintext bytes per segment. Raises ValueError for a size not in SEGMENT_SIZES."""
    if segment_size not in SEGMENT_SIZES:
        raise ValueError(f"segment size must be one of {sorted(SEGMENT_SIZES)}")
    return _pack_header(
        segment_size, secrets.token_bytes(SALT_SIZE), secrets.token_bytes(PREFIX_SIZE)
    )


class SegmentSealer:
    """Seal any one segment of a blob, given the file's key and the blob's header.

    For writers that cannot keep a StreamEncryptor alive between requests (resumable
    uploads): segment ``index`` of the file is plaintext bytes ``[index * segment_size,
    (index + 1) * segment_size)`` and is sealed exactly as StreamEncryptor seals it, so
    ``header || seal(0) || ... || seal(n, last=True)`` is the blob StreamEncryptor would
    have written. The caller must seal each index once per header (a nonce is never
    reused only if no index is sealed twice with different plaintext; resealing the same
    plaintext yields the same bytes). Raises BlobIntegrityError for a header this reader
    does not accept.
    """

    def __init__(self, key: FileKey, header: bytes) -> None:
        self.segment_size, salt, self._prefix = _parse_header(header)
        self._key = _content_key(key, header, salt)

    def seal(self, index: int, plaintext: Buffer, *, last: bool) -> bytes:
        """The sealed segment (ciphertext || 16-byte tag) for plaintext segment ``index``.

        Raises ValueError if a segment that is not the last is not exactly
        ``segment_size`` bytes, or the last one is longer; BlobIntegrityError once the
        32-bit segment counter would wrap.
        """
        out = bytearray(memoryview(plaintext).nbytes + TAG_SIZE)
        with memoryview(out) as view:
            self.seal_into(index, plaintext, view, last=last)
        return bytes(out)

    def seal_into(self, index: int, plaintext: Buffer, out: memoryview, *, last: bool) -> int:
        """Seal segment ``index`` as ``seal`` does, into ``out`` (at least len(plaintext)
        + 16 bytes); return the bytes written. Writers reuse one ``out`` for every
        segment: a fresh MiB-sized object per segment costs more in page faults than the
        AES-GCM. Raises what ``seal`` raises, and ValueError if ``out`` is too small.
        """
        length = memoryview(plaintext).nbytes
        if length > self.segment_size or (not last and length != self.segment_size):
            raise ValueError("a middle segment is exactly segment_size bytes")
        return gcm_seal_into(self._key, _nonce(self._prefix, index, last), plaintext, out)


def _read_into(source: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``source`` as far as it goes (short reads looped); return the count.

    Uses readinto when the source has it (files, boto's streaming body), so a segment is
    read into the reader's own buffer instead of a fresh 1 MiB object each time.
    """
    readinto = getattr(source, "readinto", None)
    filled = 0
    while filled < len(view):
        if readinto is not None:
            count = readinto(view[filled:])
        else:
            part = source.read(len(view) - filled)
            count = len(part)
            view[filled : filled + count] = part
        if not count:
            break
        filled += count
    return filled


def read_up_to(source: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, or fewer only at the end of ``source``, looping over short reads
    (sockets, S3 bodies) through _read_into, the package's one read loop (the legacy reader
    uses this too)."""
    buffer = bytearray(size)
    return bytes(memoryview(buffer)[: _read_into(source, memoryview(buffer))])


class DecryptingReader(io.RawIOBase):
    """A read-only file object of the plaintext of a blob.

    Each segment is authenticated before any of its bytes are returned. The source is
    read one segment (plus one byte of look-ahead, to know whether a segment is the last)
    at a time. It deliberately has no ``fileno()``: a server must never ``sendfile`` the
    ciphertext in its place. Once anything has failed, every later read fails too: the
    position in the source is no longer trustworthy, so the reader never resynchronises.
    """

    def __init__(
        self,
        source: BinaryIO,
        key: FileKey,
        *,
        expected_size: int | None = None,
        ciphertext_length: int | None = None,
        open_span: Callable[[int, int], BinaryIO] | None = None,
    ) -> None:
        """Read and check the header of ``source``; nothing else is read yet.

        ``open_span(start, stop)`` (byte offsets in the blob, ``stop`` exclusive) opens just
        that stretch of ciphertext: with it and ``expected_size``, ``plaintext_range``
        reads only the segments a byte range needs (a file seek, an S3 ranged GET).

        ``expected_size`` (bytes) is the plaintext size the caller promised someone (a
        Content-Length): the reader then refuses to yield more, or to end with fewer,
        raising BlobIntegrityError before the offending segment's bytes are released.
        With ``ciphertext_length`` (the blob's length in bytes, from the storage) too, a
        size that this blob cannot have is refused here, before anything is sent.
        Raises BlobIntegrityError for a bad header or such a size mismatch.
        """
        super().__init__()
        self._source = source
        header = read_up_to(source, HEADER_SIZE)
        self._segment_size, salt, self._prefix = _parse_header(header)
        self._expected_size = expected_size
        if expected_size is not None and ciphertext_length is not None:
            implied = plaintext_size_of(ciphertext_length, self._segment_size)
            if implied != expected_size:
                raise BlobIntegrityError("the blob's length does not match the expected size")
        self._key: bytes | None = _content_key(key, header, salt)
        self._index = 0
        self._released = 0  # plaintext bytes handed out so far
        self._lookahead = b""
        self._sealed = bytearray()
        self._done = False
        self._failed = False
        self._pending = memoryview(b"")
        self._open_span = open_span
        self._span: BinaryIO | None = None

    @property
    def segment_size(self) -> int:
        """The plaintext segment size from the header, in bytes."""
        return self._segment_size

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a decrypting reader has no file descriptor")

    def segments(self) -> Iterator[bytes]:
        """Yield each verified plaintext segment in order (the fast path for streaming)."""
        if self._pending:
            yield bytes(self._pending)
            self._pending = memoryview(b"")
        while not self._done:
            yield self._next_segment()

    def plaintext_range(self, start: int, stop: int) -> Iterator[bytes]:
        """Yield the plaintext bytes ``start`` to ``stop`` (exclusive; byte offsets), reading
        and decrypting only the segments that hold them.

        Segment i of a file of ``expected_size`` bytes sits at a fixed offset (header, then
        i sealed segments of ``segment_size + 16`` bytes), so the first segment needed is
        ``start // segment_size`` and the last ``(stop - 1) // segment_size``; only that
        stretch is opened with ``open_span``. Each segment is authenticated (with the
        last-segment flag set only on the segment holding the file's last byte) before any
        of its bytes is yielded, so a tampered segment inside the range raises
        BlobIntegrityError and one outside it is never read. An empty range (``start ==
        stop``) still verifies the segment at ``start``, so an empty file's 200 is checked.
        Raises ValueError for a range outside ``[0, expected_size]`` or a reader made
        without ``expected_size`` and ``open_span``.
        """
        size, open_span = self._expected_size, self._open_span
        if size is None or open_span is None:
            raise ValueError("a range needs the expected size and a way to open a span")
        if not 0 <= start <= stop <= size:
            raise ValueError("the range is outside the plaintext")
        if self._failed or self._key is None:
            raise BlobIntegrityError("the reader cannot be read on")
        seg = self._segment_size
        sealed = seg + TAG_SIZE
        last_index = max(0, -(-size // seg) - 1)
        first = min(start // seg, last_index)
        final = min(max(stop - 1, start) // seg, last_index)

        def sealed_length(index: int) -> int:
            return sealed if index < last_index else size - index * seg + TAG_SIZE

        begin = HEADER_SIZE + first * sealed
        end = HEADER_SIZE + final * sealed + sealed_length(final)
        try:
            self._span = open_span(begin, end)
            buffer = bytearray(sealed)
            for index in range(first, final + 1):
                length = sealed_length(index)
                with memoryview(buffer) as view:
                    if _read_into(self._span, view[:length]) != length:
                        raise BlobIntegrityError("blob is truncated")
                    plaintext = self._open(
                        _nonce(self._prefix, index, index == last_index), view[:length]
                    )
                if plaintext is None:
                    raise BlobIntegrityError("segment failed authentication")
                base = index * seg
                yield plaintext[max(start - base, 0) : max(min(stop - base, len(plaintext)), 0)]
        except Exception:
            self._failed = True
            raise

    def _next_segment(self) -> bytes:
        if self._failed:
            raise BlobIntegrityError("an earlier segment failed; the blob cannot be read on")
        try:
            return self._open_next_segment()
        except Exception:
            # Without this, a caller that catches the error and reads again would have the
            # reader skip over inserted bytes and go on at the same segment index.
            self._failed = True
            raise

    def _open_next_segment(self) -> bytes:
        wanted = self._segment_size + TAG_SIZE
        if len(self._sealed) != wanted:
            self._sealed = bytearray(wanted)  # allocated once, reused for every segment
        with memoryview(self._sealed) as view:
            ahead = len(self._lookahead)
            view[:ahead] = self._lookahead
            length = ahead + _read_into(self._source, view[ahead:])
            self._lookahead = read_up_to(self._source, 1)
            last = not self._lookahead
            if length < TAG_SIZE or (not last and length != wanted):
                raise BlobIntegrityError("blob is truncated")
            if last and length == TAG_SIZE and self._index > 0:
                # docs/FORMAT.md: a last segment is empty only in an empty file. No writer
                # makes one after full segments; the ranged reader, which knows the last
                # segment from the size, could not read it either. One rule: refused.
                raise BlobIntegrityError("an empty last segment after full ones")
            nonce = _nonce(self._prefix, self._index, last)
            plaintext = self._open(nonce, view[:length])
        if plaintext is None:  # raised outside the except block: no chained context
            raise BlobIntegrityError("segment failed authentication")
        self._check_size(len(plaintext), last=last)
        self._index += 1
        self._done = last
        return plaintext

    def _check_size(self, count: int, *, last: bool) -> None:
        """Refuse a segment that would take the plaintext past, or end it short of, the
        expected size: a client was promised exactly that many bytes."""
        self._released += count
        expected = self._expected_size
        if expected is None:
            return
        if self._released > expected or (last and self._released != expected):
            raise BlobIntegrityError("the plaintext is not the expected size")

    def _open(self, nonce: bytes, sealed: memoryview) -> bytes | None:
        """The segment's plaintext, or None if it is not authentic."""
        if self._key is None:
            raise ValueError("the reader is closed")
        try:
            return gcm_open(self._key, nonce, sealed)
        except InvalidTag:
            # Wrong key, wrong file, flipped bit, reordered, truncated at a segment
            # boundary (the new last segment was sealed with flag 0): all end here.
            return None

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            self._pending = memoryview(self._next_segment())
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        """Close the source and drop the content key and buffers: a closed reader keeps
        nothing that could decrypt the blob or that came out of it."""
        try:
            if self._span is not None and self._span is not self._source:
                self._span.close()
            self._source.close()
        finally:
            self._span = None
            self._key = None
            self._sealed, self._pending, self._lookahead = bytearray(), memoryview(b""), b""
            super().close()


def plaintext_size_of(ciphertext_length: int, segment_size: int) -> int | None:
    """The plaintext size in bytes a blob of ``ciphertext_length`` bytes holds, or None
    for a length no writer produces (the inverse of ciphertext_size).

    The blob is the header, then whole sealed segments of ``segment_size + TAG_SIZE``
    bytes, then a last segment of TAG_SIZE to ``segment_size + TAG_SIZE`` bytes.
    """
    body = ciphertext_length - HEADER_SIZE
    if body < TAG_SIZE:
        return None
    sealed = segment_size + TAG_SIZE
    full, rest = divmod(body, sealed)
    if rest == 0:
        return full * segment_size  # the last segment is a full one
    if rest < TAG_SIZE or (rest == TAG_SIZE and full > 0):
        return None  # an empty last segment exists only in an empty file
    return full * segment_size + rest - TAG_SIZE


def ciphertext_size(plaintext_size: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """Exact blob size for a plaintext size (an empty file is one empty last segment)."""
    segments = max(1, -(-plaintext_size // segment_size))
    return HEADER_SIZE + plaintext_size + segments * TAG_SIZE


def measure(reader: DecryptingReader, key: FileKey) -> tuple[int, bytes]:
    """Read a blob to its end: (plaintext size, keyed digest). Nothing is kept or written.

    Raises BlobIntegrityError as soon as a segment fails authentication.
    """
    size, digest, _sha256 = measure_all(reader, key)
    return size, digest


def measure_all(
    reader: DecryptingReader, key: FileKey, also: Callable[[bytes], None] | None = None
) -> tuple[int, bytes, bytes]:
    """Read a blob to its end: (plaintext size in bytes, keyed digest, plain SHA-256).
    ``also``, if given, is called with each authenticated plaintext segment in order (the
    malware scan of a completed resumable upload).

    A thread of its own reads and authenticates the segments (read_ahead) while this one
    hashes them, so the two run on two cores (the verifying read-back of a resumable
    upload, verify_files). Nothing is kept or written. Raises BlobIntegrityError as soon
    as a segment fails authentication.
    """
    digests = PlaintextDigests()
    with reader:
        for segment in read_ahead(reader.segments(), name="measure-read-ahead"):
            digests.update(segment)
            if also is not None:
                also(segment)
    return digests.size, digests.keyed(key), digests.sha256()
