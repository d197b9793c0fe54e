"""Contract transactions through the ledger's HTTP API, served for real on a local port, on
SQLite and PostgreSQL: the regulator admits participants; a lot is commissioned, shipped,
received, split and shipped on; every refusal class is problem+json that leaves the log
and the state root as they were; a lot's public facts come with proofs that verify against
the state root; a restart replays to the same root."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud.api.state import CONTRACTS
from cloud.contracts import catalog, entries, lots, stateroot, tx
from cloud.contracts.engine import replay
from cloud.contracts.statetree_proof import proof_from_json, verify_proof
from cloud.storage.store import Store
from gateway.jcs import canonicalize
from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.api.test_workers import start_cloud
from tests.cloud.contracts.world import GTIN, PROFILE, REGULATOR, Party, admission, party

M, D, R = party("M"), party("D"), party("R")
ROLES = {"M": (M, "manufacturer"), "D": (D, "distributor"), "R": (R, "retailer")}


def signed(who: Party, contract: str, tx_type: str, args: dict[str, Any]) -> tx.SignedTx:
    """A transaction signed by `who` now, with a fresh nonce."""
    return tx.make(contract, tx_type, args, who.secret)


def commission(lot: str, quantity: int, who: Party = M) -> tx.SignedTx:
    args = {"gtin": GTIN, "lot": lot, "expiry": "271200", "quantity": quantity}
    return signed(who, "lots", "commission", {**args, "unit": "pack", "profile": PROFILE})


def ship(who: Party, lot: str, shipment: str, to: Party, quantity: int) -> tx.SignedTx:
    args = {"gtin": GTIN, "lot": lot, "shipment": shipment, "quantity": quantity}
    return signed(who, "lots", "ship", {**args, "receiver": to.did})


def receive(who: Party, shipment: str, quantity: int) -> tx.SignedTx:
    return signed(who, "lots", "receive", {"shipment": shipment, "quantity": quantity})


def admit(name: str) -> tx.SignedTx:
    key, role = ROLES[name]
    return signed(REGULATOR, "participants", "admit", admission(key, role, name))


async def post(cloud: Cloud, envelope: tx.SignedTx | bytes) -> tuple[int, Any]:
    data = envelope if isinstance(envelope, bytes) else envelope.to_wire()
    return await cloud.post("/v1/tx", data, "application/json")


async def applied(cloud: Cloud, envelope: tx.SignedTx) -> dict[str, Any]:
    status, answer = await post(cloud, envelope)
    assert status == 201, answer
    return dict(answer)


async def log_size(cloud: Cloud) -> int:
    return await cloud.server.app[CONTRACTS].shared.store.log_size()


@pytest.fixture
def cloud(regulated: Cloud) -> Cloud:
    """The regulated cloud (tests/cloud/conftest.py), by the name these tests use."""
    return regulated


async def supply_chain(cloud: Cloud) -> list[dict[str, Any]]:
    """Admit M, D, R; M commissions L1 (100), ships 60 to D; D receives, splits into L1-A and
    L1-B (30 each) and ships L1-A to R, who receives. Return the 201 answers."""
    steps = [admit("M"), admit("D"), admit("R"), commission("L1", 100)]
    steps += [ship(M, "L1", "S1", D, 60), receive(D, "S1", 60)]
    kids = [{"lot": "L1-A", "quantity": 30}, {"lot": "L1-B", "quantity": 30}]
    steps.append(signed(D, "lots", "split", {"gtin": GTIN, "lot": "L1", "children": kids}))
    steps += [ship(D, "L1-A", "S2", R, 30), receive(R, "S2", 30)]
    return [await applied(cloud, step) for step in steps]


async def test_a_supply_chain_through_http_with_entries_and_proofs(cloud: Cloud) -> None:
    answers = await supply_chain(cloud)
    for a in answers:
        assert a["root_index"] == a["index"] + 1  # the 0x04 right after its 0x03
    last = answers[-1]
    status, head = await cloud.get("/v1/state")
    assert status == 200
    assert head == {
        "root": last["root"],
        "records": last["records"],
        "covers": last["index"],
        "index": last["root_index"],
    }
    store = cloud.server.app[CONTRACTS].shared.store
    tx_entry, root_entry = await store.entries(last["index"], last["index"] + 2)
    assert entries.parse(tx_entry).contract == "lots"
    committed = stateroot.parse(root_entry)
    assert (committed.root.hex(), committed.records) == (last["root"], last["records"])
    assert committed.covers == last["index"]

    status, facts = await cloud.get(f"/v1/lots/{GTIN}/L1-A")
    assert status == 200 and facts["state"] == head
    assert set(facts["records"]) == {"lot", "quality", "recall"}  # nothing private
    root = bytes.fromhex(head["root"])
    for name, rtype in (("lot", lots.LOT), ("quality", lots.QUALITY), ("recall", lots.RECALL)):
        record = facts["records"][name]
        value = None if record["value"] is None else canonicalize(record["value"])
        verify_proof(root, rtype.key(GTIN, "L1-A"), value, proof_from_json(record["proof"]))
    assert facts["records"]["lot"]["value"]["gtin"] == GTIN
    assert facts["records"]["quality"]["value"]["status"] == "released"
    assert facts["records"]["recall"]["value"] is None
    assert "holder" not in json.dumps(facts) and "quantity" not in json.dumps(facts)


async def test_the_state_is_replayed_to_the_same_root_after_a_restart(
    tmp_path: Path, database: str | None
) -> None:
    config = settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    server, session = await start(config)
    c = Cloud(server, session)
    answers = await supply_chain(c)
    _, before = await c.get("/v1/state")
    await session.close()
    await server.close()

    server, session = await start(config)
    c = Cloud(server, session)
    try:
        _, after = await c.get("/v1/state")
        assert after == before and after["root"] == answers[-1]["root"]
        # the replay guards came back too: the same envelope is a replay
        status, problem = await post(c, admit("M"))  # a new nonce: the rule refuses it
        assert (status, problem["reason"]) == (409, "admitted")
    finally:
        await session.close()
        await server.close()


def forged_signature(envelope: tx.SignedTx) -> bytes:
    wire = envelope.to_envelope()
    wire["sig"] = ("00" if wire["sig"][:2] != "00" else "01") + wire["sig"][2:]
    return json.dumps(wire).encode()


def bad_nonce(envelope: tx.SignedTx) -> bytes:
    wire = envelope.to_envelope()
    wire["tx"]["nonce"] = "XYZ"
    return json.dumps(wire).encode()


async def test_each_refusal_is_a_problem_and_leaves_log_and_root_unchanged(
    cloud: Cloud,
) -> None:
    first = [admit("M"), admit("D"), commission("L1", 10)]
    for step in first:
        await applied(cloud, step)
    shipped = ship(M, "L1", "S1", D, 4)
    await applied(cloud, shipped)
    same_nonce = tx.make(
        "lots", "commission", commission("L9", 1).body.args, M.secret, nonce=shipped.body.nonce
    )
    cases: list[tuple[tx.SignedTx | bytes, int, str]] = [
        (b"{not json", 400, "json"),
        (b'{"tx": {}, "sig": "00"}', 400, "sig"),
        (bad_nonce(commission("L2", 1)), 400, "tx.nonce"),
        (tx.make("lots", "ship", {}, M.secret, time_ms=1), 400, "tx.time"),
        (b"[" + b" " * tx.MAX_ENVELOPE + b"]", 413, "json"),
        (forged_signature(commission("L2", 1)), 401, "signature"),
        (commission("L2", 1, who=party("stranger")), 403, "participant"),
        (commission("L2", 1, who=D), 403, "access"),
        (ship(M, "L1", "S2", D, 7), 409, "quantity"),
        (receive(M, "S1", 4), 403, "access"),
        (shipped, 409, "replayed"),
        (same_nonce, 409, "replayed"),
    ]
    _, head = await cloud.get("/v1/state")
    size = await log_size(cloud)
    for envelope, want_status, want_reason in cases:
        status, problem = await post(cloud, envelope)
        assert (status, problem["reason"]) == (want_status, want_reason), problem
        assert problem["detail"]
        assert await log_size(cloud) == size
        assert (await cloud.get("/v1/state"))[1] == head
    # and the ledger still takes the next good one
    await applied(cloud, receive(D, "S1", 4))


async def test_a_lot_query_checks_its_path_and_proves_absence(cloud: Cloud) -> None:
    status, problem = await cloud.get("/v1/lots/09506000134353/L1")
    assert (status, problem["reason"]) == (400, "gtin")
    status, problem = await cloud.get(f"/v1/lots/{GTIN}/" + "x" * 21)
    assert (status, problem["reason"]) == (400, "lot")
    status, facts = await cloud.get(f"/v1/lots/{GTIN}/NONE")
    assert status == 200 and facts["state"]["covers"] is None
    for rtype in (lots.LOT, lots.QUALITY, lots.RECALL):
        record = facts["records"][rtype.name]
        assert record["value"] is None
        root = bytes.fromhex(facts["state"]["root"])
        verify_proof(root, rtype.key(GTIN, "NONE"), None, proof_from_json(record["proof"]))


# -- a killed process, and two workers on one PostgreSQL ------------------------------------

EXE = Path(sys.executable).parent / "pharmasync"


async def serve(data: Path, database: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start `pharmasync cloud serve --regulator` as a process of its own; return it and
    its URL once it answers."""
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    options = ["--regulator", REGULATOR.did]
    if database is not None:
        options += ["--database", database]
    return await start_cloud(data, *options, log="cloud")


async def send(http: aiohttp.ClientSession, url: str, signed: tx.SignedTx) -> tuple[int, Any]:
    async with http.post(f"{url}/v1/tx", data=signed.to_wire()) as r:
        return r.status, await r.json(content_type=None)


async def test_a_killed_cloud_replays_to_the_root_of_what_it_stored(tmp_path: Path) -> None:
    data = tmp_path / "cloud"
    proc, url = await serve(data)
    accepted: dict[str, int] = {}  # tx id -> index of every 201
    try:
        async with aiohttp.ClientSession() as http:
            for step in (admit("M"), admit("D")):
                assert (await send(http, url, step))[0] == 201

            async def client(c: int) -> None:
                for n in range(1000):
                    try:
                        status, answer = await send(http, url, commission(f"K{c}-{n}", 5))
                    except aiohttp.ClientError:
                        return  # killed
                    assert status == 201, answer
                    accepted[answer["id"]] = answer["index"]

            clients = [asyncio.create_task(client(c)) for c in range(4)]
            while len(accepted) < 40:
                await asyncio.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            await asyncio.gather(*clients)
    finally:
        proc.kill()
        proc.wait()
    store = Store.sqlite(data / "ledger.sqlite")
    try:
        rows = await store.contract_txs(-1, 1_000_000)
    finally:
        await store.close()
    stored = {tx.from_record(r.canonical, r.sig).id: r.log_index for r in rows}
    assert accepted.items() <= stored.items()  # every 201 is there, at its index
    pairs = [(tx.from_record(r.canonical, r.sig), r.salt) for r in rows]
    fresh = replay(catalog.engine(), pairs, [REGULATOR.xonly])[-1]
    proc, url = await serve(data)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/state") as r:
            head = await r.json()
        assert head["root"] == fresh.hex() and head["covers"] == rows[-1].log_index
    finally:
        proc.kill()
        proc.wait()


@contextlib.asynccontextmanager
async def two_workers(data: Path, dsn: str) -> AsyncIterator[list[str]]:
    """Two `cloud serve` processes on one PostgreSQL database and data folder: their URLs."""
    workers = [await serve(data, dsn) for _ in range(2)]
    try:
        yield [url for _, url in workers]
    finally:
        for proc, _ in workers:
            proc.kill()
            proc.wait()


async def heads_agree(http: aiohttp.ClientSession, urls: list[str]) -> dict[str, Any]:
    """Require every worker to answer the same GET /v1/state; return it."""
    heads = []
    for url in urls:
        async with http.get(f"{url}/v1/state") as r:
            heads.append(await r.json())
    assert all(head == heads[0] for head in heads), heads
    return dict(heads[0])


async def test_two_workers_apply_exactly_one_of_each_conflicting_set(
    tmp_path: Path, postgres_dsn: str
) -> None:
    async with (
        two_workers(tmp_path / "cloud", postgres_dsn) as urls,
        aiohttp.ClientSession() as http,
    ):
        for step in (admit("M"), admit("D"), commission("L1", 10)):
            assert (await send(http, urls[0], step))[0] == 201
        ships = [ship(M, "L1", f"S{n}", D, 10) for n in range(25)]
        answers = await asyncio.gather(*(send(http, urls[n % 2], s) for n, s in enumerate(ships)))
        won = [n for n, (status, _) in enumerate(answers) if status == 201]
        assert len(won) == 1, answers
        assert all(status == 409 for status, _ in answers if status != 201)
        shipment = f"S{won[0]}"
        receipts = [receive(D, shipment, 10) for _ in range(25)]
        answers = await asyncio.gather(
            *(send(http, urls[n % 2], r) for n, r in enumerate(receipts))
        )
        assert sum(status == 201 for status, _ in answers) == 1, answers
        assert all(status == 409 for status, _ in answers if status != 201)
        assert (await heads_agree(http, urls))["records"] > 0
