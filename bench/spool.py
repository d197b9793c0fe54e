"""The spool alone: CPU per reading of commits and seals as the gateway drives them.

    python bench/spool.py [--readings 60000] [--boxes 100] [--group 1000] [--migrate 0]

Readings interleaved across boxes (each box's seqs in order, as bench/gateway.py makes
them) are committed in groups of --group (the gateway's commit groups: ~1,000 with the
verify pool's groups, bench/RESULTS.md) and sealed in batches of 1,024 whenever that many
wait; the figures are the calling thread's CPU time (robust to load), split into commit
and seal, and the spool's bytes in use per reading. The wires are random bytes of the
right length: the spool checks no signature. With --migrate N it instead writes a
version-1 spool of N readings (tests/vectors/spool-v1.json's layout, through plain SQL)
and times opening it, which rewrites it to the current layout.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crypto import raw_verify_rate  # bench/crypto.py, beside this file

from gateway.spool import Accepted, Spool

SEAL_READINGS = 1024
GATEWAY = bytes(31) + b"\x01"


def readings(n: int, boxes: int) -> list[Accepted]:
    keys = [os.urandom(32) for _ in range(boxes)]
    now, per_box = int(time.time()), n // boxes
    return [
        Accepted(keys[b], seq, b"\x01" + keys[b] + os.urandom(77), now - per_box + seq, now)
        for seq in range(per_box)
        for b in range(boxes)
    ]


def run(n: int, boxes: int, group: int) -> None:
    accepted = readings(n, boxes)
    with tempfile.TemporaryDirectory() as d:
        spool = Spool(Path(d) / "spool.sqlite")
        commit_s = seal_s = 0.0
        for i in range(0, len(accepted), group):
            t = time.thread_time()
            spool.commit(accepted[i : i + group])
            commit_s += time.thread_time() - t
            t = time.thread_time()
            while spool.unsealed()[0] >= SEAL_READINGS:
                spool.seal(GATEWAY, SEAL_READINGS)
            seal_s += time.thread_time() - t
        t = time.thread_time()
        while spool.unsealed()[0]:
            spool.seal(GATEWAY, SEAL_READINGS)
        seal_s += time.thread_time() - t
        size = spool.size_bytes()
        spool.close()
    k = len(accepted)
    per_reading_us = (commit_s + seal_s) / k * 1e6
    raw_us = 1e6 / raw_verify_rate(repeat=3)  # the pipeline's ceiling: one raw verification
    print(
        f"{k:,} readings, {boxes} boxes, groups of {group}: commit {commit_s / k * 1e6:.2f} "
        f"+ seal {seal_s / k * 1e6:.2f} = {per_reading_us:.2f} us CPU per reading "
        f"= {per_reading_us / raw_us:.2f} x one raw BIP-340 verification ({raw_us:.1f} us, "
        f"same run); {size / k:.0f} bytes per reading in use"
    )


V1_SCHEMA = """
CREATE TABLE readings (id INTEGER PRIMARY KEY, box BLOB NOT NULL, seq INTEGER NOT NULL,
    wire BLOB NOT NULL, box_time INTEGER NOT NULL, gateway_time REAL NOT NULL, batch INTEGER,
    UNIQUE (box, seq));
CREATE INDEX readings_unsealed ON readings (id) WHERE batch IS NULL;
CREATE INDEX readings_batch ON readings (batch);
CREATE TABLE boxes (box BLOB PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE batches (seq INTEGER PRIMARY KEY, header BLOB NOT NULL, count INTEGER NOT NULL,
    sealed_at REAL NOT NULL, sent_at REAL, receipt TEXT);
"""


def migrate(n: int, boxes: int) -> None:
    """Time opening a version-1 spool of n readings, all sealed but the last 1,000 (the
    headers are placeholders: the migration reads only counts and ids)."""
    accepted = readings(n, boxes)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "spool.sqlite"
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(V1_SCHEMA)
        db.execute("BEGIN")
        sealed = max(0, n - 1000) // SEAL_READINGS * SEAL_READINGS
        db.executemany(
            "INSERT INTO readings (id, box, seq, wire, box_time, gateway_time, batch) "
            "VALUES (?,?,?,?,?,?,?)",
            [
                (i + 1, *a, i // SEAL_READINGS if i < sealed else None)
                for i, a in enumerate(accepted)
            ],
        )
        db.executemany("INSERT INTO boxes VALUES (?, ?)", {a.box: a.seq for a in accepted}.items())
        db.executemany(
            "INSERT INTO batches (seq, header, count, sealed_at) VALUES (?, ?, ?, ?)",
            [(s, bytes(181), SEAL_READINGS, 0.0) for s in range(sealed // SEAL_READINGS)],
        )
        db.execute("COMMIT")
        db.close()
        t, cpu = time.perf_counter(), time.process_time()
        spool = Spool(path)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        assert spool.unsealed()[0] == len(accepted) - sealed
        spool.close()
    print(
        f"opening a version-1 spool of {len(accepted):,} readings: {wall:.1f} s ({cpu:.1f} s CPU)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=60_000)
    ap.add_argument("--boxes", type=int, default=100)
    ap.add_argument("--group", type=int, default=1000)
    ap.add_argument("--migrate", type=int, default=0, metavar="N")
    args = ap.parse_args()
    if args.migrate:
        migrate(args.migrate, args.boxes)
    else:
        run(args.readings, args.boxes, args.group)


if __name__ == "__main__":
    main()
