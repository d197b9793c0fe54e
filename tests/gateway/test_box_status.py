"""The periodic box-status events of a running gateway (real spool, real verifier): one per
registered box each interval, with last seen, last seq, battery and backlog where known and
the rejects since the previous status; and the spool's event queue: consecutive seqs that
survive a restart, sent marks, pruning."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from device import reading, schnorr, topics
from gateway import event
from gateway import settings as gw_settings
from gateway.registry import Box, Registry
from gateway.service import Gateway
from gateway.spool import Spool

SECRET = bytes(31) + b"\x41"
KEY = schnorr.pubkey(SECRET)
QUIET = schnorr.pubkey(bytes(31) + b"\x43")  # registered, never heard
GW_SECRET = bytes(31) + b"\x42"


def make_gateway(tmp: Path, interval_s: float = 60.0) -> Gateway:
    s = gw_settings.from_dict(
        {
            "gateway": {"site": "t", "data_dir": str(tmp)},
            "spool": {"commit_interval_s": 0.0},
            "events": {"status_interval_s": interval_s},
        }
    )
    tmp.mkdir(parents=True, exist_ok=True)
    reg = Registry(tmp / "registry.json")
    reg.put(Box(KEY, "fridge", "t", zone="C", lot="LOT-7"))
    reg.put(Box(QUIET, "spare", "t"))
    return Gateway(s, reg, Spool(tmp / "spool.sqlite"), GW_SECRET)


def queued(gw: Gateway) -> list[event.Event]:
    return [event.decode(r) for r in gw.spool.unsent_events(1000)]


async def test_a_status_per_box_each_interval_with_rejects_since_the_last(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    now = time.time()
    await gw.receive(reading.sign(SECRET, 0, int(now) - 60, 500, 5000), "t")
    await gw.receive(reading.sign(SECRET, 1, int(now), 510, 5000, reading.FLAG_BATTERY_LOW), "t")
    forged = bytearray(reading.sign(SECRET, 2, int(now), 510, 5000))
    forged[-1] ^= 1
    await gw.receive(bytes(forged), "t")
    await gw.flush()
    # The box's own retained status, as the MQTT and BLE ingests hand it over.
    status = {"state": "online", "ack": 2, "backlog": 12, "battery_low": True}
    gw.box_status(topics.device_id(KEY), json.dumps(status).encode())

    assert await gw.status_reporter.tick(now) == 0  # the first round waits one interval
    assert await gw.status_reporter.tick(now + 59) == 0
    assert await gw.status_reporter.tick(now + 60) == 2
    first = queued(gw)
    assert [e.kind for e in first] == [event.BOX_STATUS] * 2
    assert [e.seq for e in first] == [0, 1] and all(e.verify_signature() for e in first)
    by_box = {e.body["box"]: e.body for e in first}
    assert by_box[KEY.hex()] == {
        "box": KEY.hex(),
        "zone": "C",
        "last_seen": int(gw.last_reading[KEY][0]),
        "last_seq": 1,
        "backlog": 12,
        "battery_low": 1,
        "rejects": {"bad signature": 1},
    }
    # A box never heard says only who it is: its zone is its own id.
    assert by_box[QUIET.hex()] == {"box": QUIET.hex(), "zone": QUIET[:8].hex(), "rejects": {}}

    assert await gw.status_reporter.tick(now + 120) == 2
    second = {e.body["box"]: e.body for e in queued(gw)[2:]}
    assert second[KEY.hex()]["rejects"] == {}  # counted once, in the status after it
    await gw.stop()
    gw.spool.close()


async def test_an_interval_of_zero_sends_no_status(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, interval_s=0)
    assert [await gw.status_reporter.tick(t) for t in (0, 1e6, 2e6)] == [0, 0, 0]
    await gw.stop()
    gw.spool.close()


def test_event_seqs_are_consecutive_and_survive_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool.sqlite")
    spool_alarm = event.Draft(1.9, event.SITE_ALARM, {"alarm": "spool", "state": "raised"})
    bad = event.Draft(2.0, event.SITE_ALARM, {"alarm": "spool", "lot": "LOT-7"})
    with caplog.at_level(logging.ERROR, "pharmasync.gateway.spool"):
        signed = spool.add_events(GW_SECRET, [spool_alarm, bad, spool_alarm])
    assert [(e.seq, e.time) for e in signed] == [(0, 1), (1, 1)]  # the bad one skipped
    assert "not queued" in caplog.text and "lot" in caplog.text
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite")
    assert [e.seq for e in spool.add_events(GW_SECRET, [spool_alarm])] == [2]
    assert spool.events_unsent() == 3
    spool.mark_events_sent([(0, 10), (1, 11)])
    assert [event.decode(r).seq for r in spool.unsent_events(10)] == [2]
    spool.mark_events_sent([(2, 12)])
    # Pruning keeps the newest event, so the next seq still follows it.
    assert spool.prune_events(0, now=time.time() + 1) == 2
    assert [e.seq for e in spool.add_events(GW_SECRET, [spool_alarm])] == [3]
    spool.close()
