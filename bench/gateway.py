"""Gateway throughput benchmark.

    .venv/bin/python bench/gateway.py [--readings N] [--boxes B] [--port 1883]

1. Pipeline, one process pinned to one core: decode -> verify -> spool commit -> batch
   seal (gateway.service.Gateway running its own committer and sealer, as in
   `gateway run`, with a real SQLite spool, synchronous=FULL), as readings/s,
   and that rate as a ratio to raw coincurve verification of the same readings measured
   in the same run (the ceiling: verification is the one step that cannot be skipped).
2. Through Mosquitto: a separate load-generator process publishes pre-signed readings
   from B boxes at QoS 1 to a Mosquitto broker (a private one on a free port, started
   here); the gateway runs as its own process (`pharmasync gateway run`); the figure is
   readings/s from the first publish until every reading is sealed in a batch.
Targets (issue 4): pipeline >= 0.6 x raw verification; >= 5,000 readings/s through
Mosquitto on the 2-core reference machine. Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/gateway.py would shadow the package.
sys.path.insert(0, str(REPO))

from device import reading, schnorr  # noqa: E402
from gateway import settings as gw_settings  # noqa: E402
from gateway.registry import Box, Registry  # noqa: E402
from gateway.service import Gateway  # noqa: E402
from gateway.spool import Spool  # noqa: E402

PIPELINE_TARGET = 0.6
BROKER_TARGET = 5000.0


def make_readings(boxes: int, per_box: int) -> tuple[list[bytes], list[bytes]]:
    """Return (box secrets, readings interleaved across boxes, each box's seqs in order)."""
    secrets = [os.urandom(32) for _ in range(boxes)]
    now = int(time.time())
    wires = [
        reading.sign(secrets[b], seq, now - per_box + seq, 450 + seq % 300, 5000, 0)
        for seq in range(per_box)
        for b in range(boxes)
    ]
    return secrets, wires


def register(folder: Path, secrets: list[bytes], site: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    reg = Registry(folder / "registry.json")
    for i, s in enumerate(secrets):
        reg.put(Box(schnorr.pubkey(s), f"bench {i}", site))
    reg.close()


def raw_verify_rate(wires: list[bytes]) -> float:
    """Readings/s of bare coincurve verification (key, tagged hash, signature)."""
    t0 = time.perf_counter()
    for w in wires:
        schnorr.verify(w[1:33], reading.message(w), w[46:110])
    return len(wires) / (time.perf_counter() - t0)


async def pipeline_rate(wires: list[bytes], secrets: list[bytes], folder: Path) -> float:
    """Readings/s through the gateway as it runs: its own committer (group commits on the
    spool thread) and sealer tasks, fed as the MQTT reader feeds it, until every reading
    is committed (acknowledged) and sealed."""
    register(folder, secrets, "bench")
    s = gw_settings.from_dict(
        {
            "gateway": {"site": "bench", "data_dir": str(folder)},
            "batch": {"max_readings": 1024, "max_age_s": 0.5},
        }
    )
    gw = Gateway(
        s, Registry(folder / "registry.json"), Spool(folder / "spool.sqlite"), os.urandom(32)
    )
    await gw.start()
    t0 = time.perf_counter()
    acks = []
    for i, w in enumerate(wires):
        acks.append(await gw.receive(w, "bench"))
        if i % 256 == 255:
            await asyncio.sleep(0)  # a network reader yields between socket reads
    await asyncio.gather(*acks)  # every reading committed and acknowledged
    await gw.seal_due(now=time.time() + 3600)  # seal the remainder
    elapsed = time.perf_counter() - t0
    unsealed, _ = gw.spool.unsealed()
    assert unsealed == 0 and gw.counts["accepted"] == len(wires), gw.counts
    await gw.stop()
    return len(wires) / elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOADGEN = """
import sys, time, json
import paho.mqtt.client as mqtt
port, site = int(sys.argv[1]), sys.argv[2]
wires = [bytes.fromhex(line) for line in open(sys.argv[3])]
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="loadgen", clean_session=True)
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
t0 = time.time()
infos = [c.publish("pharmasync/v1/%s/%s/reading" % (site, w[1:9].hex()), w, qos=1) for w in wires]
for i in infos:
    i.wait_for_publish()
print(json.dumps({"start": t0, "published": time.time()}))
c.loop_stop()
"""


def broker_rate(wires: list[bytes], secrets: list[bytes], work: Path) -> dict[str, float]:
    """Run broker, gateway and load generator as processes; return timing figures."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 1000\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    gw_dir = work / "gw"
    register(gw_dir, secrets, "bench")
    toml = work / "gateway.toml"
    toml.write_text(
        f'[gateway]\nsite = "bench"\ndata_dir = "{gw_dir}"\n[mqtt]\nport = {port}\n'
        "[batch]\nmax_readings = 1024\nmax_age_s = 0.5\n[status]\nport = 0\n"
    )
    (work / "wires.hex").write_text("\n".join(w.hex() for w in wires) + "\n")
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.DEVNULL)
    gateway = None
    try:
        time.sleep(0.5)
        exe = str(Path(sys.executable).parent / "pharmasync")
        gateway = subprocess.Popen(
            [exe, "gateway", "run", "--config", str(toml)], stderr=subprocess.DEVNULL
        )
        time.sleep(2.0)  # the gateway subscribes (its persistent session exists from here)
        gen = subprocess.run(
            [sys.executable, "-c", LOADGEN, str(port), "bench", str(work / "wires.hex")],
            capture_output=True,
            text=True,
            check=True,
        )
        times = json.loads(gen.stdout)
        db = sqlite3.connect(gw_dir / "spool.sqlite", timeout=30)
        deadline = time.time() + 300
        sealed = 0
        while time.time() < deadline:
            sealed = db.execute("SELECT count(*) FROM readings WHERE batch IS NOT NULL").fetchone()[
                0
            ]
            if sealed >= len(wires):
                break
            time.sleep(0.05)
        done = time.time()
        db.close()
        return {
            "readings": len(wires),
            "sealed": sealed,
            "seconds": done - times["start"],
            "publish_seconds": times["published"] - times["start"],
            "rate": sealed / (done - times["start"]),
        }
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        broker.terminate()
        broker.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=60_000, help="readings in total")
    parser.add_argument("--boxes", type=int, default=100, help="boxes sending them")
    args = parser.parse_args()

    per_box = args.readings // args.boxes
    print(f"signing {per_box * args.boxes:,} readings from {args.boxes} boxes ...", flush=True)
    secrets, wires = make_readings(args.boxes, per_box)

    with tempfile.TemporaryDirectory() as tmp:
        with_affinity = hasattr(os, "sched_setaffinity")
        if with_affinity:
            before = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {min(before)})  # one core: the spool thread shares it
        raw = raw_verify_rate(wires)
        pipe = asyncio.run(pipeline_rate(wires, secrets, Path(tmp) / "pipe"))
        if with_affinity:
            os.sched_setaffinity(0, before)
        print(f"raw coincurve verification : {raw:10,.0f} readings/s (one core)")
        print(
            f"pipeline                   : {pipe:10,.0f} readings/s = {pipe / raw:.2f} x raw "
            f"(target {PIPELINE_TARGET})"
        )
        through = broker_rate(wires, secrets, Path(tmp))
    print(
        f"through Mosquitto          : {through['rate']:10,.0f} readings/s "
        f"({through['sealed']:,} of {through['readings']:,} sealed in {through['seconds']:.1f} s; "
        f"target {BROKER_TARGET:,.0f}/s = {through['rate'] / BROKER_TARGET:.2f} x)"
    )
    print(
        json.dumps(
            {
                "readings": len(wires),
                "boxes": args.boxes,
                "raw_verify_per_s": round(raw),
                "pipeline_per_s": round(pipe),
                "pipeline_ratio_to_raw_verify": round(pipe / raw, 3),
                "pipeline_target_ratio": PIPELINE_TARGET,
                "broker_per_s": round(through["rate"]),
                "broker_sealed": through["sealed"],
                "broker_seconds": round(through["seconds"], 2),
                "broker_publish_seconds": round(through["publish_seconds"], 2),
                "broker_target_per_s": BROKER_TARGET,
                "broker_ratio_to_target": round(through["rate"] / BROKER_TARGET, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
