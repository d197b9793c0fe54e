"""Tampering with the ledger's database is caught: a real cloud app on SQLite, an operator
(or intruder) editing rows behind its back, and the auditor's tools — proof bundles checked
offline, and a follower that saw the log before — each naming what broke."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.api.state import LOG
from cloud.audit.bundle import BundleError, Step, verify_bundle
from cloud.audit.follow import Alarm, Follower, Misbehaviour
from cloud.audit.log_client import LogClient
from cloud.storage.sqlite import SqliteEngine
from device import schnorr
from gateway import registry_change as registry
from tests.cloud.api.test_app import Cloud, chain, settings, start
from tests.cloud.services.test_ingest import BOX, GW, body


class Ledger:
    """The running cloud, its raw database, and the pinned log key of an auditor."""

    def __init__(self, cloud: Cloud, db: sqlite3.Connection, vkey: str) -> None:
        self.cloud, self.db, self.vkey = cloud, db, vkey

    async def bundle(self, seq: int) -> dict[str, object]:
        status, b = await self.cloud.get(f"/v1/readings/{schnorr.pubkey(BOX).hex()}/{seq}/proof")
        assert status == 200, b
        return dict(b)

    def follower(self, state: Path) -> Follower:
        client = LogClient(self.cloud.session, self.cloud.url("/").rstrip("/"), retries=1)
        return Follower(client, state, log_vkey=self.vkey, readings=True)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    server, session = await start(settings(tmp_path / "cloud"))
    cloud = Cloud(server, session)
    now = int(time.time())
    await cloud.change(registry.GatewayRegistration(schnorr.pubkey(GW), now, site="w1"))
    await cloud.change(registry.BoxRegistration(schnorr.pubkey(BOX), now, site="w1", label=""))
    for header, w in chain(4, 8):  # readings 0-31 in batches at log indices 3-6 (0: the owners)
        assert (await cloud.upload(body(header, w)))[0] == 201
    store = server.app[LOG].store
    assert isinstance(store.engine, SqliteEngine)
    _, vkey = await cloud.get("/v1/log/vkey")
    try:
        yield Ledger(cloud, store.engine.db, vkey.decode().strip())
    finally:
        await session.close()
        await server.close()


async def test_an_untouched_ledger_verifies(ledger: Ledger, tmp_path: Path) -> None:
    report = verify_bundle(await ledger.bundle(13), log_vkey=ledger.vkey)
    assert report.reading.seq == 13
    assert (await ledger.follower(tmp_path / "state.json").poll()).size == 7


async def test_an_edited_reading_fails_its_signature(ledger: Ledger) -> None:
    wire = bytearray(ledger.db.execute("SELECT wire FROM leaves WHERE seq = 13").fetchone()[0])
    wire[42] ^= 0x01  # the temperature, a hundredth of a degree off
    ledger.db.execute("UPDATE leaves SET wire = ? WHERE seq = 13", (bytes(wire),))
    with pytest.raises(BundleError) as err:
        verify_bundle(await ledger.bundle(13), log_vkey=ledger.vkey)
    assert err.value.step is Step.READING_SIGNATURE


async def test_an_edited_batch_header_fails_and_the_follower_sees_it(
    ledger: Ledger, tmp_path: Path
) -> None:
    entry = bytearray(
        ledger.db.execute("SELECT entry FROM log_entries WHERE idx = 4").fetchone()[0]
    )
    entry[1 + 40] ^= 0x01  # inside the header: its batch seq
    ledger.db.execute("UPDATE log_entries SET entry = ? WHERE idx = 4", (bytes(entry),))
    with pytest.raises(BundleError) as err:
        verify_bundle(await ledger.bundle(13), log_vkey=ledger.vkey)
    assert err.value.step in (Step.BATCH_HEADER, Step.BATCH_SIGNATURE)
    with pytest.raises(Misbehaviour) as alarm:  # an auditor catching up downloads the entry
        await ledger.follower(tmp_path / "fresh.json").poll()
    assert alarm.value.alarm in (Alarm.BAD_ENTRY, Alarm.ROOT_MISMATCH)


async def test_an_edited_tree_node_fails_inclusion(ledger: Ledger) -> None:
    # (1, 0) covers log entries 0-1: a sibling on the inclusion path of entry 3 (readings 0-7)
    ledger.db.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 0")
    with pytest.raises(BundleError) as err:
        verify_bundle(await ledger.bundle(3), log_vkey=ledger.vkey)
    assert err.value.step is Step.LOG_INCLUSION


async def test_an_edited_edge_node_forks_the_next_checkpoint_for_the_auditor(
    ledger: Ledger, tmp_path: Path
) -> None:
    auditor = ledger.follower(tmp_path / "auditor.json")
    assert (await auditor.poll()).size == 7  # the auditor saw the honest log
    # (2, 0) covers entries 0-3: every later root of this log is built on it
    ledger.db.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 0")
    now = int(time.time())
    change = registry.BoxRegistration(bytes(31) + b"\x33", now, site="w1", label="new")
    assert (await ledger.cloud.change(change))[0] == 201  # the log grows: a new checkpoint
    with pytest.raises(Misbehaviour) as alarm:
        await auditor.poll()
    assert alarm.value.alarm is Alarm.INCONSISTENT


async def test_a_deleted_reading_is_missing_from_its_batch(ledger: Ledger, tmp_path: Path) -> None:
    ledger.db.execute("DELETE FROM leaves WHERE seq = 20")
    _, raw = await ledger.cloud.get("/v1/log/entries/5/readings")
    assert len(raw) == 7 * 110
    with pytest.raises(Misbehaviour) as alarm:  # --readings re-checks every batch's root
        await ledger.follower(tmp_path / "fresh.json").poll()
    assert alarm.value.alarm is Alarm.BAD_READINGS
