"""The Store contract (cloud/storage/store.py) on every engine: the registry, what verification
needs to know, batches stored once and chained, readings by seq, batch and time, the log's
entries and nodes, and writes that fail leaving nothing. Then PostgreSQL's reason to exist:
several workers on one database append one consistent log and cannot fork a chain."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from urllib.parse import urlencode

import pytest

from cloud.log import tlog
from cloud.services.ingest import Known, Verified, check_batch
from cloud.storage.postgres import SCHEMA_VERSION, PostgresEngine, SchemaVersionError
from cloud.storage.sqlite import SqliteEngine
from cloud.storage.store import (
    BatchStored,
    Commit,
    KnownState,
    NotFound,
    Store,
    StoreConflict,
    StoredReading,
)
from device import reading, schnorr
from gateway import batch, merkle

GW, GW2 = bytes(31) + b"\x61", bytes(31) + b"\x64"  # gateway secrets
BOX, BOX2, STRANGER = bytes(31) + b"\x62", bytes(31) + b"\x65", bytes(31) + b"\x63"
NOW = 1_700_000_000


def key(secret: bytes) -> bytes:
    return schnorr.pubkey(secret)


def readings(secret: bytes, seqs: Sequence[int], times: Sequence[int] | None = None) -> list[bytes]:
    """Signed readings of one box; times default to NOW + seq."""
    times = times or [NOW + s for s in seqs]
    return [reading.sign(secret, s, t, 450, 5000) for s, t in zip(seqs, times, strict=True)]


def entries(n: int, start: int = 0, tag: int = 0) -> list[bytes]:
    return [bytes([tlog.ENTRY_BATCH, tag]) + i.to_bytes(8, "big") for i in range(start, start + n)]


async def registered(store: Store) -> Store:
    """The store with GW, GW2, BOX and BOX2 registered (no log entries)."""
    await store.register_gateway(key(GW), "w1")
    await store.register_gateway(key(GW2), "w2")
    await store.register_device(key(BOX), "w1", "fridge")
    await store.register_device(key(BOX2), "w1", "freezer")
    return store


async def check(store: Store, header: batch.BatchHeader, wires: list[bytes]) -> Verified:
    """Verify a batch the way the service does: one known() read, then check_batch."""
    boxes = {reading.decode(w).key for w in wires}
    state = await store.known(header.gateway_key, header.seq, boxes)
    known = Known(
        lambda _gateway: state.gateway_registered,
        lambda box: box in state.registered_devices,
        lambda _gateway, _seq: state.stored_header,
        lambda _gateway: state.last_header,
    )
    result = check_batch(header.encode() + b"".join(wires), known)
    assert isinstance(result, Verified), "a resend, not a new batch"
    return result


def unchecked(header: batch.BatchHeader, wires: list[bytes]) -> Verified:
    """A Verified built without asking the store: what a worker holds after checking
    against a state that another worker has since changed."""
    return Verified(header, header.encode(), [reading.decode(w) for w in wires], wires)


async def execute(store: Store, sql: str) -> None:
    """Run one SQL statement on the store's database behind its back (to break it)."""
    if isinstance(store.engine, PostgresEngine):
        await store.engine.pool.execute(sql)
    else:
        assert isinstance(store.engine, SqliteEngine)
        store.engine.db.execute(sql)


# -- the registry -------------------------------------------------------------------------


async def test_registering_again_moves_a_gateway_and_relabels_a_box(store: Store) -> None:
    await registered(store)
    await store.register_gateway(key(GW), "w3")
    await store.register_device(key(BOX), "w3", "cold room")
    assert await store.gateways() == [
        {"key": key(GW).hex(), "site": "w3", "last_seq": -1},  # keeps its place: first
        {"key": key(GW2).hex(), "site": "w2", "last_seq": -1},
    ]
    assert await store.devices() == [
        {"key": key(BOX).hex(), "site": "w3", "label": "cold room", "last_seq": -1},
        {"key": key(BOX2).hex(), "site": "w1", "label": "freezer", "last_seq": -1},
    ]
    assert await store.log_size() == 0  # no entry given: nothing logged


async def test_registry_changes_with_an_entry_are_logged_in_order(store: Store) -> None:
    logged = entries(3, tag=2)
    await store.register_gateway(key(GW), "w1", logged[0])
    await store.register_device(key(BOX), "w1", "fridge", logged[1])
    await store.attach(key(BOX), "lot 7", NOW, None, logged[2])
    assert await store.entries(0, 10) == logged
    assert [g["site"] for g in await store.gateways()] == ["w1"]
    assert await store.attachments(key(BOX)) == [{"subject": "lot 7", "start": NOW, "end": None}]


async def test_attachments_come_oldest_first_and_need_a_registered_box(store: Store) -> None:
    await registered(store)
    await store.attach(key(BOX), "shipment 2", NOW + 200, None)
    await store.attach(key(BOX), "lot 1", NOW + 100, NOW + 150)
    await store.attach(key(BOX), "zone A", NOW + 100, None)  # same start: in attach order
    await store.attach(key(BOX2), "lot 9", NOW, None)
    assert await store.attachments(key(BOX)) == [
        {"subject": "lot 1", "start": NOW + 100, "end": NOW + 150},
        {"subject": "zone A", "start": NOW + 100, "end": None},
        {"subject": "shipment 2", "start": NOW + 200, "end": None},
    ]
    assert await store.attachments(key(STRANGER)) == []
    with pytest.raises(NotFound, match=f"box {key(STRANGER).hex()} is not registered"):
        await store.attach(key(STRANGER), "lot 1", NOW, None, entries(1)[0])
    assert await store.log_size() == 0  # the refused attach logged nothing


# -- what verification needs to know ------------------------------------------------------


async def test_known_reports_registration_and_the_gateways_chain(store: Store) -> None:
    asked = [key(BOX), key(STRANGER), key(BOX)]
    assert await store.known(key(GW), 0, asked) == KnownState(False, None, None, frozenset())
    await registered(store)
    assert await store.known(key(GW), 0, asked) == KnownState(
        True, None, None, frozenset({key(BOX)})
    )
    w0, w1 = readings(BOX, range(0, 3)), readings(BOX, range(3, 5))
    h0 = batch.seal(GW, 0, batch.GENESIS_PREV, w0)
    h1 = batch.seal(GW, 1, h0.hash(), w1)
    await store.store_batch(await check(store, h0, w0))
    await store.store_batch(await check(store, h1, w1))
    assert await store.known(key(GW), 0, []) == KnownState(
        True, h0.encode(), h1.encode(), frozenset()
    )
    assert await store.known(key(GW), 2, [key(BOX2)]) == KnownState(
        True, None, h1.encode(), frozenset({key(BOX2)})
    )
    assert await store.known(key(GW2), 1, []) == KnownState(True, None, None, frozenset())


# -- batches ------------------------------------------------------------------------------


async def test_a_chain_of_batches_is_logged_with_its_readings(store: Store) -> None:
    await registered(store)
    await store.append(entries(2))  # the log does not start with the batches
    chain: list[tuple[batch.BatchHeader, list[bytes]]] = []
    prev = batch.GENESIS_PREV
    for seq, span in enumerate([range(0, 4), range(4, 5), range(5, 12)]):
        wires = readings(BOX, span) + readings(BOX2, [seq])
        header = batch.seal(GW, seq, prev, wires)
        stored = await store.store_batch(await check(store, header, wires))
        assert stored == BatchStored(2 + seq, True, len(wires))
        chain.append((header, wires))
        prev = header.hash()
    assert await store.log_size() == 5
    assert await store.entries(2, 5) == [tlog.batch_entry(h.encode()) for h, _ in chain]
    for seq, (_, wires) in enumerate(chain):
        assert await store.batch_log_index(key(GW), seq) == 2 + seq
        assert await store.batch_readings(2 + seq) == wires
    assert await store.batch_log_index(key(GW), 3) is None
    assert await store.batch_log_index(key(GW2), 0) is None
    found = await store.reading(key(BOX), 7)
    assert found == StoredReading(
        chain[2][1][2], 4, 2, tlog.batch_entry(chain[2][0].encode()), chain[2][0].count, b""
    )
    leaves = await store.batch_readings(found.log_index)
    merkle.verify_inclusion(
        found.wire,
        found.leaf,
        len(leaves),
        merkle.inclusion_proof(leaves, found.leaf),
        chain[2][0].merkle_root,
    )
    assert await store.reading(key(BOX), 12) is None
    assert await store.reading(key(STRANGER), 0) is None
    assert await store.batch_readings(99) == []
    assert [g["last_seq"] for g in await store.gateways()] == [2, -1]
    assert [d["last_seq"] for d in await store.devices()] == [11, 2]


async def test_a_resend_gets_the_same_index_and_stores_nothing_twice(store: Store) -> None:
    await registered(store)
    wires = readings(BOX, range(0, 6))
    header = batch.seal(GW, 0, batch.GENESIS_PREV, wires)
    verified = await check(store, header, wires)
    assert await store.store_batch(verified) == BatchStored(0, True, 6)
    assert await store.store_batch(verified) == BatchStored(0, created=False)
    assert await store.log_size() == 1
    assert await store.batch_readings(0) == wires
    assert await store.history(key(BOX), 0, 2**32, 100) == wires


async def test_a_batch_that_lost_a_race_is_a_store_conflict(store: Store) -> None:
    await registered(store)
    w0, w0b, w1 = readings(BOX, range(0, 3)), readings(BOX, range(3, 6)), readings(BOX, [9])
    h0 = batch.seal(GW, 0, batch.GENESIS_PREV, w0)
    h0b = batch.seal(GW, 0, batch.GENESIS_PREV, w0b)
    # Both checked against the empty ledger, as two workers would; the second stores late.
    v0, v0b = await check(store, h0, w0), await check(store, h0b, w0b)
    assert (await store.store_batch(v0)).log_index == 0
    with pytest.raises(StoreConflict) as err:
        await store.store_batch(v0b)
    assert err.value.reason == "conflict"
    # The chain moved: a successor of the header that lost, and one that skips a seq.
    for late in (
        batch.seal(GW, 1, h0b.hash(), w1),
        batch.seal(GW, 2, h0.hash(), w1),
    ):
        with pytest.raises(StoreConflict) as err:
            await store.store_batch(unchecked(late, w1))
        assert err.value.reason == "chain"
        assert "want batch 1 chained to the last one" in err.value.detail
    assert await store.log_size() == 1
    assert await store.batch_readings(0) == w0
    assert await store.reading(key(BOX), 9) is None
    assert [d["last_seq"] for d in await store.devices()] == [2, -1]


async def test_a_batch_naming_an_unregistered_box_stores_nothing(store: Store) -> None:
    # check_batch refuses it; a store handed one anyway must fail whole, not half-store it.
    await registered(store)
    wires = readings(BOX, [0]) + readings(STRANGER, [0])
    with pytest.raises((NotFound, KeyError)):  # NotFound, raised by store_batch itself
        await store.store_batch(unchecked(batch.seal(GW, 0, batch.GENESIS_PREV, wires), wires))
    assert await store.log_size() == 0
    assert await store.batch_log_index(key(GW), 0) is None
    assert await store.reading(key(BOX), 0) is None


# -- readings -----------------------------------------------------------------------------


async def test_a_reading_two_gateways_sealed_is_served_from_the_first_batch(store: Store) -> None:
    await registered(store)
    wires = readings(BOX, range(0, 4))
    first = batch.seal(GW2, 0, batch.GENESIS_PREV, wires)
    second = batch.seal(GW, 0, batch.GENESIS_PREV, wires[2:])
    assert (await store.store_batch(await check(store, first, wires))).log_index == 0
    again = await store.store_batch(await check(store, second, wires[2:]))
    # Exactly once (issue 10): the second carrier stores no reading, only two sightings.
    assert again.log_index == 1 and again.new_readings == 0 and again.duplicates == 2
    found = await store.reading(key(BOX), 3)
    assert found is not None and found[:3] == (wires[3], 0, 3)
    assert found.entry == tlog.batch_entry(first.encode())
    assert await store.batch_readings(1) == wires[2:]


async def test_history_is_a_time_window_oldest_first_up_to_a_limit(store: Store) -> None:
    await registered(store)
    # Out of time order within the batch, and two readings of one second (ordered by seq).
    times = [NOW + t for t in (5, 3, 9, 1, 3, 7, 2, 8)]
    wires = readings(BOX, range(8), times) + readings(BOX2, [0], [NOW + 4])
    await store.store_batch(await check(store, batch.seal(GW, 0, batch.GENESIS_PREV, wires), wires))
    by_time = [wires[i] for i in (3, 6, 1, 4, 0, 5, 7, 2)]  # times 1 2 3 3 5 7 8 9
    assert await store.history(key(BOX), NOW, NOW + 10, 100) == by_time
    assert await store.history(key(BOX), NOW + 2, NOW + 8, 100) == by_time[1:6]  # end excluded
    assert await store.history(key(BOX), NOW + 2, NOW + 8, 2) == by_time[1:3]
    assert await store.history(key(BOX), NOW + 10, NOW + 20, 100) == []
    assert await store.history(key(BOX2), NOW, NOW + 10, 100) == [wires[8]]
    assert await store.history(key(STRANGER), NOW, NOW + 10, 100) == []


# -- the log ------------------------------------------------------------------------------


async def test_entries_are_paged_in_order_and_found_by_leaf_hash(store: Store) -> None:
    logged = entries(9)
    logged.append(logged[4])  # the same bytes logged twice: found at the first
    assert await store.append(logged[:3]) == (0, 3)
    assert await store.append(logged[3:]) == (3, 10)
    assert await store.append([]) == (10, 10)
    pages = [await store.entries(start, start + 4) for start in range(0, 12, 4)]
    assert pages == [logged[0:4], logged[4:8], logged[8:10]]
    assert await store.entries(10, 20) == []
    assert await store.entries(5, 5) == []
    assert await store.find_entry(tlog.entry_leaf(logged[4])) == 4
    assert await store.find_entry(tlog.entry_leaf(logged[9])) == 4
    assert await store.find_entry(tlog.entry_leaf(logged[7])) == 7
    assert await store.find_entry(tlog.entry_leaf(entries(1, 99)[0])) is None


async def test_nodes_are_those_of_the_tree_and_a_missing_one_is_named(store: Store) -> None:
    logged = entries(11)
    await store.append(logged[:5])
    await store.append(logged[5:])
    reference = merkle.MerkleTree(logged)
    asked = [(3, 0), (0, 10), (1, 4), (2, 1), (0, 0)]
    assert await store.nodes(asked) == {k: reference.node(*k) for k in asked}
    assert await store.nodes([]) == {}
    with pytest.raises(NotFound, match=r"log node \(level 0, index 11\)"):
        await store.nodes([(0, 3), (0, 11), (2, 3)])
    with pytest.raises(NotFound, match=r"log node \(level 1, index 5\)"):  # incomplete
        await store.nodes([(1, 5)])


async def test_a_write_that_fails_leaves_nothing_behind(store: Store) -> None:
    await registered(store)
    await store.append(entries(7))
    # Appending entry 7 completes subtrees that need the stored node (0, 6): without it
    # every write that grows the log must fail whole and roll back.
    await execute(store, "DELETE FROM log_nodes WHERE level = 0 AND idx = 6")
    missing = r"log node \(level 0, index 6\)"
    with pytest.raises(NotFound, match=missing):
        await store.append(entries(3, 7))
    wires = readings(BOX, range(0, 2))
    header = batch.seal(GW, 0, batch.GENESIS_PREV, wires)
    with pytest.raises(NotFound, match=missing):
        await store.store_batch(await check(store, header, wires))
    with pytest.raises(NotFound, match=missing):
        await store.register_gateway(key(STRANGER), "w9", entries(1, 50)[0])
    with pytest.raises(NotFound, match=missing):
        await store.attach(key(BOX), "lot 1", NOW, None, entries(1, 51)[0])
    assert await store.log_size() == 7
    assert await store.entries(7, 20) == []
    with pytest.raises(NotFound, match=r"log node \(level 0, index 7\)"):
        await store.nodes([(0, 7)])
    assert await store.batch_log_index(key(GW), 0) is None
    assert await store.reading(key(BOX), 0) is None
    assert [g["key"] for g in await store.gateways()] == [key(GW).hex(), key(GW2).hex()]
    assert await store.attachments(key(BOX)) == []


async def test_a_commit_appends_and_applies_its_state_change_together(store: Store) -> None:
    # The primitive every log-growing write is built on (cloud/storage/log.py): entries
    # and the caller's own SQL in one transaction under the log's lock.
    async def apply(c: Commit) -> tuple[int, int]:
        first = await c.append(entries(3))
        await c.tx.execute(
            "INSERT INTO gateways (key, site, registered_at) VALUES (?, ?, ?)", key(GW), "w1", 0.0
        )
        return first, await c.append(entries(2, 3))

    assert await store.commit(apply) == (0, 3)
    assert await store.entries(0, 10) == entries(5)
    assert [g["site"] for g in await store.gateways()] == ["w1"]
    assert await tlog.root(store, 5) == merkle.MerkleTree(entries(5)).root()


async def test_a_commit_whose_state_change_fails_rolls_its_entries_back(store: Store) -> None:
    await store.append(entries(4))
    insert = "INSERT INTO gateways (key, site, registered_at) VALUES (?, ?, ?)"

    async def apply(c: Commit) -> None:
        assert await c.append(entries(3, 4)) == 4
        await c.tx.execute(insert, key(GW2), "w2", 0.0)
        await c.tx.execute(insert, key(GW2), "w2", 0.0)  # the primary key again: fails

    with pytest.raises(Exception) as failed:
        await store.commit(apply)
    assert "unique" in str(failed.value).lower()
    assert await store.log_size() == 4
    assert await store.entries(0, 10) == entries(4)
    assert await store.gateways() == []
    with pytest.raises(NotFound, match=r"log node \(level 0, index 4\)"):
        await store.nodes([(0, 4)])
    # The lock was released with the transaction: the next commit goes through.
    assert await store.append(entries(1, 4)) == (4, 5)


async def test_a_commit_may_wait_on_nothing_but_its_database(store: Store) -> None:
    loop = asyncio.get_running_loop()
    elsewhere = loop.create_future()  # a network call's answer, say
    loop.call_later(0.01, elsewhere.set_result, None)

    async def apply(c: Commit) -> None:
        await c.append(entries(1))
        await elsewhere  # waiting for it would hold the log's lock
        await c.append(entries(1, 1))

    if isinstance(store.engine, SqliteEngine):
        with pytest.raises(RuntimeError, match="awaited something other than its database"):
            await store.commit(apply)
        assert await store.log_size() == 0
    else:  # PostgreSQL's transaction is a connection's: the wait only holds the lock longer
        await store.commit(apply)
        assert await store.log_size() == 2


# -- several PostgreSQL workers on one ledger ---------------------------------------------


async def test_workers_appending_at_once_build_one_log(postgres_dsn: str) -> None:
    # The second worker's server defaults to REPEATABLE READ: the store must not depend on
    # the server's default isolation to see what the previous lock holder committed.
    stale_prone = (
        postgres_dsn + "&" + urlencode({"default_transaction_isolation": "repeatable read"})
    )
    workers = [await Store.postgres(dsn, max_size=4) for dsn in (postgres_dsn, stale_prone)]
    appended: list[tuple[int, int, list[bytes]]] = []

    async def writer(store: Store, tag: int) -> None:
        rng = random.Random(tag)
        done = 0
        for _ in range(15):
            chunk = entries(rng.randint(1, 3), done, tag)
            first, size = await store.append(chunk)
            appended.append((first, size, chunk))
            done += len(chunk)

    try:
        # 4 writers per worker: 8 transactions contend for the lock on 8 connections.
        await asyncio.gather(*(writer(workers[t % 2], t) for t in range(8)))
        total = sum(len(chunk) for _, _, chunk in appended)
        spans = sorted((first, size) for first, size, _ in appended)
        assert [s for s, _ in spans] == [0] + [e for _, e in spans[:-1]], "gaps or overlaps"
        assert spans[-1][1] == total == await workers[1].log_size()
        log = await workers[0].entries(0, total)
        for first, size, chunk in appended:
            assert log[first:size] == chunk
        reference = merkle.MerkleTree(log)
        assert await tlog.root(workers[1], total) == reference.root()
        every_node = [
            (level, i) for level in range(total.bit_length()) for i in range(total >> level)
        ]
        assert await workers[0].nodes(every_node) == {k: reference.node(*k) for k in every_node}
    finally:
        for w in workers:
            await w.close()


async def test_workers_racing_for_a_gateways_next_batch_cannot_fork_it(
    postgres_dsn: str,
) -> None:
    a, b = [await Store.postgres(postgres_dsn, max_size=2) for _ in range(2)]
    try:
        await registered(a)
        prev, winners = batch.GENESIS_PREV, []
        for seq in range(6):
            # Two different batches under one seq (a gateway restored from a backup, say),
            # each checked by its own worker before either stores.
            wa, wb = readings(BOX, [2 * seq]), readings(BOX2, [2 * seq + 1])
            ha, hb = batch.seal(GW, seq, prev, wa), batch.seal(GW, seq, prev, wb)
            va, vb = await check(a, ha, wa), await check(b, hb, wb)
            results = await asyncio.gather(
                a.store_batch(va), b.store_batch(vb), return_exceptions=True
            )
            won = [i for i, r in enumerate(results) if isinstance(r, BatchStored)]
            lost = [r for r in results if isinstance(r, StoreConflict)]
            assert len(won) == 1 and len(lost) == 1, results
            assert lost[0].reason == "conflict"
            assert results[won[0]] == BatchStored(seq, True, 1)
            winners.append((ha, wa) if won[0] == 0 else (hb, wb))
            prev = winners[-1][0].hash()
        # The same batch at both workers at once (a resend that crossed a slow answer).
        wires = readings(BOX, [100, 101])
        header = batch.seal(GW, 6, prev, wires)
        same = await asyncio.gather(
            a.store_batch(await check(a, header, wires)),
            b.store_batch(await check(b, header, wires)),
        )
        assert sorted(s.created for s in same) == [False, True]
        assert [s.log_index for s in same] == [6, 6]
        assert await b.log_size() == 7
        assert await a.entries(0, 7) == [tlog.batch_entry(h.encode()) for h, _ in winners] + [
            tlog.batch_entry(header.encode())
        ]
        assert [await a.batch_readings(i) for i in range(6)] == [w for _, w in winners]
        assert await a.batch_readings(6) == wires
    finally:
        await a.close()
        await b.close()


async def test_reopening_continues_the_log_and_checks_the_schema_version(
    postgres_dsn: str,
) -> None:
    # Two workers starting at once on an empty database: the schema is created once.
    first, second = await asyncio.gather(Store.postgres(postgres_dsn), Store.postgres(postgres_dsn))
    await first.append(entries(300))
    await first.close()
    await second.append(entries(5, 300))
    assert await tlog.root(second, 305) == merkle.MerkleTree(entries(305)).root()
    await second.close()
    again = await Store.postgres(postgres_dsn)
    assert await again.log_size() == 305
    await execute(again, "UPDATE pharmasync_schema SET version = 99")
    await again.close()
    with pytest.raises(SchemaVersionError, match=f"schema version: got 99, want {SCHEMA_VERSION}"):
        await Store.postgres(postgres_dsn)
