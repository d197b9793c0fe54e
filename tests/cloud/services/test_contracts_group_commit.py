"""Group commit in the contract service, on SQLite and PostgreSQL: transactions that arrive
while a block commits go together into the next block (their 0x03 entries in arrival order,
then one 0x04 root after them), each still all or nothing — one refused in the middle of a
block leaves the others applied and nothing of itself — and the root committed is the one
a fresh replay of the stored transactions reaches, and a restart. A request cancelled while
it waits for its block leaves the queue: it is never committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cloud.contracts import entries, stateroot, tx
from cloud.services.contracts import Accepted, ContractService
from cloud.services.refusals import LedgerError
from cloud.storage.store import Store
from tests.cloud.api.test_tx import D, M, admit, commission, ship
from tests.cloud.services.test_contracts import envelope, replayed_root, service


async def one_block(
    worker: ContractService, signed: list[tx.SignedTx]
) -> list[Accepted | BaseException]:
    """Submit `signed` while a block is committing (the service's lock held, as a commit
    holds it), each queued before the next is submitted; then let the block go. Return each
    one's Accepted or refusal, in order."""
    tasks = []
    async with worker._lock:  # a block "in progress": everything submitted now waits
        for item in signed:
            tasks.append(asyncio.create_task(worker.submit(envelope(item))))
            while len(worker._queue) < len(tasks):  # verified and queued, in this order
                await asyncio.sleep(0.001)
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_transactions_submitted_together_share_one_block(
    store: Store, tmp_path: Path
) -> None:
    worker = await service(store, tmp_path)
    await worker.submit(envelope(admit("M")))
    await worker.submit(envelope(admit("D")))
    start = await store.log_size()
    lots = [commission(f"L{n}", 10) for n in range(5)]
    done = await one_block(worker, lots)

    assert all(isinstance(a, Accepted) for a in done)
    accepted = [a for a in done if isinstance(a, Accepted)]
    assert [a.index for a in accepted] == list(range(start, start + 5))
    assert [a.tx_id for a in accepted] == [signed.id for signed in lots]
    logged = await store.entries(start, await store.log_size())
    assert [entry[0] for entry in logged] == [entries.KIND] * 5 + [stateroot.KIND]
    root = stateroot.parse(logged[-1])
    head = accepted[-1].head
    assert all(a.head == head for a in accepted)  # each answers the state after its block
    assert (root.root, root.records, root.covers) == (head.root, head.records, start + 4)
    assert head.index == start + 5
    assert root.root == await replayed_root(store)
    assert (await service(store, tmp_path)).head == head  # a restart agrees


async def test_a_refusal_inside_a_block_leaves_the_others_applied(
    store: Store, tmp_path: Path
) -> None:
    worker = await service(store, tmp_path)
    for signed in (admit("M"), admit("D"), commission("L1", 10)):
        await worker.submit(envelope(signed))
    start = await store.log_size()
    block = [
        ship(M, "L1", "S1", D, 1),
        ship(M, "L1", "S2", D, 5),  # 6 of the 10 shipped
        ship(M, "L1", "S3", D, 5),  # 4 left: the rule refuses it
        commission("L2", 3),  # applied after the refusal, in the same block
    ]
    results = await one_block(worker, block)

    refused = results[2]
    assert isinstance(refused, LedgerError)
    assert (refused.status, refused.reason) == (409, "quantity")
    accepted = [r for r in results if isinstance(r, Accepted)]
    assert len(accepted) == 3
    assert [a.index for a in accepted] == [start, start + 1, start + 2]  # no gap for it
    logged = await store.entries(start, await store.log_size())
    assert [entry[0] for entry in logged] == [entries.KIND] * 3 + [stateroot.KIND]
    assert accepted[-1].head.root == await replayed_root(store)
    with pytest.raises(LedgerError) as again:  # its nonce was not burnt; the rule still holds
        await worker.submit(envelope(block[2]))
    assert again.value.reason == "quantity"


async def test_a_request_cancelled_while_it_waits_is_never_committed(
    store: Store, tmp_path: Path
) -> None:
    worker = await service(store, tmp_path)
    await worker.submit(envelope(admit("M")))
    size, head = await store.log_size(), worker.head
    async with worker._lock:  # a block in progress
        task = asyncio.create_task(worker.submit(envelope(commission("L1", 10))))
        while not worker._queue:
            await asyncio.sleep(0.001)
        task.cancel()  # the client went away before its block
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not worker._queue
    later = await worker.submit(envelope(commission("L2", 10)))
    assert later.index == size  # the next block holds L2 alone
    assert await store.log_size() == size + 2 and worker.head != head
    assert later.head.root == await replayed_root(store)
