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
3. Reject path (issue 10), pinned to one core like 1: good readings keep flowing while
   garbage arrives, GARBAGE_PER_GOOD garbage messages per good reading, in two runs —
   4 KiB of noise (refused by the decoder) and forged 110-byte readings that claim a
   registered box (refused only after a BIP-340 check, the costliest garbage). Figures:
   garbage rejected/s, good readings accepted and acknowledged/s beside it, and the good
   rate's ratio to raw verification measured in the same run; also the log lines the
   rejects produced (rate-limited) and the quarantine kept within its budget.
   `--rejects-only` runs just this scenario.
Targets (issue 4): pipeline >= 0.6 x raw verification; >= 5,000 readings/s through
Mosquitto on the 2-core reference machine. Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
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
GARBAGE_PER_GOOD = 4


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


def bench_gateway(folder: Path, secrets: list[bytes]) -> Gateway:
    """A gateway in `folder` with the boxes of `secrets` registered (not started)."""
    register(folder, secrets, "bench")
    s = gw_settings.from_dict(
        {
            "gateway": {"site": "bench", "data_dir": str(folder)},
            "batch": {"max_readings": 1024, "max_age_s": 0.5},
        }
    )
    return Gateway(
        s, Registry(folder / "registry.json"), Spool(folder / "spool.sqlite"), os.urandom(32)
    )


async def pipeline_rate(wires: list[bytes], secrets: list[bytes], folder: Path) -> float:
    """Readings/s through the gateway as it runs: its own committer (group commits on the
    spool thread) and sealer tasks, fed as the MQTT reader feeds it, until every reading
    is committed (acknowledged) and sealed."""
    gw = bench_gateway(folder, secrets)
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


def make_garbage(kind: str, n: int, secrets: list[bytes]) -> list[bytes]:
    """n garbage messages: "noise" (4 KiB of random bytes) or "forged" (110-byte readings
    whose key is a registered box's and whose signature is another key's)."""
    if kind == "noise":
        return [os.urandom(4096) for _ in range(n)]
    now, stranger = int(time.time()), os.urandom(32)
    out = []
    for i in range(n):
        w = bytearray(reading.sign(stranger, 10**6 + i, now, 500, 5000, 0))
        w[1:33] = schnorr.pubkey(secrets[i % len(secrets)])
        out.append(bytes(w))
    return out


class _CountLines(logging.Handler):
    """Counts the gateway's log lines (the rejects' summaries) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += 1


async def reject_path_rate(
    good: list[bytes], garbage: list[bytes], secrets: list[bytes], folder: Path
) -> dict[str, float]:
    """Good readings with GARBAGE_PER_GOOD garbage messages after each, through the gateway
    as it runs (as pipeline_rate), until every good reading is acknowledged and every
    garbage message judged and quarantined. Returns rates and what the rejects left."""
    gw = bench_gateway(folder, secrets)
    lines = _CountLines()
    logger = logging.getLogger("pharmasync")
    logger.addHandler(lines)
    logger.propagate = False
    await gw.start()
    t0 = time.perf_counter()
    acks = []
    junk = iter(garbage)
    for i, w in enumerate(good):
        acks.append(await gw.receive(w, "bench"))
        for j in range(GARBAGE_PER_GOOD):  # on topics of their own, as a flood would come
            await gw.receive(next(junk), f"mqtt:pharmasync/v1/bench/{(i + j) % 500:016x}/reading")
        if i % 64 == 63:
            await asyncio.sleep(0)  # a network reader yields between socket reads
    await asyncio.gather(*acks)  # every good reading committed and acknowledged
    await gw.flush()  # and the last garbage quarantined
    elapsed = time.perf_counter() - t0
    rejected = sum(n for k, n in gw.counts.items() if k not in ("accepted", "duplicate"))
    assert gw.counts["accepted"] == len(good) and rejected == len(garbage), gw.counts
    assert all(a.result() is not None for a in acks), "every good reading acknowledged"
    rows, used, dropped = gw.spool.quarantine_usage()
    await gw.stop()
    logger.removeHandler(lines)
    logger.propagate = True
    return {
        "good_per_s": len(good) / elapsed,
        "garbage_per_s": len(garbage) / elapsed,
        "seconds": elapsed,
        "log_lines": lines.lines,
        "quarantine_rows": rows,
        "quarantine_bytes": used,
        "quarantine_dropped": dropped,
    }


def reject_path(args: argparse.Namespace) -> dict[str, object]:
    """Scenario 3: sign, then measure raw verification and both garbage runs on one core."""
    boxes = min(args.boxes, 100)
    per_box = max(1, args.rejects_good // boxes)
    print(
        f"reject path: {per_box * boxes:,} good readings from {boxes} boxes, "
        f"{GARBAGE_PER_GOOD} garbage messages after each ...",
        flush=True,
    )
    secrets, good = make_readings(boxes, per_box)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        if before is not None:
            os.sched_setaffinity(0, {min(before)})  # one core: the spool thread shares it
        try:
            raw = raw_verify_rate(good)
            results["raw_verify_per_s"] = round(raw)
            print(f"raw coincurve verification : {raw:10,.0f} readings/s (one core)")
            for kind in ("noise", "forged"):
                garbage = make_garbage(kind, len(good) * GARBAGE_PER_GOOD, secrets)
                r = asyncio.run(reject_path_rate(good, garbage, secrets, Path(tmp) / kind))
                print(
                    f"rejects, {kind:<6}             : {r['garbage_per_s']:10,.0f} garbage/s "
                    f"rejected while {r['good_per_s']:,.0f} good readings/s flowed "
                    f"= {r['good_per_s'] / raw:.2f} x raw; {r['log_lines']} log lines; "
                    f"quarantine {r['quarantine_rows']:,} rows, {r['quarantine_bytes']:,} B, "
                    f"{r['quarantine_dropped']:,} dropped"
                )
                results[kind] = {k: round(v, 3) for k, v in r.items()} | {
                    "good_ratio_to_raw_verify": round(r["good_per_s"] / raw, 3)
                }
        finally:
            if before is not None:
                os.sched_setaffinity(0, before)
    return {
        "scenario": "rejects",
        "good": len(good),
        "garbage_per_good": GARBAGE_PER_GOOD,
        "pinned_to_one_core": before is not None,
    } | results


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
    parser.add_argument(
        "--rejects-good", type=int, default=10_000, help="good readings in scenario 3"
    )
    parser.add_argument("--rejects-only", action="store_true", help="run scenario 3 only")
    args = parser.parse_args()
    if args.rejects_only:
        print(json.dumps(reject_path(args)))
        return

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
    rejects = reject_path(args)
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
                "rejects": rejects,
            }
        )
    )


if __name__ == "__main__":
    main()
