"""Benchmark a lot's cold chain (cloud/contracts/coldchain.py) with 100,000 readings on it.

Run: .venv/bin/python bench/coldchain.py [--readings 100000] [--repeat 3]

The lot travels three legs (M→D, D→R, R→P), each watched by two boxes reading every 60 s,
with a compressor failure (a 10-hour excursion), short door openings, a few sensor errors and
a data gap. Measures, in one process pinned to one core (so figures compare with one core's
raw BIP-340 verification, measured in the same run as bench/crypto.py does):

- applying every reading in batches of 100 (one box's, as a gateway uploads them) in time
  order, the usual case, and again with the batches in a random order (late backlog: every
  batch may land before readings already applied, so excursion windows are re-run);
- the history summary (per leg and overall: stats, MKT, excursions, gaps, quarantine) read
  right after each of the last 1,000 batches (caches cold, as a query after an upload) and
  then 1,000 times at rest: p50 and p99 (issue 11 target: p99 < 100 ms);
- that both orders give the same integer records and verdicts.

Prints human-readable lines, then ends with exactly one line of JSON holding every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/device.py would shadow the package.
sys.path.insert(0, str(REPO))

from crypto import raw_verify_rate  # noqa: E402  (bench/crypto.py)

from cloud.contracts.coldchain import LotColdChain, Reading  # noqa: E402
from gateway.alarms import AlarmProfile, LotProfile  # noqa: E402

BATCH = 100
STEP_S = 60
SUMMARY_READS = 1_000
TARGET_P99_MS = 100.0
PROFILE = LotProfile(AlarmProfile(), max_gap_s=900, needs_licence=True)
LEGS = ("M-D", "D-R", "R-P")
BOXES = ("box-1", "box-2")


def readings(total: int, rnd: random.Random) -> dict[tuple[str, str], list[Reading]]:
    """Return `total` readings split over LEGS x BOXES, in time order per (leg, box)."""
    per = total // (len(LEGS) * len(BOXES))
    out: dict[tuple[str, str], list[Reading]] = {}
    for n, leg in enumerate(LEGS):
        start = n * (per + 1000) * STEP_S
        for b, box in enumerate(BOXES):
            series: list[Reading] = []
            for i in range(per):
                t = start + i * STEP_S + b  # the two boxes read a second apart
                cc: int | None = 500 + rnd.randint(-150, 150)
                if n == 1 and b == 0 and per // 2 <= i < per // 2 + 600:
                    cc = 1200  # the compressor failure: 10 h at 12 °C
                elif i % 1440 == 700:
                    cc = 950  # a door opening, shorter than the 900-s delay
                elif i % 5000 == 4999:
                    cc = None  # a sensor error
                if n == 2 and b == 1 and per // 3 <= i < per // 3 + 20:
                    continue  # 20 minutes lost: no reading (box 1 still covers the leg)
                series.append((t, cc))
            out[(leg, box)] = series
    return out


def starts(data: dict[tuple[str, str], list[Reading]]) -> dict[str, int]:
    return {leg: min(s[0][0] for (lg, _), s in data.items() if lg == leg) for leg in LEGS}


def batches(data: dict[tuple[str, str], list[Reading]]) -> list[tuple[str, str, list[Reading]]]:
    """Each (leg, box)'s readings in batches of BATCH, interleaved in time order."""
    out = [
        (leg, box, series[i : i + BATCH])
        for (leg, box), series in data.items()
        for i in range(0, len(series), BATCH)
    ]
    return sorted(out, key=lambda b: b[2][0][0])


def apply_all(
    data: dict[tuple[str, str], list[Reading]], order: list[tuple[str, str, list[Reading]]]
) -> tuple[LotColdChain, float, list[float]]:
    """Apply `order`; return the lot, seconds spent applying, and the summary latencies (ms)
    read right after each of the last SUMMARY_READS batches."""
    lot = LotColdChain(PROFILE)
    for leg, start in starts(data).items():
        lot.open_leg(leg, start)
    applying, latencies = 0.0, []
    due = {"box-2": 10**9}
    for k, (leg, box, batch) in enumerate(order):
        t0 = time.perf_counter()
        lot.apply(leg, box, batch)
        applying += time.perf_counter() - t0
        if k >= len(order) - SUMMARY_READS:
            t0 = time.perf_counter()
            lot.summary(due)
            latencies.append((time.perf_counter() - t0) * 1e3)
    return lot, applying, latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})  # one core, as the raw verification rate
    try:
        raw = raw_verify_rate(args.repeat)
        rnd = random.Random(11)
        data = readings(args.readings, rnd)
        count = sum(len(s) for s in data.values())
        in_order = batches(data)
        shuffled = in_order[:]
        rnd.shuffle(shuffled)
        gc.collect()
        lot, in_order_s, after_batch = apply_all(data, in_order)
        late, shuffled_s, after_late = apply_all(data, shuffled)
        for leg, end in starts(data).items():
            lot.close_leg(leg, end + 10**6)
            late.close_leg(leg, end + 10**6)
        same = lot.summary() == late.summary() and all(
            lot.legs[leg].record() == late.legs[leg].record() for leg in LEGS
        )
        at_rest = []
        for _ in range(SUMMARY_READS):
            t0 = time.perf_counter()
            summary = lot.summary({"box-2": 10**9})
            at_rest.append((time.perf_counter() - t0) * 1e3)
    finally:
        os.sched_setaffinity(0, before)

    batches_n = len(in_order)
    cold_p99, rest_p99 = p99(after_batch), p99(at_rest)
    late_p99 = p99(after_late)
    verify_ms = 1e3 / raw
    print(f"CPython {platform.python_version()}, pinned to one core, load average {load:.2f}")
    print(f"raw BIP-340 verification (coincurve): {raw:,.0f}/s = {1e3 * verify_ms:.1f} µs")
    print(f"lot: {count:,} readings on {len(LEGS)} legs x {len(BOXES)} boxes, {batches_n} batches")
    for name, seconds in (("in time order", in_order_s), ("batches shuffled", shuffled_s)):
        per_batch_us = seconds * 1e6 / batches_n
        print(
            f"apply {name}: {seconds:.2f} s = {per_batch_us:,.0f} µs per batch of {BATCH}"
            f" = {per_batch_us / 1e3 / verify_ms:.1f} raw verifications;"
            f" {count / seconds:,.0f} readings/s"
        )
    for name, values, p in (
        ("after each batch (in order)", after_batch, cold_p99),
        ("after each batch (shuffled)", after_late, late_p99),
        ("at rest", at_rest, rest_p99),
    ):
        verdict = "met" if p < TARGET_P99_MS else "NOT met"
        print(
            f"summary {name}: p50 {statistics.median(values):.2f} ms, p99 {p:.2f} ms"
            f" = {p / verify_ms:.0f} raw verifications (target p99 < {TARGET_P99_MS:g} ms:"
            f" {verdict})"
        )
    print(
        f"same records and verdicts in both orders: {same};"
        f" quarantine: {summary.quarantine.reason if summary.quarantine else None}"
    )
    figures: dict[str, Any] = {
        "python": platform.python_version(),
        "pinned_to_one_core": True,
        "load_average_1min": round(load, 2),
        "raw_verify_per_s": round(raw),
        "readings": count,
        "batch": BATCH,
        "apply_in_order_s": round(in_order_s, 3),
        "apply_shuffled_s": round(shuffled_s, 3),
        "apply_in_order_us_per_batch": round(in_order_s * 1e6 / batches_n, 1),
        "apply_shuffled_us_per_batch": round(shuffled_s * 1e6 / batches_n, 1),
        "batch_in_order_per_raw_verify": round(in_order_s * 1e3 / batches_n / verify_ms, 2),
        "summary_after_batch_p50_ms": round(statistics.median(after_batch), 3),
        "summary_after_batch_p99_ms": round(cold_p99, 3),
        "summary_after_late_batch_p99_ms": round(late_p99, 3),
        "summary_at_rest_p99_ms": round(rest_p99, 3),
        "summary_p99_per_raw_verify": round(cold_p99 / verify_ms, 1),
        "same_in_both_orders": same,
        "excursions": len(summary.excursions),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
