"""The ledger's SQLite engine (WAL, synchronous=FULL): the embedded default.

One connection, used from one worker thread of the store's own, so the event loop never
waits on the disk. Each read() or write() runs its whole function there, one at a time (a
reader never sees a write's uncommitted rows), in one hop off the loop: the function's
statements run at once, without suspending, and the thread drives its coroutine to the
end. `write()` is BEGIN IMMEDIATE ... COMMIT: SQLite's write lock, held for the
transaction, makes its holder the log's single sequencer (cloud/storage/engine.py).
Schema: the tables below, created where missing; a file of the older schema (readings
stored per batch) is refused.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cloud.storage.engine import Row, Tx
from cloud.storage.errors import SchemaError
from gateway.sqlitetx import Immediate

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
CREATE TABLE IF NOT EXISTS stamped_checkpoints (
    size INTEGER PRIMARY KEY,  -- a 0x04 entry's index + 1: the size first including it
    note TEXT NOT NULL         -- log-signed, with the log's timestamped cosignature line
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


# Applied contract transactions (cloud/storage/contracts.py), created where missing: a
# ledger file of before contracts gains the table at its next start.
CONTRACTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS contract_txs (
    log_index   INTEGER PRIMARY KEY,     -- its 0x03 entry
    root_index  INTEGER NOT NULL,        -- the 0x04 state-root entry of its block
    contract    TEXT NOT NULL,
    tx_id       BLOB NOT NULL UNIQUE,    -- SHA-256(canonical || sig)
    signer      BLOB NOT NULL,           -- x-only key
    nonce       TEXT NOT NULL,           -- 32 lowercase hex
    canonical   BLOB NOT NULL,           -- the signed body, RFC 8785
    sig         BLOB NOT NULL,           -- BIP-340, 64 bytes
    salt        BLOB NOT NULL,           -- the 0x03 commitment's salt, 32 bytes
    time        INTEGER NOT NULL,        -- the transaction's own time, Unix ms
    received_at REAL NOT NULL,
    UNIQUE (signer, nonce)               -- a replay guard (docs/contracts.md §1)
);
-- sign-in for reads (cloud/storage/auth.py): the workers' token secret, the open challenges
CREATE TABLE IF NOT EXISTS auth_secret (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    secret      BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_challenges (
    challenge   BLOB PRIMARY KEY,
    expires     INTEGER NOT NULL           -- Unix s
);
"""


class SqliteTx:
    """The engine's connection as a cloud.storage.engine.Tx. Its methods run the statement
    at once, never suspending: they are called only on the engine's thread, inside the
    function read() or write() drives there."""

    row_order = "rowid"

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.max_params = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    async def execute(self, sql: str, *args: Any) -> None:
        self._db.execute(sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._db.executemany(sql, rows)

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        return self._db.execute(sql, args).fetchall()

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        cursor = self._db.execute(sql, args)
        row: Row | None = cursor.fetchone()
        cursor.close()  # resets the statement: an INSERT ... RETURNING is done with
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchone(sql, *args)
        return None if row is None else row[0]

    def table(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """`VALUES (CAST(? AS t1), ...), ...`: the rows bound one value each."""
        row = "(" + ", ".join(f"CAST(? AS {t})" for t in types) + ")"
        return "VALUES " + ", ".join([row] * len(rows)), [v for r in rows for v in r]


def _drive(call: Awaitable[T]) -> T:
    """Run a coroutine that awaits only a SqliteTx to its end, here and now. Raises
    RuntimeError if it waits on anything else (engine.py: fn awaits nothing but tx)."""
    assert isinstance(call, Coroutine)
    try:
        call.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    call.close()
    raise RuntimeError("a storage function awaited something other than its database")


class SqliteEngine:
    """The ledger in one SQLite file (module docstring). Opening it (the constructor) runs
    on the caller's thread; raises OldSchemaError for a file of the older schema."""

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
        self.db.executescript(CONTRACTS_SCHEMA)
        # One thread: calls run one at a time, so a read never sees a write half done.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
        self._tx = SqliteTx(self.db)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        return await self._run(lambda: _drive(fn(self._tx)))

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """fn inside BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if it raises: the write lock is
        taken at once, so the transaction's reads see the last commit."""

        def transaction() -> T:
            with Immediate(self.db):
                return _drive(fn(self._tx))

        return await self._run(transaction)

    async def close(self) -> None:
        await self._run(self.db.close)
        self._thread.shutdown()
