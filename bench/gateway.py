"""Gateway throughput benchmark.

    .venv/bin/python bench/gateway.py [--readings N] [--boxes B] [--port 1883]

1. Pipeline: decode -> verify -> spool commit -> batch seal (gateway.service.Gateway
   running its own committer and sealer, as in `gateway run`, with a real SQLite spool,
   synchronous=FULL), as readings/s and as a ratio to raw coincurve verification of the
   same readings measured in the same run, pinned to one core (the ceiling: verification
   is the one step that cannot be skipped). Twice: pinned to one core with one
   verification thread, and free on every core with one thread per core.
2. Through Mosquitto: a load generator (bench/mqtt_loadgen.py: pre-built QoS 1 packets on
   4 raw TCP connections) publishes pre-signed readings from B boxes to a Mosquitto
   broker (a private one on a free port, started here); the gateway runs as its own
   process (`pharmasync gateway run`, a verification thread per core), all free on every
   core; the figure is readings/s from the first publish until every reading is sealed in
   a batch. The generator's own rate is measured first in the same run (the same readings
   into the same broker, on a site nobody subscribes to), and the gateway's and broker's
   CPU time per reading beside it.
3. Reject path (issue 10), pinned to one core like 1: good readings keep flowing while
   garbage arrives, GARBAGE_PER_GOOD garbage messages per good reading, in two runs —
   4 KiB of noise (refused by the decoder) and forged 110-byte readings that claim a
   registered box (refused only after a BIP-340 check, the costliest garbage). Figures:
   garbage rejected/s, good readings accepted and acknowledged/s beside it, and the good
   rate's ratio to raw verification measured in the same run; also the log lines the
   rejects produced (rate-limited) and the quarantine kept within its budget.
   `--rejects-only` runs just this scenario.
Targets (issue 13, ratios to raw verification): pipeline >= 0.75 x pinned with one thread,
>= 1.2 x free with two; through Mosquitto >= 0.5 x. Ends with one line of JSON, with the
load average at the start (other jobs share this machine).
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
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/gateway.py would shadow the package.
sys.path.insert(0, str(REPO))

from device import reading, schnorr  # noqa: E402
from gateway import settings as gw_settings  # noqa: E402
from gateway.ingest_mqtt import ACK_BOX_GAP_S, ACK_INTERVAL_S  # noqa: E402
from gateway.registry import Box, Registry  # noqa: E402
from gateway.service import Gateway  # noqa: E402
from gateway.spool import Spool  # noqa: E402

# Targets (issue 13), each a ratio to one core's raw verification measured in the same run.
PIPELINE_PINNED_TARGET = 0.75  # one verification thread, the process pinned to one core
PIPELINE_FREE_TARGET = 1.2  # a thread per core, free on both
BROKER_TARGET = 0.5  # generator, broker and gateway on the same 2-core machine
GARBAGE_PER_GOOD = 4
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


def bench_gateway(folder: Path, secrets: list[bytes], threads: int = 1) -> Gateway:
    """A gateway in `folder` with the boxes of `secrets` registered (not started), checking
    signatures on `threads` threads."""
    register(folder, secrets, "bench")
    s = gw_settings.from_dict(
        {
            "gateway": {"site": "bench", "data_dir": str(folder)},
            "batch": {"max_readings": 1024, "max_age_s": 0.5},
            "verify": {"threads": threads},
        }
    )
    return Gateway(
        s, Registry(folder / "registry.json"), Spool(folder / "spool.sqlite"), os.urandom(32)
    )


async def settled_in_order(acks: list[asyncio.Future[bytes | None]]) -> None:
    """Wait for every future as the MQTT ingest waits to PUBACK (ingest_mqtt.py
    _puback_in_order): the first unsettled one, then sweep those settled since. (gather
    would add a callback per future, a loop iteration's work per reading the ingest
    does not do.)"""
    i = 0
    while i < len(acks):
        await acks[i]
        while i < len(acks) and acks[i].done():
            i += 1


async def sign_acks_as_the_ingest_does(gw: Gateway) -> None:
    """Sign each box's ack as the MQTT ingest does (ingest_mqtt.MqttIngest._publish_acks):
    the boxes with new commits every ACK_INTERVAL_S, each at most every ACK_BOX_GAP_S, not
    one per box per commit. Only the publishing is left out (no broker in this part)."""
    due: dict[bytes, int | None] = {}
    signed_at: dict[bytes, float] = {}

    def ack_due(box: bytes, near: int | None) -> None:
        due.setdefault(box, near)

    gw.ack_listeners.append(ack_due)
    while True:
        await asyncio.sleep(ACK_INTERVAL_S)
        now = time.monotonic()
        for box in list(due):
            if now - signed_at.get(box, -ACK_BOX_GAP_S) >= ACK_BOX_GAP_S:
                signed_at[box] = now
                gw.ack_payload(box, due.pop(box))


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's threads by part: "event loop" (the main
    thread), "verification" (the pool's threads), "spool" (its thread), from /proc."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        name = names.get(int(task.name), "")
        part = (
            "event loop"
            if name == "MainThread"
            else "verification"
            if name.startswith("verify")
            else "spool"
            if name.startswith("spool")
            else "other"
        )
        out[part] = out.get(part, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


async def pipeline_rate(
    wires: list[bytes], secrets: list[bytes], folder: Path, threads: int
) -> tuple[float, float, dict[str, float]]:
    """Readings/s through the gateway as it runs: its own committer (group commits on the
    spool thread) and sealer tasks, fed as the MQTT reader feeds it (`submit`, yielding
    between socket reads), signatures checked on `threads` threads, until every reading is
    committed (acknowledged) and sealed. Also returns the process's CPU seconds per
    reading (all threads), and by part (thread_cpu) in µs per reading."""
    gw = bench_gateway(folder, secrets, threads)
    await gw.start()
    signer = asyncio.create_task(sign_acks_as_the_ingest_does(gw))
    t0, cpu0, parts0 = time.perf_counter(), time.process_time(), thread_cpu()
    acks = []
    for i, w in enumerate(wires):
        acks.append(gw.submit(w, "bench", None, False))  # as MQTT: acks signed per box, below
        if i % 256 == 255:
            await asyncio.sleep(0)  # a network reader yields between socket reads
    await settled_in_order(acks)  # every reading committed and acknowledged
    await gw.seal_due(now=time.time() + 3600)  # seal the remainder
    elapsed, cpu, parts = time.perf_counter() - t0, time.process_time() - cpu0, thread_cpu()
    signer.cancel()
    unsealed, _ = gw.spool.unsealed()
    assert unsealed == 0 and gw.counts["accepted"] == len(wires), gw.counts
    await gw.stop()
    by_part = {k: round(1e6 * (v - parts0.get(k, 0.0)) / len(wires), 1) for k, v in parts.items()}
    return len(wires) / elapsed, cpu / len(wires), by_part


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
        acks.append(gw.submit(w, "bench", None, False))
        for j in range(GARBAGE_PER_GOOD):  # on topics of their own, as a flood would come
            gw.submit(next(junk), f"mqtt:pharmasync/v1/bench/{(i + j) % 500:016x}/reading")
        if i % 64 == 63:
            await asyncio.sleep(0)  # a network reader yields between socket reads
    await asyncio.gather(*acks)  # every good reading committed and acknowledged
    await gw.verify_pool.judged()
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


LOADGEN = Path(__file__).with_name("mqtt_loadgen.py")
CONNECTIONS = 4  # the load generator's TCP connections to the broker


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish(port: int, site: str, wires_file: Path) -> dict[str, float]:
    """Run the load generator (its own process) to completion; its start and end times."""
    gen = subprocess.run(
        [sys.executable, str(LOADGEN), str(port), site, str(wires_file), str(CONNECTIONS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(gen.stdout))


def broker_rate(wires: list[bytes], secrets: list[bytes], work: Path) -> dict[str, float]:
    """Run broker, gateway and load generator as processes; return timing figures."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 20000\n"
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
        # The generator alone first: the same readings into the same broker on a site
        # nobody subscribes to, so its rate is measured beside the gateway's.
        alone = publish(port, "nobody", work / "wires.hex")
        gw_cpu0, broker_cpu0 = cpu_seconds(gateway.pid), cpu_seconds(broker.pid)
        times = publish(port, "bench", work / "wires.hex")
        db = sqlite3.connect(gw_dir / "spool.sqlite", timeout=30)
        deadline = time.time() + 300
        sealed = 0
        while time.time() < deadline:
            (sealed,) = db.execute("SELECT coalesce(sum(count), 0) FROM batches").fetchone()
            if sealed >= len(wires):
                break
            time.sleep(0.05)
        done = time.time()
        gw_cpu, broker_cpu = (
            cpu_seconds(gateway.pid) - gw_cpu0,
            cpu_seconds(broker.pid) - broker_cpu0,
        )
        db.close()
        return {
            "readings": len(wires),
            "sealed": sealed,
            "seconds": done - times["start"],
            "publish_seconds": times["published"] - times["start"],
            "rate": sealed / (done - times["start"]),
            "generator_alone_per_s": len(wires) / (alone["published"] - alone["start"]),
            "gateway_cpu_us_per_reading": 1e6 * gw_cpu / len(wires),
            "broker_cpu_us_per_reading": 1e6 * broker_cpu / len(wires),
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
    parser.add_argument("--no-rejects", action="store_true", help="skip scenario 3")
    args = parser.parse_args()
    if args.rejects_only:
        print(json.dumps(reject_path(args)))
        return

    per_box = args.readings // args.boxes
    print(f"signing {per_box * args.boxes:,} readings from {args.boxes} boxes ...", flush=True)
    secrets, wires = make_readings(args.boxes, per_box)
    load = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(before)})  # one core: every thread of ours shares it
        raw = raw_verify_rate(wires)
        pinned, pinned_cpu, pinned_parts = asyncio.run(
            pipeline_rate(wires, secrets, Path(tmp) / "p1", 1)
        )
        os.sched_setaffinity(0, before)  # free on every core, one verification thread each
        free, free_cpu, free_parts = asyncio.run(
            pipeline_rate(wires, secrets, Path(tmp) / "p2", len(before))
        )
        print(f"raw coincurve verification : {raw:10,.0f} readings/s (pinned to one core)")
        for name, rate, cpu, parts, target in (
            (
                "pipeline, 1 thread, pinned",
                pinned,
                pinned_cpu,
                pinned_parts,
                PIPELINE_PINNED_TARGET,
            ),
            (
                f"pipeline, {len(before)} threads, free",
                free,
                free_cpu,
                free_parts,
                PIPELINE_FREE_TARGET,
            ),
        ):
            print(
                f"{name:<27}: {rate:10,.0f} readings/s = {rate / raw:.2f} x raw "
                f"(target {target}); {1e6 * cpu:.0f} us CPU per reading ("
                + ", ".join(f"{part} {us}" for part, us in sorted(parts.items()))
                + ")"
            )
        through = broker_rate(wires, secrets, Path(tmp))
    print(
        f"through Mosquitto, free    : {through['rate']:10,.0f} readings/s = "
        f"{through['rate'] / raw:.2f} x raw (target {BROKER_TARGET}); "
        f"{through['sealed']:,} of {through['readings']:,} sealed in {through['seconds']:.1f} s; "
        f"gateway {through['gateway_cpu_us_per_reading']:.0f} us CPU per reading, "
        f"broker {through['broker_cpu_us_per_reading']:.0f} us"
    )
    print(
        f"load generator alone       : {through['generator_alone_per_s']:10,.0f} readings/s "
        f"= {through['generator_alone_per_s'] / through['rate']:.1f} x the gateway's rate "
        f"(want >= 2)"
    )
    rejects = None if args.no_rejects else reject_path(args)
    print(
        json.dumps(
            {
                "readings": len(wires),
                "boxes": args.boxes,
                "load_average_1min_at_start": load,
                "raw_verify_per_s": round(raw),
                "pipeline_pinned_per_s": round(pinned),
                "pipeline_pinned_ratio": round(pinned / raw, 3),
                "pipeline_pinned_cpu_us": round(1e6 * pinned_cpu, 1),
                "pipeline_pinned_cpu_us_by_thread": pinned_parts,
                "pipeline_free_per_s": round(free),
                "pipeline_free_ratio": round(free / raw, 3),
                "pipeline_free_cpu_us": round(1e6 * free_cpu, 1),
                "pipeline_free_cpu_us_by_thread": free_parts,
                "broker_per_s": round(through["rate"]),
                "broker_ratio": round(through["rate"] / raw, 3),
                "broker_sealed": through["sealed"],
                "broker_seconds": round(through["seconds"], 2),
                "broker_publish_seconds": round(through["publish_seconds"], 2),
                "generator_alone_per_s": round(through["generator_alone_per_s"]),
                "gateway_cpu_us_per_reading": round(through["gateway_cpu_us_per_reading"], 1),
                "broker_cpu_us_per_reading": round(through["broker_cpu_us_per_reading"], 1),
                "rejects": rejects,
            }
        )
    )


if __name__ == "__main__":
    main()
