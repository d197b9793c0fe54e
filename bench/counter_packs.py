"""Benchmark the pharmacy counter (issue 12): serialized packs registered and verified.

Run: .venv/bin/python bench/counter.py [--serials 10000000] [--samples 1000] [--no-pg | --no-sqlite]
                                       [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Packs part (`packs_part`), on SQLite then PostgreSQL (a throwaway database), each against
`pharmasync cloud serve` as its own process:

1. Registering 100,000 serials: the manufacturer's lots/serialize of 100,000 AI 21 serials
   (10 characters each, ~1.3 MB on the wire) POSTed to /v1/tx and applied with full
   verification (bounded parse, canonical check, BIP-340, the uniqueness rule against every
   serial already registered, the registration's Merkle root, its 0x03 and 0x04 entries and
   body committed): seconds from the request to its 201 (signing excluded). Target <= 5 s.
   Repeated, one lot of 100,000 after another, until --serials are registered (10,000,000:
   100 registrations); the first, median and last registration are reported, the building's
   total time and the server's resident memory after it (VmRSS of the process).
2. Pack verification at the counter with --serials registered: a pharmacy signs in and POSTs
   /v1/packs/verify --samples times in a row for random registered serials (with the label's
   lot and expiry): p50 and p99 over HTTP and the server's CPU time per request, which a
   loaded machine does not inflate as it does the latency. Target p99 <= 10 ms.

Ratios to ceilings measured in the same run: registration's median seconds against the bare
cost of its bytes (SHA-256 over the wire, the tagged hash of the canonical body, one raw
BIP-340 verification, the RFC 6962 tree of its sorted serials: `register_ceiling_s`), and a
verification's server CPU time against one raw BIP-340 verification (bench/crypto.py
raw_verify_rate). A ratio is ceiling / cost:
1 would be the path doing nothing but that.

Prints human-readable lines, then exactly one line of JSON with every figure. The machine is
shared while this runs: say so beside the figures.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # bench/device.py would shadow the package otherwise

import aiohttp  # noqa: E402
from crypto import per_second, raw_verify_rate  # noqa: E402  (bench/crypto.py)

from cloud.contracts import didkey, tx  # noqa: E402
from device import schnorr  # noqa: E402
from gateway import merkle  # noqa: E402


def _bench_module(name: str) -> Any:
    """bench/<name>.py as a module (bench/cloud.py's name would shadow the package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "bench"))  # bench/lots.py imports bench/crypto.py
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "bench"))
    return module


LOTS = _bench_module("lots")  # start_server, sign_in, key, p99, _cpu_seconds, PROFILE, GTIN
PER_REGISTRATION = 100_000
REGISTER_TARGET_S = 5.0
VERIFY_TARGET_MS = 10.0
PHARMACY = LOTS.key("P")
EXPIRY = "271200"


def serials_of(lot: int) -> list[str]:
    """The 100,000 serials of lot number `lot`: S + 3-digit lot + 6-digit pack."""
    return [f"S{lot:03d}{i:06d}" for i in range(PER_REGISTRATION)]


def _rss_mb(pid: int) -> float:
    """The process's resident memory (VmRSS), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _post(http: aiohttp.ClientSession, url: str, signed: tx.SignedTx) -> float:
    """POST one transaction; return the seconds to its 201 (SystemExit otherwise)."""
    data = signed.to_wire()
    started = time.perf_counter()
    async with http.post(
        f"{url}/v1/tx", data=data, headers={"Content-Type": "application/json"}
    ) as r:
        if r.status != 201:
            raise SystemExit(f"error: {signed.body.type} refused: {r.status} {await r.text()}")
    return time.perf_counter() - started


def register_ceiling_s(signed: tx.SignedTx, repeat: int = 3) -> float:
    """The least a registration of these bytes costs (best of `repeat`): SHA-256 over its
    wire bytes, the tagged hash of its canonical body, one raw BIP-340 verification, and the
    RFC 6962 tree of its serials (sorted), the hashing its root cannot do without."""
    wire, canonical = signed.to_wire(), signed.body.canonical
    tag = hashlib.sha256(tx.TAG).digest()
    leaves = sorted(s.encode() for s in signed.body.args["serials"])

    def bare() -> None:
        hashlib.sha256(wire).digest()
        message = hashlib.sha256(tag + tag + canonical).digest()
        assert schnorr.coincurve_verify(signed.signer_xonly, message, signed.sig)
        merkle.root(leaves)

    return 1 / per_second(repeat, 1, bare)


async def _admit(http: aiohttp.ClientSession, url: str) -> None:
    await LOTS.post(http, url, LOTS.admissions()[0])  # the manufacturer
    args = {
        "did": didkey.from_secret(PHARMACY),
        "role": "pharmacy",
        "name": "P",
        "region": "DE",
        "licence": {"number": "L-P", "issuer": "BfArM"},
    }
    await LOTS.post(http, url, tx.make("participants", "admit", args, LOTS.REGULATOR))


async def packs_run(data: Path, dsn: str | None, total: int, samples: int) -> dict[str, Any]:
    """Parts 1 and 2 on one engine (module docstring)."""
    server, url = await LOTS.start_server(data, dsn)
    out: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
            await _admit(http, url)
            registrations = max(1, total // PER_REGISTRATION)
            spent: list[float] = []
            built = time.perf_counter()
            for lot in range(registrations):
                commission = {"gtin": LOTS.GTIN, "lot": f"L{lot}", "expiry": EXPIRY}
                commission |= {
                    "quantity": PER_REGISTRATION,
                    "unit": "pack",
                    "profile": LOTS.PROFILE,
                }
                await LOTS.post(http, url, tx.make("lots", "commission", commission, LOTS.MAKER))
                args = {"gtin": LOTS.GTIN, "lot": f"L{lot}", "serials": serials_of(lot)}
                signed = tx.make("lots", "serialize", args, LOTS.MAKER)
                if lot == 0:
                    out["register_ceiling_s"] = round(register_ceiling_s(signed), 4)
                spent.append(await _post(http, url, signed))
                if lot % 10 == 0 or lot == registrations - 1:
                    print(
                        f"  {(lot + 1) * PER_REGISTRATION:>11,} serials registered; this "
                        f"100,000 in {spent[-1]:.2f} s; server RSS {_rss_mb(server.pid):,.0f} MB",
                        flush=True,
                    )
            out["registrations"] = registrations
            out["serials"] = registrations * PER_REGISTRATION
            out["register_100k_first_s"] = round(spent[0], 3)
            out["register_100k_median_s"] = round(statistics.median(spent), 3)
            out["register_100k_last_s"] = round(spent[-1], 3)
            out["register_100k_max_s"] = round(max(spent), 3)
            out["build_s"] = round(time.perf_counter() - built, 1)
            out["server_rss_mb"] = round(_rss_mb(server.pid))
            headers = await LOTS.sign_in(http, url, PHARMACY)
            rng = random.Random(12)
            bodies = []
            for _ in range(samples + 10):
                lot = rng.randrange(registrations)
                serial = f"S{lot:03d}{rng.randrange(PER_REGISTRATION):06d}"
                body = {"gtin": LOTS.GTIN, "serial": serial, "lot": f"L{lot}", "expiry": EXPIRY}
                bodies.append(json.dumps(body).encode())
            times, cpu = [], 0.0
            for n, body in enumerate(bodies):
                if n == 10:
                    cpu = LOTS._cpu_seconds(server.pid)
                started = time.perf_counter()
                async with http.post(f"{url}/v1/packs/verify", data=body, headers=headers) as r:
                    answer = await r.json()
                    if r.status != 200 or answer["verdict"] != "authentic":
                        raise SystemExit(f"error: verify: {r.status} {answer}")
                if n >= 10:
                    times.append(time.perf_counter() - started)
            out["verify_p50_ms"] = round(statistics.median(times) * 1000, 2)
            out["verify_p99_ms"] = round(LOTS.p99(times), 2)
            out["verify_server_cpu_ms"] = round(
                (LOTS._cpu_seconds(server.pid) - cpu) / samples * 1000, 2
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    # Ratios to same-run ceilings: registration's median time to the bare hashing and
    # verification of its bytes; a verification's server CPU time to one raw verification.
    raw_ms = 1000 / raw_verify_rate(3)
    out["raw_verify_ms"] = round(raw_ms, 4)
    out["register_ratio_to_ceiling"] = round(
        out["register_ceiling_s"] / out["register_100k_median_s"], 4
    )
    out["verify_ratio_to_raw_verify"] = round(raw_ms / out["verify_server_cpu_ms"], 4)
    return out


def packs_part(
    total: int, samples: int, pg_server: str | None, sqlite: bool = True
) -> dict[str, Any]:
    """The packs part on SQLite (unless not `sqlite`) and (unless pg_server is None or
    unusable) PostgreSQL."""
    engines: list[tuple[str, str | None]] = [("sqlite", None)] if sqlite else []
    helpers = _bench_module("cloud")
    pg = None if pg_server is None else helpers.pg_database(pg_server)
    if pg is not None:
        engines.append(("postgres", pg[0]))
    out: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for engine, dsn in engines:
                print(f"packs on {engine}: registering {total:,} serials", flush=True)
                got = asyncio.run(packs_run(Path(tmp) / engine, dsn, total, samples))
                out[engine] = got
                ok = got["register_100k_median_s"] <= REGISTER_TARGET_S
                print(
                    f"{engine}: 100,000 serials registered in {got['register_100k_first_s']} s "
                    f"(first), {got['register_100k_median_s']} s (median), "
                    f"{got['register_100k_max_s']} s (max) — target <= {REGISTER_TARGET_S} s: "
                    f"{'met' if ok else 'MISSED'}; {got['register_ratio_to_ceiling']:.4f} x the "
                    f"ceiling (SHA-256 of its bytes and of its serials' tree + one raw "
                    f"BIP-340 verification: {got['register_ceiling_s'] * 1e3:.1f} ms)"
                )
                print(
                    f"{engine}: {got['serials']:,} serials built in {got['build_s']} s; server "
                    f"RSS {got['server_rss_mb']:,} MB"
                )
                ok = got["verify_p99_ms"] <= VERIFY_TARGET_MS
                print(
                    f"{engine}: verify p50 {got['verify_p50_ms']} ms, p99 {got['verify_p99_ms']} "
                    f"ms (server CPU {got['verify_server_cpu_ms']} ms/request) — target p99 <= "
                    f"{VERIFY_TARGET_MS} ms: {'met' if ok else 'MISSED'}; server CPU "
                    f"{got['verify_ratio_to_raw_verify']:.3f} x the ceiling (one raw BIP-340 "
                    f"verification, {got['raw_verify_ms'] * 1e3:.0f} µs)",
                    flush=True,
                )
    finally:
        if pg is not None and pg_server is not None:
            helpers.pg_execute(pg_server, f'DROP DATABASE IF EXISTS "{pg[1]}"')
    return out
