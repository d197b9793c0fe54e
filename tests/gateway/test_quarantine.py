"""Garbage cannot fill the spool (issue 10 §5): rejected messages are kept as evidence in
quarantine.sqlite with a budget of their own (bytes and rows, oldest dropped first and
counted), which the readings' size limit never counts, so a flood of garbage never stops
the gateway accepting and acknowledging valid readings."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path

import aiohttp
import aiomqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from device import reading, simulate, topics
from gateway import settings
from gateway.registry import Box, Registry
from gateway.spool import (
    QUARANTINE_FILE,
    QUARANTINE_PAYLOAD_MAX,
    QUARANTINE_TEXT_MAX,
    Rejected,
    Spool,
    evidence_size,
)
from tests.conftest import Mosquitto, free_port


def garbage(i: int, size: int = 4096) -> Rejected:
    return Rejected(f"mqtt:t/{i}", "length", f"#{i}", os.urandom(size), float(i))


def test_rows_budget_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "spool.sqlite", quarantine_max_bytes=1 << 30, quarantine_max_rows=50)
    for start in range(0, 120, 40):  # three commits of 40
        sp.commit([], [garbage(i, 100) for i in range(start, start + 40)])
    rows = sp.db.execute("SELECT detail FROM q.quarantine ORDER BY id").fetchall()
    assert [d for (d,) in rows] == [f"#{i}" for i in range(70, 120)]
    assert sp.quarantine_usage() == (
        50,
        sum(evidence_size(*_fields(i, 100)) for i in range(70, 120)),
        70,
    )
    sp.close()


def _fields(i: int, size: int) -> tuple[str, str, str, bytes]:
    return f"mqtt:t/{i}", "length", f"#{i}", bytes(size)


def test_bytes_budget_drops_the_oldest_and_survives_reopening(tmp_path: Path) -> None:
    budget = 100_000
    sp = Spool(tmp_path / "spool.sqlite", quarantine_max_bytes=budget, quarantine_max_rows=10**6)
    sp.commit([], [garbage(i) for i in range(200)])
    rows, used, dropped = sp.quarantine_usage()
    assert used <= budget and rows + dropped == 200
    assert rows == budget // evidence_size(*_fields(199, 4096))  # as many 4 KiB rows as fit
    stored = sp.db.execute(
        "SELECT max(length(payload)), max(length(source)), max(length(detail)), sum(size) "
        "FROM q.quarantine"
    ).fetchone()
    assert stored[:3] == (QUARANTINE_PAYLOAD_MAX, len("mqtt:t/199"), len("#199"))
    assert stored[3] == used  # the running total is the table's
    # The file's pages in use stay within the budget (plus SQLite's overhead).
    assert sp.size_bytes("q") <= 1.15 * budget + 8 * 4096
    assert sp.size_bytes() < 64 * 1024  # the readings' spool holds none of it
    sp.close()
    again = Spool(tmp_path / "spool.sqlite", quarantine_max_bytes=budget, quarantine_max_rows=10)
    assert again.quarantine_usage()[:2] == (rows, used)  # totals reloaded from the file
    again.commit([], [garbage(1000)])
    assert again.quarantine_usage()[0] == 10  # a smaller budget applies on the next write
    again.close()


def test_an_attackers_megabytes_are_capped_before_they_are_counted(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "spool.sqlite")
    huge = Rejected("mqtt:" + "x" * 70_000, "length", "d" * 9000, b"\xff" * 1_000_000, 0.0)
    sp.commit([], [huge])
    stored = sp.db.execute(
        "SELECT length(source), length(detail), length(payload), size FROM q.quarantine"
    ).fetchone()
    assert stored[:3] == (QUARANTINE_TEXT_MAX, QUARANTINE_TEXT_MAX, QUARANTINE_PAYLOAD_MAX)
    assert stored[3] == sp.quarantine_usage()[1] < 6000
    sp.close()


def test_an_older_spool_moves_its_quarantine_out_of_the_readings_file(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE quarantine (id INTEGER PRIMARY KEY, received_at REAL NOT NULL, "
        "source TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, payload BLOB NOT NULL)"
    )
    old.executemany(
        "INSERT INTO quarantine (received_at, source, reason, detail, payload) VALUES (?,?,?,?,?)",
        [(float(i), "mqtt:t", "length", f"#{i}", bytes(4096)) for i in range(300)],
    )
    old.commit()
    old.close()
    sp = Spool(path, quarantine_max_rows=100)
    assert sp.quarantine_usage()[0] == 100
    details = [d for (d,) in sp.db.execute("SELECT detail FROM q.quarantine ORDER BY id")]
    assert details == [f"#{i}" for i in range(200, 300)]  # the newest, in order
    assert (
        sp.db.execute("SELECT name FROM main.sqlite_master WHERE name='quarantine'").fetchone()
        is None
    )
    sp.close()


def metric_values(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_garbage_flood_through_mosquitto_never_blocks_good_readings(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway whose readings' limit is 1 MiB takes 3,000 x 4 KiB of garbage (12 MB)
    and 200 forgeries through a real Mosquitto, then boxes' readings: every one accepted
    and acknowledged, quarantine within its budget, every counter exact."""
    from gateway import app

    site, gw_dir, status_port = "flood", tmp_path / "gw", free_port()
    budget_bytes, budget_rows = 256 * 1024, 1000
    sim = simulate.SimSettings(
        broker_port=mosquitto.port,
        site=site,
        boxes=3,
        interval_s=0.01,
        data_dir=tmp_path / "boxes",
        readings=40,
    )
    boxes = [simulate.make_box(sim, i) for i in range(3)]
    gw_dir.mkdir()
    reg = Registry(gw_dir / "registry.json")
    for b in boxes:
        reg.put(Box(b.key, b.cfg["label"], site))
    reg.close()
    s = settings.from_dict(
        {
            "gateway": {"site": site, "data_dir": str(gw_dir)},
            "mqtt": {"port": mosquitto.port},
            "batch": {"max_readings": 64, "max_age_s": 0.3},
            "spool": {
                "max_bytes": 1 << 20,
                "commit_interval_s": 0.01,
                "quarantine_max_bytes": budget_bytes,
                "quarantine_max_rows": budget_rows,
            },
            "status": {"port": status_port},
        }
    )
    stop = asyncio.Event()
    gw = asyncio.create_task(app.serve(s, stop))
    base = f"http://127.0.0.1:{status_port}"
    n_junk, n_forged = 3000, 200
    victim = boxes[0]
    forged = bytearray(reading.sign(bytes(31) + b"\x07", 0, int(time.time()), 500, 5000))
    forged[1:33] = victim.key  # claims to be the victim's reading: the signature cannot match
    with caplog.at_level(logging.WARNING, logger="pharmasync.gateway"):
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # until the gateway's session is subscribed
                await asyncio.sleep(0.05)
                try:
                    snap = await (await http.get(base + "/status.json")).json()
                    if snap["mqtt"]["state"] == "connected":
                        break
                except aiohttp.ClientError:
                    pass
            async with aiomqtt.Client(
                "127.0.0.1", mosquitto.port, max_queued_outgoing_messages=10**5
            ) as attacker:
                for i in range(n_junk):  # on 200 invented topics
                    topic = f"{topics.PREFIX}/{site}/{i % 200:016x}/reading"
                    await attacker.publish(topic, os.urandom(4096), qos=1)
                for _ in range(n_forged):
                    await attacker.publish(victim.topic_reading, bytes(forged), qos=1)
            for _ in range(300):  # until the gateway has judged the whole flood
                snap = await (await http.get(base + "/status.json")).json()
                if sum(snap["counts"].values()) >= n_junk + n_forged:
                    break
                await asyncio.sleep(0.1)
            flood_lines = len(caplog.records)
            ran = await asyncio.wait_for(simulate.simulate(sim, lambda _: None), 60)
            await asyncio.sleep(0.2)
            snap = await (await http.get(base + "/status.json")).json()
            metrics = metric_values(await (await http.get(base + "/metrics")).text())
    stop.set()
    await gw
    assert all(len(b.backlog) == 0 for b in ran), "every good reading acknowledged"
    assert snap["spool"]["accepting"] and snap["counts"] == {
        "length": n_junk,
        "bad signature": n_forged,
        "accepted": 3 * 40,
    }
    q = snap["quarantine"]
    assert q["rows"] <= budget_rows and q["bytes"] <= budget_bytes
    assert q["rows"] + q["dropped"] == n_junk + n_forged  # every reject kept or counted
    assert metrics[("pharmasync_gateway_quarantine_dropped_total", ())] == q["dropped"]
    assert metrics[("pharmasync_gateway_quarantine_rows", ())] == q["rows"]
    assert metrics[("pharmasync_gateway_rejected_total", (("reason", "length"),))] == n_junk
    db = sqlite3.connect(gw_dir / QUARANTINE_FILE)
    kept = dict(db.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason"))
    assert kept == {"bad signature": n_forged, "length": q["rows"] - n_forged}  # newest kept
    pages = (
        db.execute("PRAGMA page_count").fetchone()[0]
        - db.execute("PRAGMA freelist_count").fetchone()[0]
    )
    assert pages * 4096 <= 1.15 * budget_bytes + 8 * 4096
    # 3,200 rejects from 201 sources: the log got a bounded summary, not a line each.
    print("log lines during the flood:", flood_lines)
    assert flood_lines <= 64 + 2 * 2 + 10, flood_lines
