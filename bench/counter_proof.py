"""Benchmark the pharmacy counter (issue 12): the public check's proof bundle and resolver.

Run: .venv/bin/python bench/counter.py --parts proof,resolver [--records 10000,1000000]
            [--log-size 10000000] [--check-repeat 200] [--lots 200] [--resolver-samples 300]
            [--no-pg]

Part "proof" (pure, no server): a contract State whose tree holds --records records (random
filler records beside one real lot's public records: lot, quality, recall absent, cold chain
absent), its root in a 0x04 entry that is the last of a log of --log-size entries (the
inclusion proof's hashes drawn at random and the log's root computed from them, so the
proof is real for that root), a checkpoint of exactly that size signed by a fresh log key
and stamped with its own cosignature: the bundle the resolver serves
(cloud/contracts/public_proof.py, bytes version 3: the lot's records under grouped keys,
the proofs sharing their top siblings).
Then the same for a pack of that lot: its registration (one of 100,000 serials: the
serial's RFC 6962 path in the registration's root) and its pack record, absent (active in
its lot) and present (dispensed). Prints each bundle's size in bytes (target <= 4 KB for a
pack's) and the offline check's time (cloud/audit/public_check.verify_public: every
signature, proof and key recomputed, the serial's inclusion too; target <= 20 ms), best and
median of --repeat runs, and the median's ratio to a ceiling measured in the same run: the
raw Ed25519 verifications of the bundle's SIGNATURES signatures (ceiling ms / check ms).

Part "resolver": `pharmasync cloud serve` (SQLite, then PostgreSQL in a throwaway
database) with the regulator admitting a manufacturer who commissions --lots lots; then GET
/01/{gtin}/10/{lot} as JSON (facts and proof) --samples times, p50 and p99 over HTTP and the
server's CPU time per GET, each with its ratio to the same server's bare GET /healthz timed
in the same run (ceiling / resolver, for p50 and for server CPU).

The machine is shared: figures are measured under whatever load the line "load average"
shows. Prints human-readable lines, then ends with exactly one line of JSON.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/device.py would shadow the package.
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from crypto import raw_ed25519_verify_rate  # noqa: E402  (bench/crypto.py)

from cloud.audit.public_check import Scanned, verify_public  # noqa: E402
from cloud.contracts import lots, pack_facts, public_multiproof, stateroot  # noqa: E402
from cloud.contracts.engine import Record, State  # noqa: E402
from cloud.contracts.public_proof import (  # noqa: E402
    LOT_RECORDS,
    PACK_RECORDS,
    PackPart,
    PublicProof,
    proven,
)
from cloud.contracts.statetree_hash import EMPTY  # noqa: E402
from cloud.witness.client import add_cosignatures  # noqa: E402
from gateway import merkle, rfc6962  # noqa: E402
from gateway.checkpoint import Checkpoint, CosignatureSigner, sign_checkpoint  # noqa: E402
from gateway.jcs import canonicalize  # noqa: E402
from gateway.merkle_verify import inclusion_proof_size, root_from_inclusion_proof  # noqa: E402
from gateway.note import Signer  # noqa: E402

GTIN = "09506000134352"
SERIALS = 100_000  # in the pack's registration (the contract's most per transaction)
SERIAL = "PK0042424"
SIZE_TARGET = 4096  # bytes, a pack's bundle
CHECK_TARGET_MS = 20.0
# Signatures the offline check verifies: the checkpoint's (the log's Ed25519 note signature)
# and the log's own timestamped cosignature (its as-of time); both Ed25519.
SIGNATURES = 2


def ceiling_ms() -> float:
    """The offline check's same-run ceiling: SIGNATURES raw Ed25519 verifications, in ms."""
    return SIGNATURES * 1000 / raw_ed25519_verify_rate(3)


def lot_records() -> dict[str, dict[str, Any]]:
    """One lot's public records as a commission writes them (recall and cold chain absent)."""
    profile = {"low_cc": 200, "high_cc": 800, "delay_consecutive_s": 900}
    profile |= {"delay_cumulative_s": 3600, "hysteresis_cc": 50, "max_gap_s": 3600}
    profile |= {"needs_licence": 0}
    maker = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"
    lot = {"gtin": GTIN, "lot": "B0001", "expiry": "2027-12-31", "unit": "pack"}
    lot |= {"profile": profile, "manufacturer": maker, "since": 1_764_979_200_000}
    quality = {"status": "released", "source": "commission", "reason": "commission"}
    return {"lot": lot, "quality": quality | {"since": 1_764_979_200_000}}


def registration() -> tuple[dict[str, Any], PackPart]:
    """The registration record of SERIALS serials of B0001 and SERIAL's part of a bundle."""
    serials = sorted(f"PK{i:07d}" for i in range(SERIALS))
    leaves = [s.encode() for s in serials]
    at = serials.index(SERIAL)
    root = merkle.root(leaves)
    record = {"count": SERIALS, "root": root.hex(), "since": 1_764_979_200_000}
    return record, PackPart("B0001", 1, at, SERIALS, tuple(merkle.inclusion_proof(leaves, at)))


def build_state(records: int, rnd: random.Random, dispensed: bool = False) -> State:
    """A State holding `records` records: the lot's public records, its registration (and
    SERIAL's pack record if `dispensed`) and random fillers."""
    state = State()
    values = [(lots.LOT, (GTIN, "B0001"), lot_records()["lot"])]
    values.append((lots.QUALITY, (GTIN, "B0001"), lot_records()["quality"]))
    values.append((pack_facts.REGISTRATION, (GTIN, "B0001", "1"), registration()[0]))
    if dispensed:
        values.append((pack_facts.PACK, (GTIN, SERIAL), {"lot": "B0001", "status": "dispensed"}))
    for rtype, fields, value in values:
        record = Record(rtype, fields, canonicalize(value), None)
        state.records[record.key] = record
    fillers = {rnd.randbytes(32): rnd.randbytes(32) for _ in range(records - len(values))}
    state.tree.update({**fillers, **{k: r.leaf for k, r in state.records.items()}})
    return state


def bundle_for(
    state: State, log_size: int, rnd: random.Random, pack: PackPart | None = None
) -> tuple[PublicProof, str]:
    """The lot's bundle (a pack's, with `pack`: SERIAL's) against `state`'s root in the last
    entry of a log of `log_size`."""
    proofs = [(rtype, *state.prove(rtype, GTIN, "B0001")) for rtype in LOT_RECORDS]
    if pack is not None:
        proofs.append((PACK_RECORDS[0], *state.prove(PACK_RECORDS[0], GTIN, "B0001", "1")))
        proofs.append((PACK_RECORDS[1], *state.prove(PACK_RECORDS[1], GTIN, SERIAL)))
    root = state.root
    entry = stateroot.StateRoot(state.count, log_size - 2, root).encode()
    index = log_size - 1
    inclusion = [rnd.randbytes(32) for _ in range(inclusion_proof_size(index, log_size))]
    log_root = root_from_inclusion_proof(rfc6962.leaf_hash(entry), index, log_size, inclusion)
    log = Signer.generate("ledger.example/pharmasync")
    note = sign_checkpoint(Checkpoint(log.name, log_size, log_root), log)
    text = note.split("\n\n")[0] + "\n"
    stamp = CosignatureSigner(log.name, log.seed).cosign(text, int(time.time()))
    bundle = PublicProof(
        GTIN,
        "B0001",
        None if pack is None else SERIAL,
        index,
        entry,
        tuple(inclusion),
        add_cosignatures(note, [stamp]),
        tuple(proven(rtype, value, proof) for rtype, value, proof in proofs),
        pack,
    )
    return bundle, log.verifier().to_vkey()


def part_proof(sizes: list[int], log_size: int, repeat: int) -> dict[str, Any]:
    """Bundle size and offline check time at each of `sizes` records (module docstring)."""
    rnd = random.Random(12)
    ceiling = ceiling_ms()
    print(f"ceiling: {SIGNATURES} raw Ed25519 verifications, {ceiling:.3f} ms", flush=True)
    out: dict[str, Any] = {"check_ceiling_ms": round(ceiling, 4)}
    for size in sizes:
        started = time.perf_counter()
        state = build_state(size, rnd)
        built = time.perf_counter() - started
        bundle, vkey = bundle_for(state, log_size, rnd)
        data = bundle.to_bytes()
        scanned = Scanned(GTIN, "B0001")
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            report = verify_public(data, log_vkey=vkey, scanned=scanned)
            times.append((time.perf_counter() - started) * 1000)
        assert report.facts["authentic"] and report.facts["verdict"] == "dispensable"
        state_proofs = [len(r.proof.to_bytes()) for r in bundle.records]
        figures = {
            "bundle_bytes": len(data),
            "bundle_json_bytes": len(json.dumps(bundle.to_json())),
            "state_proof_bytes_whole": state_proofs,
            "inclusion_hashes": len(bundle.inclusion),
            "checkpoint_bytes": len(bundle.checkpoint.encode()),
            "check_ms_best": round(min(times), 3),
            "check_ms_median": round(statistics.median(times), 3),
            "tree_build_s": round(built, 1),
            "check_ratio_to_ceiling": round(ceiling / statistics.median(times), 4),
        }
        print(
            f"proof, {size:,} records, log of {log_size:,}: lot bundle {len(data):,} B "
            f"(JSON {figures['bundle_json_bytes']:,} B; whole state proofs {state_proofs} B, "
            f"{len(bundle.inclusion)} log hashes, "
            f"checkpoint {figures['checkpoint_bytes']} B); offline check best "
            f"{min(times):.2f} ms, median {statistics.median(times):.2f} ms, median "
            f"{figures['check_ratio_to_ceiling']:.3f} x the ceiling",
            flush=True,
        )
        figures["pack"] = pack_figures(size, log_size, repeat, rnd, ceiling)
        out[str(size)] = figures
    return out


def pack_figures(
    size: int, log_size: int, repeat: int, rnd: random.Random, ceiling: float
) -> dict[str, Any]:
    """A pack's bundle (SERIAL of SERIALS registered) at `size` records, its pack record
    absent (active) and present (dispensed): bytes, offline check time and its ratio to
    `ceiling` (ms, ceiling_ms())."""
    _, part = registration()
    out: dict[str, Any] = {}
    for dispensed in (False, True):
        bundle, vkey = bundle_for(build_state(size, rnd, dispensed), log_size, rnd, part)
        data = bundle.to_bytes()
        scanned = Scanned(GTIN, "B0001", SERIAL)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            report = verify_public(data, log_vkey=vkey, scanned=scanned)
            times.append((time.perf_counter() - started) * 1000)
        assert report.facts["serial"]["in_supply_chain"] is not dispensed
        name = "dispensed" if dispensed else "active"
        ok = len(data) <= SIZE_TARGET and min(times) <= CHECK_TARGET_MS
        out[name] = {
            "bundle_bytes": len(data),
            "shared_hashes": shared_hashes(bundle),
            "serial_path_hashes": len(part.path),
            "check_ms_best": round(min(times), 3),
            "check_ms_median": round(statistics.median(times), 3),
            "check_ratio_to_ceiling": round(ceiling / statistics.median(times), 4),
        }
        print(
            f"  pack ({name}), {size:,} records: bundle {len(data):,} B (target <= "
            f"{SIZE_TARGET}; {out[name]['shared_hashes']} sibling hashes shared, "
            f"{32 * out[name]['shared_hashes']:,} B saved; serial path {len(part.path)} hashes); "
            f"offline check best {min(times):.2f} ms, median {statistics.median(times):.2f} ms "
            f"(target <= {CHECK_TARGET_MS:g}) {'ok' if ok else 'MISSED'}; median "
            f"{out[name]['check_ratio_to_ceiling']:.3f} x the ceiling",
            flush=True,
        )
    return out


def shared_hashes(bundle: PublicProof) -> int:
    """How many non-empty sibling hashes version 2 left out of `bundle` because an earlier
    record's proof holds them (public_multiproof.shared_with)."""
    keys = [r.key(bundle.keys()) for r in bundle.records]
    depths = [r.proof.depth for r in bundle.records]
    total = 0
    for j, r in enumerate(bundle.records):
        _, s, parts = public_multiproof.shared_with(keys, depths, j)
        total += sum(1 for h in r.proof.siblings[: s + parts] if h != EMPTY)
    return total


async def resolver_p99(url: str, pid: int, lots_made: int, samples: int) -> dict[str, Any]:
    """Commission `lots_made` lots, then time the resolver's JSON answer for one of them."""
    from lots import admissions, latencies, lot_moves, p99, post  # bench/lots.py

    async with aiohttp.ClientSession() as http:
        for signed in admissions():
            await post(http, url, signed)
        for n in range(lots_made):
            await post(http, url, lot_moves(n)[0])
        target = f"{url}/01/{GTIN}/10/B{lots_made // 2}?17=271200"
        # The same-run ceiling: the same server's bare GET /healthz (one store read, a tiny
        # JSON answer), the least any GET costs over this HTTP stack.
        spent, _, cpu = await latencies(http, f"{url}/healthz", {}, samples, pid)
        floor_p50, floor_cpu = statistics.median(spent), cpu
        figures: dict[str, Any] = {
            "ceiling_healthz": {
                "p50_ms": round(floor_p50 * 1000, 2),
                "server_cpu_ms": round(floor_cpu * 1000, 3),
            }
        }
        for name, accept in (
            ("json", "application/json"),
            ("html", "text/html"),
            ("proof", "application/vnd.pharmasync.public-proof"),
        ):
            spent, size, cpu = await latencies(http, target, {"Accept": accept}, samples, pid)
            figures[name] = {
                "p50_ms": round(statistics.median(spent) * 1000, 2),
                "p99_ms": round(p99(spent), 2),
                "server_cpu_ms": round(cpu * 1000, 2),
                "bytes": size,
                "p50_ratio_to_ceiling": round(floor_p50 / statistics.median(spent), 4),
                "cpu_ratio_to_ceiling": round(floor_cpu / cpu, 4) if cpu > 0 else None,
            }
    return figures


def part_resolver(work: Path, pg: str | None, lots_made: int, samples: int) -> dict[str, Any]:
    """Resolver latency on SQLite and, with `pg`, PostgreSQL (module docstring)."""
    from lots import _bench_cloud, start_server  # bench/lots.py

    out: dict[str, Any] = {}
    helpers = _bench_cloud()
    engines: list[tuple[str, str | None]] = [("sqlite", None)]
    made = None if pg is None else helpers.pg_database(pg)
    if made is not None:
        engines.append(("postgres", made[0]))
    try:
        for engine, dsn in engines:
            server, url = asyncio.run(start_server(work / engine, dsn))
            try:
                figures = asyncio.run(resolver_p99(url, server.pid, lots_made, samples))
            finally:
                server.terminate()
                server.wait(timeout=30)
            floor = figures["ceiling_healthz"]
            print(
                f"resolver ({engine}), ceiling: GET /healthz p50 {floor['p50_ms']} ms, server "
                f"CPU {floor['server_cpu_ms']} ms/GET",
                flush=True,
            )
            for name, f in figures.items():
                if name == "ceiling_healthz":
                    continue
                print(
                    f"resolver ({engine}), {name}: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, "
                    f"server CPU {f['server_cpu_ms']} ms/GET, {f['bytes']:,} B; "
                    f"{f['p50_ratio_to_ceiling']} x the ceiling's p50, "
                    f"{f['cpu_ratio_to_ceiling']} x its CPU",
                    flush=True,
                )
            out[engine] = figures
    finally:
        if made is not None and pg is not None:
            helpers.pg_execute(pg, f'DROP DATABASE IF EXISTS "{made[1]}"')
    return out
