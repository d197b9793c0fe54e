"""`pharmasync demo`: a guided run of what PharmaSync does, on this machine alone.

Until the cloud ledger lands, this is the foundation tour: boxes sign readings, a gateway
seals them into chained Merkle batches, and one reading is proved to be in its batch,
the way an auditor would check it. Nothing needs a network, a broker or a database.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time

from device import reading, schnorr
from device.cli import positive_int
from gateway import batch, merkle

BOXES = (
    ("cold room A", 5.0),  # a healthy 2-8 C room
    ("cold room B", 4.5),
    ("cold room C (compressor failing)", 5.0),  # drifts up out of range
)
INTERVAL_S = 60


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` command to the top-level parser."""
    parser = subparsers.add_parser(
        "demo",
        help="run the PharmaSync demo (foundation tour for now)",
        description="Sign a day of readings from three boxes, seal them into signed, chained "
        "Merkle batches and prove one reading's inclusion offline.",
    )
    parser.add_argument(
        "--hours", type=positive_int, default=24, help="hours of readings per box (default 24)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=1024, help="readings per batch (default 1024)"
    )
    parser.set_defaults(handler=run)


def _temperature(profile_c: float, box: int, minute: int, total: int) -> int:
    """Centi-degrees for a simple cold-room curve; box 2 drifts to ~15 C over the run."""
    wave = 0.8 * math.sin(minute / 37.0 + box)
    drift = 10.0 * minute / total if box == 2 else 0.0
    return round((profile_c + wave + drift) * 100)


def run(args: argparse.Namespace) -> int:
    """Run the foundation tour and print what happens at each step."""
    print("PharmaSync demo: foundation tour (signatures, readings, Merkle batches, proofs).")
    print("The full demo (cloud ledger, MQTT broker, gateway, simulated boxes) arrives with")
    print("the cloud issue; today this shows the pieces everything else is built on.\n")
    print(f"signature backend: {schnorr.BACKEND}")

    secrets = [os.urandom(32) for _ in BOXES]
    gateway_secret = os.urandom(32)
    per_box = args.hours * 60 * 60 // INTERVAL_S
    start = int(time.time()) - per_box * INTERVAL_S

    t0 = time.perf_counter()
    wire: list[bytes] = []
    excursions = 0
    for minute in range(per_box):
        for box, (_, profile) in enumerate(BOXES):
            centi = _temperature(profile, box, minute, per_box)
            excursions += not 200 <= centi <= 800
            wire.append(
                reading.sign(secrets[box], minute, start + minute * INTERVAL_S, centi, 4500)
            )
    signing = time.perf_counter() - t0
    print(
        f"signed {len(wire):,} readings from {len(BOXES)} boxes in {signing:.2f} s "
        f"({len(wire) / signing:,.0f}/s); {excursions:,} outside 2-8 C"
    )

    t0 = time.perf_counter()
    bad = sum(not reading.verify(w) for w in wire)
    print(f"verified every reading's signature in {time.perf_counter() - t0:.2f} s: {bad} bad")

    headers: list[batch.BatchHeader] = []
    prev = batch.GENESIS_PREV
    for seq, lo in enumerate(range(0, len(wire), args.batch_size)):
        header = batch.seal(gateway_secret, seq, prev, wire[lo : lo + args.batch_size])
        headers.append(header)
        prev = header.hash()
    print(
        f"sealed {len(headers)} batch{'es' if len(headers) != 1 else ''} of up to "
        f"{args.batch_size} readings, each signed "
        "by the gateway and chained to the one before"
    )

    # Prove one reading of the failing room, as an auditor would: offline, public keys only.
    index = len(wire) - 1
    which, at = divmod(index, args.batch_size)
    leaves = wire[which * args.batch_size : (which + 1) * args.batch_size]
    proof = merkle.inclusion_proof(leaves, at)
    header = headers[which]
    sample = reading.decode(wire[index])
    print(
        f"\nproof for the last reading of '{BOXES[2][0]}' "
        f"(seq {sample.seq}, {sample.temperature / 100:.2f} C):"
    )
    print(f"  reading signature valid      : {reading.verify(wire[index])}")
    merkle.verify_inclusion(wire[index], at, header.count, proof, header.merkle_root)
    print(
        f"  in batch {header.seq} at leaf {at} of {header.count}: inclusion proof of "
        f"{len(proof)} hashes checks against root {header.merkle_root.hex()[:16]}..."
    )
    print(f"  batch header signature valid : {header.verify_signature()}")
    chain_ok = all(h.prev_hash == p.hash() for p, h in itertools.pairwise(headers))
    print(f"  batch chain unbroken         : {chain_ok}")
    print(
        "\nNext: `pharmasync device inspect HEX` decodes any reading; "
        "`pharmasync gateway inspect-batch HEX` any header. Sample reading:"
    )
    print(f"  {wire[index].hex()}")
    return 0
