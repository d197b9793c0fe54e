"""Benchmark the pharmacy counter and the lot for partners (issue 12): every figure of its
benchmark line, one part each, run in turn.

Run: .venv/bin/python bench/counter.py [--parts scans,packs,proof,resolver,epcis] [options]

Parts (each in its own module beside this one, which says exactly what it measures):

  scans     bench/counter_scans.py   the GS1 element-string and Digital Link parsers over
                                     realistic scans (target: element strings >= 100,000/s)
  packs     bench/counter_packs.py   registering 100,000 serials over HTTP (target <= 5 s) and
                                     a pack's verification at the counter with --serials
                                     registered (target p99 <= 10 ms), SQLite and PostgreSQL
  proof     bench/counter_proof.py   the public proof bundle's size (target <= 4 KB) and its
                                     offline check (target <= 20 ms)
  resolver  bench/counter_proof.py   GET /01/{gtin}/10/{lot} over HTTP: p50, p99, server CPU
  epcis     bench/counter_epcis.py   the EPCIS export of a lot with --readings readings and
                                     --epcis-serials packs (target <= 1 s), and a query
                                     naming no lot

Every part also prints its ratio to a ceiling measured in the same run (the parser's to a
trivial split of the same strings, registration's and verification's to raw hashing and
BIP-340 verification, the offline check's to raw Ed25519 verification of its signatures,
the export's to json.dumps of the same document): see each module.

The default runs every part; `packs` registers 10,000,000 serials (about two minutes per
engine on an idle machine). The load average is printed at the start and the end: figures
taken while the machine is busy say so. Prints each part's lines, then exactly one line of
JSON holding every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the parts' modules

import counter_epcis
import counter_packs
import counter_proof
import counter_scans

PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg(args: argparse.Namespace) -> str | None:
    return None if args.no_pg else args.pg


def part_packs(args: argparse.Namespace) -> dict[str, Any]:
    return counter_packs.packs_part(
        args.serials, args.verify_samples, _pg(args), not args.no_sqlite
    )


def part_proof(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.records.split(",")]
    return counter_proof.part_proof(sizes, args.log_size, args.check_repeat)


def part_resolver(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        return counter_proof.part_resolver(Path(tmp), _pg(args), args.lots, args.resolver_samples)


def part_epcis(args: argparse.Namespace) -> dict[str, Any]:
    figures = counter_epcis.epcis_export(args.readings, args.export_repeat, args.epcis_serials)
    figures |= counter_epcis.epcis_query_every_lot(args.query_lots, min(args.export_repeat, 5))
    met = "met" if figures["epcis_export_met"] else "NOT met"
    print(
        f"EPCIS export of a lot with {figures['epcis_readings']:,} readings and "
        f"{figures['epcis_serials']:,} serialized packs: "
        f"{figures['epcis_events']} events, {figures['epcis_document_bytes']:,} bytes; "
        f"median {figures['epcis_export_median_s'] * 1e3:.1f} ms, "
        f"max {figures['epcis_export_max_s'] * 1e3:.1f} ms of {args.export_repeat} "
        f"(target <= {counter_epcis.TARGET_EXPORT_S:g} s: {met}); "
        f"{figures['epcis_export_ratio_to_ceiling']:.3f} x the ceiling (json.dumps of the same "
        f"document, median {figures['epcis_ceiling_dumps_median_s'] * 1e3:.1f} ms)"
    )
    print(
        f"EPCIS query without MATCH_ over {figures['epcis_query_lots']:,} lots (every lot's "
        f"events built): median {figures['epcis_query_every_lot_median_s'] * 1e3:.1f} ms"
    )
    return figures


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "scans": counter_scans.part_scans,
    "packs": part_packs,
    "proof": part_proof,
    "resolver": part_resolver,
    "epcis": part_epcis,
}


def arguments() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--parts", default=",".join(PARTS), help="some of: " + ", ".join(PARTS))
    p.add_argument("--pg", default=PG, help="PostgreSQL server (a throwaway database is used)")
    p.add_argument("--no-pg", action="store_true", help="SQLite only")
    p.add_argument("--no-sqlite", action="store_true", help="packs: PostgreSQL only")
    p.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    p.add_argument("--scans", type=int, default=20_000, help="scans: scans in each corpus")
    p.add_argument("--scan-repeat", type=int, default=5, help="scans: runs per figure (best)")
    p.add_argument("--serials", type=int, default=10_000_000, help="packs: serials registered")
    p.add_argument("--verify-samples", type=int, default=1000, help="packs: verifications timed")
    p.add_argument("--records", default="10000,1000000", help="proof: records in the state tree")
    p.add_argument("--log-size", type=int, default=10_000_000, help="proof: entries in the log")
    p.add_argument("--check-repeat", type=int, default=200, help="proof: offline checks timed")
    p.add_argument("--lots", type=int, default=200, help="resolver: lots on its ledger")
    p.add_argument("--resolver-samples", type=int, default=300, help="resolver: GETs timed each")
    p.add_argument("--readings", type=int, default=100_000, help="epcis: readings on the lot")
    p.add_argument("--epcis-serials", type=int, default=100_000, help="epcis: packs on the lot")
    p.add_argument("--export-repeat", type=int, default=20, help="epcis: exports timed")
    p.add_argument("--query-lots", type=int, default=1000, help="epcis: lots of the open query")
    return p


def main() -> None:
    args = arguments().parse_args()
    parts = args.parts.split(",")
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(f"error: unknown parts {sorted(unknown)}; want some of {', '.join(PARTS)}")
    load = os.getloadavg()[0]
    print(f"CPython {platform.python_version()}, load average {load:.2f} at the start")
    out: dict[str, Any] = {"python": platform.python_version(), "load_average_start": load}
    for name in parts:
        print(f"-- {name}", flush=True)
        out[name] = PARTS[name](args)
    out["load_average_end"] = os.getloadavg()[0]
    print(f"load average {out['load_average_end']:.2f} at the end")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
