"""Exactly once, across gateways (issue 10 §3 and the batch half of §2), over real HTTP on
SQLite and PostgreSQL: a reading (box, seq) is stored once however many batches carry it;
a second carrier is a duplicate sighting; other signed bytes under the same (box, seq) are
an equivocation, kept as evidence, alarmed and never served, while the batch is accepted
and its every leaf stays available to auditors; 20 concurrent uploads of one batch give one
201; a header seq beyond the databases is a 400 before the store is asked."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from cloud.audit.bundle import verify_bundle
from cloud.audit.follow import EQUIVOCATION_PREFIX, Follower, describe_poll
from cloud.audit.follow_state import Equivocation
from cloud.audit.log_client import LogClient
from cloud.log import tlog
from cloud.services.ingest import DB_INT_MAX, IngestError, decode_header
from cloud.storage.sqlite import OldSchemaError
from cloud.storage.store import Store
from device import reading, schnorr
from gateway import batch
from gateway import registry_change as registry
from tests.cloud.api.test_app import Cloud, settings, start

GW, GW2 = bytes(31) + b"\x61", bytes(31) + b"\x64"  # two sites' gateways
BOX, BOX2 = bytes(31) + b"\x62", bytes(31) + b"\x65"
NOW = int(time.time())  # the readings' times (a reading may be old)


def now() -> int:
    """A registry change's time: the request's, checked against the server's clock (300 s),
    so taken when sent, not when the module was imported (a long suite runs for minutes)."""
    return int(time.time())


def signed(secret: bytes, seq: int, temperature: int = 450) -> bytes:
    return reading.sign(secret, seq, NOW - 1000 + seq, temperature, 5000)


def upload(header: batch.BatchHeader, wires: list[bytes]) -> bytes:
    return header.encode() + b"".join(wires)


class Chains:
    """Each gateway's next batch, chained to its last."""

    def __init__(self) -> None:
        self.last: dict[bytes, batch.BatchHeader] = {}

    def seal(self, gateway: bytes, wires: list[bytes]) -> batch.BatchHeader:
        last = self.last.get(gateway)
        header = (
            batch.seal(gateway, 0, batch.GENESIS_PREV, wires)
            if last is None
            else batch.seal(gateway, last.seq + 1, last.hash(), wires)
        )
        self.last[gateway] = header
        return header


@pytest.fixture
async def cloud(tmp_path: Path, database: str | None) -> AsyncIterator[Cloud]:
    """A served ledger (each engine) with two gateways at two sites and two boxes."""
    server, session = await start(settings(tmp_path / "cloud", database))
    c = Cloud(server, session)
    for change in (
        registry.GatewayRegistration(schnorr.pubkey(GW), now(), site="w1"),
        registry.GatewayRegistration(schnorr.pubkey(GW2), now(), site="w2"),
        registry.BoxRegistration(schnorr.pubkey(BOX), now(), site="w1", label="fridge"),
        registry.BoxRegistration(schnorr.pubkey(BOX2), now(), site="w1", label="freezer"),
    ):
        assert (await c.change(change))[0] == 201
    try:
        yield c
    finally:
        await session.close()
        await server.close()


async def metric(cloud: Cloud, name: str) -> float:
    _, text = await cloud.get("/metrics")
    found = re.search(rf"^{name} (\S+)$", text.decode(), re.M)
    assert found is not None, name
    return float(found.group(1))


async def leaves(cloud: Cloud, index: int) -> list[bytes]:
    status, raw = await cloud.get(f"/v1/log/entries/{index}/readings")
    assert status == 200
    return [raw[i : i + reading.SIZE] for i in range(0, len(raw), reading.SIZE)]


async def history(cloud: Cloud, box: bytes) -> list[tuple[int, float]]:
    status, found = await cloud.get(
        f"/v1/devices/{schnorr.pubkey(box).hex()}/readings", start=0, end=2**32
    )
    assert status == 200
    return [(r["seq"], r["temperature_c"]) for r in found]


async def bundle(cloud: Cloud, box: bytes, seq: int) -> dict:
    status, found = await cloud.get(f"/v1/readings/{schnorr.pubkey(box).hex()}/{seq}/proof")
    assert status == 200, found
    return found


async def test_a_reading_carried_twice_in_one_batch_is_stored_once(
    cloud: Cloud, tmp_path: Path
) -> None:
    r0, r1 = signed(BOX, 0), signed(BOX, 1)
    wires = [r0, r1, r0]  # a gateway that heard r0 twice (a resend crossed its ack)
    status, receipt = await cloud.upload(upload(Chains().seal(GW, wires), wires))
    assert status == 201, receipt
    assert await leaves(cloud, receipt["log_index"]) == wires  # every leaf, in order
    assert await history(cloud, BOX) == [(0, 4.5), (1, 4.5)]
    assert await metric(cloud, "pharmasync_readings_total") == 2
    assert await metric(cloud, "pharmasync_duplicate_readings_total") == 1
    _, sightings = await cloud.get(f"/v1/devices/{schnorr.pubkey(BOX).hex()}/sightings")
    assert sightings == [
        {
            "seq": 0,
            "log_index": receipt["log_index"],
            "leaf": 2,
            "gateway": schnorr.pubkey(GW).hex(),
            "batch": 0,
            "first": {"log_index": receipt["log_index"], "leaf": 0},
        }
    ]
    found = await bundle(cloud, BOX, 0)
    assert found["batch"]["index"] == 0 and found["batch"]["size"] == 3
    assert verify_bundle(found, log_vkey=found["log_vkey"]).reading.seq == 0
    async with aiohttp.ClientSession() as http:
        client = LogClient(http, cloud.url("/"), retries=0)
        result = await Follower(client, tmp_path / "audit.json", readings=True).poll()
    assert (result.readings, result.duplicates, result.equivocations) == (3, 1, ())


async def test_a_second_sites_gateway_carrying_the_readings_again_adds_only_sightings(
    cloud: Cloud, tmp_path: Path
) -> None:
    chains = Chains()
    here = [signed(BOX, s) for s in range(4)]
    there = here[2:] + [signed(BOX, s) for s in (4, 5)]  # the shipment moved on: heard again
    first = await cloud.upload(upload(chains.seal(GW, here), here))
    second = await cloud.upload(upload(chains.seal(GW2, there), there))
    assert first[0] == second[0] == 201
    assert await metric(cloud, "pharmasync_readings_total") == 6
    assert await metric(cloud, "pharmasync_duplicate_readings_total") == 2
    assert await metric(cloud, "pharmasync_equivocations_total") == 0
    assert await leaves(cloud, second[1]["log_index"]) == there
    assert [s for s, _ in await history(cloud, BOX)] == [0, 1, 2, 3, 4, 5]
    # Readings 2 and 3 are proved from the first batch that carried them, 4 from the second.
    for seq, carrier, leaf in ((3, first, 3), (4, second, 2)):
        found = await bundle(cloud, BOX, seq)
        assert (found["log"]["index"], found["batch"]["index"]) == (carrier[1]["log_index"], leaf)
        assert verify_bundle(found, log_vkey=found["log_vkey"]).reading.seq == seq
    _, sightings = await cloud.get(f"/v1/devices/{schnorr.pubkey(BOX).hex()}/sightings")
    assert [(s["seq"], s["gateway"], s["leaf"], s["first"]["leaf"]) for s in sightings] == [
        (2, schnorr.pubkey(GW2).hex(), 0, 2),
        (3, schnorr.pubkey(GW2).hex(), 1, 3),
    ]
    _, devices = await cloud.get("/v1/devices")
    assert [d["last_seq"] for d in devices] == [5, -1]
    # The auditor re-checks both batches' roots from their full leaf lists: no alarm.
    async with aiohttp.ClientSession() as http:
        client = LogClient(http, cloud.url("/"), retries=0)
        result = await Follower(client, tmp_path / "audit.json", readings=True).poll()
    assert (result.readings, result.duplicates, result.equivocations) == (8, 2, ())


async def test_an_equivocation_is_kept_as_evidence_alarmed_and_never_served(
    cloud: Cloud, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chains = Chains()
    original = [signed(BOX, 7), signed(BOX2, 0)]
    clone = signed(BOX, 7, temperature=900)  # the same (box, seq), other bytes, validly signed
    async with aiohttp.ClientSession() as http:
        audit = Follower(
            LogClient(http, cloud.url("/"), retries=0), tmp_path / "audit.json", readings=True
        )
        first = await cloud.upload(upload(chains.seal(GW, original), original))
        assert first[0] == 201
        assert (await audit.poll()).equivocations == ()
        again = [signed(BOX, 8), clone, original[1]]
        with caplog.at_level(logging.ERROR, logger="pharmasync.cloud.ledger"):
            status, receipt = await cloud.upload(upload(chains.seal(GW2, again), again))
        # Accepted, not refused: a refused batch would be resent forever and stall GW2's chain.
        assert status == 201, receipt
        result = await audit.poll()  # a later poll: the follower remembers what it saw
    index = receipt["log_index"]
    assert await leaves(cloud, index) == again  # the equivocating bytes stay in their leaf
    assert (await bundle(cloud, BOX, 7))["reading"] == original[0].hex()  # never served
    assert await history(cloud, BOX) == [(7, 4.5), (8, 4.5)]
    assert await metric(cloud, "pharmasync_equivocations_total") == 1
    assert await metric(cloud, "pharmasync_duplicate_readings_total") == 1  # BOX2's reading
    assert await metric(cloud, "pharmasync_readings_total") == 3
    [alarm] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "EQUIVOCATION" in alarm.getMessage()
    assert schnorr.pubkey(BOX).hex() in alarm.getMessage()
    _, evidence = await cloud.get(f"/v1/devices/{schnorr.pubkey(BOX).hex()}/equivocations")
    assert evidence == [
        {
            "seq": 7,
            "log_index": index,
            "leaf": 1,
            "gateway": schnorr.pubkey(GW2).hex(),
            "batch": 0,
            "first": {"log_index": first[1]["log_index"], "leaf": 0},
            "stored": original[0].hex(),
            "conflicting": clone.hex(),
        }
    ]
    _, none = await cloud.get(f"/v1/devices/{schnorr.pubkey(BOX2).hex()}/equivocations")
    assert none == []
    want = Equivocation(schnorr.pubkey(BOX), 7, (first[1]["log_index"], 0), (index, 1))
    assert (result.equivocations, result.duplicates) == ((want,), 1)
    lines = describe_poll(result, tmp_path / "audit.json")
    assert any(line.startswith(EQUIVOCATION_PREFIX) for line in lines)


async def test_twenty_concurrent_uploads_of_one_batch_give_one_201(
    tmp_path: Path, database: str | None
) -> None:
    # On PostgreSQL two cloud workers share the database (and the data directory: the
    # log's signing key), ten uploads each: the race is within and between workers.
    workers = 1 if database is None else 2
    servers = [await start(settings(tmp_path / "cloud", database)) for _ in range(workers)]
    clouds = [Cloud(server, session) for server, session in servers]
    try:
        for change in (
            registry.GatewayRegistration(schnorr.pubkey(GW), now(), site="w1"),
            registry.BoxRegistration(schnorr.pubkey(BOX), now(), site="w1", label="fridge"),
        ):
            assert (await clouds[0].change(change))[0] == 201
        wires = [signed(BOX, s) for s in range(50)]
        data = upload(Chains().seal(GW, wires), wires)
        answers = await asyncio.gather(*(clouds[i % workers].upload(data) for i in range(20)))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] * 19 + [201], statuses
        assert all(receipt == answers[0][1] for _, receipt in answers)
        totals = {
            name: sum([await metric(c, f"pharmasync_{name}_total") for c in clouds])
            for name in ("batches", "readings", "resends", "duplicate_readings")
        }
        assert totals == {"batches": 1, "readings": 50, "resends": 19, "duplicate_readings": 0}
        _, entries = await clouds[-1].get("/v1/log/entries", start=0)
        assert len(entries["entries"]) == 4  # bootstrap, two registry changes, the batch once
    finally:
        for server, session in servers:
            await session.close()
            await server.close()


@pytest.mark.parametrize("seq", [2**63, 2**64 - 1])
async def test_a_header_seq_beyond_the_databases_is_a_400_naming_it(cloud: Cloud, seq: int) -> None:
    wires = [signed(BOX, 0)]
    for secret in (GW, bytes(31) + b"\x77"):  # a registered gateway, and a stranger
        header = batch.seal(secret, seq, bytes(range(32)), wires)
        status, problem = await cloud.upload(upload(header, wires))
        assert (status, problem["reason"]) == (400, "seq"), problem
        assert str(DB_INT_MAX) in problem["detail"]
        forged = bytearray(upload(header, wires))
        forged[batch.BODY_SIZE] ^= 1  # and before the signature is looked at
        status, problem = await cloud.upload(bytes(forged))
        assert (status, problem["reason"]) == (400, "seq"), problem
    _, entries = await cloud.get("/v1/log/entries", start=0)
    assert len(entries["entries"]) == 5  # the owners' bootstrap and registry changes only
    # The largest integer is no log index (a log size is at most that): refused where it
    # enters, so its index + 1 never reaches SQL.
    status, problem = await cloud.get(f"/v1/log/entries/{DB_INT_MAX}/readings")
    assert (status, problem["reason"]) == (400, "index")


def test_decode_header_names_the_field_and_passes_the_largest_storable_seq() -> None:
    wires = [signed(BOX, 0)]
    fits = batch.seal(GW, DB_INT_MAX, bytes(range(32)), wires)
    assert decode_header(fits.encode()).seq == DB_INT_MAX
    with pytest.raises(IngestError) as err:
        decode_header(batch.seal(GW, DB_INT_MAX + 1, bytes(range(32)), wires).encode())
    assert err.value.reason == "seq" and err.value.status == 400
    with pytest.raises(IngestError) as err:
        decode_header(fits.encode()[:100])
    assert err.value.reason == "length"


async def test_the_store_keeps_each_leaf_by_reference_and_each_reading_once(
    store: Store,
) -> None:
    """The engines alone: bytes once by (box, seq), leaves in order, sightings listed."""
    from tests.cloud.storage.test_store import check, registered

    await registered(store)
    chains = Chains()
    r = [signed(BOX, s) for s in range(3)]
    clone = signed(BOX, 1, temperature=-300)
    a = chains.seal(GW, [r[0], r[1], r[0]])
    first = await store.store_batch(await check(store, a, [r[0], r[1], r[0]]))
    assert (first.created, first.new_readings, first.duplicates, first.equivocations) == (
        True,
        2,
        1,
        (),
    )
    b = chains.seal(GW2, [clone, r[2], r[0]])
    second = await store.store_batch(await check(store, b, [clone, r[2], r[0]]))
    assert (second.new_readings, second.duplicates) == (1, 1)
    [evidence] = second.equivocations
    assert (evidence.key, evidence.seq, evidence.first, evidence.wire) == (
        schnorr.pubkey(BOX),
        1,
        (0, 1),
        clone,
    )
    assert (evidence.log_index, evidence.leaf) == (1, 0)
    assert await store.batch_readings(1) == [clone, r[2], r[0]]
    assert await store.batch_leaves(1, 1, 3) == [r[2], r[0]]
    found = await store.reading(schnorr.pubkey(BOX), 1)
    assert found is not None and (found.wire, found.log_index, found.leaf) == (r[1], 0, 1)
    assert await store.history(schnorr.pubkey(BOX), 0, 2**32, 10) == r
    listed = await store.sightings(schnorr.pubkey(BOX), True, 10)
    assert [(s["seq"], s["log_index"], s["leaf"]) for s in listed] == [(1, 1, 0)]
    duplicates = await store.sightings(schnorr.pubkey(BOX), False, 10)
    assert [(s["seq"], s["log_index"], s["leaf"]) for s in duplicates] == [(0, 0, 2), (0, 1, 2)]
    assert await store.sightings(schnorr.pubkey(BOX), False, 1) == duplicates[:1]
    assert [d["last_seq"] for d in await store.devices()] == [2, -1]
    assert await store.log_size() == 2
    assert (await store.entries(1, 2))[0] == tlog.batch_entry(b.encode())
    # Both bytes of a new (box, seq) in one batch: the first leaf is the reading.
    r9, r9b = signed(BOX2, 9), signed(BOX2, 9, temperature=2000)
    third = await store.store_batch(await check(store, chains.seal(GW, [r9, r9b]), [r9, r9b]))
    assert third.new_readings == 1 and [(s.leaf, s.first) for s in third.equivocations] == [
        (1, (2, 0))
    ]
    assert await store.batch_readings(2) == [r9, r9b]
    assert await store.history(schnorr.pubkey(BOX2), 0, 2**32, 10) == [r9]


def test_a_sqlite_ledger_of_the_old_schema_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE readings (log_index INTEGER, leaf INTEGER, wire BLOB)")
    old.close()
    with pytest.raises(OldSchemaError, match="start with a new data directory"):
        Store.sqlite(path)
