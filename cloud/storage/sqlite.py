"""The ledger's SQLite storage (WAL, synchronous=FULL): the embedded default.

`SqliteDb` is the synchronous engine (one connection; the tests of the log use it
directly); `SqliteStore` is the async `cloud.storage.store.Store` the service uses, running every
call on one worker thread of its own so the event loop never waits on the disk. Appending
is one transaction under BEGIN IMMEDIATE (cloud/storage/store.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cloud.log import batchtree, tlog
from cloud.log.tlog import NodeKey
from cloud.services.ingest import Verified, chain_break
from cloud.storage.store import (
    MAX_LEAF,
    BatchStored,
    KnownState,
    NotFound,
    SchemaError,
    Sighting,
    StoreConflict,
    StoredFirst,
    StoredReading,
    answer_events,
    classify_leaves,
    events_to_store,
    sighting_json,
)
from gateway import config_entry
from gateway.event import Event
from gateway.spool import Immediate

T = TypeVar("T")


class OldSchemaError(SchemaError):
    """The file holds a ledger written before readings were stored exactly once (a
    `readings` table with every leaf's bytes). There is no migration: PharmaSync has not
    shipped a release; start a new data directory."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path}: a ledger of an older, unreleased schema (readings stored per batch); "
            "start with a new data directory"
        )


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
    tile        BLOB NOT NULL,           -- its 16-reading subtree roots (cloud/log/batchtree.py)
    received_at REAL NOT NULL,
    PRIMARY KEY (gateway, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS batches_log ON batches (log_index);
CREATE TABLE IF NOT EXISTS leaves (
    log_index INTEGER NOT NULL,          -- the batch's log entry
    leaf      INTEGER NOT NULL,          -- position in the batch's Merkle tree
    device    INTEGER NOT NULL,          -- devices.id
    seq       INTEGER NOT NULL,
    time      INTEGER NOT NULL,
    wire      BLOB,                      -- the 110 signed bytes, on the reading's first
                                         -- carrier only; NULL: a later sighting of it
    PRIMARY KEY (log_index, leaf)        -- every leaf of every batch: proofs need them all
) WITHOUT ROWID;
-- A reading (box, seq) is stored once: the leaf holding its bytes (cloud/storage/store.py).
CREATE UNIQUE INDEX IF NOT EXISTS readings_seq ON leaves (device, seq) WHERE wire IS NOT NULL;
CREATE INDEX IF NOT EXISTS readings_time ON leaves (device, time) WHERE wire IS NOT NULL;
CREATE INDEX IF NOT EXISTS sightings_seq ON leaves (device, seq) WHERE wire IS NULL;
CREATE TABLE IF NOT EXISTS equivocations (
    log_index   INTEGER NOT NULL,        -- the sighting leaf (leaves.wire is NULL there)
    leaf        INTEGER NOT NULL,
    wire        BLOB NOT NULL,           -- the other signed bytes of (box, seq): evidence
    received_at REAL NOT NULL,
    PRIMARY KEY (log_index, leaf)
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS owners (
    key BLOB PRIMARY KEY                 -- the owner set after the log's last config entry
);
CREATE TABLE IF NOT EXISTS authority_entries (
    idx INTEGER PRIMARY KEY              -- log index of a registry (0x02) or config (0x06) entry
);
CREATE TABLE IF NOT EXISTS cosigned_checkpoints (
    size         INTEGER PRIMARY KEY,  -- the checkpoint's tree size
    note         TEXT NOT NULL,        -- the log-signed note with its cosignature lines
    cosignatures INTEGER NOT NULL      -- verified witness cosignatures it carries
);
"""

# Signed alarm acknowledgements relayed to gateways (gateway/alarm_ack.py), off the log.
ALARM_ACKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarm_acks (
    id          INTEGER PRIMARY KEY,     -- the order gateways fetch them in
    gateway     BLOB NOT NULL,
    digest      BLOB NOT NULL UNIQUE,    -- SignedAck.digest(): stored exactly once
    wire        BLOB NOT NULL,           -- the signed ack's compact JSON
    log_size    INTEGER NOT NULL,        -- the log's size when its key was checked
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_acks_gateway ON alarm_acks (gateway, id);
"""

# Leaves [?, ?) of the batch at log index ?, each with the bytes it carried: its own (the
# reading's first carrier), the equivocating ones kept as evidence, or those it sighted
# again. COALESCE evaluates lazily, so a first carrier costs no further lookup.
LEAF_BYTES = (
    "SELECT coalesce(l.wire, e.wire, (SELECT f.wire FROM leaves f "
    "WHERE f.device = l.device AND f.seq = l.seq AND f.wire IS NOT NULL)) "
    "FROM leaves l LEFT JOIN equivocations e ON e.log_index = l.log_index AND e.leaf = l.leaf "
    "WHERE l.log_index = ? AND l.leaf >= ? AND l.leaf < ? "
)


class SqliteDb:
    """The synchronous engine: the ledger in one SQLite file (module docstring)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        # 64 MiB of page cache (default 2 MiB): the readings' indexes grow with the ledger,
        # and appends land all over them (a batch interleaves many boxes).
        self.db.execute("PRAGMA cache_size=-65536")
        old = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'readings'"
        if self.db.execute(old).fetchone() is not None:
            self.db.close()
            raise OldSchemaError(path)
        self.db.executescript(SCHEMA)
        self.db.executescript(ALARM_ACKS_SCHEMA)

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
        found: dict[NodeKey, bytes] = {
            (level, idx): h
            for level, idx, h in self._join_pairs(
                wanted,
                "SELECT n.level, n.idx, n.hash FROM k JOIN log_nodes n "
                "ON n.level = k.a AND n.idx = k.b",
            )
        }
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

    def _append_once(self, entry: bytes | None) -> int | None:
        """Append a registry entry unless the log holds it already; return its index (None
        without an entry). Requires the write lock: two copies of one signed request then
        cannot both pass the check. Raises StoreConflict("replayed")."""
        if entry is None:
            return None
        if self.find_entry(tlog.entry_leaf(entry)) is not None:
            raise StoreConflict("replayed", "this signed request was applied before")
        before = after = self.owners()
        if entry[0] in tlog.AUTHORITY_KINDS:
            after = config_entry.next_owners(before, entry)  # raises ConfigError
        index, _ = self._append([entry])
        if entry[0] in tlog.AUTHORITY_KINDS:
            self.db.execute("INSERT INTO authority_entries (idx) VALUES (?)", (index,))
        if after != before:
            self._set_owners(after)
        return index

    # -- configuration: the owners -------------------------------------------------------

    def owners(self) -> frozenset[bytes]:
        return frozenset(k for (k,) in self.db.execute("SELECT key FROM owners"))

    def _set_owners(self, owners: frozenset[bytes]) -> None:
        self.db.execute("DELETE FROM owners")
        self.db.executemany("INSERT INTO owners (key) VALUES (?)", [(k,) for k in owners])

    def rebuild_owners(self) -> frozenset[bytes]:
        with self._write():
            rows = self.db.execute(
                "SELECT e.entry FROM authority_entries a JOIN log_entries e ON e.idx = a.idx "
                "ORDER BY a.idx"
            )
            owners = config_entry.owners_of(bytes(e) for (e,) in rows)
            self._set_owners(owners)
        return owners

    def append_config(self, entry: bytes) -> int:
        with self._write():
            index = self._append_once(entry)
        assert index is not None
        return index

    def authority_entries(self, after: int, end: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.db.execute(
            "SELECT e.idx, e.entry FROM authority_entries a JOIN log_entries e ON e.idx = a.idx "
            "WHERE a.idx > ? AND a.idx < ? ORDER BY a.idx LIMIT ?",
            (after, end, limit),
        )
        return [(i, bytes(e)) for i, e in rows]

    def register_gateway(self, key: bytes, site: str, entry: bytes | None = None) -> int | None:
        with self._write():
            index = self._append_once(entry)
            self.db.execute(
                "INSERT INTO gateways (key, site, registered_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET site = excluded.site",
                (key, site, time.time()),
            )
        return index

    def register_device(
        self, key: bytes, site: str, label: str = "", entry: bytes | None = None
    ) -> int | None:
        with self._write():
            index = self._append_once(entry)
            self.db.execute(
                "INSERT INTO devices (key, site, label, registered_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET site = excluded.site, label = excluded.label",
                (key, site, label, time.time()),
            )
        return index

    def attach(
        self, device: bytes, subject: str, start: int, end: int | None, entry: bytes | None = None
    ) -> int | None:
        with self._write():
            row = self.db.execute("SELECT id FROM devices WHERE key = ?", (device,)).fetchone()
            if row is None:
                raise NotFound(f"box {device.hex()} is not registered")
            index = self._append_once(entry)
            self.db.execute(
                'INSERT INTO attachments (device, subject, start, "end") VALUES (?, ?, ?, ?)',
                (row[0], subject, start, end),
            )
        return index

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
            "coalesce((SELECT max(seq) FROM leaves r "
            "WHERE r.device = d.id AND r.wire IS NOT NULL), -1) FROM devices d ORDER BY d.id"
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

    def store_batch(self, verified: Verified) -> BatchStored:
        header = verified.header
        with self._write():
            stored = self.stored_header(header.gateway_key, header.seq)
            if stored is not None:
                if stored != verified.header_bytes:
                    raise StoreConflict("conflict", f"another batch {header.seq} is stored")
                index = self.batch_log_index(header.gateway_key, header.seq)
                assert index is not None
                return BatchStored(index, created=False)
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
            leaves, sightings = classify_leaves(index, verified, self._first_stored(verified, ids))
            self.db.executemany(
                "INSERT INTO leaves (log_index, leaf, device, seq, time, wire) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(index, x.leaf, ids[x.key], x.seq, x.time, x.wire) for x in leaves],
            )
            now = time.time()
            self.db.executemany(
                "INSERT INTO equivocations (log_index, leaf, wire, received_at) "
                "VALUES (?, ?, ?, ?)",
                [(index, x.leaf, x.wire, now) for x in sightings if x.wire is not None],
            )
        return BatchStored(index, True, len(leaves) - len(sightings), tuple(sightings))

    def _first_stored(self, verified: Verified, ids: dict[bytes, int]) -> StoredFirst:
        """The stored readings among a batch's (box, seq): their bytes and carrier."""
        keys = {ids[k]: k for k in {r.key for r in verified.readings}}
        rows = self._join_pairs(
            list({(ids[r.key], r.seq) for r in verified.readings}),
            "SELECT l.device, l.seq, l.wire, l.log_index, l.leaf FROM k JOIN leaves l "
            "ON l.device = k.a AND l.seq = k.b AND l.wire IS NOT NULL",
        )
        return {(keys[d], q): (w, (index, leaf)) for d, q, w, index, leaf in rows}

    def _join_pairs(self, pairs: list[tuple[int, int]], select: str) -> list[tuple[Any, ...]]:
        """Run `select`, which joins table k(a, b) of `pairs` to a table on its key, in
        parts under SQLite's parameter limit. (A row-value IN (VALUES ...) would scan.)"""
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(pairs), 250):  # two parameters each
            part = pairs[i : i + 250]
            values = ",".join(["(?, ?)"] * len(part))
            rows += self.db.execute(
                f"WITH k(a, b) AS (VALUES {values}) {select}", [n for p in part for n in p]
            )
        return rows

    def reading(self, device: bytes, seq: int) -> StoredReading | None:
        row = self.db.execute(
            "SELECT r.wire, r.log_index, r.leaf, e.entry, b.count, b.tile FROM leaves r "
            "JOIN devices d ON d.id = r.device JOIN log_entries e ON e.idx = r.log_index "
            "JOIN batches b ON b.log_index = r.log_index "
            "WHERE d.key = ? AND r.seq = ? AND r.wire IS NOT NULL",
            (device, seq),
        ).fetchone()
        return StoredReading(*row) if row else None

    def batch_readings(self, log_index: int) -> list[bytes]:
        return self.batch_leaves(log_index, 0, MAX_LEAF)

    def batch_leaves(self, log_index: int, start: int, end: int) -> list[bytes]:
        rows = self.db.execute(LEAF_BYTES + "ORDER BY l.leaf", (log_index, start, end))
        return [w for (w,) in rows]

    def history(self, device: bytes, start: int, end: int, limit: int) -> list[bytes]:
        rows = self.db.execute(
            "SELECT r.wire FROM leaves r JOIN devices d ON d.id = r.device "
            "WHERE d.key = ? AND r.time >= ? AND r.time < ? AND r.wire IS NOT NULL "
            "ORDER BY r.time, r.seq LIMIT ?",
            (device, start, end, limit),
        )
        return [w for (w,) in rows]

    def sightings(self, device: bytes, equivocations: bool, limit: int) -> list[dict[str, object]]:
        rows = self.db.execute(
            "SELECT l.seq, l.log_index, l.leaf, e.wire, f.log_index, f.leaf, f.wire, "
            "b.gateway, b.seq FROM leaves l JOIN devices d ON d.id = l.device "
            "JOIN leaves f ON f.device = l.device AND f.seq = l.seq AND f.wire IS NOT NULL "
            "JOIN batches b ON b.log_index = l.log_index "
            "LEFT JOIN equivocations e ON e.log_index = l.log_index AND e.leaf = l.leaf "
            "WHERE d.key = ? AND l.wire IS NULL AND (e.wire IS NOT NULL) = ? "
            "ORDER BY l.log_index, l.leaf LIMIT ?",
            (device, equivocations, limit),
        )
        return [
            sighting_json(Sighting(device, q, i, leaf, (fi, fl), other), gw, bseq, first)
            for q, i, leaf, other, fi, fl, first, gw, bseq in rows
        ]

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

    # -- cosigned checkpoints -----------------------------------------------------------

    def cosigned_note(self, size: int) -> str | None:
        row = self.db.execute(
            "SELECT note FROM cosigned_checkpoints WHERE size = ?", (size,)
        ).fetchone()
        return None if row is None else str(row[0])

    def keep_cosigned(self, size: int, note: str, cosignatures: int) -> None:
        self.db.execute(
            "INSERT INTO cosigned_checkpoints (size, note, cosignatures) VALUES (?, ?, ?) "
            "ON CONFLICT (size) DO UPDATE SET note = excluded.note, "
            "cosignatures = excluded.cosignatures "
            "WHERE excluded.cosignatures > cosigned_checkpoints.cosignatures",
            (size, note, cosignatures),
        )

    def first_cosigned(
        self, min_size: int, max_size: int, min_cosignatures: int
    ) -> tuple[int, str] | None:
        row = self.db.execute(
            "SELECT size, note FROM cosigned_checkpoints WHERE size >= ? AND size <= ? "
            "AND cosignatures >= ? ORDER BY size LIMIT 1",
            (min_size, max_size, min_cosignatures),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    # -- relayed alarm acknowledgements (gateway/alarm_ack.py) ---------------------------

    def gateway_site(self, key: bytes) -> str | None:
        row = self.db.execute("SELECT site FROM gateways WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def store_alarm_ack(
        self, gateway: bytes, digest: bytes, wire: bytes, log_size: int
    ) -> tuple[int, int, bool]:
        with self._write():
            new = self.db.execute(
                "INSERT INTO alarm_acks (gateway, digest, wire, log_size, received_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
                (gateway, digest, wire, log_size, time.time()),
            ).rowcount
            row = self.db.execute(
                "SELECT id, log_size FROM alarm_acks WHERE digest = ?", (digest,)
            ).fetchone()
        return row[0], row[1], new == 1

    def alarm_acks(self, gateway: bytes, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.db.execute(
            "SELECT id, wire FROM alarm_acks WHERE gateway = ? AND id > ? ORDER BY id LIMIT ?",
            (gateway, after, limit),
        )
        return [(i, bytes(wire)) for i, wire in rows]


class SqliteStore:
    """The async `cloud.storage.store.Store` over SqliteDb: each call runs on the store's own
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

    async def owners(self) -> frozenset[bytes]:
        return await self._run(self.db.owners)

    async def rebuild_owners(self) -> frozenset[bytes]:
        return await self._run(self.db.rebuild_owners)

    async def append_config(self, entry: bytes) -> int:
        return await self._run(self.db.append_config, entry)

    async def authority_entries(self, after: int, end: int, limit: int) -> list[tuple[int, bytes]]:
        return await self._run(self.db.authority_entries, after, end, limit)

    async def register_gateway(
        self, key: bytes, site: str, entry: bytes | None = None
    ) -> int | None:
        return await self._run(self.db.register_gateway, key, site, entry)

    async def register_device(
        self, key: bytes, site: str, label: str = "", entry: bytes | None = None
    ) -> int | None:
        return await self._run(self.db.register_device, key, site, label, entry)

    async def attach(
        self, device: bytes, subject: str, start: int, end: int | None, entry: bytes | None = None
    ) -> int | None:
        return await self._run(self.db.attach, device, subject, start, end, entry)

    async def attachments(self, device: bytes) -> list[dict[str, object]]:
        return await self._run(self.db.attachments, device)

    async def gateways(self) -> list[dict[str, object]]:
        return await self._run(self.db.gateways)

    async def devices(self) -> list[dict[str, object]]:
        return await self._run(self.db.devices)

    async def known(self, gateway: bytes, seq: int, devices: Collection[bytes]) -> KnownState:
        return await self._run(self.db.known, gateway, seq, devices)

    async def store_batch(self, verified: Verified) -> BatchStored:
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

    async def sightings(
        self, device: bytes, equivocations: bool, limit: int
    ) -> list[dict[str, object]]:
        return await self._run(self.db.sightings, device, equivocations, limit)

    # -- gateway events (gateway/event.py) -----------------------------------------------

    async def gateway_registered(self, key: bytes) -> bool:
        return await self._run(self.db.gateway_registered, key)

    async def store_events(self, gateway: bytes, events: Sequence[Event]) -> list[tuple[int, bool]]:
        return await self._run(self.db.store_events, gateway, events)

    async def gateway_events(
        self, gateway: bytes, after: int, limit: int
    ) -> list[tuple[int, int, bytes]]:
        return await self._run(self.db.gateway_events, gateway, after, limit)

    # -- cosigned checkpoints -----------------------------------------------------------

    async def cosigned_note(self, size: int) -> str | None:
        return await self._run(self.db.cosigned_note, size)

    async def keep_cosigned(self, size: int, note: str, cosignatures: int) -> None:
        await self._run(self.db.keep_cosigned, size, note, cosignatures)

    async def first_cosigned(
        self, min_size: int, max_size: int, min_cosignatures: int
    ) -> tuple[int, str] | None:
        return await self._run(self.db.first_cosigned, min_size, max_size, min_cosignatures)

    # -- relayed alarm acknowledgements (gateway/alarm_ack.py) ---------------------------

    async def gateway_site(self, key: bytes) -> str | None:
        return await self._run(self.db.gateway_site, key)

    async def store_alarm_ack(
        self, gateway: bytes, digest: bytes, wire: bytes, log_size: int
    ) -> tuple[int, int, bool]:
        return await self._run(self.db.store_alarm_ack, gateway, digest, wire, log_size)

    async def alarm_acks(self, gateway: bytes, after: int, limit: int) -> list[tuple[int, bytes]]:
        return await self._run(self.db.alarm_acks, gateway, after, limit)
