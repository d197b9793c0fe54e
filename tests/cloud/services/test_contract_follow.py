"""The contracts follow the log (cloud/services/contract_follow.py, contracts.py), on SQLite
and PostgreSQL: two workers on one store catch up on each other's box registrations,
transactions and reading batches in log order and reach one state, the state a fresh
worker rebuilds; a commit that fails after the cold chains changed makes the worker
rebuild them with the State, so nothing of it is seen."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud.contracts import lots, tx
from cloud.keys import load_or_create_signer
from cloud.services import contract_follow
from cloud.services.batches import BatchService
from cloud.services.config import ConfigService
from cloud.services.contracts import ContractService
from cloud.services.log import LogService
from cloud.services.refusals import Refusals
from cloud.services.registry import RegistryService
from cloud.services.shared import Shared
from cloud.storage.store import Store
from device import reading, schnorr
from gateway import batch
from gateway import registry_change as registry
from tests.cloud.api.test_app import OWNER
from tests.cloud.api.test_tx import GTIN, D, M, commission, ship
from tests.cloud.contracts.world import REGULATOR, Party, admission, party
from tests.cloud.services.test_contracts import failing_insert
from tests.cloud.storage.test_store import execute

GW, BOX = party("follow gateway").secret, party("follow box").secret
HIGH = 1000  # centi-°C, above the profile's 8 °C


@dataclass
class Worker:
    contracts: ContractService
    batches: BatchService
    registry: RegistryService


async def worker(store: Store, data: Path) -> Worker:
    """One worker's services on `store`, the contracts' state loaded by replay."""
    signer = load_or_create_signer(data / "log.skey", "test.local/ledger")
    shared = Shared(store, LogService(store, signer), Refusals())
    await ConfigService(shared).load_owners((schnorr.pubkey(OWNER),))
    contracts = ContractService(shared, [REGULATOR.xonly])
    await contracts.load()
    return Worker(contracts, BatchService(shared, contracts), RegistryService(shared))


def admit(who: Party, role: str, owner: bytes | None = None) -> object:
    args = admission(who, role, role)
    if owner is not None:
        args["owner_keys"] = [owner.hex()]
    return tx.make("participants", "admit", args, REGULATOR.secret).to_envelope()


def attach(start_ms: int) -> object:
    args = {"box": schnorr.pubkey(BOX).hex(), "shipment": "S1", "start": start_ms, "end": None}
    return tx.make("lots", "attach", args, M.secret).to_envelope()


def hot_batch(start_s: int) -> bytes:
    """Gateway batch 0: 20 readings a minute apart above the profile (19 minutes)."""
    wires = [reading.sign(BOX, i, start_s + 60 * i, HIGH, 5000) for i in range(20)]
    header = batch.seal(GW, 0, batch.GENESIS_PREV, wires)
    return header.encode() + b"".join(wires)


async def register(w: Worker) -> None:
    now = int(time.time())
    for change in (
        registry.GatewayRegistration(schnorr.pubkey(GW), now, site="w1"),
        registry.BoxRegistration(schnorr.pubkey(BOX), now, site="w1", label="box"),
    ):
        await w.registry.apply(registry.sign_request(OWNER, change))


async def shipped(store: Store, tmp_path: Path) -> Worker:
    """A worker on `store` after the registrations, M (controlling the box's owner key) and
    D admitted, L1 commissioned and shipped to D as S1."""
    w = await worker(store, tmp_path)
    await register(w)
    for step in (
        admit(M, "manufacturer", schnorr.pubkey(OWNER)),
        admit(D, "distributor"),
        commission("L1", 10).to_envelope(),
        ship(M, "L1", "S1", D, 10).to_envelope(),
    ):
        await w.contracts.submit(step)
    return w


def quality(w: Worker) -> str:
    record = w.contracts.state.get(lots.QUALITY, GTIN, "L1")
    assert record is not None
    return str(record["status"])


async def test_two_workers_follow_boxes_transactions_and_batches_in_log_order(
    store: Store, tmp_path: Path
) -> None:
    a, b = await worker(store, tmp_path), await worker(store, tmp_path)
    await register(a)  # b learns the box's owner when it next follows the log
    await b.contracts.submit(admit(M, "manufacturer", schnorr.pubkey(OWNER)))
    await a.contracts.submit(admit(D, "distributor"))
    await a.contracts.submit(commission("L1", 10).to_envelope())
    await a.contracts.submit(ship(M, "L1", "S1", D, 10).to_envelope())
    start = int(time.time() * 1000) + 1000
    await b.contracts.submit(attach(start))  # b knows the box: a's registration came first
    receipt, created = await a.batches.ingest(hot_batch(-(-start // 1000)))
    assert created
    assert a.contracts.head.covers == receipt.log_index  # a followed b's attach first
    assert a.contracts.head.index == receipt.log_index + 1
    assert quality(a) == "quarantined"
    assert await b.contracts.current() == a.contracts.head  # b follows a's batch
    assert quality(b) == "quarantined"
    summary = a.contracts.chains.summary(a.contracts.state, GTIN, "L1")
    assert summary is not None and summary.overall.count == 20
    assert b.contracts.chains.summary(b.contracts.state, GTIN, "L1") == summary
    fresh = await worker(store, tmp_path)  # a new worker replays it all
    assert fresh.contracts.head == a.contracts.head
    assert fresh.contracts.chains.summary(fresh.contracts.state, GTIN, "L1") == summary


async def test_a_failed_commit_after_the_cold_chain_changed_is_rebuilt(
    store: Store, tmp_path: Path
) -> None:
    w = await shipped(store, tmp_path)
    before = w.contracts.head
    fail, undo = failing_insert(store)
    await execute(store, fail)
    start = int(time.time() * 1000) + 1000
    with pytest.raises(Exception, match="disk on fire"):
        await w.contracts.submit(attach(start))  # after_transactions opened its leg
    assert w.contracts.head == before
    await execute(store, undo)
    assert await w.contracts.current() == before  # rebuilt: no leg, no box on a lot
    assert w.contracts.chains.lots == {} and w.contracts.chains.attached == set()
    await w.contracts.submit(attach(start))
    await w.batches.ingest(hot_batch(-(-start // 1000)))
    assert quality(w) == "quarantined"
    assert (await worker(store, tmp_path)).contracts.head == w.contracts.head


async def test_following_a_page_at_a_time_reaches_the_same_state(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = await shipped(store, tmp_path)
    start = int(time.time() * 1000) + 1000
    await w.contracts.submit(attach(start))
    await w.batches.ingest(hot_batch(-(-start // 1000)))  # 20 readings in one batch
    assert quality(w) == "quarantined"
    monkeypatch.setattr(contract_follow, "PAGE", 2)  # blocks and readings two at a time
    paged = await worker(store, tmp_path)
    assert paged.contracts.head == w.contracts.head
    summary = w.contracts.chains.summary(w.contracts.state, GTIN, "L1")
    assert paged.contracts.chains.summary(paged.contracts.state, GTIN, "L1") == summary
