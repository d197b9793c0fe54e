"""The contract service over a real store, on SQLite and PostgreSQL: two services on one
store (two workers) catch up on each other's transactions under the log's lock and reach
one root, the root a fresh replay reaches; a commit that fails after the rules ran leaves
this worker's state, the log and the replay guards as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.contracts import catalog, tx
from cloud.contracts.engine import replay
from cloud.keys import load_or_create_signer
from cloud.services.contracts import ContractService
from cloud.services.log import LogService
from cloud.services.refusals import LedgerError, Refusals
from cloud.services.shared import Shared
from cloud.storage.postgres import PostgresEngine
from cloud.storage.store import Store
from tests.cloud.api.test_tx import D, M, admit, commission, ship
from tests.cloud.contracts.world import REGULATOR
from tests.cloud.storage.test_store import execute


async def service(store: Store, data: Path) -> ContractService:
    """A worker's contract service on `store`, its state loaded by replay."""
    signer = load_or_create_signer(data / "log.skey", "test.local/ledger")
    service = ContractService(
        Shared(store, LogService(store, signer), Refusals()), [REGULATOR.xonly]
    )
    await service.load()
    return service


def envelope(signed: tx.SignedTx) -> object:
    return signed.to_envelope()


async def replayed_root(store: Store) -> bytes:
    """The root a fresh replay of every stored transaction reaches."""
    rows = await store.contract_txs(-1, 1_000_000)
    pairs = [(tx.from_record(r.canonical, r.sig), r.salt) for r in rows]
    return replay(catalog.engine(), pairs, [REGULATOR.xonly])[-1]


async def test_two_workers_on_one_store_catch_up_and_agree(store: Store, tmp_path: Path) -> None:
    a, b = await service(store, tmp_path), await service(store, tmp_path)
    await a.submit(envelope(admit("M")))
    await b.submit(envelope(admit("D")))  # b applies a's admission first
    await a.submit(envelope(commission("L1", 10)))  # a applies b's
    shipped = await b.submit(envelope(ship(M, "L1", "S1", D, 10)))
    with pytest.raises(LedgerError) as refused:  # a has caught up: M holds nothing
        await a.submit(envelope(ship(M, "L1", "S2", D, 1)))
    assert (refused.value.status, refused.value.reason) == (409, "holder")
    assert (await a.current()) == (await b.current()) == shipped.head
    assert shipped.head.root == await replayed_root(store)
    fresh = await service(store, tmp_path)
    assert fresh.head == shipped.head


def failing_insert(store: Store) -> tuple[str, str]:
    """SQL that makes every insert of a contract transaction fail, and SQL that undoes it."""
    if isinstance(store.engine, PostgresEngine):
        return (
            "CREATE FUNCTION fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; "
            "END $$ LANGUAGE plpgsql; CREATE TRIGGER fail BEFORE INSERT ON contract_txs "
            "FOR EACH ROW EXECUTE FUNCTION fail()",
            "DROP TRIGGER fail ON contract_txs",
        )
    return (
        "CREATE TRIGGER fail BEFORE INSERT ON contract_txs BEGIN "
        "SELECT RAISE(ABORT, 'disk on fire'); END",
        "DROP TRIGGER fail",
    )


async def test_a_failed_commit_moves_nothing(store: Store, tmp_path: Path) -> None:
    worker = await service(store, tmp_path)
    await worker.submit(envelope(admit("M")))
    before, size = worker.head, await store.log_size()
    records = dict(worker.state.records)
    fail, undo = failing_insert(store)
    await execute(store, fail)
    signed = commission("L1", 10)
    with pytest.raises(Exception, match="disk on fire"):
        await worker.submit(envelope(signed))
    assert worker.head == before and worker.state.records == records
    assert await store.log_size() == size
    await execute(store, undo)
    again = await worker.submit(envelope(signed))  # its nonce was not burnt
    assert again.index == size and again.head.root == await replayed_root(store)
