"""Benchmark RFC 6962 Merkle trees at gateway scale: 1,000,000 readings.

Run: .venv/bin/python bench/merkle.py [--leaves N] [--samples K] [--repeat R]

Measures, in one process:
- the root of N 110-byte leaves (the size of a PharmaSync reading) with `gateway.merkle.root`,
  and building a `MerkleTree` (which also keeps every level);
- the raw SHA-256 rate over the same 2N - 1 inputs, pre-built (N of 1 + 110 bytes, N - 1 of
  1 + 32 + 32 bytes) and hashed in a tight loop, and the ratio of the two rates;
- microseconds per inclusion proof, per inclusion verification, per consistency proof and
  per consistency verification, averaged over K random indices / old sizes.

Prints human-readable lines, then ends with exactly one line of JSON holding every figure.
Timings take the best of R runs (the least disturbed by the rest of the machine).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from ssl import OPENSSL_VERSION
from typing import Any

# Run as a script, bench/ comes first on sys.path and bench/device.py would shadow the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device import reading
from gateway import merkle
from gateway.rfc6962 import LEAF_PREFIX_BYTES, NODE_PREFIX_BYTES

# Bytes in one signed PharmaSync reading: a batch tree's leaf input.
READING_SIZE = reading.SIZE


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """Return (fastest wall time in seconds, last result) of `repeat` calls of `run`."""
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        result = None  # Free the previous result before timing the next run.
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def raw_sha256(inputs: list[bytes]) -> list[bytes]:
    """Hash pre-built inputs in a tight loop, keeping the digests as tree building does."""
    sha = sha256
    return [sha(data).digest() for data in inputs]


def time_raw_sha256(leaves: list[bytes], rng: random.Random, repeat: int) -> float:
    """Best time to hash the tree's 2n - 1 SHA-256 inputs, pre-built, in a tight loop."""
    # The same byte lengths as the tree hashes: n leaf inputs, n - 1 node inputs.
    inputs = [LEAF_PREFIX_BYTES + leaf for leaf in leaves]
    inputs += [NODE_PREFIX_BYTES + rng.randbytes(64) for _ in range(len(leaves) - 1)]
    seconds, _ = best_of(repeat, lambda: raw_sha256(inputs))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--leaf-bytes", type=int, default=READING_SIZE)
    args = parser.parse_args()
    n: int = args.leaves
    samples: int = args.samples
    leaf_bytes: int = args.leaf_bytes
    rng = random.Random(6962)

    # Random-ish readings; a fresh blob per leaf so no two leaves share a buffer.
    leaves = [rng.randbytes(leaf_bytes) for _ in range(n)]

    raw_s = time_raw_sha256(leaves, rng, args.repeat)
    root_s, root = best_of(args.repeat, lambda: merkle.root(leaves))
    build_s, tree = best_of(args.repeat, lambda: merkle.MerkleTree(leaves))
    assert tree.root() == root

    raw_rate = (2 * n - 1) / raw_s  # SHA-256 inputs per second
    # Express the raw rate in leaves/s too: a tree over n leaves needs 2n - 1 hashes.
    raw_leaves_rate = n / raw_s
    root_rate = n / root_s
    build_rate = n / build_s
    ratio = root_rate / raw_leaves_rate
    build_ratio = build_rate / raw_leaves_rate

    print(f"leaves: {n:,} x {leaf_bytes} bytes; best of {args.repeat} runs")
    print(f"python {platform.python_version()}, {OPENSSL_VERSION}")
    print(
        f"raw SHA-256 over the same {2 * n - 1:,} inputs: {raw_s:.3f} s = {raw_rate:,.0f} hashes/s "
        f"= {raw_leaves_rate:,.0f} leaves/s"
    )
    print(f"merkle.root:      {root_s:.3f} s = {root_rate:,.0f} leaves/s, {ratio:.1%} of raw")
    print(
        f"MerkleTree build: {build_s:.3f} s = {build_rate:,.0f} leaves/s, {build_ratio:.1%} of raw"
    )

    indices = [rng.randrange(n) for _ in range(samples)]
    start = time.perf_counter()
    proofs = [tree.inclusion_proof(i) for i in indices]
    incl_us = (time.perf_counter() - start) / samples * 1e6
    start = time.perf_counter()
    for i, proof in zip(indices, proofs, strict=True):
        merkle.verify_inclusion(leaves[i], i, n, proof, root)
    verify_us = (time.perf_counter() - start) / samples * 1e6
    print(
        f"inclusion proof:   {incl_us:.2f} us (average of {samples:,} random leaves, "
        f"{sum(map(len, proofs)) / samples:.1f} hashes each)"
    )
    print(f"inclusion verify:  {verify_us:.2f} us (leaf hashing included)")

    # Proofs in earlier trees: random size m, random leaf below it (the log serving an old
    # checkpoint). These hash the incomplete right edge of the smaller tree.
    pairs = [(rng.randrange(m), m) for m in (rng.randrange(1, n + 1) for _ in range(samples))]
    start = time.perf_counter()
    for i, m in pairs:
        tree.inclusion_proof(i, m)
    old_incl_us = (time.perf_counter() - start) / samples * 1e6
    print(f"inclusion proof in an earlier size: {old_incl_us:.2f} us")

    old_sizes = [rng.randrange(1, n) for _ in range(samples)]
    start = time.perf_counter()
    old_roots = [tree.root(m) for m in old_sizes]
    old_root_us = (time.perf_counter() - start) / samples * 1e6
    start = time.perf_counter()
    cons = [tree.consistency_proof(m) for m in old_sizes]
    cons_us = (time.perf_counter() - start) / samples * 1e6
    start = time.perf_counter()
    for m, old_root, proof in zip(old_sizes, old_roots, cons, strict=True):
        merkle.verify_consistency(m, n, old_root, root, proof)
    cons_verify_us = (time.perf_counter() - start) / samples * 1e6
    print(f"root of an earlier size: {old_root_us:.2f} us")
    print(
        f"consistency proof: {cons_us:.2f} us (average of {samples:,} random old sizes, "
        f"{sum(map(len, cons)) / samples:.1f} hashes each)"
    )
    print(f"consistency verify: {cons_verify_us:.2f} us")

    figures = {
        "leaves": n,
        "leaf_bytes": leaf_bytes,
        "python": platform.python_version(),
        "raw_sha256_hashes_per_s": round(raw_rate),
        "raw_sha256_leaves_per_s": round(raw_leaves_rate),
        "root_leaves_per_s": round(root_rate),
        "root_ratio_to_raw": round(ratio, 4),
        "tree_build_leaves_per_s": round(build_rate),
        "tree_build_ratio_to_raw": round(build_ratio, 4),
        "inclusion_proof_us": round(incl_us, 3),
        "inclusion_verify_us": round(verify_us, 3),
        "inclusion_proof_earlier_size_us": round(old_incl_us, 3),
        "root_earlier_size_us": round(old_root_us, 3),
        "consistency_proof_us": round(cons_us, 3),
        "consistency_verify_us": round(cons_verify_us, 3),
        "samples": samples,
        "root": root.hex(),
    }
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
