"""The batch header: a gateway's signed, chained commitment to a run of accepted readings.

A gateway seals readings into batches; the header commits to them by their RFC 6962 Merkle
root and chains to the gateway's previous header, so the cloud can tell a gap or a fork.
Layout, version 1 (big-endian; docs/protocol.md has it byte by byte):

    offset size field
         0    1 version         0x01
         1   32 gateway key     BIP-340 x-only public key of the gateway
        33    8 seq             u64 batch sequence number, 0 for the gateway's first batch
        41   32 prev hash       header_hash() of batch seq-1; 32 zero bytes when seq == 0
        73    4 count           u32 number of readings (leaves), at least 1
        77    4 first time      u32 earliest reading time in the batch (Unix seconds)
        81    4 last time       u32 latest reading time in the batch
        85   32 merkle root     RFC 6962 root over the readings' 110-byte wire bytes
       117   64 signature       BIP-340 over tagged_hash(TAG, bytes 0..116)
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace

from device import reading, schnorr
from gateway import merkle

VERSION = 1
# BIP-340 tagged-hash tag: keeps batch signatures apart from reading signatures.
TAG = b"PharmaSync/batch/v1"

BODY_FORMAT = ">B32sQ32sIII32s"  # version, key, seq, prev, count, first, last, root
BODY_SIZE = struct.calcsize(BODY_FORMAT)  # 117
SIG_SIZE = 64
SIZE = BODY_SIZE + SIG_SIZE  # 181

GENESIS_PREV = bytes(32)
SEQ_MAX = 2**64 - 1
U32_MAX = 2**32 - 1


class BatchError(ValueError):
    """A batch header (or a batch against its header) is malformed or does not verify.

    `field` names what is wrong, for counting rejects by reason; str() says got/want.
    """

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """A decoded batch header. Construction validates every field; `signature` may be None
    for a header that is not signed yet."""

    gateway_key: bytes
    seq: int
    prev_hash: bytes
    count: int
    first_time: int
    last_time: int
    merkle_root: bytes
    signature: bytes | None = None

    def __post_init__(self) -> None:
        _want_len("gateway key", self.gateway_key, 32)
        _want_len("prev hash", self.prev_hash, 32)
        _want_len("merkle root", self.merkle_root, 32)
        if self.signature is not None:
            _want_len("signature", self.signature, SIG_SIZE)
        if not 0 <= self.seq <= SEQ_MAX:
            raise BatchError("seq", f"got {self.seq}, want 0..{SEQ_MAX}")
        # The chain starts at seq 0 and only there: a zero prev hash anywhere else is a fork.
        if (self.seq == 0) != (self.prev_hash == GENESIS_PREV):
            want = "32 zero bytes" if self.seq == 0 else "the previous header's hash"
            raise BatchError(
                "prev hash", f"got {self.prev_hash.hex()} at seq {self.seq}, want {want}"
            )
        if not 1 <= self.count <= U32_MAX:
            raise BatchError("count", f"got {self.count}, want 1..{U32_MAX}")
        for name, value in (("first time", self.first_time), ("last time", self.last_time)):
            if not 0 <= value <= U32_MAX:
                raise BatchError(name, f"got {value}, want 0..{U32_MAX}")
        if self.first_time > self.last_time:
            raise BatchError(
                "time span",
                f"got first {self.first_time} > last {self.last_time}, want first <= last",
            )

    def body(self) -> bytes:
        """Return the 117 signed bytes (everything but the signature)."""
        return struct.pack(
            BODY_FORMAT,
            VERSION,
            self.gateway_key,
            self.seq,
            self.prev_hash,
            self.count,
            self.first_time,
            self.last_time,
            self.merkle_root,
        )

    def encode(self) -> bytes:
        """Return the 181 wire bytes. Requires a signature (see sign())."""
        if self.signature is None:
            raise BatchError("signature", "got none, want 64 bytes: sign the header first")
        return self.body() + self.signature

    def message(self) -> bytes:
        """Return the 32-byte message the gateway signs: tagged_hash(TAG, body)."""
        return schnorr.tagged_hash(TAG, self.body())

    def sign(self, secret: bytes, aux: bytes | None = None) -> BatchHeader:
        """Return this header signed by the gateway holding `secret`.

        Raises BatchError if `secret` is not the key named in the header.
        """
        if schnorr.pubkey(secret) != self.gateway_key:
            raise BatchError("gateway key", "the signing secret does not match the header's key")
        return replace(self, signature=schnorr.sign(secret, self.message(), aux))

    def verify_signature(self) -> bool:
        """Return True if the header carries a valid BIP-340 signature by its gateway key."""
        return self.signature is not None and schnorr.verify(
            self.gateway_key, self.message(), self.signature
        )

    def hash(self) -> bytes:
        """Return header_hash() of the encoded header: what the next header's prev hash holds."""
        return header_hash(self.encode())


def _want_len(field: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise BatchError(field, f"got {got}, want {size} bytes")


def header_hash(header_bytes: bytes) -> bytes:
    """Return SHA-256 of a header's full 181 wire bytes (signature included), its identity
    in the gateway's chain."""
    return hashlib.sha256(header_bytes).digest()


def decode(data: bytes) -> BatchHeader:
    """Parse 181 wire bytes into a BatchHeader; the signature is NOT verified.

    Raises BatchError naming the first field that is wrong.
    """
    if len(data) != SIZE:
        raise BatchError("length", f"got {len(data)} bytes, want {SIZE}")
    if data[0] != VERSION:
        raise BatchError("version", f"got {data[0]}, want {VERSION}")
    _, key, seq, prev, count, first, last, root = struct.unpack_from(BODY_FORMAT, data, 0)
    return BatchHeader(key, seq, prev, count, first, last, root, bytes(data[BODY_SIZE:]))


# -- the chain: each gateway's batches in seq order, each naming the one before ----------


@dataclass(frozen=True, slots=True)
class ChainHead:
    """A gateway's newest batch, as far as its chain is concerned: its seq and header_hash."""

    seq: int
    hash: bytes

    @classmethod
    def of(cls, header_bytes: bytes) -> ChainHead:
        """Return the head a header's wire bytes make. Raises BatchError if malformed."""
        return cls(decode(header_bytes).seq, header_hash(header_bytes))


class ChainError(BatchError):
    """A batch that does not follow its gateway's newest one: `want_seq` and `want_prev`
    say what it had to carry; str() is "chain: got batch S after prev P, want batch S'
    after prev P'", `detail` the same without "chain: "."""

    def __init__(self, header: BatchHeader, want_seq: int, want_prev: bytes) -> None:
        self.detail = (
            f"got batch {header.seq} after prev {header.prev_hash.hex()}, "
            f"want batch {want_seq} after prev {want_prev.hex()}"
        )
        super().__init__("chain", self.detail)
        self.want_seq, self.want_prev = want_seq, want_prev


def next_link(last: ChainHead | None) -> tuple[int, bytes]:
    """Return the (seq, prev hash) the batch after `last` carries: (0, GENESIS_PREV) for a
    gateway's first batch (`last` None), else (last.seq + 1, last.hash)."""
    return (0, GENESIS_PREV) if last is None else (last.seq + 1, last.hash)


def check_follows(header: BatchHeader, last: ChainHead | None) -> None:
    """Require `header` to be the batch after `last`, its gateway's newest batch (None: the
    gateway has none, so `header` must be its first). Raises ChainError otherwise (a gap,
    a fork, a replay or a new gateway that does not start at 0)."""
    want_seq, want_prev = next_link(last)
    if header.seq != want_seq or header.prev_hash != want_prev:
        raise ChainError(header, want_seq, want_prev)


def chain_break(header: BatchHeader, last: bytes | None) -> str | None:
    """Return why `header` does not follow `last`, its gateway's newest stored header (None:
    it has none, so `header` must be the genesis batch), or None if it does (check_follows,
    worded for a refusal)."""
    try:
        check_follows(header, None if last is None else ChainHead.of(last))
    except ChainError as e:
        return f"got batch {header.seq}, want batch {e.want_seq} chained to the last one"
    return None


def seal(
    secret: bytes,
    seq: int,
    prev_hash: bytes,
    readings: Sequence[bytes],
    aux: bytes | None = None,
    times: Sequence[int] | None = None,
) -> BatchHeader:
    """Return the signed header committing to `readings` (wire bytes, in batch order).

    Requires at least one reading; each must decode (its signature is the caller's concern:
    the gateway seals only readings it has verified). `times` are the readings' time
    fields when the caller already has them (the spool does). Raises BatchError or
    ReadingError.
    """
    if not readings:
        raise BatchError("count", "got 0 readings, want at least 1")
    if times is None:
        times = [reading.decode(r).time for r in readings]
    header = BatchHeader(
        gateway_key=schnorr.pubkey(secret),
        seq=seq,
        prev_hash=prev_hash,
        count=len(readings),
        first_time=min(times),
        last_time=max(times),
        merkle_root=merkle.root(readings),
    )
    return header.sign(secret, aux)


def check_contents(header: BatchHeader, readings: Sequence[bytes]) -> None:
    """Check that `readings` are exactly what `header` commits to: count, time span and
    Merkle root. Reading signatures are checked separately. Raises BatchError."""
    if len(readings) != header.count:
        raise BatchError("count", f"got {len(readings)} readings, header says {header.count}")
    times = [reading.decode(r).time for r in readings]
    if (min(times), max(times)) != (header.first_time, header.last_time):
        raise BatchError(
            "time span",
            f"got {min(times)}..{max(times)}, header says {header.first_time}..{header.last_time}",
        )
    computed = merkle.root(readings)
    if computed != header.merkle_root:
        raise BatchError(
            "merkle root", f"got {computed.hex()}, header says {header.merkle_root.hex()}"
        )
