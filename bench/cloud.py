"""Cloud ledger benchmark.

    .venv/bin/python bench/cloud.py [--gateways 4] [--batches 12] [--stored 10000000]
                                    [--pg postgresql://postgres@127.0.0.1/postgres]

1. Ingest over HTTP: `pharmasync cloud serve` runs as its own process; G gateways upload
   pre-signed, chained batches of 1,024 readings concurrently; every batch is fully
   re-verified (header, chain, Merkle root, every reading's signature). Readings/s on
   SQLite and on PostgreSQL, each as a ratio to raw coincurve verification of the same
   readings measured in this run (one core: the ceiling a verifying ledger works against).
2. Proofs at scale: a ledger of --stored readings (1,000 boxes, batches of 1,024) written
   straight into the SQLite store (the readings' signatures are random bytes: proofs do
   not look at them, and signing 10 M readings would take this machine ten minutes); with
   --again-every k a second gateway carries every k-th batch again (duplicate sightings);
   then p50/p99 of a reading's proof bundle, server-side (ReadingService.bundle) and over HTTP.
3. Storage: bytes of database per stored reading (each (box, seq) once) at that size.
Targets (issue 5): ingest >= 10,000 readings/s on SQLite and >= 0.5 x raw verification;
proof bundle p99 < 5 ms server-side; <= 200 bytes per reading. Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from cloud import serve_child  # noqa: E402
from cloud.api.app import make_app  # noqa: E402
from cloud.demo import free_port  # noqa: E402
from cloud.log.verified import Verified  # noqa: E402
from cloud.services.log import LogService  # noqa: E402
from cloud.services.readings import ReadingService  # noqa: E402
from cloud.services.refusals import Refusals  # noqa: E402
from cloud.services.shared import Shared  # noqa: E402
from cloud.settings import CloudSettings  # noqa: E402
from cloud.storage.sqlite import SqliteEngine  # noqa: E402
from cloud.storage.store import Store  # noqa: E402
from device import reading, schnorr  # noqa: E402
from gateway import batch  # noqa: E402
from gateway import registry_change as registry  # noqa: E402
from gateway.note import Signer  # noqa: E402

EXE = serve_child.EXE
BATCH = 1024
INGEST_TARGET = 10_000.0
RATIO_TARGET = 0.5
P99_TARGET_MS = 5.0
BYTES_TARGET = 200.0


# -- 1. ingest ---------------------------------------------------------------------------


def make_uploads(gateways: int, batches: int, boxes_per_gateway: int) -> dict[str, Any]:
    """Pre-sign everything: per gateway a chain of batches of real signed readings."""
    now = int(time.time())
    plan: dict[str, Any] = {"gateways": [], "boxes": [], "wires": []}
    for _ in range(gateways):
        gw = os.urandom(32)
        boxes = [os.urandom(32) for _ in range(boxes_per_gateway)]
        plan["boxes"] += boxes
        per_box = batches * BATCH // boxes_per_gateway
        wires = [
            reading.sign(box, seq, now - per_box + seq, 450, 5000)
            for seq in range(per_box)
            for box in boxes
        ]
        bodies, prev = [], batch.GENESIS_PREV
        for i in range(batches):
            chunk = wires[i * BATCH : (i + 1) * BATCH]
            header = batch.seal(gw, i, prev, chunk)
            bodies.append(header.encode() + b"".join(chunk))
            prev = header.hash()
        plan["gateways"].append((gw, bodies))
        plan["wires"] += wires
    return plan


def raw_verify_rate(wires: list[bytes]) -> float:
    """coincurve BIP-340 verifications per second over these readings, one core."""
    items = [(reading.decode(w), reading.message(w)) for w in wires]
    started = time.perf_counter()
    for r, msg in items:
        schnorr.verify(r.key, msg, r.signature)
    return len(items) / (time.perf_counter() - started)


async def ingest_rate(plan: dict[str, Any], data: Path, database: str | None) -> dict[str, Any]:
    owner = os.urandom(32)
    port = free_port()
    options = ["--owner", schnorr.pubkey(owner).hex()]
    if database:
        options += ["--database", database]
    log = (data.parent / f"cloud-{port}.log").open("wb")
    server, url = await asyncio.to_thread(serve_child.start, data, port, *options, log=log)
    try:
        async with aiohttp.ClientSession(base_url=url) as http:
            now = int(time.time())
            changes: list[registry.Change] = [
                registry.GatewayRegistration(schnorr.pubkey(g), now, site="b")
                for g, _ in plan["gateways"]
            ]
            changes += [
                registry.BoxRegistration(schnorr.pubkey(b), now, site="b", label="")
                for b in plan["boxes"]
            ]
            for change in changes:
                async with http.post(
                    "/v1/registry", json=registry.sign_request(owner, change)
                ) as r:
                    assert r.status == 201, await r.text()

            async def upload(bodies: list[bytes]) -> int:
                done = 0
                for body in bodies:
                    async with http.post(
                        "/v1/batches",
                        data=body,
                        headers={"Content-Type": "application/octet-stream"},
                    ) as r:
                        assert r.status == 201, await r.text()
                    done += (len(body) - batch.SIZE) // reading.SIZE
                return done

            started = time.perf_counter()
            counts = await asyncio.gather(*(upload(b) for _, b in plan["gateways"]))
            seconds = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    return {"readings": sum(counts), "seconds": seconds, "rate": sum(counts) / seconds}


def pg_execute(server: str, sql: str) -> None:
    """Run one statement on `server` (asyncpg: a database is created or dropped outside
    any transaction)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(server, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def pg_database(server: str) -> tuple[str, str] | None:
    """Create a scratch database on `server`; return (its DSN, its name), None if unusable."""
    import asyncpg

    name = f"pharmasync_bench_{os.getpid()}"
    try:
        pg_execute(server, f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as e:
        print(f"PostgreSQL not usable at {server}: {e}; skipping its figures")
        return None
    return server.rsplit("/", 1)[0] + "/" + name, name


# -- 2, 3. proofs and storage at scale ---------------------------------------------------


async def build_ledger(
    path: Path, stored: int, boxes: int = 1000, again_every: int = 0
) -> tuple[list[bytes], float, int]:
    """Write `stored` readings of `boxes` boxes into a new SQLite ledger, in batches of
    1,024 with real signed, chained headers; with `again_every` k > 0, a second site's
    gateway carries every k-th batch's readings again (a batch of duplicate sightings,
    stored by reference). Return (box keys, seconds, leaves written)."""
    db = Store.sqlite(path)
    gw, gw2 = os.urandom(32), os.urandom(32)
    keys = [os.urandom(32) for _ in range(boxes)]
    for key in keys:
        await db.register_device(key, "b", "")
    await db.register_gateway(schnorr.pubkey(gw), "b")
    await db.register_gateway(schnorr.pubkey(gw2), "c")
    now = int(time.time()) - stored // boxes
    started, prev, seq, n, leaves = time.perf_counter(), batch.GENESIS_PREV, 0, 0, 0
    prev2, seq2 = batch.GENESIS_PREV, 0
    fake_sig = os.urandom(64)
    while n < stored:
        count = min(BATCH, stored - n)
        readings, wires = [], []
        for i in range(n, n + count):
            key, s = keys[i % boxes], i // boxes
            body = reading.encode_body(key, s, now + s, 450 + i % 300, 5000)
            wire = body + fake_sig
            wires.append(wire)
            readings.append(reading.decode(wire))
        times = [r.time for r in readings]
        header = batch.seal(gw, seq, prev, wires, times=times)
        await db.store_batch(Verified(header, header.encode(), readings, wires))
        prev, seq, n, leaves = header.hash(), seq + 1, n + count, leaves + count
        if again_every and seq % again_every == 0:
            again = batch.seal(gw2, seq2, prev2, wires, times=times)
            await db.store_batch(Verified(again, again.encode(), readings, wires))
            prev2, seq2, leaves = again.hash(), seq2 + 1, leaves + count
        if seq % 500 == 0:
            rate = n / (time.perf_counter() - started)
            print(f"  stored {n:,} of {stored:,} readings ({rate:,.0f}/s)", flush=True)
    assert isinstance(db.engine, SqliteEngine)
    db.engine.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    await db.close()
    return keys, time.perf_counter() - started, leaves


def report_ingest(engine: str, res: dict[str, Any], raw: float) -> dict[str, Any]:
    """Print one engine's ingest figures against raw verification and the targets; return
    them for the JSON line."""
    name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[engine]
    print(
        f"ingest over HTTP, {name:<10}: {res['rate']:10,.0f} readings/s "
        f"({res['readings']:,} in {res['seconds']:.2f} s) = "
        f"{res['rate'] / raw:.2f} x raw verify (target {RATIO_TARGET}); "
        f"target {INGEST_TARGET:,.0f}/s: {res['rate'] / INGEST_TARGET:.2f} x"
    )
    return {
        f"ingest_{engine}_per_s": round(res["rate"]),
        f"ingest_{engine}_ratio_to_raw_verify": round(res["rate"] / raw, 3),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def proof_latency(path: Path, keys: list[bytes], per_box: int, samples: int) -> dict:
    store = Store.sqlite(path)
    log = LogService(store, Signer.generate("bench/ledger"))
    readings = ReadingService(Shared(store, log, Refusals()))
    await log.refresh()
    rng = random.Random(7)
    picks = [(rng.choice(keys), rng.randrange(per_box)) for _ in range(samples)]
    server_ms = []
    for key, seq in picks:
        started = time.perf_counter()
        await readings.bundle(key, seq)
        server_ms.append((time.perf_counter() - started) * 1000)
    await store.close()
    # The same through HTTP: the real app on a local port, one client.
    port = free_port()
    app = make_app(CloudSettings(data_dir=path.parent))
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    http_ms = []
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        for key, seq in picks[: samples // 2]:
            started = time.perf_counter()
            async with http.get(f"/v1/readings/{key.hex()}/{seq}/proof") as r:
                assert r.status == 200, await r.text()
                await r.read()
            http_ms.append((time.perf_counter() - started) * 1000)
    await runner.cleanup()
    return {
        "server_p50_ms": statistics.median(server_ms),
        "server_p99_ms": percentile(server_ms, 0.99),
        "http_p50_ms": statistics.median(http_ms),
        "http_p99_ms": percentile(http_ms, 0.99),
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--batches", type=int, default=12, help="per gateway")
    parser.add_argument("--stored", type=int, default=10_000_000, help="readings for proofs")
    parser.add_argument("--samples", type=int, default=2000, help="proof bundles timed")
    parser.add_argument(
        "--again-every",
        type=int,
        default=0,
        help="a second gateway carries every k-th batch again (duplicate sightings; 0: none)",
    )
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    if not EXE.exists():
        sys.exit(f"error: {EXE} missing: run scripts/setup first")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        print(f"signing {args.gateways} x {args.batches} batches of {BATCH} readings ...")
        plan = make_uploads(args.gateways, args.batches, boxes_per_gateway=64)
        raw = raw_verify_rate(plan["wires"])
        out["raw_verify_per_s"] = round(raw)
        print(f"raw coincurve verification : {raw:10,.0f} readings/s (one core)")
        out |= report_ingest("sqlite", asyncio.run(ingest_rate(plan, work / "sqlite", None)), raw)
        pg = pg_database(args.pg)
        if pg is not None:
            try:
                res = asyncio.run(ingest_rate(plan, work / "pg", pg[0]))
            finally:
                pg_execute(args.pg, f'DROP DATABASE IF EXISTS "{pg[1]}" WITH (FORCE)')
            out |= report_ingest("postgres", res, raw)
        print(f"building a ledger of {args.stored:,} readings ...")
        path = work / "big" / "ledger.sqlite"
        path.parent.mkdir()
        keys, seconds, leaves = asyncio.run(
            build_ledger(path, args.stored, again_every=args.again_every)
        )
        size = path.stat().st_size
        out |= {
            "stored_readings": args.stored,
            "batch_leaves": leaves,
            "build_seconds": round(seconds, 1),
            "bytes_per_reading": round(size / args.stored, 1),
        }
        print(
            f"stored                      : {args.stored:,} readings ({leaves:,} batch leaves) "
            f"in {seconds:.0f} s; {size / 1e9:.2f} GB = {size / args.stored:.1f} bytes/reading "
            f"(target <= {BYTES_TARGET:.0f})"
        )
        lat = asyncio.run(proof_latency(path, keys, args.stored // 1000, args.samples))
        out |= {k: round(v, 3) if isinstance(v, float) else v for k, v in lat.items()}
        print(
            f"proof bundle, server-side   : p50 {lat['server_p50_ms']:.2f} ms, "
            f"p99 {lat['server_p99_ms']:.2f} ms (target p99 < {P99_TARGET_MS} ms)"
        )
        print(
            f"proof bundle, over HTTP     : p50 {lat['http_p50_ms']:.2f} ms, "
            f"p99 {lat['http_p99_ms']:.2f} ms"
        )
    out |= {
        "targets": {
            "ingest_sqlite_per_s": INGEST_TARGET,
            "ratio": RATIO_TARGET,
            "proof_p99_ms": P99_TARGET_MS,
            "bytes_per_reading": BYTES_TARGET,
        }
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
