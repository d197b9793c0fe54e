"""The batch header v1 against its golden vectors, its rules and tampering."""

from __future__ import annotations

import json
import struct

import pytest

from gateway import batch
from tests.conftest import GOLDEN

VECTORS = json.loads((GOLDEN / "batch-v1.json").read_text())
SECRET = bytes.fromhex(VECTORS["gateway_secret"])
HEADERS = VECTORS["headers"]


def _readings(case: dict) -> list[bytes]:
    return [bytes.fromhex(r) for r in case["readings"]]


@pytest.mark.parametrize("case", HEADERS, ids=lambda c: f"seq{c['seq']}")
def test_golden_header_seals_and_decodes_byte_for_byte(case: dict) -> None:
    wire = bytes.fromhex(case["wire"])
    prev = batch.GENESIS_PREV if case["seq"] == 0 else bytes.fromhex(HEADERS[0]["header_hash"])

    sealed = batch.seal(SECRET, case["seq"], prev, _readings(case), bytes.fromhex(case["aux"]))
    assert sealed.encode() == wire
    header = batch.decode(wire)
    assert header == sealed
    assert header.gateway_key.hex() == VECTORS["gateway_key"]
    assert header.merkle_root.hex() == case["merkle_root"]
    assert header.hash().hex() == case["header_hash"]
    assert header.verify_signature()
    batch.check_contents(header, _readings(case))


def test_golden_headers_chain() -> None:
    first, second = (batch.decode(bytes.fromhex(c["wire"])) for c in HEADERS)
    assert first.prev_hash == batch.GENESIS_PREV
    assert second.prev_hash == first.hash()


def _patched(offset: int, new: bytes) -> bytes:
    wire = bytes.fromhex(HEADERS[1]["wire"])
    return wire[:offset] + new + wire[offset + len(new) :]


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        (bytes.fromhex(HEADERS[0]["wire"])[:-1], "length"),
        (b"", "length"),
        (_patched(0, b"\x02"), "version"),
        (_patched(73, struct.pack(">I", 0)), "count"),
        (_patched(77, struct.pack(">I", 2**32 - 1)), "time span"),
        (_patched(41, bytes(32)), "prev hash"),  # zero prev hash after genesis: a new chain
        (_patched(33, struct.pack(">Q", 0)), "prev hash"),  # genesis with a prev hash
    ],
    ids=["short", "empty", "version", "count0", "first>last", "zero-prev", "genesis-prev"],
)
def test_malformed_header_is_rejected_naming_the_field(wire: bytes, field: str) -> None:
    with pytest.raises(batch.BatchError) as err:
        batch.decode(wire)
    assert err.value.field == field
    assert ": got " in str(err.value)


def test_every_single_bit_flip_is_caught() -> None:
    wire = bytes.fromhex(HEADERS[1]["wire"])
    for bit in range(len(wire) * 8):
        tampered = bytearray(wire)
        tampered[bit // 8] ^= 1 << (bit % 8)
        try:
            header = batch.decode(bytes(tampered))
        except batch.BatchError:
            continue
        assert not header.verify_signature(), f"bit {bit} flipped and still verifies"


def test_contents_must_match_the_header_exactly() -> None:
    header = batch.decode(bytes.fromhex(HEADERS[0]["wire"]))
    readings = _readings(HEADERS[0])
    with pytest.raises(batch.BatchError, match="count: got 2 readings, header says 3"):
        batch.check_contents(header, readings[:2])
    with pytest.raises(batch.BatchError) as err:
        batch.check_contents(header, [readings[1], readings[0], readings[2]])  # reordered
    assert err.value.field == "merkle root"
    other = bytes.fromhex(HEADERS[1]["readings"][0])
    with pytest.raises(batch.BatchError) as err:
        batch.check_contents(header, [readings[0], readings[1], other])  # swapped in
    assert err.value.field == "time span"


def test_signing_with_another_key_is_refused() -> None:
    header = batch.decode(bytes.fromhex(HEADERS[0]["wire"]))
    with pytest.raises(batch.BatchError, match="gateway key"):
        header.sign(bytes(31) + b"\x01")


def test_sealing_nothing_is_refused() -> None:
    with pytest.raises(batch.BatchError, match="count: got 0 readings"):
        batch.seal(SECRET, 0, batch.GENESIS_PREV, [])


def test_unsigned_header_cannot_be_encoded_or_verified() -> None:
    header = batch.decode(bytes.fromhex(HEADERS[0]["wire"]))
    unsigned = batch.BatchHeader(
        header.gateway_key,
        header.seq,
        header.prev_hash,
        header.count,
        header.first_time,
        header.last_time,
        header.merkle_root,
    )
    assert not unsigned.verify_signature()
    with pytest.raises(batch.BatchError, match="signature: got none"):
        unsigned.encode()


# -- the chain rule (batch.check_follows): the one copy ingest, the follower and the spool use


def _golden(i: int) -> batch.BatchHeader:
    return batch.decode(bytes.fromhex(HEADERS[i]["wire"]))


def test_the_golden_chain_follows_link_by_link() -> None:
    first, second = _golden(0), _golden(1)
    assert batch.next_link(None) == (0, batch.GENESIS_PREV)
    batch.check_follows(first, None)
    head = batch.ChainHead.of(first.encode())
    assert head == batch.ChainHead(0, bytes.fromhex(HEADERS[0]["header_hash"]))
    assert batch.next_link(head) == (1, first.hash())
    batch.check_follows(second, head)


def _resealed(seq: int, prev: bytes) -> batch.BatchHeader:
    case = HEADERS[1]
    return batch.seal(SECRET, seq, prev, _readings(case), bytes.fromhex(case["aux"]))


@pytest.mark.parametrize(
    ("last", "header", "want"),
    [
        (None, lambda: _golden(1), (0, batch.GENESIS_PREV)),  # a new gateway starts at 0
        (lambda: _golden(0), lambda: _golden(0), (1, "first")),  # replayed
        (lambda: _golden(0), lambda: _resealed(2, _golden(0).hash()), (1, "first")),  # a gap
        (lambda: _golden(0), lambda: _resealed(1, bytes(31) + b"\x01"), (1, "first")),  # fork
    ],
    ids=["new-gateway-at-1", "replayed", "skipped-seq", "wrong-prev"],
)
def test_a_batch_that_does_not_follow_is_refused_saying_what_it_had_to_carry(
    last, header, want: tuple[int, object]
) -> None:
    head = None if last is None else batch.ChainHead.of(last().encode())
    got = header()
    want_prev = batch.GENESIS_PREV if want[1] != "first" else _golden(0).hash()
    with pytest.raises(batch.ChainError) as err:
        batch.check_follows(got, head)
    assert (err.value.want_seq, err.value.want_prev) == (want[0], want_prev)
    assert err.value.field == "chain"
    assert str(err.value) == (
        f"chain: got batch {got.seq} after prev {got.prev_hash.hex()}, "
        f"want batch {want[0]} after prev {want_prev.hex()}"
    )
