"""Batch ingest trusts no gateway: every refusal has its own reason, stores nothing, and
an exact resend is recognised; an accepted batch is in the log with all its readings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.log import tlog
from cloud.services.ingest import IngestError, Known, Verified, check_batch
from cloud.storage.store import Store
from device import reading, schnorr
from gateway import batch, merkle

GW = bytes(31) + b"\x61"
BOX = bytes(31) + b"\x62"
STRANGER = bytes(31) + b"\x63"
NOW = int(time.time())


def readings(secret: bytes, seqs: range) -> list[bytes]:
    return [reading.sign(secret, s, NOW + s, 450, 5000) for s in seqs]


def body(header: batch.BatchHeader, wires: list[bytes]) -> bytes:
    return header.encode() + b"".join(wires)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store.sqlite(tmp_path / "ledger.sqlite")
    await s.register_gateway(schnorr.pubkey(GW), "w1")
    await s.register_device(schnorr.pubkey(BOX), "w1", "fridge")
    yield s
    await s.close()


async def known(s: Store, data: bytes) -> Known:
    """The ledger's state for the batch `data`, read as the service reads it (one
    known()); a batch too short for a header is refused before it is asked."""
    if len(data) < batch.SIZE:
        return Known(lambda _: False, lambda _: False, lambda _g, _s: None, lambda _: None)
    header = batch.decode(data[: batch.SIZE])
    boxes = {
        reading.key_of(data[i : i + reading.SIZE])
        for i in range(batch.SIZE, len(data) - reading.SIZE + 1, reading.SIZE)
    }
    state = await s.known(header.gateway_key, header.seq, boxes)
    return Known(
        lambda key: key == header.gateway_key and state.gateway_registered,
        state.registered_devices.__contains__,
        lambda key, seq: (
            state.stored_header if (key, seq) == (header.gateway_key, header.seq) else None
        ),
        lambda key: state.last_header if key == header.gateway_key else None,
    )


async def accept(s: Store, data: bytes) -> int:
    result = check_batch(data, await known(s, data))
    assert isinstance(result, Verified)
    return (await s.store_batch(result)).log_index


async def test_accepts_a_chain_and_recognises_a_resend(store: Store) -> None:
    w0, w1 = readings(BOX, range(0, 5)), readings(BOX, range(5, 8))
    h0 = batch.seal(GW, 0, batch.GENESIS_PREV, w0)
    h1 = batch.seal(GW, 1, h0.hash(), w1)
    assert await accept(store, body(h0, w0)) == 0
    assert await accept(store, body(h1, w1)) == 1
    resend = body(h0, w0)
    assert check_batch(resend, await known(store, resend)) == h0.encode()  # the stored header
    assert await store.log_size() == 2
    found = await store.reading(schnorr.pubkey(BOX), 6)
    assert found is not None and found[:3] == (w1[1], 1, 1)
    wire, leaf = found.wire, found.leaf
    leaves = await store.batch_readings(1)
    merkle.verify_inclusion(
        wire, leaf, len(leaves), merkle.inclusion_proof(leaves, leaf), h1.merkle_root
    )
    assert tlog.parse_entry((await store.entries(1, 2))[0]) == ("batch", h1.encode())
    assert await store.devices() == [
        {"key": schnorr.pubkey(BOX).hex(), "site": "w1", "label": "fridge", "last_seq": 7}
    ]


def refusals(store: object = None) -> dict[str, tuple[bytes, int]]:
    w = readings(BOX, range(0, 4))
    good = batch.seal(GW, 0, batch.GENESIS_PREV, w)
    forged_sig = bytearray(body(good, w))
    forged_sig[batch.BODY_SIZE + 3] ^= 1
    forged_reading = bytearray(w[2])
    forged_reading[42] ^= 1  # temperature changed after the box signed
    tampered = [*w[:2], bytes(forged_reading), w[3]]
    stranger = readings(STRANGER, range(0, 2))
    return {
        "length": (body(good, w)[:100], 400),
        "unregistered gateway": (body(batch.seal(STRANGER, 0, batch.GENESIS_PREV, w), w), 400),
        "header signature": (bytes(forged_sig), 400),
        "chain": (body(batch.seal(GW, 3, bytes(range(32)), w), w), 409),
        "readings": (body(good, w) + b"\x00", 400),
        "merkle root": (body(good, [w[1], w[0], w[2], w[3]]), 400),
        "count": (body(good, w[:3]), 400),
        # a gateway that re-seals over a forged reading: header consistent, reading is not
        "reading signature": (body(batch.seal(GW, 0, batch.GENESIS_PREV, tampered), tampered), 400),
        "unregistered box": (body(batch.seal(GW, 0, batch.GENESIS_PREV, stranger), stranger), 400),
    }


# Every check of cloud/services/ingest.py that refuses a whole batch, each with a batch failing it.
REASONS = [
    "length",
    "unregistered gateway",
    "header signature",
    "chain",
    "readings",
    "merkle root",
    "count",
    "reading signature",
    "unregistered box",
]


@pytest.mark.parametrize("reason", REASONS)
async def test_each_refusal_has_its_reason_and_stores_nothing(store: Store, reason: str) -> None:
    data, status = refusals(store)[reason]
    with pytest.raises(IngestError) as err:
        check_batch(data, await known(store, data))
    assert (err.value.reason, err.value.status) == (reason, status)
    assert await store.log_size() == 0 and (await store.devices())[0]["last_seq"] == -1


async def test_a_different_batch_under_a_stored_seq_is_a_conflict(store: Store) -> None:
    w = readings(BOX, range(0, 3))
    await accept(store, body(batch.seal(GW, 0, batch.GENESIS_PREV, w), w))
    other = readings(BOX, range(3, 5))
    data = body(batch.seal(GW, 0, batch.GENESIS_PREV, other), other)
    with pytest.raises(IngestError) as err:
        check_batch(data, await known(store, data))
    assert (err.value.reason, err.value.status) == ("conflict", 409)
    assert await store.log_size() == 1
