"""The gateway's spool: every accepted reading, quarantined message, sealed batch and
signed gateway event (gateway/event.py) waiting for the cloud, in one SQLite database (WAL). A reading is committed here before its box is acknowledged,
and batches are sealed in the same database in one transaction each, so after a crash
the same readings are in the same batch and never in two.

The class is synchronous and not thread-safe: the gateway runs it on one worker thread.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from device import schnorr
from gateway import batch, event

log = logging.getLogger("pharmasync.gateway.spool")

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id           INTEGER PRIMARY KEY,   -- arrival order, which is batch order
    box          BLOB    NOT NULL,      -- the box's x-only key
    seq          INTEGER NOT NULL,
    wire         BLOB    NOT NULL,      -- the exact 110 signed bytes
    box_time     INTEGER NOT NULL,
    gateway_time REAL    NOT NULL,      -- our clock at receipt, beside the box's
    batch        INTEGER,               -- batch seq once sealed
    UNIQUE (box, seq)
);
CREATE INDEX IF NOT EXISTS readings_unsealed ON readings (id) WHERE batch IS NULL;
CREATE INDEX IF NOT EXISTS readings_batch ON readings (batch);
CREATE TABLE IF NOT EXISTS boxes (
    box      BLOB PRIMARY KEY,
    last_seq INTEGER NOT NULL          -- highest committed seq: what acks announce
);
CREATE TABLE IF NOT EXISTS batches (
    seq       INTEGER PRIMARY KEY,
    header    BLOB NOT NULL,            -- the signed 181-byte header
    count     INTEGER NOT NULL,
    sealed_at REAL NOT NULL,
    sent_at   REAL,                     -- when the cloud accepted it
    receipt   TEXT                      -- the cloud's receipt (JSON)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id          INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    source      TEXT NOT NULL,          -- e.g. mqtt:<topic>, ble:<address>
    reason      TEXT NOT NULL,          -- what was wrong, counted by reason
    detail      TEXT NOT NULL,
    payload     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS gateway_events (
    seq       INTEGER PRIMARY KEY,      -- the gateway's event seq: 0, 1, 2, ... no gaps
    record    BLOB NOT NULL,            -- signature || canonical JSON (gateway/event.py)
    sent_at   REAL,                     -- when the cloud's receipt came; NULL: queued
    log_index INTEGER                   -- the cloud's log entry for it
);
CREATE INDEX IF NOT EXISTS gateway_events_unsent ON gateway_events (seq) WHERE sent_at IS NULL;
"""
QUARANTINE_PAYLOAD_MAX = 4096  # keep evidence, not an attacker's megabytes
QUARANTINE_KEEP = 100_000  # newest rows kept: a flood of garbage must not fill the disk


class Accepted(NamedTuple):
    """A verified reading ready to be committed (a tuple: one is built per reading)."""

    box: bytes
    seq: int
    wire: bytes
    box_time: int
    gateway_time: float


@dataclass(frozen=True)
class Rejected:
    """A message that failed verification, kept as evidence."""

    source: str
    reason: str
    detail: str
    payload: bytes
    received_at: float


@dataclass(frozen=True)
class SealedBatch:
    """A sealed batch and its readings, in leaf order."""

    header: batch.BatchHeader
    readings: list[bytes]
    sent_at: float | None = None
    receipt: dict | None = None


class Spool:
    """The gateway's durable store (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk (WAL fsynced) before it returns, so before any ack.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- readings --------------------------------------------------------------------

    def last_seqs(self) -> dict[bytes, int]:
        """Return the highest committed seq of every box."""
        return dict(self.db.execute("SELECT box, last_seq FROM boxes"))

    def stored(self, box: bytes, seq: int) -> bytes | None:
        """Return the stored bytes of a box's reading, if still kept."""
        row = self.db.execute(
            "SELECT wire FROM readings WHERE box = ? AND seq = ?", (box, seq)
        ).fetchone()
        return row[0] if row else None

    def commit(self, accepted: Sequence[Accepted], rejected: Sequence[Rejected] = ()) -> None:
        """Store readings and quarantined messages in one durable transaction."""
        with self._transaction():
            self.db.executemany(
                "INSERT INTO readings (box, seq, wire, box_time, gateway_time) VALUES (?,?,?,?,?)",
                [(a.box, a.seq, a.wire, a.box_time, a.gateway_time) for a in accepted],
            )
            newest: dict[bytes, int] = {}
            for a in accepted:
                newest[a.box] = max(a.seq, newest.get(a.box, -1))
            self.db.executemany(
                "INSERT INTO boxes (box, last_seq) VALUES (?, ?) ON CONFLICT (box) "
                "DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
                list(newest.items()),
            )
            self.db.executemany(
                "INSERT INTO quarantine (received_at, source, reason, detail, payload) "
                "VALUES (?,?,?,?,?)",
                [
                    (
                        r.received_at,
                        r.source,
                        r.reason,
                        r.detail,
                        r.payload[:QUARANTINE_PAYLOAD_MAX],
                    )
                    for r in rejected
                ],
            )

    def unsealed(self) -> tuple[int, float | None]:
        """Return (count, gateway time of the oldest) of readings not yet in a batch."""
        count, oldest = self.db.execute(
            "SELECT count(*), min(gateway_time) FROM readings WHERE batch IS NULL"
        ).fetchone()
        return count, oldest

    # -- batches ---------------------------------------------------------------------

    def seal(self, secret: bytes, max_readings: int) -> batch.BatchHeader | None:
        """Seal up to max_readings unsealed readings, oldest first, into the next batch.

        One transaction: after a crash either the batch and its membership exist, or
        neither does. Returns the new header, or None if nothing was waiting.
        """
        with self._transaction():
            rows = self.db.execute(
                "SELECT id, wire, box_time FROM readings WHERE batch IS NULL ORDER BY id LIMIT ?",
                (max_readings,),
            ).fetchall()
            if not rows:
                return None
            last = self.db.execute(
                "SELECT seq, header FROM batches ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = (
                (0, batch.GENESIS_PREV)
                if last is None
                else (last[0] + 1, batch.header_hash(last[1]))
            )
            header = batch.seal(secret, seq, prev, [r[1] for r in rows], times=[r[2] for r in rows])
            self.db.execute(
                "INSERT INTO batches (seq, header, count, sealed_at) VALUES (?,?,?,?)",
                (seq, header.encode(), len(rows), time.time()),
            )
            self.db.execute(
                "UPDATE readings SET batch = ? WHERE batch IS NULL AND id <= ?", (seq, rows[-1][0])
            )
        return header

    def batch(self, seq: int) -> SealedBatch | None:
        """Return a sealed batch with its readings in leaf order."""
        row = self.db.execute(
            "SELECT header, sent_at, receipt FROM batches WHERE seq = ?", (seq,)
        ).fetchone()
        if row is None:
            return None
        wires = [
            w
            for (w,) in self.db.execute(
                "SELECT wire FROM readings WHERE batch = ? ORDER BY id", (seq,)
            )
        ]
        receipt = json.loads(row[2]) if row[2] else None
        return SealedBatch(batch.decode(row[0]), wires, row[1], receipt)

    def batch_seqs(self) -> list[int]:
        return [s for (s,) in self.db.execute("SELECT seq FROM batches ORDER BY seq")]

    def oldest_unsent(self) -> int | None:
        row = self.db.execute("SELECT min(seq) FROM batches WHERE sent_at IS NULL").fetchone()
        return row[0]

    def unsent(self) -> tuple[int, float | None]:
        """Return (count, sealed_at of the oldest) of batches the cloud has not accepted."""
        return self.db.execute(
            "SELECT count(*), min(sealed_at) FROM batches WHERE sent_at IS NULL"
        ).fetchone()

    def mark_sent(self, seq: int, receipt: dict) -> None:
        with self._transaction():
            self.db.execute(
                "UPDATE batches SET sent_at = ?, receipt = ? WHERE seq = ?",
                (time.time(), json.dumps(receipt), seq),
            )

    # -- housekeeping ----------------------------------------------------------------

    def prune(self, keep_s: float, now: float | None = None) -> int:
        """Delete readings of batches the cloud accepted more than keep_s ago (return how
        many) and all but the newest QUARANTINE_KEEP quarantined messages (the reject
        counters keep the totals). Headers and receipts stay: small, and proof of what
        was sent."""
        cutoff = (now or time.time()) - keep_s
        with self._transaction():
            cur = self.db.execute(
                "DELETE FROM readings WHERE batch IN "
                "(SELECT seq FROM batches WHERE sent_at IS NOT NULL AND sent_at < ?)",
                (cutoff,),
            )
            self.db.execute(
                "DELETE FROM quarantine WHERE id <= (SELECT max(id) FROM quarantine) - ?",
                (QUARANTINE_KEEP,),
            )
        return cur.rowcount

    def size_bytes(self) -> int:
        """Bytes of the spool in use. Pages freed by pruning stay in the file and are
        reused by new readings, so this, not the file's size, is what the limit bounds
        (the file itself stays at its high-water mark)."""
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self.db.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def quarantine_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason"))

    # -- gateway events (gateway/event.py) ---------------------------------------------

    def add_events(self, secret: bytes, drafts: Iterable[event.Draft]) -> list[event.Event]:
        """Give each draft the next event seq, sign it with the gateway's `secret` and queue
        it for the cloud, in one transaction; return the signed events. A draft that is not
        a valid event (a bug in its maker) is logged and skipped: it must not stop alarms."""
        gateway = schnorr.pubkey(secret)
        signed = []
        with self._transaction():
            (last,) = self.db.execute("SELECT max(seq) FROM gateway_events").fetchone()
            seq = 0 if last is None else last + 1
            for draft in drafts:
                try:
                    ev = event.Event(gateway, seq, math.floor(draft.time), draft.kind, draft.body)
                except event.EventError as e:
                    log.error("event %s not queued: %s", draft.kind, e)
                    continue
                signed.append(ev.sign(secret))
                seq += 1
            self.db.executemany(
                "INSERT INTO gateway_events (seq, record) VALUES (?, ?)",
                [(ev.seq, ev.encode()) for ev in signed],
            )
        return signed

    def unsent_events(self, limit: int) -> list[bytes]:
        """Return the records of up to `limit` events the cloud has not received, oldest
        first."""
        rows = self.db.execute(
            "SELECT record FROM gateway_events WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [r for (r,) in rows]

    def events_unsent(self) -> int:
        """Return how many events wait for the cloud."""
        (count,) = self.db.execute(
            "SELECT count(*) FROM gateway_events WHERE sent_at IS NULL"
        ).fetchone()
        return int(count)

    def mark_events_sent(self, receipts: Iterable[tuple[int, int]]) -> None:
        """Record the cloud's receipts (event seq, log index): those events are not sent
        again."""
        now = time.time()
        with self._transaction():
            self.db.executemany(
                "UPDATE gateway_events SET sent_at = ?, log_index = ? WHERE seq = ?",
                [(now, index, seq) for seq, index in receipts],
            )

    def prune_events(self, keep_s: float, now: float | None = None) -> int:
        """Delete events the cloud received more than keep_s ago, except the newest event
        (the next seq follows it); return how many."""
        cutoff = (now or time.time()) - keep_s
        with self._transaction():
            cur = self.db.execute(
                "DELETE FROM gateway_events WHERE sent_at IS NOT NULL AND sent_at < ? "
                "AND seq < (SELECT max(seq) FROM gateway_events)",
                (cutoff,),
            )
        return cur.rowcount

    def _transaction(self) -> Immediate:
        return Immediate(self.db)


class Immediate:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: a write transaction that takes
    SQLite's write lock at once (the spool's, and the cloud ledger's SQLite store's)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")
