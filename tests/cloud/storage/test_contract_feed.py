"""What the contracts read back of the log (cloud/storage/contracts.py), on SQLite and
PostgreSQL: the readings each batch stored first, of the boxes asked for only, in log and
leaf order from a position, never a duplicate sighting or an equivocation, and paged."""

from __future__ import annotations

from cloud.storage import contracts as stored
from cloud.storage.batches import MAX_LEAF
from cloud.storage.store import Store
from device import reading, schnorr
from gateway import batch
from tests.cloud.services.test_ingest import BOX, GW, accept, readings

OTHER = bytes(31) + b"\x63"


async def test_first_readings_of_the_boxes_asked_from_a_position(store: Store) -> None:
    await store.register_gateway(schnorr.pubkey(GW), "w1")
    for box in (BOX, OTHER):
        await store.register_device(schnorr.pubkey(box), "w1", "")
    first = readings(BOX, range(0, 3)) + readings(OTHER, range(0, 2))
    h0 = batch.seal(GW, 0, batch.GENESIS_PREV, first)
    i0 = await accept(store, h0.encode() + b"".join(first))
    other = reading.sign(BOX, 1, 10**6, 900, 5000)  # seq 1 again, other bytes: an equivocation
    second = [first[0], other, *readings(BOX, range(3, 5))]  # seq 0 again: a duplicate
    h1 = batch.seal(GW, 1, h0.hash(), second)
    i1 = await accept(store, h1.encode() + b"".join(second))
    box = schnorr.pubkey(BOX)

    async def read(after: tuple[int, int], end: int, limit: int = 100) -> list[tuple[int, int]]:
        rows = await store.read(lambda tx: stored.first_readings(tx, {box}, after, end, limit))
        assert all(reading.key_of(w) == box for _, _, w in rows)
        return [(i, leaf) for i, leaf, _ in rows]

    everything = [(i0, 0), (i0, 1), (i0, 2), (i1, 2), (i1, 3)]
    assert await read((-1, -1), i1 + 1) == everything
    assert await read((i0, MAX_LEAF), i1 + 1) == everything[3:]  # after entry i0
    assert await read((i0, 1), i1 + 1) == everything[2:]  # after its leaf 1
    assert await read((-1, -1), i1) == everything[:3]  # before entry i1
    assert await read((-1, -1), i1 + 1, 2) == everything[:2]  # a page
    assert await store.read(lambda tx: stored.first_readings(tx, set(), (-1, -1), i1 + 1, 9)) == []
