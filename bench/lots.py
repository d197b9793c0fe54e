"""Benchmark the lot-tracking contract (issue 11): transactions over HTTP, replay, state root.

Run: .venv/bin/python bench/lots.py [--lots 2000] [--clients 64] [--batch 0]
                                    [--sizes 10000,1000000] [--readings 100000] [--children 100]
                                    [--parts http,root,reads] [--no-pg]
                                    [--pg postgresql://postgres@127.0.0.1:5432/postgres]

1. Transactions applied per second over HTTP with full verification: `pharmasync cloud
   serve` runs as its own process (SQLite, then PostgreSQL in a throwaway database); the
   regulator admits a manufacturer and a distributor, then C concurrent clients each move
   their share of --lots lots through commission (manufacturer), ship (to the distributor)
   and receive (distributor), each transaction awaiting its 201 before the lot's next one.
   Every transaction is parsed, its signature verified and applied by the contract engine,
   its 0x03 entry, 0x04 state root and body committed (issue 11 target: >= 2,000/s). With
   --batch N each client posts N lots' moves (3N transactions, in order) per POST
   /v1/tx/batch instead, each transaction still answered and applied on its own.
2. Replay of that log, as `pharmasync verify --replay --cloud URL --key FILE` does it
   (cloud/audit/replay.py): an auditor granted the replay (a 0x06 grant-add signed by the
   regulator) signs in, fetches the log and the bodies, checks every commitment and
   signature, re-applies every transaction and checks every state root (target: >= 3,000
   transactions/s, fetching included).
3. State-root cost per transaction at each of --sizes records in the tree: a contract State
   whose tree already holds that many records (random filler records), then the same
   commission / ship / receive transactions applied by the engine, timing only the root
   after each (State.root: the transaction's changed leaves entered into the tree and the
   root recomputed). Target: the per-transaction cost grows at most logarithmically,
   <= 1.5 x from 10k to 1M records.
4. A lot's history (GET /v1/lots/{gtin}/{lot}/history, from the cold-chain aggregates) with
   --readings readings on it: a box registered by the registry owner is attached by the
   manufacturer (who controls the owner key) to the lot's shipment, and a gateway uploads
   the box's readings, a minute apart, as real signed batches of 1,024 through POST
   /v1/batches (pre-signed on every core before any clock starts); then the manufacturer
   signs in and reads the history --samples times in a row. Target p99 < 100 ms.
5. A recall trace (GET /v1/lots/{gtin}/{lot}/trace) of a lot split into --children lots,
   each split into one fewer (100: 100 + 9,900 = 10,000 descendant lots), then recalled:
   read by the manufacturer (every lot, holder and quantity) and by the regulator (global
   figures). Target p99 < 50 ms, the first GET after the recall included (it encodes the
   10,000 lots that changed; later GETs join what it kept), whose time and server CPU are
   printed on their own. Parts 4 and 5 run on a database of their own; both print p50 and
   p99 over HTTP and the server's CPU time per GET, which a loaded machine does not inflate
   as it does the latency.

Ratios are to one core's raw BIP-340 verification (coincurve, as bench/crypto.py measures
it) in the same run, this process pinned to one core while it is measured; part 3 runs
pinned too (bench/statetree.py's way), parts 1 and 2 run free on every core (the server
verifies on threads), as do parts 4 and 5. Prints progress and human-readable lines, then
ends with exactly one line of JSON holding every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import importlib.util
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/device.py would shadow the package.
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from crypto import raw_verify_rate  # noqa: E402  (bench/crypto.py)

from cloud import lots_cli, serve_child  # noqa: E402
from cloud.audit.replay import replay  # noqa: E402
from cloud.contracts import auth, catalog, didkey, tx  # noqa: E402
from cloud.contracts.engine import State  # noqa: E402
from cloud.demo import free_port  # noqa: E402
from device import reading, schnorr  # noqa: E402
from gateway import batch, config_entry  # noqa: E402
from gateway import registry_change as registry  # noqa: E402


def _bench_cloud() -> Any:
    """bench/cloud.py as a module (its name would shadow the `cloud` package): its
    throwaway-PostgreSQL helpers pg_database and pg_execute."""
    spec = importlib.util.spec_from_file_location("bench_cloud", REPO / "bench" / "cloud.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXE = serve_child.EXE
APPLY_TARGET = 2_000.0  # transactions/s over HTTP, both databases
REPLAY_TARGET = 3_000.0  # transactions/s
GROWTH_TARGET = 1.5  # state-root cost per transaction, 1M / 10k records
GTIN = "09506000134352"  # GS1's example GTIN-14 (tests/cloud/contracts/world.py)
PROFILE = lots_cli.storage_profile("2-8C")  # the 2-8 °C profile the CLI and demo sign


def key(name: str) -> bytes:
    """A fixed secret named `name` (SHA-256 of it: always a valid BIP-340 secret)."""
    return hashlib.sha256(b"bench/lots/" + name.encode()).digest()


REGULATOR, MAKER, DISTRIBUTOR, AUDITOR = (key(n) for n in ("regulator", "M", "D", "auditor"))


def admissions(owner: bytes | None = None) -> list[tx.SignedTx]:
    """The regulator admits the manufacturer (controlling the registry owner key `owner`, if
    given: then it may attach that owner's boxes) and the distributor."""
    signed = []
    for secret, role, name in ((MAKER, "manufacturer", "M"), (DISTRIBUTOR, "distributor", "D")):
        args: dict[str, Any] = {
            "did": didkey.from_secret(secret),
            "role": role,
            "name": name,
            "region": "DE",
            "licence": {"number": f"L-{name}", "issuer": "BfArM"},
        }
        if owner is not None and secret == MAKER:
            args["owner_keys"] = [schnorr.pubkey(owner).hex()]
        signed.append(tx.make("participants", "admit", args, REGULATOR))
    return signed


def lot_moves(lot: int, time_ms: int | None = None) -> list[tx.SignedTx]:
    """Lot `lot`'s three transactions, in the order they must apply: commission 100 packs,
    ship 60 to the distributor, the distributor receives 60; signed at `time_ms` (now if
    None: the server refuses a time more than 5 minutes off its clock)."""
    name, shipment = f"B{lot}", f"S{lot}"
    commission = {"gtin": GTIN, "lot": name, "expiry": "271200", "quantity": 100}
    commission |= {"unit": "pack", "profile": PROFILE}
    ship = {"gtin": GTIN, "lot": name, "shipment": shipment, "quantity": 60}
    ship["receiver"] = didkey.from_secret(DISTRIBUTOR)
    return [
        tx.make("lots", "commission", commission, MAKER, time_ms=time_ms),
        tx.make("lots", "ship", ship, MAKER, time_ms=time_ms),
        tx.make(
            "lots", "receive", {"shipment": shipment, "quantity": 60}, DISTRIBUTOR, time_ms=time_ms
        ),
    ]


# -- 1. transactions over HTTP, 2. replay ----------------------------------------------


async def start_server(
    data: Path, database: str | None, owner: bytes | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `pharmasync cloud serve` with the bench's regulator (and registry owner `owner`,
    if given); return it and its URL."""
    options = ["--regulator", schnorr.pubkey(REGULATOR).hex()]
    if owner is not None:
        options += ["--owner", schnorr.pubkey(owner).hex()]
    if database:
        options += ["--database", database]
    port = free_port()
    log = (data.parent / f"cloud-{port}.log").open("wb")
    return await asyncio.to_thread(serve_child.start, data, port, *options, log=log)


async def post(http: aiohttp.ClientSession, url: str, signed: tx.SignedTx) -> None:
    async with http.post(
        f"{url}/v1/tx", data=signed.to_wire(), headers={"Content-Type": "application/json"}
    ) as r:
        if r.status != 201:
            raise SystemExit(f"error: {signed.body.type} refused: {r.status} {await r.text()}")


async def post_batch(http: aiohttp.ClientSession, url: str, signed: list[tx.SignedTx]) -> None:
    """POST /v1/tx/batch: every entry must be applied (201)."""
    body = json.dumps([s.to_envelope() for s in signed]).encode()
    async with http.post(
        f"{url}/v1/tx/batch", data=body, headers={"Content-Type": "application/json"}
    ) as r:
        answer = await r.json()
        if r.status != 200 or any(a["status"] != 201 for a in answer["results"]):
            raise SystemExit(f"error: batch refused: {r.status} {str(answer)[:500]}")


async def apply_and_replay(
    work: Path, database: str | None, lots: int, clients: int, batch_lots: int = 0
) -> dict[str, float]:
    """Part 1 and 2 against one database; return their figures. `batch_lots`: 0, each
    transaction its own POST /v1/tx; else each client posts the moves of that many of its
    lots as one POST /v1/tx/batch (commission, ship, receive of each, in order)."""
    print(f"  signing {lots * 3:,} transactions ...", flush=True)
    moves = [lot_moves(n) for n in range(lots)]
    server, url = await start_server(work, database)
    try:
        async with aiohttp.ClientSession() as http:
            for signed in admissions():
                await post(http, url, signed)
            shares = [moves[c::clients] for c in range(clients)]

            async def client(share: list[list[tx.SignedTx]]) -> None:
                if batch_lots:
                    for n in range(0, len(share), batch_lots):
                        await post_batch(http, url, [s for lot in share[n : n + batch_lots]
                                                     for s in lot])  # fmt: skip
                    return
                for lot in share:
                    for signed in lot:
                        await post(http, url, signed)

            print(f"  posting with {clients} clients ...", flush=True)
            cpu, own = _cpu_seconds(server.pid), time.process_time()
            started = time.perf_counter()
            await asyncio.gather(*(client(share) for share in shares))
            seconds = time.perf_counter() - started
            server_cpu = _cpu_seconds(server.pid) - cpu
            client_cpu = time.process_time() - own
            grant = config_entry.ConfigChange(
                config_entry.GRANT_ADD,
                int(time.time()),
                key=schnorr.pubkey(AUDITOR),
                contracts=("lots", "participants"),
            )
            request = config_entry.sign_request(REGULATOR, grant)
            async with http.post(f"{url}/v1/config", json=request) as r:
                assert r.status == 201, await r.text()
            print("  replaying ...", flush=True)
            started = time.perf_counter()
            report = await replay(url, AUDITOR, http)
            replay_seconds = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    if report.parted_at is not None or report.replayed != lots * 3 + 2:
        raise SystemExit(f"error: replay: {report.render()}")
    print(f"  replay: {report.render()}")
    count = lots * 3
    return {
        "txs": count,
        "seconds": seconds,
        "per_s": count / seconds,
        "server_cpu_us_per_tx": server_cpu * 1e6 / count,
        "client_cpu_us_per_tx": client_cpu * 1e6 / count,
        "replayed": report.replayed,
        "replay_seconds": replay_seconds,
        "replay_per_s": report.replayed / replay_seconds,
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_fine(pid: int) -> float:
    """CPU seconds of process `pid`'s live threads to the ns (/proc/…/schedstat), for one
    request: /proc/…/stat counts in clock ticks (10 ms)."""
    tasks = Path(f"/proc/{pid}/task")
    return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks.iterdir()) / 1e9


# -- 3. state-root cost per transaction -------------------------------------------------


def root_cost(size: int, lots: int) -> dict[str, float]:
    """Per transaction: µs and hashes of the root after it, with `size` filler records in
    the tree; the transactions are part 1's (commission, ship, receive of `lots` lots), each
    its own block as State.root computes it. The figure compared is the mean over the three
    types of each type's median (a commission inserts four records, a receive updates two:
    their costs differ): on a shared machine a few transactions are preempted, and their
    time is the scheduler's, which the plain mean (also shown) includes."""
    engine = catalog.engine()
    state = State([schnorr.pubkey(REGULATOR)])
    rnd = random.Random(size)
    state.tree.update({rnd.randbytes(32): rnd.randbytes(32) for _ in range(size)})
    t0 = int(time.time() * 1000)
    for signed in admissions():  # not part of the figure
        engine.apply(state, signed, bytes(32))
    txs = [signed for n in range(lots) for signed in lot_moves(n, t0)]
    spent: dict[str, list[float]] = {}
    hashes = leaves = 0
    for signed in txs:
        engine.apply(state, signed, bytes(32), root=False)
        pending = state.pending
        start = time.perf_counter()
        changes = state.tree.update(pending)
        spent.setdefault(signed.body.type, []).append(time.perf_counter() - start)
        state.pending = {}
        hashes += changes.hashes
        leaves += len(pending)
    return {
        "records": size,
        "root_us_per_tx": statistics.fmean(map(statistics.median, spent.values())) * 1e6,
        "root_mean_us_per_tx": statistics.fmean(t for ts in spent.values() for t in ts) * 1e6,
        "hashes_per_tx": hashes / len(txs),
        "leaves_per_tx": leaves / len(txs),
    }


# -- 4. a lot's history, 5. a recall trace ---------------------------------------------

OWNER, BOX, GATEWAY = (key(n) for n in ("owner", "box", "gateway"))
READINGS_PER_BATCH = 1024
HISTORY_TARGET_MS = 100.0  # p99, 100,000 readings on the lot
TRACE_TARGET_MS = 50.0  # p99, 10,000 descendant lots


def _sign_readings(first: int, count: int, t0: int) -> list[bytes]:
    """BOX's readings `first`..first+count-1, a minute apart from t0, calm (3.0..7.9 °C)."""
    return [
        reading.sign(BOX, seq, t0 + 60 * seq, 300 + (seq * 37) % 490, 5000)
        for seq in range(first, first + count)
    ]


def signed_batches(readings: int, t0: int) -> list[bytes]:
    """GATEWAY's chain of batches carrying BOX's `readings` readings from t0, signed on every
    core (a process each) before any clock starts."""
    step = READINGS_PER_BATCH * 8
    starts = range(0, readings, step)
    with ProcessPoolExecutor() as pool:
        parts = pool.map(_sign_readings, starts, [min(step, readings - s) for s in starts],
                         [t0] * len(starts))  # fmt: skip
        wires = [w for part in parts for w in part]
    bodies, prev = [], batch.GENESIS_PREV
    for i in range(0, len(wires), READINGS_PER_BATCH):
        chunk = wires[i : i + READINGS_PER_BATCH]
        header = batch.seal(GATEWAY, len(bodies), prev, chunk)
        bodies.append(header.encode() + b"".join(chunk))
        prev = header.hash()
    return bodies


async def sign_in(http: aiohttp.ClientSession, url: str, secret: bytes) -> dict[str, str]:
    """Sign `secret`'s did:key in (POST /v1/auth/challenge, /v1/auth/token); return the
    Authorization header its token buys."""
    async with http.post(f"{url}/v1/auth/challenge") as r:
        assert r.status == 201, await r.text()
        challenge = bytes.fromhex((await r.json())["challenge"])
    did = didkey.from_secret(secret)
    sig = schnorr.sign(secret, auth.digest(challenge, did))
    body = {"did": did, "challenge": challenge.hex(), "sig": sig.hex()}
    async with http.post(f"{url}/v1/auth/token", json=body) as r:
        assert r.status == 201, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def latencies(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], samples: int, pid: int
) -> tuple[list[float], int, float]:
    """GET `url` `samples` times in a row (after 10 unmeasured); return each one's seconds
    (request sent to answer read), the answer's size in bytes, and the server's (process
    `pid`) CPU seconds per GET: what a loaded machine does not inflate, as it does the
    latency while other processes hold the cores."""
    spent, size, cpu, first_cpu = [], 0, 0.0, _cpu_fine(pid)
    for n in range(samples + 10):
        if n == 10:
            cpu = _cpu_seconds(pid)
        started = time.perf_counter()
        async with http.get(url, headers=headers) as r:
            body = await r.read()
            if r.status != 200:
                raise SystemExit(f"error: GET {url}: {r.status} {body[:300]!r}")
        if n == 0:
            FIRST[url + repr(headers)] = time.perf_counter() - started, _cpu_fine(pid) - first_cpu
        if n >= 10:
            spent.append(time.perf_counter() - started)
        size = len(body)
    return spent, size, (_cpu_seconds(pid) - cpu) / samples


# The first (unmeasured) GET's seconds and the server's CPU seconds for it, by URL and headers
FIRST: dict[str, tuple[float, float]] = {}


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank) of `values`, in ms."""
    ranked = sorted(values)
    return ranked[max(0, -(-len(ranked) * 99 // 100) - 1)] * 1000


async def history_and_trace(
    work: Path, database: str | None, readings: int, children: int, samples: int
) -> dict[str, Any]:
    """Part 4 and 5 against one database: the history of a lot carrying `readings` signed
    readings (one box attached to its shipment, batches through POST /v1/batches), read by
    its manufacturer; the trace of a recalled lot split into `children` lots, each split in
    turn into `children - 1` (100 gives 100 + 9,900 = 10,000 descendants), read by its
    manufacturer (every lot, holder and quantity) and by the regulator (global figures)."""
    result: dict[str, Any] = {}
    grandchildren = children - 1  # 100 x 99 + 100 = 10,000 descendants
    t0_ms = int(time.time() * 1000) + 600_000  # the attach (its start) is signed later
    t0 = -(-t0_ms // 1000)
    print(f"  signing {readings:,} readings on every core ...", flush=True)
    bodies = signed_batches(readings, t0)
    server, url = await start_server(work, database, owner=OWNER)
    try:
        async with aiohttp.ClientSession() as http:
            for signed in admissions(OWNER):
                await post(http, url, signed)
            now = int(time.time())
            for change in (
                registry.GatewayRegistration(schnorr.pubkey(GATEWAY), now, site="b"),
                registry.BoxRegistration(schnorr.pubkey(BOX), now, site="b", label="b"),
            ):
                async with http.post(
                    f"{url}/v1/registry", json=registry.sign_request(OWNER, change)
                ) as r:
                    assert r.status == 201, await r.text()
            moves = lot_moves(0)[:2]  # commission B0, ship it to the distributor as S0
            attach = {"box": schnorr.pubkey(BOX).hex(), "shipment": "S0", "start": t0_ms}
            moves.append(tx.make("lots", "attach", {**attach, "end": None}, MAKER))
            for signed in moves:
                await post(http, url, signed)
            print(f"  uploading {len(bodies)} batches ...", flush=True)
            started = time.perf_counter()
            for body in bodies:
                async with http.post(
                    f"{url}/v1/batches",
                    data=body,
                    headers={"Content-Type": "application/octet-stream"},
                ) as r:
                    assert r.status == 201, await r.text()
            result["ingest_readings_per_s"] = readings / (time.perf_counter() - started)
            maker = await sign_in(http, url, MAKER)
            history_url = f"{url}/v1/lots/{GTIN}/B0/history"
            spent, size, cpu = await latencies(http, history_url, maker, samples, server.pid)
            async with http.get(f"{url}/v1/lots/{GTIN}/B0/history", headers=maker) as r:
                told = await r.json()
            count = told["coldchain"]["overall"]["count"]
            if count != readings:
                raise SystemExit(f"error: the history counts {count} readings, want {readings}")
            result |= {"history_p50_ms": statistics.median(spent) * 1000,
                       "history_p99_ms": p99(spent), "history_bytes": size,
                       "history_server_cpu_ms": cpu * 1000}  # fmt: skip

            print(f"  splitting a lot into {children * grandchildren + children:,} ...", flush=True)
            name = "T"
            commission = {"gtin": GTIN, "lot": name, "expiry": "271200", "unit": "pack",
                          "quantity": children * grandchildren, "profile": PROFILE}  # fmt: skip
            txs = [tx.make("lots", "commission", commission, MAKER)]
            kids = [{"lot": f"T-{i}", "quantity": grandchildren} for i in range(children)]
            txs.append(tx.make("lots", "split", {"gtin": GTIN, "lot": name, "children": kids},
                               MAKER))  # fmt: skip
            for i in range(children):
                grand = [{"lot": f"T-{i}-{j}", "quantity": 1} for j in range(grandchildren)]
                args = {"gtin": GTIN, "lot": f"T-{i}", "children": grand}
                txs.append(tx.make("lots", "split", args, MAKER))
            recall = {"gtin": GTIN, "lot": name, "class": "I", "reason": "bench"}
            txs.append(tx.make("lots", "recall", recall, MAKER))
            for signed in txs:
                await post(http, url, signed)
            descendants = children + children * grandchildren
            trace_url = f"{url}/v1/lots/{GTIN}/{name}/trace"
            spent, size, cpu = await latencies(http, trace_url, maker, samples, server.pid)
            async with http.get(trace_url, headers=maker) as r:
                told = await r.json()
            if len(told["lots"]) != descendants + 1:
                raise SystemExit(f"error: the trace lists {len(told['lots'])} lots")
            result |= {"descendants": descendants, "trace_p50_ms": statistics.median(spent) * 1000,
                       "trace_p99_ms": p99(spent), "trace_bytes": size,
                       "trace_server_cpu_ms": cpu * 1000}  # fmt: skip
            first, first_cpu = FIRST[trace_url + repr(maker)]
            result |= {
                "trace_first_ms": first * 1000,
                "trace_first_server_cpu_ms": first_cpu * 1000,
            }
            regulator = await sign_in(http, url, REGULATOR)
            spent, size, cpu = await latencies(http, trace_url, regulator, samples, server.pid)
            result |= {"trace_global_p50_ms": statistics.median(spent) * 1000,
                       "trace_global_p99_ms": p99(spent), "trace_global_bytes": size,
                       "trace_global_server_cpu_ms": cpu * 1000}  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return result


# -- report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report_reads(
    engine: str, dsn: str | None, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Run part 4 and 5 on one database, print their figures, return them for the JSON."""
    print(f"{engine}: history of {args.readings:,} readings, trace ...", flush=True)
    res = asyncio.run(history_and_trace(work, dsn, args.readings, args.children, args.samples))
    print(
        f"{engine:>8}: ingested {res['ingest_readings_per_s']:,.0f} readings/s (cold chain "
        f"aggregates kept); history of {args.readings:,} readings: p50 "
        f"{res['history_p50_ms']:.1f} ms, p99 {res['history_p99_ms']:.1f} ms "
        f"({res['history_bytes']:,} bytes, server CPU {res['history_server_cpu_ms']:.2f} ms "
        f"per GET); target p99 < {HISTORY_TARGET_MS:.0f} ms: "
        f"{verdict(res['history_p99_ms'] < HISTORY_TARGET_MS)}"
    )
    worst = (res["trace_p99_ms"], res["trace_global_p99_ms"], res["trace_first_ms"])
    print(
        f"{engine:>8}: trace of {res['descendants']:,} descendant lots, manufacturer (every "
        f"holder): p50 {res['trace_p50_ms']:.1f} ms, p99 {res['trace_p99_ms']:.1f} ms "
        f"({res['trace_bytes']:,} bytes, server CPU {res['trace_server_cpu_ms']:.1f} ms per "
        f"GET; the first GET after the recall {res['trace_first_ms']:.1f} ms, server CPU "
        f"{res['trace_first_server_cpu_ms']:.1f} ms, building what later ones reuse); regulator "
        f"(global figures): p50 {res['trace_global_p50_ms']:.1f} ms, p99 "
        f"{res['trace_global_p99_ms']:.1f} ms (server CPU "
        f"{res['trace_global_server_cpu_ms']:.1f} ms); target p99 < {TRACE_TARGET_MS:.0f} ms, "
        f"the first GET included: {verdict(max(worst) < TRACE_TARGET_MS)}",
        flush=True,
    )
    figures = ("history_p50_ms", "history_p99_ms", "history_server_cpu_ms", "trace_p50_ms",
               "trace_p99_ms", "trace_server_cpu_ms", "trace_global_p50_ms",
               "trace_global_p99_ms", "trace_global_server_cpu_ms", "trace_first_ms",
               "trace_first_server_cpu_ms")  # fmt: skip
    out = {f"{engine}_{name}": round(res[name], 2) for name in figures}
    out[f"{engine}_ingest_readings_per_s"] = round(res["ingest_readings_per_s"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lots", type=int, default=2000, help="lots moved (3 transactions each)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients")
    parser.add_argument(
        "--sizes", default="10000,1000000", help="records in the tree for the state-root cost"
    )
    parser.add_argument(
        "--root-lots", type=int, default=1000, help="lots moved per size in the state-root part"
    )
    parser.add_argument("--repeat", type=int, default=3, help="raw verification runs (best)")
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server: a throwaway database is created there and dropped after",
    )
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument(
        "--parts",
        default="http,root,reads",
        help="which parts: http (1 and 2), root (3), reads (4 and 5)",
    )
    parser.add_argument(
        "--readings", type=int, default=100_000, help="readings on the lot whose history is read"
    )
    parser.add_argument(
        "--children", type=int, default=100, help="a trace's lot splits into this many, each "
        "into one fewer (100: 10,000 descendants)",
    )  # fmt: skip
    parser.add_argument("--samples", type=int, default=300, help="GETs timed per read")
    parser.add_argument(
        "--batch", type=int, default=0, help="part 1: each client posts the moves of this many "
        "lots per POST /v1/tx/batch (0: one POST /v1/tx per transaction)",
    )  # fmt: skip
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "http" in parts and not EXE.exists():
        sys.exit(f"error: {EXE} missing: run scripts/setup first")
    load = os.getloadavg()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})  # one core, as bench/statetree.py
    raw = raw_verify_rate(args.repeat)
    os.sched_setaffinity(0, before)
    print(f"CPython {platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f}")
    print(f"raw BIP-340 verification (coincurve), one core: {raw:,.0f}/s", flush=True)
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "load_average_1_5min": [round(load[0], 2), round(load[1], 2)],
        "raw_verify_per_s": round(raw),
    }
    if parts & {"http", "reads"}:
        engines: list[tuple[str, str | None]] = [("sqlite", None)]
        helpers = _bench_cloud()
        pg = None if args.no_pg else helpers.pg_database(args.pg)
        if pg is not None:
            engines.append(("postgres", pg[0]))
        try:
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                for engine, dsn in engines:
                    if "reads" in parts:  # on a database of its own (part 1's lots differ)
                        reads = None if dsn is None else f"{dsn}_reads"
                        if pg is not None and reads is not None:
                            helpers.pg_execute(args.pg, f'CREATE DATABASE "{pg[1]}_reads"')
                        out |= report_reads(engine, reads, Path(tmp) / f"{engine}-reads", args)
                    if "http" not in parts:
                        continue
                    how = f"batches of {args.batch * 3}" if args.batch else "POST /v1/tx each"
                    print(f"{engine}: {args.lots:,} lots over HTTP ({how}) ...", flush=True)
                    res = asyncio.run(
                        apply_and_replay(
                            Path(tmp) / engine, dsn, args.lots, args.clients, args.batch
                        )
                    )
                    print(
                        f"{engine:>8}: applied {res['per_s']:,.0f} tx/s ({how}; "
                        f"{res['txs']:,} in {res['seconds']:.2f} s, server CPU "
                        f"{res['server_cpu_us_per_tx']:.0f} µs/tx, clients' "
                        f"{res['client_cpu_us_per_tx']:.0f} µs/tx) = "
                        f"{res['per_s'] / raw:.3f} x raw verify; target {APPLY_TARGET:,.0f}/s:"
                        f" {verdict(res['per_s'] >= APPLY_TARGET)}"
                    )
                    print(
                        f"{engine:>8}: replayed {res['replay_per_s']:,.0f} tx/s "
                        f"({res['replayed']:,} in {res['replay_seconds']:.2f} s) = "
                        f"{res['replay_per_s'] / raw:.3f} x raw verify; target "
                        f"{REPLAY_TARGET:,.0f}/s: {verdict(res['replay_per_s'] >= REPLAY_TARGET)}",
                        flush=True,
                    )
                    if args.batch:
                        out["apply_batch_txs"] = args.batch * 3
                    out |= {
                        f"apply_{engine}_per_s": round(res["per_s"]),
                        f"apply_{engine}_ratio_to_raw_verify": round(res["per_s"] / raw, 3),
                        f"apply_{engine}_server_cpu_us_per_tx": round(res["server_cpu_us_per_tx"]),
                        f"apply_{engine}_client_cpu_us_per_tx": round(res["client_cpu_us_per_tx"]),
                        f"replay_{engine}_per_s": round(res["replay_per_s"]),
                        f"replay_{engine}_ratio_to_raw_verify": round(res["replay_per_s"] / raw, 3),
                    }
        finally:
            if pg is not None:
                for name in (pg[1], f"{pg[1]}_reads"):
                    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
                    helpers.pg_execute(args.pg, drop)
    if "root" in parts:
        runs = []
        os.sched_setaffinity(0, {min(before)})
        gc.disable()  # as bench/statetree.py: no full collection inside one timed update
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                print(f"state root: {size:,} records ...", flush=True)
                runs.append(root_cost(size, args.root_lots))
                gc.collect()
        finally:
            gc.enable()
            os.sched_setaffinity(0, before)
        for r in runs:
            n = int(r["records"])
            print(
                f"state root at {n:>9,} records: {r['root_us_per_tx']:.1f} µs per transaction "
                f"(medians by type; mean {r['root_mean_us_per_tx']:.1f}; "
                f"{r['leaves_per_tx']:.2f} leaves, {r['hashes_per_tx']:.1f} hashes) = "
                f"{r['root_us_per_tx'] * raw / 1e6:.2f} raw verifications"
            )
            out[f"root_us_per_tx_{n}"] = round(r["root_us_per_tx"], 2)
            out[f"root_mean_us_per_tx_{n}"] = round(r["root_mean_us_per_tx"], 2)
            out[f"root_hashes_per_tx_{n}"] = round(r["hashes_per_tx"], 2)
        if len(runs) >= 2:
            ratio = runs[-1]["root_us_per_tx"] / runs[0]["root_us_per_tx"]
            hashes = runs[-1]["hashes_per_tx"] / runs[0]["hashes_per_tx"]
            mean = runs[-1]["root_mean_us_per_tx"] / runs[0]["root_mean_us_per_tx"]
            out["ratio_root_us_per_tx"] = round(ratio, 3)
            out["ratio_root_mean_us_per_tx"] = round(mean, 3)
            out["ratio_root_hashes_per_tx"] = round(hashes, 3)
            print(
                f"state root per transaction, {int(runs[-1]['records']):,} / "
                f"{int(runs[0]['records']):,} records: {ratio:.2f} x time (medians by type; mean "
                f"{mean:.2f} x), {hashes:.2f} x "
                f"hashes (target <= {GROWTH_TARGET}: {verdict(ratio <= GROWTH_TARGET)})"
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
