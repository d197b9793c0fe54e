"""The ledger's SQLite storage (WAL): the embedded default. The log's entries and stored
tree nodes live here; appending is one transaction under BEGIN IMMEDIATE, which makes
whoever holds the write lock the log's single sequencer (DESIGN.md, "When one machine is
not enough"). Synchronous: the service runs it on a worker thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from cloud import tlog
from cloud.ingest import Verified

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_entries (
    idx       INTEGER PRIMARY KEY,     -- position in the log, from 0
    leaf_hash BLOB NOT NULL,           -- SHA-256(0x00 || entry)
    entry     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_entries_leaf ON log_entries (leaf_hash);
CREATE TABLE IF NOT EXISTS gateways (
    key           BLOB PRIMARY KEY,
    site          TEXT NOT NULL,
    registered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    id            INTEGER PRIMARY KEY,   -- readings refer to boxes by this small id
    key           BLOB NOT NULL UNIQUE,
    site          TEXT NOT NULL,
    label         TEXT NOT NULL,
    registered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    gateway     BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    header      BLOB NOT NULL,
    log_index   INTEGER NOT NULL,        -- the log entry carrying the header
    received_at REAL NOT NULL,
    PRIMARY KEY (gateway, seq)
);
CREATE TABLE IF NOT EXISTS readings (
    log_index INTEGER NOT NULL,          -- the batch's log entry
    leaf      INTEGER NOT NULL,          -- position in the batch's Merkle tree
    device    INTEGER NOT NULL,          -- devices.id
    seq       INTEGER NOT NULL,
    time      INTEGER NOT NULL,
    wire      BLOB NOT NULL,             -- the exact 110 signed bytes
    PRIMARY KEY (log_index, leaf)        -- every leaf of every batch: proofs need them all
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_seq ON readings (device, seq);
CREATE INDEX IF NOT EXISTS readings_time ON readings (device, time);
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
"""


class NotFound(LookupError):
    """No such entry or node; str() names it."""


class SqliteStore:
    """Log storage in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def log_size(self) -> int:
        return self.db.execute("SELECT count(*) FROM log_entries").fetchone()[0]

    def node(self, level: int, index: int) -> bytes:
        row = self.db.execute(
            "SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        if row is None:
            raise NotFound(f"log node (level {level}, index {index})")
        return row[0]

    def entry(self, index: int) -> bytes:
        row = self.db.execute("SELECT entry FROM log_entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise NotFound(f"log entry {index}")
        return row[0]

    def find_entry(self, leaf_hash: bytes) -> int | None:
        """Return the index of the entry with this leaf hash, if any."""
        row = self.db.execute(
            "SELECT min(idx) FROM log_entries WHERE leaf_hash = ?", (leaf_hash,)
        ).fetchone()
        return row[0]

    def append(self, entries: Sequence[bytes]) -> tuple[int, int]:
        """Append entries in order, with the tree nodes they complete, in one transaction.
        Return (index of the first, new log size)."""
        with self._write():
            return self._append(entries)

    def _append(self, entries: Sequence[bytes]) -> tuple[int, int]:
        size = self.log_size()
        leaves = [tlog.entry_leaf(e) for e in entries]
        self.db.executemany(
            "INSERT INTO log_entries (idx, leaf_hash, entry) VALUES (?, ?, ?)",
            [(size + i, h, e) for i, (h, e) in enumerate(zip(leaves, entries, strict=True))],
        )
        nodes = tlog.new_nodes(size, leaves, self.node)
        self.db.executemany(
            "INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)",
            [(level, idx, h) for (level, idx), h in nodes.items()],
        )
        return size, size + len(entries)

    def _write(self) -> _Write:
        return _Write(self.db)

    # -- registry --------------------------------------------------------------------

    def register_gateway(self, key: bytes, site: str) -> None:
        with self._write():
            self.db.execute(
                "INSERT OR REPLACE INTO gateways (key, site, registered_at) VALUES (?, ?, ?)",
                (key, site, time.time()),
            )

    def register_device(self, key: bytes, site: str, label: str = "") -> None:
        with self._write():
            self.db.execute(
                "INSERT INTO devices (key, site, label, registered_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET site = excluded.site, label = excluded.label",
                (key, site, label, time.time()),
            )

    def gateway_registered(self, key: bytes) -> bool:
        return (
            self.db.execute("SELECT 1 FROM gateways WHERE key = ?", (key,)).fetchone() is not None
        )

    def device_registered(self, key: bytes) -> bool:
        return self.db.execute("SELECT 1 FROM devices WHERE key = ?", (key,)).fetchone() is not None

    def devices(self) -> list[dict[str, object]]:
        """Registered boxes with the highest seq stored for each (-1 when none)."""
        rows = self.db.execute(
            "SELECT d.key, d.site, d.label, coalesce(max(r.seq), -1) FROM devices d "
            "LEFT JOIN readings r ON r.device = d.id GROUP BY d.id ORDER BY d.id"
        )
        return [
            {"key": k.hex(), "site": site, "label": label, "last_seq": last}
            for k, site, label, last in rows
        ]

    # -- batches and readings --------------------------------------------------------

    def stored_header(self, gateway: bytes, seq: int) -> bytes | None:
        row = self.db.execute(
            "SELECT header FROM batches WHERE gateway = ? AND seq = ?", (gateway, seq)
        ).fetchone()
        return row[0] if row else None

    def last_header(self, gateway: bytes) -> bytes | None:
        row = self.db.execute(
            "SELECT header FROM batches WHERE gateway = ? ORDER BY seq DESC LIMIT 1", (gateway,)
        ).fetchone()
        return row[0] if row else None

    def batch_log_index(self, gateway: bytes, seq: int) -> int | None:
        row = self.db.execute(
            "SELECT log_index FROM batches WHERE gateway = ? AND seq = ?", (gateway, seq)
        ).fetchone()
        return row[0] if row else None

    def store_batch(self, verified: Verified) -> int:
        """Append the batch's header to the log and store the batch and its readings, all
        in one transaction. Return the header's log index."""
        header = verified.header
        with self._write():
            index, _ = self._append([tlog.batch_entry(verified.header_bytes)])
            self.db.execute(
                "INSERT INTO batches (gateway, seq, header, log_index, received_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (header.gateway_key, header.seq, verified.header_bytes, index, time.time()),
            )
            ids = dict(self.db.execute("SELECT key, id FROM devices"))
            # A reading two gateways both sealed is stored in both batches; lookups by
            # (device, seq) serve the first.
            self.db.executemany(
                "INSERT INTO readings (device, seq, time, log_index, leaf, wire) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (ids[r.key], r.seq, r.time, index, leaf, w)
                    for leaf, (r, w) in enumerate(
                        zip(verified.readings, verified.wires, strict=True)
                    )
                ],
            )
        return index

    def reading(self, device: bytes, seq: int) -> tuple[bytes, int, int] | None:
        """Return (wire bytes, log index of its batch, leaf index in the batch)."""
        row = self.db.execute(
            "SELECT r.wire, r.log_index, r.leaf FROM readings r JOIN devices d ON d.id = r.device "
            "WHERE d.key = ? AND r.seq = ? ORDER BY r.log_index LIMIT 1",
            (device, seq),
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def batch_readings(self, log_index: int) -> list[bytes]:
        """The readings of the batch whose header is log entry `log_index`, in leaf order."""
        return [
            w
            for (w,) in self.db.execute(
                "SELECT wire FROM readings WHERE log_index = ? ORDER BY leaf", (log_index,)
            )
        ]


class _Write:
    """BEGIN IMMEDIATE (the write lock: one sequencer at a time) ... COMMIT or ROLLBACK."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")
