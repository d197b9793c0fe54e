"""The ledger's PostgreSQL engine (asyncpg): several workers on one database.

Each worker process opens its own pool on the same database (DESIGN.md, "When one machine
is not enough"); the tables are those of cloud/storage/sqlite.py, in PostgreSQL's types.
What differs from SQLite:

- `write()` is one READ COMMITTED transaction that first takes
  pg_advisory_xact_lock(LOG_LOCK): its holder is the log's single sequencer. COMMIT or
  ROLLBACK releases it, never our code, so a crashed worker cannot keep it.
- `read()` runs on a pooled connection outside any transaction: each statement sees what
  was committed before it, as SQLite's reads do.
- A many-row INSERT goes as one statement over unnest(...) (PostgresTx.executemany), and a
  table of bound rows as unnest(...) of one array per column (PostgresTx.table).
- Statements are written with `?` (cloud/storage/engine.py) and numbered `$1, $2, ...` here.
- Batch seqs are bigint, as SQLite's INTEGER: seqs above 2**63 - 1 cannot be stored.
- `log_meta` (schema version 2) held the log's size; the size is now max(idx) + 1 of
  `log_entries` under the same lock, in both engines. The table stays, so version-2
  databases open as they are.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg

from cloud.storage.engine import Row, Tx
from cloud.storage.errors import SchemaError

T = TypeVar("T")

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
# Stamped checkpoints (the public check, cloud/storage/stamped.py): created where missing.
STAMPED_SCHEMA = """
CREATE TABLE IF NOT EXISTS stamped_checkpoints (
    size bigint PRIMARY KEY,  -- a 0x04 entry's index + 1: the size first including it
    note text NOT NULL        -- log-signed, with the log's timestamped cosignature line
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


# Applied contract transactions (cloud/storage/contracts.py), created where missing like
# the tables above, so a database of before contracts opens as it is.
CONTRACTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS contract_txs (
    log_index   bigint PRIMARY KEY,      -- its 0x03 entry
    root_index  bigint NOT NULL,         -- the 0x04 state-root entry of its block
    contract    text NOT NULL,
    tx_id       bytea NOT NULL UNIQUE,   -- SHA-256(canonical || sig)
    signer      bytea NOT NULL,          -- x-only key
    nonce       text NOT NULL,           -- 32 lowercase hex
    canonical   bytea NOT NULL,          -- the signed body, RFC 8785
    sig         bytea NOT NULL,          -- BIP-340, 64 bytes
    salt        bytea NOT NULL,          -- the 0x03 commitment's salt, 32 bytes
    time        bigint NOT NULL,         -- the transaction's own time, Unix ms
    received_at double precision NOT NULL,
    UNIQUE (signer, nonce)               -- a replay guard (docs/contracts.md §1)
);
-- sign-in for reads (cloud/storage/auth.py): the workers' token secret, the open challenges
CREATE TABLE IF NOT EXISTS auth_secret (
    id          bigint PRIMARY KEY CHECK (id = 1),
    secret      bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_challenges (
    challenge   bytea PRIMARY KEY,
    expires     bigint NOT NULL           -- Unix s
);
"""


class SchemaVersionError(SchemaError):
    """The database holds a ledger schema this code does not know."""

    def __init__(self, got: object) -> None:
        super().__init__(f"schema version: got {got}, want {SCHEMA_VERSION}")
        self.got = got


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`sql` with its `?` placeholders numbered for asyncpg: $1, $2, ... (the statements
    of this package hold no `?` in literals)."""
    count = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


# An INSERT of one row of `?`s, which executemany sends as one INSERT ... SELECT FROM
# unnest(...) of one array per column, however many rows.
_INSERT = re.compile(r"INSERT INTO (\w+) \(([^)]*)\) VALUES \((?:\?, )*\?\)")


# Tx.table's type names that PostgreSQL spells otherwise.
_TYPES = {"BLOB": "bytea"}


class PostgresTx:
    """An asyncpg connection as a cloud.storage.engine.Tx."""

    row_order = "id"
    max_params = 32767  # the wire protocol's limit (a 16-bit count)

    def __init__(self, conn: asyncpg.Connection, types: dict[str, dict[str, str]]) -> None:
        self.conn = conn
        self._types = types  # the engine's: table -> column -> SQL type, read once

    async def execute(self, sql: str, *args: Any) -> None:
        await self.conn.execute(numbered(sql), *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """An `INSERT INTO t (a, b) VALUES (?, ?) ...` goes as one statement whatever the
        number of rows, `INSERT INTO t (a, b) SELECT * FROM unnest($1::ta[], $2::tb[])
        ...` (a round trip, and one execution, for a batch's 1,024 leaves); any other
        statement as asyncpg's executemany."""
        if not rows:
            return
        found = _INSERT.match(sql)
        if found is None:
            await self.conn.executemany(numbered(sql), rows)
            return
        table, names = found.group(1), [c.strip().strip('"') for c in found.group(2).split(",")]
        types = await self._column_types(table)
        arrays = ", ".join(f"${i}::{types[n]}[]" for i, n in enumerate(names, start=1))
        await self.conn.execute(
            f"INSERT INTO {table} ({found.group(2)}) SELECT * FROM unnest({arrays})"
            + sql[found.end() :],
            *[list(column) for column in zip(*rows, strict=True)],
        )

    async def _column_types(self, table: str) -> dict[str, str]:
        if table not in self._types:
            rows = await self.conn.fetch(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                table,
            )
            self._types[table] = {name: kind for name, kind in rows}
        return self._types[table]

    def table(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """`SELECT * FROM unnest(?::t1[], ...)`: one array per column (engine.Tx.table)."""
        # `?::t[]`, not CAST(? AS t[]): asyncpg then sends the array in binary (measured:
        # CAST made a batch's lookup four times slower).
        arrays = ", ".join(f"?::{_TYPES.get(t, t.lower())}[]" for t in types)
        return f"SELECT * FROM unnest({arrays})", [list(c) for c in zip(*rows, strict=True)]

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(r) for r in await self.conn.fetch(numbered(sql), *args)]

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        row = await self.conn.fetchrow(numbered(sql), *args)
        return None if row is None else tuple(row)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(numbered(sql), *args)


class PostgresEngine:
    """The ledger on a PostgreSQL database shared by any number of workers (module
    docstring). Build it with open(); `pool` is its asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._types: dict[str, dict[str, str]] = {}

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> PostgresEngine:
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
                await conn.execute(STAMPED_SCHEMA)
                await conn.execute(ALARM_ACKS_SCHEMA)
                await conn.execute(CONTRACTS_SCHEMA)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        async with self.pool.acquire() as conn:
            return await fn(PostgresTx(conn, self._types))

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """fn in one transaction holding the log lock. Every write takes it, as SQLite's
        BEGIN IMMEDIATE does: only those that grow the log need it, but the others are rare
        registry changes, and one kind of write transaction is simpler to reason about."""
        async with _locked(self.pool) as conn:
            return await fn(PostgresTx(conn, self._types))

    async def close(self) -> None:
        await self.pool.close()


@asynccontextmanager
async def _locked(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A transaction holding the log lock, on a connection of `pool`.

    READ COMMITTED, whatever the server's default: each later statement then sees what the
    previous lock holder committed. (Under REPEATABLE READ the snapshot would be taken by
    the lock statement itself, before the lock is granted, and the log size read stale.)
    For the same reason the lock is its own statement, never part of a read.

    No hash or merge joins and no sequential scans where an index serves, in it: a write
    looks rows up by key, a batch's worth at most (its boxes and stored readings,
    cloud/storage/batches.py), and an index probe per key is right at any size, where the
    planner, when its statistics of a growing table are stale or the table is still
    small, would scan or hash the whole table instead. SQLite probes indexes in nested
    loops anyway. And a plan per execution: the generic plan PostgreSQL caches for a
    statement run five times misjudges a batch's arrays (measured: a batch's lookup of
    its boxes and stored readings took 16 ms instead of 4). Sent with the lock, in the
    same round trip, as statements of their own.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="read_committed"):
        await conn.execute(
            f"SELECT pg_advisory_xact_lock({LOG_LOCK}); "
            "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
            "SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_custom_plan"
        )
        yield conn
