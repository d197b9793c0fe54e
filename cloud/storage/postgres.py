"""The ledger's PostgreSQL storage (asyncpg): several workers on one database.

`PostgresStore` is the `cloud.storage.store.Store` for deployments with more than one worker
process (DESIGN.md, "When one machine is not enough"): each worker opens its own pool on
the same database. Tables and semantics are those of cloud/storage/sqlite.py, the
reference; what differs:

- Every write is one READ COMMITTED transaction that first takes
  pg_advisory_xact_lock(LOG_LOCK): its holder is the log's single sequencer. The log size
  lives in the one-row `log_meta`, read and written only under that lock; COMMIT or
  ROLLBACK releases it, never our code, so a crashed worker cannot keep it.
- An append reads the stored nodes it hashes with (the log's frontier) in one query.
- Rows go in with one INSERT ... SELECT FROM unnest(...) per table, whatever their number.
- Batch seqs are bigint, as SQLite's INTEGER: seqs above 2**63 - 1 cannot be stored.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg

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

SCHEMA_VERSION = 2  # 2: readings stored once by (box, seq) (leaves, equivocations)
# The bigint key of the log's advisory lock: every worker must use this one, and nothing
# else in the database may. ASCII "PSynclog", which fits a signed 64-bit integer.
LOG_LOCK = int.from_bytes(b"PSynclog", "big")

# Plain CREATE, not IF NOT EXISTS: open() runs this only where pharmasync_schema is absent,
# in one transaction, so a foreign table of the same name fails loudly instead of being
# adopted. Unsigned 32-bit wire fields (reading seq and time) need bigint.
SCHEMA = """
CREATE TABLE pharmasync_schema (
    version integer NOT NULL
);
CREATE TABLE log_meta (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),  -- exactly one row
    size bigint NOT NULL                                -- entries in the log
);
INSERT INTO log_meta (size) VALUES (0);
CREATE TABLE log_entries (
    idx       bigint PRIMARY KEY,      -- position in the log, from 0
    leaf_hash bytea NOT NULL,          -- SHA-256(0x00 || entry)
    entry     bytea NOT NULL
);
CREATE INDEX log_entries_leaf ON log_entries (leaf_hash);
CREATE TABLE log_nodes (
    level smallint NOT NULL,
    idx   bigint NOT NULL,
    hash  bytea NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE gateways (
    key           bytea PRIMARY KEY,
    site          text NOT NULL,
    registered_at double precision NOT NULL  -- Unix seconds
);
CREATE TABLE devices (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- readings use this
    key           bytea NOT NULL UNIQUE,
    site          text NOT NULL,
    label         text NOT NULL,
    registered_at double precision NOT NULL
);
CREATE TABLE attachments (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- orders equal starts
    device  integer NOT NULL,            -- devices.id
    subject text NOT NULL,               -- a lot, shipment or zone
    start   bigint NOT NULL,             -- Unix seconds
    "end"   bigint                       -- NULL: open
);
CREATE INDEX attachments_device ON attachments (device, start);
CREATE TABLE batches (
    gateway     bytea NOT NULL,
    seq         bigint NOT NULL,
    header      bytea NOT NULL,
    log_index   bigint NOT NULL UNIQUE,  -- the log entry carrying the header
    count       integer NOT NULL,        -- readings in the batch
    tile        bytea NOT NULL,          -- its 16-reading subtree roots (cloud/log/batchtree.py)
    received_at double precision NOT NULL,
    PRIMARY KEY (gateway, seq)
);
CREATE TABLE leaves (
    log_index bigint NOT NULL,           -- the batch's log entry
    leaf      integer NOT NULL,          -- position in the batch's tree (2**31 leaves: 236 GB)
    device    integer NOT NULL,          -- devices.id
    seq       bigint NOT NULL,
    time      bigint NOT NULL,
    wire      bytea,                     -- the 110 signed bytes, on the reading's first
                                         -- carrier only; NULL: a later sighting of it
    PRIMARY KEY (log_index, leaf)        -- every leaf of every batch: proofs need them all
);
-- A reading (box, seq) is stored once: the leaf holding its bytes (cloud/storage/store.py).
CREATE UNIQUE INDEX readings_seq ON leaves (device, seq) WHERE wire IS NOT NULL;
CREATE INDEX readings_time ON leaves (device, time) WHERE wire IS NOT NULL;
CREATE INDEX sightings_seq ON leaves (device, seq) WHERE wire IS NULL;
CREATE TABLE equivocations (
    log_index   bigint NOT NULL,         -- the sighting leaf (leaves.wire is NULL there)
    leaf        integer NOT NULL,
    wire        bytea NOT NULL,          -- the other signed bytes of (box, seq): evidence
    received_at double precision NOT NULL,
    PRIMARY KEY (log_index, leaf)
);
"""
# Gateway events came after schema version 1: created where missing, so a version-1
# database gains the table at its next start (the other tables are untouched).
EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway_events (
    gateway     bytea NOT NULL,
    seq         bigint NOT NULL,         -- the gateway's event seq: 0, 1, 2, ... no gaps
    log_index   bigint NOT NULL UNIQUE,  -- the log entry carrying it (kind 0x05)
    time        bigint NOT NULL,         -- the event's own time, Unix seconds
    kind        text NOT NULL,
    received_at double precision NOT NULL,
    PRIMARY KEY (gateway, seq)
);
"""
# The owner set and the index of authority entries (registry, configuration) came after
# too: created where missing, like the events table.
CONFIG_SCHEMA = """
CREATE TABLE IF NOT EXISTS owners (
    key bytea PRIMARY KEY                -- the owner set after the log's last config entry
);
CREATE TABLE IF NOT EXISTS authority_entries (
    idx bigint PRIMARY KEY               -- log index of a registry (0x02) or config (0x06) entry
);
"""
# Cosigned checkpoints (cosigned receipts) came later too: created where missing.
COSIGNED_SCHEMA = """
CREATE TABLE IF NOT EXISTS cosigned_checkpoints (
    size         bigint PRIMARY KEY,  -- the checkpoint's tree size
    note         text NOT NULL,       -- the log-signed note with its cosignature lines
    cosignatures integer NOT NULL     -- verified witness cosignatures it carries
);
"""


# Signed alarm acknowledgements relayed to gateways (gateway/alarm_ack.py), off the log.
ALARM_ACKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarm_acks (
    id          BIGSERIAL PRIMARY KEY,   -- the order gateways fetch them in
    gateway     BYTEA NOT NULL,
    digest      BYTEA NOT NULL UNIQUE,   -- SignedAck.digest(): stored exactly once
    wire        BYTEA NOT NULL,          -- the signed ack's compact JSON
    log_size    BIGINT NOT NULL,         -- the log's size when its key was checked
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_acks_gateway ON alarm_acks (gateway, id);
"""


class SchemaVersionError(SchemaError):
    """The database holds a ledger schema this code does not know."""

    def __init__(self, got: object) -> None:
        super().__init__(f"schema version: got {got}, want {SCHEMA_VERSION}")
        self.got = got


def _node_name(level: int, index: int) -> str:
    return f"log node (level {level}, index {index})"


def _frontier(size: int) -> list[NodeKey]:
    """The maximal complete subtrees of a log of `size` entries, one per set bit of size.

    Appending hashes only with nodes the same append creates and with these: a stored left
    sibling is complete, ends before `size` and has an incomplete parent. Reading these few
    (at most 63) in one query saves a round trip per node new_nodes asks for.
    """
    return [
        (level, (size >> level) - 1) for level in range(size.bit_length()) if (size >> level) & 1
    ]


class PostgresStore:
    """The async `cloud.storage.store.Store` on a PostgreSQL database shared by any number of
    workers (module docstring). Build it with open(); `pool` is its asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> PostgresStore:
        """Connect a pool to `dsn` and create the schema (in the DSN's search_path) if it is
        absent. Raises SchemaVersionError for another schema version, asyncpg's errors if
        the database cannot be reached."""
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        try:
            # Under the log lock: workers starting together create the schema once.
            async with _locked(pool) as conn:
                if await conn.fetchval("SELECT to_regclass('pharmasync_schema')") is None:
                    await conn.execute(SCHEMA)
                    await conn.execute(
                        "INSERT INTO pharmasync_schema (version) VALUES ($1)", SCHEMA_VERSION
                    )
                else:
                    got = await conn.fetchval("SELECT max(version) FROM pharmasync_schema")
                    if got != SCHEMA_VERSION:
                        raise SchemaVersionError(got)
                await conn.execute(EVENTS_SCHEMA)
                await conn.execute(CONFIG_SCHEMA)
                await conn.execute(COSIGNED_SCHEMA)
                await conn.execute(ALARM_ACKS_SCHEMA)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    def _write(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """The write transaction. Every write takes the log lock, as SQLite's BEGIN IMMEDIATE
        does: only those that grow the log need it, but the others are rare registry
        changes, and one kind of write transaction is simpler to reason about."""
        return _locked(self.pool)

    # -- the log ------------------------------------------------------------------------

    async def log_size(self) -> int:
        size: int = await self.pool.fetchval("SELECT size FROM log_meta")
        return size

    async def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        keys = list(keys)
        found = await _fetch_nodes(self.pool, keys)
        for key in keys:
            if key not in found:
                raise NotFound(_node_name(*key))
        return found

    async def entries(self, start: int, end: int) -> list[bytes]:
        rows = await self.pool.fetch(
            "SELECT entry FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx", start, end
        )
        return [r[0] for r in rows]

    async def find_entry(self, leaf_hash: bytes) -> int | None:
        index: int | None = await self.pool.fetchval(
            "SELECT min(idx) FROM log_entries WHERE leaf_hash = $1", leaf_hash
        )
        return index

    async def append(self, entries: Sequence[bytes]) -> tuple[int, int]:
        async with self._write() as conn:
            return await _append(conn, entries)

    # -- configuration: the owners -------------------------------------------------------

    async def owners(self) -> frozenset[bytes]:
        async with self.pool.acquire() as conn:
            return await _owners(conn)

    async def rebuild_owners(self) -> frozenset[bytes]:
        async with self._write() as conn:
            rows = await conn.fetch(
                "SELECT e.entry FROM authority_entries a JOIN log_entries e ON e.idx = a.idx "
                "ORDER BY a.idx"
            )
            owners = config_entry.owners_of(bytes(r["entry"]) for r in rows)
            await _set_owners(conn, owners)
        return owners

    async def append_config(self, entry: bytes) -> int:
        async with self._write() as conn:
            index = await _append_once(conn, entry)
        assert index is not None
        return index

    async def authority_entries(self, after: int, end: int, limit: int) -> list[tuple[int, bytes]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT e.idx, e.entry FROM authority_entries a "
                "JOIN log_entries e ON e.idx = a.idx "
                "WHERE a.idx > $1 AND a.idx < $2 ORDER BY a.idx LIMIT $3",
                after,
                end,
                limit,
            )
        return [(r["idx"], bytes(r["entry"])) for r in rows]

    # -- the registry ---------------------------------------------------------------------

    async def register_gateway(
        self, key: bytes, site: str, entry: bytes | None = None
    ) -> int | None:
        async with self._write() as conn:
            index = await _append_once(conn, entry)
            await conn.execute(
                "INSERT INTO gateways (key, site, registered_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (key) DO UPDATE SET site = excluded.site",
                key,
                site,
                time.time(),
            )
        return index

    async def register_device(
        self, key: bytes, site: str, label: str = "", entry: bytes | None = None
    ) -> int | None:
        async with self._write() as conn:
            index = await _append_once(conn, entry)
            await conn.execute(
                "INSERT INTO devices (key, site, label, registered_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (key) DO UPDATE SET site = excluded.site, label = excluded.label",
                key,
                site,
                label,
                time.time(),
            )
        return index

    async def attach(
        self, device: bytes, subject: str, start: int, end: int | None, entry: bytes | None = None
    ) -> int | None:
        async with self._write() as conn:
            box = await conn.fetchval("SELECT id FROM devices WHERE key = $1", device)
            if box is None:
                raise NotFound(f"box {device.hex()} is not registered")
            index = await _append_once(conn, entry)
            await conn.execute(
                'INSERT INTO attachments (device, subject, start, "end") VALUES ($1, $2, $3, $4)',
                box,
                subject,
                start,
                end,
            )
        return index

    async def attachments(self, device: bytes) -> list[dict[str, object]]:
        rows = await self.pool.fetch(
            'SELECT a.subject, a.start, a."end" FROM attachments a JOIN devices d '
            "ON d.id = a.device WHERE d.key = $1 ORDER BY a.start, a.id",
            device,
        )
        return [{"subject": s, "start": a, "end": b} for s, a, b in rows]

    async def gateways(self) -> list[dict[str, object]]:
        rows = await self.pool.fetch(
            "SELECT g.key, g.site, "
            "coalesce((SELECT max(b.seq) FROM batches b WHERE b.gateway = g.key), -1) "
            "FROM gateways g ORDER BY g.registered_at, g.key"
        )
        return [{"key": k.hex(), "site": site, "last_seq": last} for k, site, last in rows]

    async def devices(self) -> list[dict[str, object]]:
        rows = await self.pool.fetch(
            "SELECT d.key, d.site, d.label, "
            "coalesce((SELECT max(r.seq) FROM leaves r "
            "WHERE r.device = d.id AND r.wire IS NOT NULL), -1) FROM devices d ORDER BY d.id"
        )
        return [
            {"key": k.hex(), "site": site, "label": label, "last_seq": last}
            for k, site, label, last in rows
        ]

    # -- batches and readings ------------------------------------------------------------

    async def known(self, gateway: bytes, seq: int, devices: Collection[bytes]) -> KnownState:
        row = await self.pool.fetchrow(
            "SELECT EXISTS (SELECT 1 FROM gateways WHERE key = $1), "
            "(SELECT header FROM batches WHERE gateway = $1 AND seq = $2), "
            "(SELECT header FROM batches WHERE gateway = $1 ORDER BY seq DESC LIMIT 1), "
            "ARRAY(SELECT key FROM devices WHERE key = ANY($3::bytea[]))",
            gateway,
            seq,
            list(set(devices)),
        )
        return KnownState(row[0], row[1], row[2], frozenset(row[3]))

    async def batch_log_index(self, gateway: bytes, seq: int) -> int | None:
        index: int | None = await self.pool.fetchval(
            "SELECT log_index FROM batches WHERE gateway = $1 AND seq = $2", gateway, seq
        )
        return index

    async def store_batch(self, verified: Verified) -> BatchStored:
        header = verified.header
        async with self._write() as conn:
            # The caller checked all this without the lock; another worker may have stored
            # since (cloud/storage/store.py).
            row = await conn.fetchrow(
                "SELECT (SELECT header FROM batches WHERE gateway = $1 AND seq = $2), "
                "(SELECT log_index FROM batches WHERE gateway = $1 AND seq = $2), "
                "(SELECT header FROM batches WHERE gateway = $1 ORDER BY seq DESC LIMIT 1)",
                header.gateway_key,
                header.seq,
            )
            stored, stored_index, last = row
            if stored is not None:
                if stored != verified.header_bytes:
                    raise StoreConflict("conflict", f"another batch {header.seq} is stored")
                return BatchStored(int(stored_index), created=False)
            broken = chain_break(header, last)
            if broken:
                raise StoreConflict("chain", broken)
            index, _ = await _append(conn, [tlog.batch_entry(verified.header_bytes)])
            await conn.execute(
                "INSERT INTO batches (gateway, seq, header, log_index, count, tile, received_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                header.gateway_key,
                header.seq,
                verified.header_bytes,
                index,
                header.count,
                batchtree.tile_of(verified.wires),
                time.time(),
            )
            new, sightings = await _insert_leaves(conn, index, verified)
        return BatchStored(index, True, new, tuple(sightings))

    async def reading(self, device: bytes, seq: int) -> StoredReading | None:
        row = await self.pool.fetchrow(
            "SELECT r.wire, r.log_index, r.leaf, e.entry, b.count, b.tile FROM leaves r "
            "JOIN devices d ON d.id = r.device JOIN log_entries e ON e.idx = r.log_index "
            "JOIN batches b ON b.log_index = r.log_index "
            "WHERE d.key = $1 AND r.seq = $2 AND r.wire IS NOT NULL",
            device,
            seq,
        )
        if row is None:
            return None
        wire, log_index, leaf, entry, count, tile = row
        return StoredReading(bytes(wire), log_index, leaf, bytes(entry), count, bytes(tile))

    async def batch_readings(self, log_index: int) -> list[bytes]:
        return await self.batch_leaves(log_index, 0, MAX_LEAF)

    async def batch_leaves(self, log_index: int, start: int, end: int) -> list[bytes]:
        rows = await self.pool.fetch(
            # As cloud/storage/sqlite.py's LEAF_BYTES: each leaf with the bytes it carried.
            "SELECT coalesce(l.wire, e.wire, (SELECT f.wire FROM leaves f "
            "WHERE f.device = l.device AND f.seq = l.seq AND f.wire IS NOT NULL)) "
            "FROM leaves l LEFT JOIN equivocations e "
            "ON e.log_index = l.log_index AND e.leaf = l.leaf "
            "WHERE l.log_index = $1 AND l.leaf >= $2 AND l.leaf < $3 ORDER BY l.leaf",
            log_index,
            start,
            end,
        )
        return [r[0] for r in rows]

    async def history(self, device: bytes, start: int, end: int, limit: int) -> list[bytes]:
        rows = await self.pool.fetch(
            "SELECT r.wire FROM leaves r JOIN devices d ON d.id = r.device "
            "WHERE d.key = $1 AND r.time >= $2 AND r.time < $3 AND r.wire IS NOT NULL "
            "ORDER BY r.time, r.seq LIMIT $4",
            device,
            start,
            end,
            limit,
        )
        return [r[0] for r in rows]

    async def sightings(
        self, device: bytes, equivocations: bool, limit: int
    ) -> list[dict[str, object]]:
        rows = await self.pool.fetch(
            "SELECT l.seq, l.log_index, l.leaf, e.wire, f.log_index, f.leaf, f.wire, "
            "b.gateway, b.seq FROM leaves l JOIN devices d ON d.id = l.device "
            "JOIN leaves f ON f.device = l.device AND f.seq = l.seq AND f.wire IS NOT NULL "
            "JOIN batches b ON b.log_index = l.log_index "
            "LEFT JOIN equivocations e ON e.log_index = l.log_index AND e.leaf = l.leaf "
            "WHERE d.key = $1 AND l.wire IS NULL AND (e.wire IS NOT NULL) = $2 "
            "ORDER BY l.log_index, l.leaf LIMIT $3",
            device,
            equivocations,
            limit,
        )
        return [
            sighting_json(
                Sighting(device, q, i, leaf, (fi, fl), None if other is None else bytes(other)),
                bytes(gw),
                bseq,
                bytes(first),
            )
            for q, i, leaf, other, fi, fl, first, gw, bseq in rows
        ]

    # -- gateway events (gateway/event.py) -----------------------------------------------

    async def gateway_registered(self, key: bytes) -> bool:
        found: bool = await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM gateways WHERE key = $1)", key
        )
        return found

    async def store_events(self, gateway: bytes, events: Sequence[Event]) -> list[tuple[int, bool]]:
        async with self._write() as conn:
            last = await conn.fetchval(
                "SELECT max(seq) FROM gateway_events WHERE gateway = $1", gateway
            )
            rows = await conn.fetch(
                "SELECT g.seq, g.log_index, e.entry FROM gateway_events g "
                "JOIN log_entries e ON e.idx = g.log_index "
                "WHERE g.gateway = $1 AND g.seq >= $2 AND g.seq <= $3",
                gateway,
                events[0].seq,
                events[-1].seq,
            )
            stored = {seq: (index, bytes(entry)) for seq, index, entry in rows}
            entries, fresh = events_to_store(events, stored, -1 if last is None else last)
            first = 0
            if fresh:
                first, _ = await _append(conn, entries)
                await conn.execute(
                    "INSERT INTO gateway_events (gateway, seq, log_index, time, kind, received_at) "
                    "SELECT $1, e.*, $6::double precision FROM unnest($2::bigint[], $3::bigint[], "
                    "$4::bigint[], $5::text[]) AS e",
                    gateway,
                    [e.seq for e in fresh],
                    [first + i for i in range(len(fresh))],
                    [e.time for e in fresh],
                    [e.kind for e in fresh],
                    time.time(),
                )
            return answer_events(events, stored, first)

    async def gateway_events(
        self, gateway: bytes, after: int, limit: int
    ) -> list[tuple[int, int, bytes]]:
        rows = await self.pool.fetch(
            "SELECT g.seq, g.log_index, e.entry FROM gateway_events g "
            "JOIN log_entries e ON e.idx = g.log_index "
            "WHERE g.gateway = $1 AND g.seq > $2 ORDER BY g.seq LIMIT $3",
            gateway,
            after,
            limit,
        )
        return [(seq, index, bytes(entry[1:])) for seq, index, entry in rows]

    # -- cosigned checkpoints -----------------------------------------------------------

    async def cosigned_note(self, size: int) -> str | None:
        note: str | None = await self.pool.fetchval(
            "SELECT note FROM cosigned_checkpoints WHERE size = $1", size
        )
        return note

    async def keep_cosigned(self, size: int, note: str, cosignatures: int) -> None:
        # Its own table, no log entry: no log lock; the row with the most cosignatures wins.
        await self.pool.execute(
            "INSERT INTO cosigned_checkpoints (size, note, cosignatures) VALUES ($1, $2, $3) "
            "ON CONFLICT (size) DO UPDATE SET note = excluded.note, "
            "cosignatures = excluded.cosignatures "
            "WHERE excluded.cosignatures > cosigned_checkpoints.cosignatures",
            size,
            note,
            cosignatures,
        )

    async def first_cosigned(
        self, min_size: int, max_size: int, min_cosignatures: int
    ) -> tuple[int, str] | None:
        row = await self.pool.fetchrow(
            "SELECT size, note FROM cosigned_checkpoints WHERE size >= $1 AND size <= $2 "
            "AND cosignatures >= $3 ORDER BY size LIMIT 1",
            min_size,
            max_size,
            min_cosignatures,
        )
        return None if row is None else (int(row[0]), str(row[1]))

    # -- relayed alarm acknowledgements (gateway/alarm_ack.py) ---------------------------

    async def gateway_site(self, key: bytes) -> str | None:
        site: str | None = await self.pool.fetchval("SELECT site FROM gateways WHERE key = $1", key)
        return site

    async def store_alarm_ack(
        self, gateway: bytes, digest: bytes, wire: bytes, log_size: int
    ) -> tuple[int, int, bool]:
        async with self.pool.acquire() as conn, conn.transaction():
            new = await conn.fetchval(
                "INSERT INTO alarm_acks (gateway, digest, wire, log_size, received_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING RETURNING id",
                gateway,
                digest,
                wire,
                log_size,
                time.time(),
            )
            row = await conn.fetchrow(
                "SELECT id, log_size FROM alarm_acks WHERE digest = $1", digest
            )
        return row["id"], row["log_size"], new is not None

    async def alarm_acks(self, gateway: bytes, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await self.pool.fetch(
            "SELECT id, wire FROM alarm_acks WHERE gateway = $1 AND id > $2 ORDER BY id LIMIT $3",
            gateway,
            after,
            limit,
        )
        return [(i, bytes(wire)) for i, wire in rows]


@asynccontextmanager
async def _locked(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A transaction holding the log lock, on a connection of `pool`.

    READ COMMITTED, whatever the server's default: each later statement then sees what the
    previous lock holder committed. (Under REPEATABLE READ the snapshot would be taken by
    the lock statement itself, before the lock is granted, and the log size read stale.)
    For the same reason the lock is its own statement, never part of a read.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="read_committed"):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOG_LOCK)
        yield conn


async def _fetch_nodes(
    db: asyncpg.Pool | asyncpg.Connection, keys: Iterable[NodeKey]
) -> dict[NodeKey, bytes]:
    """Return those of the nodes `keys` that are stored, in one query."""
    keys = list(keys)
    if not keys:
        return {}
    rows = await db.fetch(
        "SELECT n.level, n.idx, n.hash FROM unnest($1::smallint[], $2::bigint[]) AS k (level, idx) "
        "JOIN log_nodes n ON n.level = k.level AND n.idx = k.idx",
        [level for level, _ in keys],
        [index for _, index in keys],
    )
    return {(level, index): h for level, index, h in rows}


async def _append(conn: asyncpg.Connection, entries: Sequence[bytes]) -> tuple[int, int]:
    """Append entries and the nodes they complete; return (index of the first, new size).
    Requires the log lock (a _locked transaction). Raises NotFound if a node it hashes with
    is missing: the caller's transaction then rolls back, leaving nothing."""
    size: int = await conn.fetchval("SELECT size FROM log_meta")
    leaves = [tlog.entry_leaf(e) for e in entries]
    frontier = await _fetch_nodes(conn, _frontier(size))

    def stored(level: int, index: int) -> bytes:
        if (level, index) not in frontier:
            raise NotFound(_node_name(level, index))
        return frontier[(level, index)]

    nodes = tlog.new_nodes(size, leaves, stored)
    # One statement, not three: a round trip less for each of the two tables.
    await conn.execute(
        "WITH new_entries AS ("
        "  INSERT INTO log_entries (idx, leaf_hash, entry)"
        "  SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])"
        "), new_nodes AS ("
        "  INSERT INTO log_nodes (level, idx, hash)"
        "  SELECT * FROM unnest($4::smallint[], $5::bigint[], $6::bytea[])"
        ") "
        "UPDATE log_meta SET size = $7",
        list(range(size, size + len(entries))),
        leaves,
        list(entries),
        [level for level, _ in nodes],
        [index for _, index in nodes],
        list(nodes.values()),
        size + len(entries),
    )
    return size, size + len(entries)


async def _append_once(conn: asyncpg.Connection, entry: bytes | None) -> int | None:
    """Append a registry entry unless the log holds it already; return its index (None
    without an entry). Requires the log lock (a _locked transaction, READ COMMITTED: the
    check sees every entry committed before the lock was granted), so two copies of one
    signed request cannot both pass it. Raises StoreConflict("replayed")."""
    if entry is None:
        return None
    leaf = tlog.entry_leaf(entry)
    if await conn.fetchval("SELECT 1 FROM log_entries WHERE leaf_hash = $1", leaf) is not None:
        raise StoreConflict("replayed", "this signed request was applied before")
    before = after = await _owners(conn)
    if entry[0] in tlog.AUTHORITY_KINDS:
        after = config_entry.next_owners(before, entry)  # raises ConfigError
    index, _ = await _append(conn, [entry])
    if entry[0] in tlog.AUTHORITY_KINDS:
        await conn.execute("INSERT INTO authority_entries (idx) VALUES ($1)", index)
    if after != before:
        await _set_owners(conn, after)
    return index


async def _set_owners(conn: asyncpg.Connection, owners: frozenset[bytes]) -> None:
    await conn.execute("DELETE FROM owners")
    await conn.executemany("INSERT INTO owners (key) VALUES ($1)", [(k,) for k in owners])


async def _owners(conn: asyncpg.Connection) -> frozenset[bytes]:
    return frozenset(r["key"] for r in await conn.fetch("SELECT key FROM owners"))


async def _insert_leaves(
    conn: asyncpg.Connection, log_index: int, verified: Verified
) -> tuple[int, list[Sighting]]:
    """Store a batch's leaves under its log index (cloud/storage/store.py, classify_leaves): one
    statement reads the boxes' ids and the stored readings the leaves name, one inserts
    the leaves, one any equivocations. Return (readings stored for the first time,
    sightings).

    Raises NotFound for an unregistered box (boxes are never removed, and the caller
    verified them: this is a bug elsewhere, and rolls everything back).
    """
    # One round trip for both: each (box, seq)'s box id, and its stored reading if any.
    # LATERAL ... LIMIT 1 keeps it one index probe per pair: as a plain join, a planner
    # without fresh statistics on `leaves` hashes the whole table instead.
    pairs = list({(r.key, r.seq) for r in verified.readings})
    rows = await conn.fetch(
        "SELECT k.key, d.id, k.seq, l.wire, l.log_index, l.leaf "
        "FROM unnest($1::bytea[], $2::bigint[]) AS k (key, seq) "
        "JOIN devices d ON d.key = k.key "
        "LEFT JOIN LATERAL (SELECT f.wire, f.log_index, f.leaf FROM leaves f "
        "WHERE f.device = d.id AND f.seq = k.seq AND f.wire IS NOT NULL LIMIT 1) l ON true",
        [key for key, _ in pairs],
        [seq for _, seq in pairs],
    )
    ids: dict[bytes, int] = {key: box for key, box, *_ in rows}
    for key, _ in pairs:
        if key not in ids:
            raise NotFound(f"box {key.hex()} is not registered")
    stored: StoredFirst = {
        (key, seq): (bytes(wire), (index, leaf))
        for key, _, seq, wire, index, leaf in rows
        if wire is not None
    }
    leaves, sightings = classify_leaves(log_index, verified, stored)
    await conn.execute(
        "INSERT INTO leaves (log_index, leaf, device, seq, time, wire) "
        "SELECT $1, r.* FROM unnest($2::integer[], $3::integer[], $4::bigint[], $5::bigint[], "
        "$6::bytea[]) AS r",
        log_index,
        [x.leaf for x in leaves],
        [ids[x.key] for x in leaves],
        [x.seq for x in leaves],
        [x.time for x in leaves],
        [x.wire for x in leaves],
    )
    evidence = [x for x in sightings if x.wire is not None]
    if evidence:
        await conn.execute(
            "INSERT INTO equivocations (log_index, leaf, wire, received_at) "
            "SELECT $1, e.*, $4 FROM unnest($2::integer[], $3::bytea[]) AS e",
            log_index,
            [x.leaf for x in evidence],
            [x.wire for x in evidence],
            time.time(),
        )
    return len(leaves) - len(sightings), sightings
