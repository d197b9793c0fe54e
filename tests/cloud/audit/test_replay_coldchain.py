"""`verify --replay` over reading batches (cloud/audit/replay.py): it follows each batch's
readings into the lots' cold chains as the ledger does and matches the 0x04 after a batch
that quarantined a lot; a state root edited in the database, or a reading's bytes, is
reported at its entry. On SQLite and PostgreSQL."""

from __future__ import annotations

import aiohttp

from cloud.api.state import CONTRACTS
from cloud.audit.replay import replay
from cloud.contracts import stateroot
from cloud.storage.store import Store
from tests.cloud.api.test_app import Cloud
from tests.cloud.api.test_lot_coldchain import AUDITOR, BOX, CALM, HIGH, granted, shipped
from tests.cloud.api.test_tx import cloud  # noqa: F401  (the fixture)
from tests.cloud.storage.test_store import execute


def blob(store: Store, data: bytes) -> str:
    """`data` as an SQL literal of the store's engine."""
    if store.engine.__class__.__name__ == "SqliteEngine":
        return f"X'{data.hex()}'"
    return f"'\\x{data.hex()}'::bytea"


async def test_a_replay_follows_the_batches_and_finds_an_edited_root_or_reading(
    cloud: Cloud,  # noqa: F811
) -> None:
    site, t0 = await shipped(cloud)
    calm = await site.send(BOX, t0, [CALM] * 5)
    hot = await site.send(BOX, t0 + 300, [HIGH] * 20)
    await granted(cloud)
    url = cloud.url("").rstrip("/")
    store = cloud.server.app[CONTRACTS].shared.store
    async with aiohttp.ClientSession() as session:
        report = await replay(url, AUDITOR.secret, session)
        assert report.parted_at is None, report.render()
        assert (report.replayed, report.roots) == (6, 7)  # and the hot batch's root

        (entry,) = await store.entries(hot + 1, hot + 2)
        logged = stateroot.parse(entry)
        assert logged.covers == hot
        forged = stateroot.StateRoot(logged.records, logged.covers, b"\x01" * 32).encode()
        await execute(store, f"UPDATE log_entries SET entry = {blob(store, forged)} "
                             f"WHERE idx = {hot + 1}")  # fmt: skip
        parted = await replay(url, AUDITOR.secret, session)
        assert parted.parted_at == hot + 1, parted.render()
        assert "replay gives" in parted.reason
        await execute(store, f"UPDATE log_entries SET entry = {blob(store, entry)} "
                             f"WHERE idx = {hot + 1}")  # fmt: skip

        (wire,) = await store.batch_leaves(calm, 0, 1)
        edited = wire[:-1] + bytes([wire[-1] ^ 1])  # its signature, one bit off
        await execute(store, f"UPDATE leaves SET wire = {blob(store, edited)} "
                             f"WHERE log_index = {calm} AND leaf = 0")  # fmt: skip
        parted = await replay(url, AUDITOR.secret, session)
        assert parted.parted_at == calm, parted.render()
        assert "batch readings" in parted.reason
