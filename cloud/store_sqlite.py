"""The ledger's SQLite storage (WAL, synchronous=FULL): the embedded default.

`SqliteDb` is the synchronous engine (one connection; the tests of the log use it
directly); `SqliteStore` is the async `cloud.store.Store` the service uses, running every
call on one worker thread of its own so the event loop never waits on the disk. Appending
is one transaction under BEGIN IMMEDIATE (cloud/store.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cloud import batchtree, tlog
from cloud.ingest import Verified, chain_break
from cloud.store import (
    KnownState,
    NotFound,
    StoreConflict,
    StoredReading,
    answer_events,
    events_to_store,
)
from cloud.tlog import NodeKey
from gateway.event import Event
from gateway.spool import Immediate

T = TypeVar("T")

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
CREATE TABLE IF NOT EXISTS attachments (
    device  INTEGER NOT NULL,            -- devices.id
    subject TEXT NOT NULL,               -- a lot, shipment or zone
    start   INTEGER NOT NULL,            -- Unix seconds
    "end"   INTEGER                      -- NULL: open
);
CREATE INDEX IF NOT EXISTS attachments_device ON attachments (device, start);
CREATE TABLE IF NOT EXISTS batches (
    gateway     BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    header      BLOB NOT NULL,
    log_index   INTEGER NOT NULL,        -- the log entry carrying the header
    count       INTEGER NOT NULL,        -- readings in the batch
    tile        BLOB NOT NULL,           -- its 16-reading subtree roots (cloud/batchtree.py)
    received_at REAL NOT NULL,
    PRIMARY KEY (gateway, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS batches_log ON batches (log_index);
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
CREATE TABLE IF NOT EXISTS gateway_events (
    gateway     BLOB NOT NULL,
    seq         INTEGER NOT NULL,        -- the gateway's event seq: 0, 1, 2, ... no gaps
    log_index   INTEGER NOT NULL UNIQUE, -- the log entry carrying it (kind 0x05)
    time        INTEGER NOT NULL,        -- the event's own time, Unix seconds
    kind        TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (gateway, seq)
);
"""


class SqliteDb:
    """The synchronous engine: the ledger in one SQLite file (module docstring)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        # 64 MiB of page cache (default 2 MiB): the readings' indexes grow with the ledger,
        # and appends land all over them (a batch interleaves many boxes).
        self.db.execute("PRAGMA cache_size=-65536")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- the log ------------------------------------------------------------------------

    def log_size(self) -> int:
        row = self.db.execute("SELECT max(idx) FROM log_entries").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def node(self, level: int, index: int) -> bytes:
        row = self.db.execute(
            "SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        if row is None:
            raise NotFound(f"log node (level {level}, index {index})")
        return row[0]

    def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        wanted = list(keys)
        found: dict[NodeKey, bytes] = {}
        for i in range(0, len(wanted), 250):  # two parameters each, under SQLite's limit
            part = wanted[i : i + 250]
            # A join on the primary key (a row-value IN (VALUES ...) would scan the table).
            rows = self.db.execute(
                "WITH k(level, idx) AS (VALUES "
                + ",".join(["(?, ?)"] * len(part))
                + ") SELECT n.level, n.idx, n.hash FROM k JOIN log_nodes n "
                "ON n.level = k.level AND n.idx = k.idx",
                [n for key in part for n in key],
            )
            found.update(((level, idx), h) for level, idx, h in rows)
        for key in wanted:
            if key not in found:
                raise NotFound(f"log node (level {key[0]}, index {key[1]})")
        return found

    def entry(self, index: int) -> bytes:
        row = self.db.execute("SELECT entry FROM log_entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise NotFound(f"log entry {index}")
        return row[0]

    def entries(self, start: int, end: int) -> list[bytes]:
        rows = self.db.execute(
            "SELECT entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        )
        return [e for (e,) in rows]

    def find_entry(self, leaf_hash: bytes) -> int | None:
        row = self.db.execute(
            "SELECT min(idx) FROM log_entries WHERE leaf_hash = ?", (leaf_hash,)
        ).fetchone()
        return row[0]

    def append(self, entries: Sequence[bytes]) -> tuple[int, int]:
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

    def _write(self) -> Immediate:
        """The write lock, held for the transaction: one sequencer at a time."""
        return Immediate(self.db)

    # -- the registry ---------------------------------------------------------------------

    def register_gateway(self, key: bytes, site: str, entry: bytes | None = None) -> None:
        with self._write():
            if entry is not None:
                self._append([entry])
            self.db.execute(
                "INSERT INTO gateways (key, site, registered_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET site = excluded.site",
                (key, site, time.time()),
            )

    def register_device(
        self, key: bytes, site: str, label: str = "", entry: bytes | None = None
    ) -> None:
        with self._write():
            if entry is not None:
                self._append([entry])
            self.db.execute(
                "INSERT INTO devices (key, site, label, registered_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET site = excluded.site, label = excluded.label",
                (key, site, label, time.time()),
            )

    def attach(
        self, device: bytes, subject: str, start: int, end: int | None, entry: bytes | None = None
    ) -> None:
        with self._write():
            row = self.db.execute("SELECT id FROM devices WHERE key = ?", (device,)).fetchone()
            if row is None:
                raise NotFound(f"box {device.hex()} is not registered")
            if entry is not None:
                self._append([entry])
            self.db.execute(
                'INSERT INTO attachments (device, subject, start, "end") VALUES (?, ?, ?, ?)',
                (row[0], subject, start, end),
            )

    def attachments(self, device: bytes) -> list[dict[str, object]]:
        rows = self.db.execute(
            'SELECT a.subject, a.start, a."end" FROM attachments a JOIN devices d '
            "ON d.id = a.device WHERE d.key = ? ORDER BY a.start, a.rowid",
            (device,),
        )
        return [{"subject": s, "start": a, "end": b} for s, a, b in rows]

    def gateways(self) -> list[dict[str, object]]:
        rows = self.db.execute(
            "SELECT g.key, g.site, coalesce(max(b.seq), -1) FROM gateways g "
            "LEFT JOIN batches b ON b.gateway = g.key GROUP BY g.key ORDER BY g.registered_at"
        )
        return [{"key": k.hex(), "site": site, "last_seq": last} for k, site, last in rows]

    def devices(self) -> list[dict[str, object]]:
        rows = self.db.execute(
            "SELECT d.key, d.site, d.label, "
            "coalesce((SELECT max(seq) FROM readings r WHERE r.device = d.id), -1) "
            "FROM devices d ORDER BY d.id"
        )
        return [
            {"key": k.hex(), "site": site, "label": label, "last_seq": last}
            for k, site, label, last in rows
        ]

    def gateway_registered(self, key: bytes) -> bool:
        return (
            self.db.execute("SELECT 1 FROM gateways WHERE key = ?", (key,)).fetchone() is not None
        )

    def device_registered(self, key: bytes) -> bool:
        return self.db.execute("SELECT 1 FROM devices WHERE key = ?", (key,)).fetchone() is not None

    # -- batches and readings ------------------------------------------------------------

    def known(self, gateway: bytes, seq: int, devices: Collection[bytes]) -> KnownState:
        keys = list(set(devices))
        registered: set[bytes] = set()
        for i in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            registered.update(
                k
                for (k,) in self.db.execute(f"SELECT key FROM devices WHERE key IN ({marks})", part)
            )
        return KnownState(
            self.gateway_registered(gateway),
            self.stored_header(gateway, seq),
            self.last_header(gateway),
            frozenset(registered),
        )

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
        header = verified.header
        with self._write():
            stored = self.stored_header(header.gateway_key, header.seq)
            if stored is not None:
                if stored != verified.header_bytes:
                    raise StoreConflict("conflict", f"another batch {header.seq} is stored")
                index = self.batch_log_index(header.gateway_key, header.seq)
                assert index is not None
                return index
            broken = chain_break(header, self.last_header(header.gateway_key))
            if broken:
                raise StoreConflict("chain", broken)
            index, _ = self._append([tlog.batch_entry(verified.header_bytes)])
            self.db.execute(
                "INSERT INTO batches (gateway, seq, header, log_index, count, tile, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    header.gateway_key,
                    header.seq,
                    verified.header_bytes,
                    index,
                    header.count,
                    batchtree.tile_of(verified.wires),
                    time.time(),
                ),
            )
            ids = dict(self.db.execute("SELECT key, id FROM devices"))
            if unknown := {r.key for r in verified.readings} - ids.keys():
                raise NotFound(f"box {min(unknown).hex()} is not registered")
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

    def reading(self, device: bytes, seq: int) -> StoredReading | None:
        row = self.db.execute(
            "SELECT r.wire, r.log_index, r.leaf, e.entry, b.count, b.tile FROM readings r "
            "JOIN devices d ON d.id = r.device JOIN log_entries e ON e.idx = r.log_index "
            "JOIN batches b ON b.log_index = r.log_index "
            "WHERE d.key = ? AND r.seq = ? ORDER BY r.log_index LIMIT 1",
            (device, seq),
        ).fetchone()
        return StoredReading(*row) if row else None

    def batch_readings(self, log_index: int) -> list[bytes]:
        return [
            w
            for (w,) in self.db.execute(
                "SELECT wire FROM readings WHERE log_index = ? ORDER BY leaf", (log_index,)
            )
        ]

    def batch_leaves(self, log_index: int, start: int, end: int) -> list[bytes]:
        rows = self.db.execute(
            "SELECT wire FROM readings WHERE log_index = ? AND leaf >= ? AND leaf < ? "
            "ORDER BY leaf",
            (log_index, start, end),
        )
        return [w for (w,) in rows]

    def history(self, device: bytes, start: int, end: int, limit: int) -> list[bytes]:
        rows = self.db.execute(
            "SELECT r.wire FROM readings r JOIN devices d ON d.id = r.device "
            "WHERE d.key = ? AND r.time >= ? AND r.time < ? ORDER BY r.time, r.seq LIMIT ?",
            (device, start, end, limit),
        )
        return [w for (w,) in rows]

    # -- gateway events (gateway/event.py) -----------------------------------------------

    def store_events(self, gateway: bytes, events: Sequence[Event]) -> list[tuple[int, bool]]:
        with self._write():
            (last,) = self.db.execute(
                "SELECT max(seq) FROM gateway_events WHERE gateway = ?", (gateway,)
            ).fetchone()
            stored = {
                seq: (index, entry)
                for seq, index, entry in self.db.execute(
                    "SELECT g.seq, g.log_index, e.entry FROM gateway_events g "
                    "JOIN log_entries e ON e.idx = g.log_index "
                    "WHERE g.gateway = ? AND g.seq >= ? AND g.seq <= ?",
                    (gateway, events[0].seq, events[-1].seq),
                )
            }
            entries, fresh = events_to_store(events, stored, -1 if last is None else last)
            first = self.log_size()
            if fresh:
                first, _ = self._append(entries)
                now = time.time()
                self.db.executemany(
                    "INSERT INTO gateway_events (gateway, seq, log_index, time, kind, "
                    "received_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [(gateway, e.seq, first + i, e.time, e.kind, now) for i, e in enumerate(fresh)],
                )
            return answer_events(events, stored, first)

    def gateway_events(
        self, gateway: bytes, after: int, limit: int
    ) -> list[tuple[int, int, bytes]]:
        rows = self.db.execute(
            "SELECT g.seq, g.log_index, e.entry FROM gateway_events g "
            "JOIN log_entries e ON e.idx = g.log_index "
            "WHERE g.gateway = ? AND g.seq > ? ORDER BY g.seq LIMIT ?",
            (gateway, after, limit),
        )
        return [(seq, index, entry[1:]) for seq, index, entry in rows]


class SqliteStore:
    """The async `cloud.store.Store` over SqliteDb: each call runs on the store's own
    worker thread, one at a time, so SQLite sees a single writer and the loop never blocks."""

    def __init__(self, path: Path) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
        self.db = SqliteDb(path)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def close(self) -> None:
        await self._run(self.db.close)
        self._pool.shutdown()

    async def log_size(self) -> int:
        return await self._run(self.db.log_size)

    async def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        return await self._run(self.db.nodes, keys)

    async def entries(self, start: int, end: int) -> list[bytes]:
        return await self._run(self.db.entries, start, end)

    async def find_entry(self, leaf_hash: bytes) -> int | None:
        return await self._run(self.db.find_entry, leaf_hash)

    async def append(self, entries: Sequence[bytes]) -> tuple[int, int]:
        return await self._run(self.db.append, entries)

    async def register_gateway(self, key: bytes, site: str, entry: bytes | None = None) -> None:
        await self._run(self.db.register_gateway, key, site, entry)

    async def register_device(
        self, key: bytes, site: str, label: str = "", entry: bytes | None = None
    ) -> None:
        await self._run(self.db.register_device, key, site, label, entry)

    async def attach(
        self, device: bytes, subject: str, start: int, end: int | None, entry: bytes | None = None
    ) -> None:
        await self._run(self.db.attach, device, subject, start, end, entry)

    async def attachments(self, device: bytes) -> list[dict[str, object]]:
        return await self._run(self.db.attachments, device)

    async def gateways(self) -> list[dict[str, object]]:
        return await self._run(self.db.gateways)

    async def devices(self) -> list[dict[str, object]]:
        return await self._run(self.db.devices)

    async def known(self, gateway: bytes, seq: int, devices: Collection[bytes]) -> KnownState:
        return await self._run(self.db.known, gateway, seq, devices)

    async def store_batch(self, verified: Verified) -> int:
        return await self._run(self.db.store_batch, verified)

    async def batch_log_index(self, gateway: bytes, seq: int) -> int | None:
        return await self._run(self.db.batch_log_index, gateway, seq)

    async def reading(self, device: bytes, seq: int) -> StoredReading | None:
        return await self._run(self.db.reading, device, seq)

    async def batch_readings(self, log_index: int) -> list[bytes]:
        return await self._run(self.db.batch_readings, log_index)

    async def batch_leaves(self, log_index: int, start: int, end: int) -> list[bytes]:
        return await self._run(self.db.batch_leaves, log_index, start, end)

    async def history(self, device: bytes, start: int, end: int, limit: int) -> list[bytes]:
        return await self._run(self.db.history, device, start, end, limit)

    # -- gateway events (gateway/event.py) -----------------------------------------------

    async def gateway_registered(self, key: bytes) -> bool:
        return await self._run(self.db.gateway_registered, key)

    async def store_events(self, gateway: bytes, events: Sequence[Event]) -> list[tuple[int, bool]]:
        return await self._run(self.db.store_events, gateway, events)

    async def gateway_events(
        self, gateway: bytes, after: int, limit: int
    ) -> list[tuple[int, int, bytes]]:
        return await self._run(self.db.gateway_events, gateway, after, limit)
