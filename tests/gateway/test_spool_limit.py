"""The spool's disk policy: bounded, alarmed before it is full, and never silent loss —
over the limit the gateway stops acknowledging, so boxes keep their readings."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from device import reading, schnorr
from gateway import event
from gateway import settings as gw_settings
from gateway.registry import Box, Registry
from gateway.service import Gateway
from gateway.spool import Spool

SECRET = bytes(31) + b"\x51"


async def test_nearly_full_alarms_then_full_refuses_then_drained_accepts(tmp_path: Path) -> None:
    s = gw_settings.from_dict(
        {
            "gateway": {"site": "t", "data_dir": str(tmp_path)},
            "spool": {"max_bytes": 1 << 20, "warn_fraction": 0.5, "commit_interval_s": 0.0},
        }
    )
    reg = Registry(tmp_path / "registry.json")
    reg.put(Box(schnorr.pubkey(SECRET), "A", "t"))
    gw = Gateway(s, reg, Spool(tmp_path / "spool.sqlite"), bytes(31) + b"\x52")
    alarms: list = []
    gw.alarm_listeners.append(alarms.append)
    now = int(time.time())
    seq = 0

    async def send(n: int) -> list:
        nonlocal seq
        acks = []
        for _ in range(n):
            acks.append(await gw.receive(reading.sign(SECRET, seq, now, 500, 5000), "t"))
            seq += 1
        await gw.flush()
        await gw.check_spool_size()
        return [await a for a in acks]

    while not gw.spool_nearly_full:
        await send(500)
        assert seq < 20_000, "the spool never reached its warning level"
    assert gw.accepting and alarms  # the site alarm, while still accepting
    while gw.accepting:
        await send(500)
    refused = await send(10)
    assert refused == [None] * 10 and gw.counts["spool full"] == 10  # not acknowledged
    db = sqlite3.connect(tmp_path / "spool.sqlite")
    events = [event.decode(r) for (r,) in db.execute("SELECT record FROM gateway_events")]
    assert events and events[0].kind == event.SITE_ALARM and events[0].body["state"] == "raised"

    # The cloud takes everything; pruning brings the spool back under: accepting again.
    def checkpoint() -> None:  # so the file holds every page; the cursor read to its end,
        # or its statement stays in progress and the next commit on the connection fails
        gw.spool.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    await gw.spool_call(checkpoint)
    size_before = (tmp_path / "spool.sqlite").stat().st_size
    await gw.seal_due(now=time.time() + 3600)
    for seq_ in gw.spool.batch_seqs():
        gw.spool.mark_sent(seq_, {"log_index": seq_})
    db.execute("UPDATE batches SET sent_at = 0")
    db.commit()
    await gw.check_spool_size()  # prunes uploaded readings: their pages are free for reuse
    assert gw.accepting and not gw.spool_nearly_full
    assert await send(1) != [None]
    await send(200)  # new readings reuse the freed pages: the file does not grow
    await gw.spool_call(checkpoint)
    # 200 readings are ~40 KB of rows; at most a few metadata pages may be added.
    assert (tmp_path / "spool.sqlite").stat().st_size <= size_before + 4 * 4096
    await gw.stop()
