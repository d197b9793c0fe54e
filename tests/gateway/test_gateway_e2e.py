"""The gateway for real: simulated boxes (the real firmware loop) publish through a real
Mosquitto; the gateway verifies, spools, acknowledges and seals; the sealed batches must
hold exactly the readings the boxes sent, each once, in a valid signed chain.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path

from device import reading, simulate
from gateway import batch, merkle, settings
from gateway.registry import Box, Registry
from tests.conftest import REPO, Mosquitto
from tests.device.receiver import OWNER, certify_gateway


def gateway_settings(broker: Mosquitto, data: Path, **batch_opts: float) -> settings.Settings:
    cert = certify_gateway(data, "e2e")
    return settings.from_dict(
        {
            "gateway": {"site": "e2e", "data_dir": str(data), "certificate": str(cert)},
            "mqtt": {"port": broker.port},
            "batch": {"max_readings": 64, "max_age_s": 0.3} | batch_opts,
            "spool": {"commit_interval_s": 0.01},
            "status": {"port": 0},
        }
    )


def sim_settings(broker: Mosquitto, data: Path, boxes: int, readings: int | None, **kw):
    return simulate.SimSettings(
        broker_port=broker.port,
        site="e2e",
        boxes=boxes,
        interval_s=0.01,
        data_dir=data,
        readings=readings,
        **{"owner_key": OWNER} | kw,
    )


def register(gw_data: Path, boxes: list) -> None:
    gw_data.mkdir(parents=True, exist_ok=True)
    reg = Registry(gw_data / "registry.json")
    for b in boxes:
        reg.put(Box(b.key, b.cfg["label"], "e2e", zone="room-1"))
    reg.close()


def sealed_contents(gw_data: Path) -> tuple[list[batch.BatchHeader], list[bytes]]:
    """Read every sealed batch straight from the spool file and check the chain."""
    db = sqlite3.connect(gw_data / "spool.sqlite")
    headers, leaves = [], []
    prev = batch.GENESIS_PREV
    for seq, raw in db.execute("SELECT seq, header FROM batches ORDER BY seq"):
        header = batch.decode(raw)
        assert header.seq == seq and header.prev_hash == prev, f"chain broken at batch {seq}"
        assert header.verify_signature()
        wires = [
            w
            for (w,) in db.execute(
                "SELECT wire FROM readings WHERE id BETWEEN "
                "(SELECT first_id FROM batches WHERE seq = ?) AND "
                "(SELECT last_id FROM batches WHERE seq = ?) ORDER BY id",
                (seq, seq),
            )
        ]
        batch.check_contents(header, wires)
        assert merkle.root(wires) == header.merkle_root
        headers.append(header)
        leaves.extend(wires)
        prev = header.hash()
    unsealed = db.execute(
        "SELECT count(*) FROM readings WHERE id > (SELECT coalesce(max(last_id), 0) FROM batches)"
    ).fetchone()[0]
    db.close()
    assert unsealed == 0
    return headers, leaves


def exactly_once(leaves: list[bytes], boxes: list, per_box: dict[bytes, list[int]]) -> None:
    seen = [(reading.decode(w).key, reading.decode(w).seq) for w in leaves]
    assert len(seen) == len(set(seen)), "a reading is in two batches"
    for b in boxes:
        assert sorted(s for k, s in seen if k == b.key) == per_box[b.key]


async def test_simulated_boxes_through_mosquitto_end_in_sealed_batches(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    from gateway import app

    sim = sim_settings(mosquitto, tmp_path / "boxes", boxes=5, readings=60)
    boxes = [simulate.make_box(sim, i) for i in range(5)]
    register(tmp_path / "gw", boxes)
    stop = asyncio.Event()
    gw = asyncio.create_task(app.serve(gateway_settings(mosquitto, tmp_path / "gw"), stop))
    await asyncio.sleep(0.3)
    ran = await asyncio.wait_for(simulate.simulate(sim, lambda _: None), 60)
    assert all(len(b.backlog) == 0 for b in ran), "every reading acknowledged end to end"
    await asyncio.sleep(0.8)  # sealing by age
    stop.set()
    await gw
    headers, leaves = sealed_contents(tmp_path / "gw")
    exactly_once(leaves, ran, {b.key: list(range(60)) for b in ran})
    assert len(leaves) == 300 and all(h.count <= 64 for h in headers)


GATEWAY = """
import asyncio, logging, sys
from gateway import app, settings
logging.basicConfig(level=logging.WARNING)
s = settings.from_dict({"gateway": {"site": "e2e", "data_dir": sys.argv[1],
                                    "certificate": sys.argv[1] + "/gateway.cert"},
                        "mqtt": {"port": int(sys.argv[2])},
                        "batch": {"max_readings": 32, "max_age_s": 0.2},
                        "spool": {"commit_interval_s": 0.005}, "status": {"port": 0}})
asyncio.run(app.serve(s))
"""


async def test_sigkill_during_a_stream_loses_and_doubles_nothing(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Kill the gateway with SIGKILL 20 times while boxes stream; restart it each time.
    Every reading a box sent ends up in exactly one sealed batch."""
    sim = sim_settings(mosquitto, tmp_path / "boxes", boxes=3, readings=None)
    boxes = [simulate.make_box(sim, i) for i in range(3)]
    for b in boxes:  # resend quickly when the gateway was killed before acknowledging
        b.cfg["ack_timeout_s"] = 1
    gw_data = tmp_path / "gw"
    register(gw_data, boxes)
    certify_gateway(gw_data, "e2e")
    rng = random.Random(5)

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            GATEWAY,
            str(gw_data),
            str(mosquitto.port),
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )

    # The gateway's persistent session must exist before boxes publish: the broker only
    # queues for sessions it knows. As deployed: the gateway starts first, once.
    proc = await start()
    await asyncio.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    streams = [asyncio.create_task(b.run()) for b in boxes]
    try:
        for _ in range(20):
            proc = await start()
            await asyncio.sleep(rng.uniform(0.3, 0.9))
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
    finally:
        for b in boxes:
            b.interval = 3600  # stop taking readings; keep the link to drain the backlog
    proc = await start()
    try:
        for _ in range(300):  # until every box's backlog is acknowledged
            await asyncio.sleep(0.1)
            if all(len(b.backlog) == 0 for b in boxes):
                break
        await asyncio.sleep(0.6)  # the last batch seals by age
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
        for t in streams:
            t.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    assert all(len(b.backlog) == 0 for b in boxes)
    _, leaves = sealed_contents(gw_data)
    # What each box signed: every seq from 0 to its newest (the boxes never restarted, so
    # skipped nothing). Each must be sealed exactly once.
    exactly_once(leaves, boxes, {b.key: list(range(b.last_seq + 1)) for b in boxes})
    assert len(leaves) > 200, "the kills interrupted a real stream"


async def test_cloud_outage_drains_in_order_without_loss_or_duplicates(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The real cloud ledger goes down mid-stream and comes back: the gateway holds its
    batches, then uploads each once, oldest first, keeping every receipt."""
    from aiohttp import web

    from cloud.api.app import make_app
    from cloud.api.state import LOG, REFUSALS, REGISTRY
    from cloud.settings import CloudSettings
    from device import schnorr
    from gateway import app
    from gateway import registry_change as cloud_registry
    from tests.conftest import free_port

    owner = bytes(31) + b"\x01"
    port = free_port()
    cloud_settings = CloudSettings(tmp_path / "cloud", owners=(schnorr.pubkey(owner),))

    async def start() -> web.AppRunner:
        runner = web.AppRunner(make_app(cloud_settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    cloud = await start()
    sim = sim_settings(mosquitto, tmp_path / "boxes", boxes=3, readings=80)
    boxes = [simulate.make_box(sim, i) for i in range(3)]
    register(tmp_path / "gw", boxes)
    gw_key = schnorr.pubkey(app.load_or_create_key(tmp_path / "gw" / "gateway.key"))
    registry = cloud.app[REGISTRY]
    now = int(time.time())
    for change in [
        cloud_registry.GatewayRegistration(gw_key, now, site="e2e"),
        *(cloud_registry.BoxRegistration(b.key, now, site="e2e", label="") for b in boxes),
    ]:
        await registry.apply(cloud_registry.sign_request(owner, change))
    s = settings.from_dict(
        {
            "gateway": {
                "site": "e2e",
                "data_dir": str(tmp_path / "gw"),
                "certificate": str(certify_gateway(tmp_path / "gw", "e2e")),
            },
            "mqtt": {"port": mosquitto.port},
            "batch": {"max_readings": 16, "max_age_s": 0.2},
            "uplink": {"url": f"http://127.0.0.1:{port}", "max_backoff_s": 1},
        }
    )
    stop = asyncio.Event()
    gw = asyncio.create_task(app.serve(s, stop))
    await asyncio.sleep(0.3)
    sending = asyncio.create_task(simulate.simulate(sim, lambda _: None))
    await asyncio.sleep(0.5)
    await cloud.cleanup()  # the cloud goes down mid-stream ...
    down_at = time.time()
    await sending
    await asyncio.sleep(1.0)
    back_at = time.time()
    cloud = await start()  # ... and comes back, on the same data
    db = sqlite3.connect(tmp_path / "gw" / "spool.sqlite")
    try:
        for _ in range(150):
            await asyncio.sleep(0.1)
            unsent = db.execute("SELECT count(*) FROM batches WHERE sent_at IS NULL").fetchone()[0]
            total = db.execute("SELECT count(*) FROM batches").fetchone()[0]
            if total and not unsent:
                break
    finally:
        stop.set()
        await gw
        entries = await cloud.app[LOG].store.entries(0, 10_000)
        refused = dict(cloud.app[REFUSALS].counts)
        await cloud.cleanup()
    seqs = [batch.decode(e[1:]).seq for e in entries if e[0] == 0x01]
    assert seqs == list(range(len(seqs))), "the cloud got every batch once, oldest first"
    assert not refused, refused
    stored = dict(db.execute("SELECT seq, receipt FROM batches"))
    assert len(stored) == len(seqs) and all(stored.values()), "a receipt kept for each batch"
    held = db.execute(
        "SELECT count(*) FROM batches WHERE sealed_at > ? AND sent_at > ?", (down_at, back_at)
    ).fetchone()[0]
    assert held > 0, "batches sealed during the outage waited for the cloud"
    _, leaves = sealed_contents(tmp_path / "gw")
    exactly_once(leaves, boxes, {b.key: list(range(80)) for b in boxes})


async def test_broker_restart_mid_stream_loses_and_doubles_nothing(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    from gateway import app

    sim = sim_settings(mosquitto, tmp_path / "boxes", boxes=3, readings=150)
    boxes = [simulate.make_box(sim, i) for i in range(3)]
    register(tmp_path / "gw", boxes)
    stop = asyncio.Event()
    gw = asyncio.create_task(app.serve(gateway_settings(mosquitto, tmp_path / "gw"), stop))
    await asyncio.sleep(0.3)
    sending = asyncio.create_task(simulate.simulate(sim, lambda _: None))
    await asyncio.sleep(0.8)
    mosquitto.restart()  # SIGTERM, then start: sessions and queued messages persist
    ran = await asyncio.wait_for(sending, 90)
    await asyncio.sleep(0.8)
    stop.set()
    await gw
    assert all(len(b.backlog) == 0 for b in ran)
    _, leaves = sealed_contents(tmp_path / "gw")
    exactly_once(leaves, ran, {b.key: list(range(150)) for b in ran})
