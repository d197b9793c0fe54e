"""Alarms in the running gateway: readings committed -> engine -> logged, queued for the
cloud, announced, and restored after a restart (gateway/alarms.py holds the rules)."""

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

SECRET = bytes(31) + b"\x41"
KEY = schnorr.pubkey(SECRET)


def make_gateway(tmp: Path) -> Gateway:
    s = gw_settings.from_dict(
        {
            "gateway": {"site": "t", "data_dir": str(tmp)},
            "spool": {"commit_interval_s": 0.0},
            "alarms": {"fast": {"delay_consecutive_s": 120, "delay_cumulative_s": 3600}},
        }
    )
    tmp.mkdir(parents=True, exist_ok=True)
    reg = Registry(tmp / "registry.json")
    reg.put(Box(KEY, "Cold room C", "t", zone="C", profile="fast"))
    return Gateway(s, reg, Spool(tmp / "spool.sqlite"), bytes(31) + b"\x42")


async def feed(gw: Gateway, start_seq: int, temps: list[float], t0: int) -> None:
    for i, c in enumerate(temps):
        await gw.receive(
            reading.sign(SECRET, start_seq + i, t0 + 60 * i, round(c * 100), 5000), "t"
        )
    await gw.flush()


async def test_a_failing_room_raises_high_and_it_survives_a_restart(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    seen: list = []
    gw.alarm_listeners.append(seen.extend)
    t0 = int(time.time()) - 3600
    await feed(gw, 0, [5.0, 6.0, 9.0, 10.0, 11.0, 12.0], t0)  # above 8 C for 3 min > 120 s
    raised = [e for e in seen if e.kind == "high" and e.state == "raised"]
    assert len(raised) == 1 and raised[0].zone == topics_id()
    assert [a.kind for a in gw.alarms.active()] == ["high"]
    await gw.stop()
    db = sqlite3.connect(tmp_path / "spool.sqlite")
    queued = [event.decode(r) for (r,) in db.execute("SELECT record FROM gateway_events")]
    assert all(e.verify_signature() and e.gateway == gw.key for e in queued)
    assert any(e.kind == event.ALARM_RAISED and e.body["alarm"] == "high" for e in queued)
    # Restart: the alarm is still active, and cools down to a single "cleared".
    gw2 = make_gateway(tmp_path)
    assert [a.kind for a in gw2.alarms.active()] == ["high"]
    cleared: list = []
    gw2.alarm_listeners.append(cleared.extend)
    await feed(gw2, 6, [7.4, 6.0], t0 + 360)
    assert [(e.kind, e.state) for e in cleared] == [("high", "cleared")]
    await gw2.stop()


def topics_id() -> str:
    from device import topics

    return topics.device_id(KEY)
