"""The gateway's spool: every accepted reading, sealed batch and signed gateway event
(gateway/event.py) waiting for the cloud, in one SQLite database (WAL). A reading is
committed here before its box is acknowledged, and batches are sealed in the same database
in one transaction each, so after a crash the same readings are in the same batch and
never in two.

Rejected messages are kept as evidence in a second file beside it (quarantine.sqlite,
attached as `q`) with a budget of its own: at most `quarantine_max_bytes` of evidence and
`quarantine_max_rows` rows, the oldest dropped first and counted. The readings' size limit
([spool] max_bytes, see size_bytes) never counts quarantine, so no amount of garbage can
stop the gateway accepting valid readings (issue 10 §5). Quarantine writes are not
fsynced (synchronous=NORMAL): evidence, not readings, and a flood must not cost fsyncs.

Layout (version 2). A reading is written once and never updated: sealing a batch writes
one batches row naming the batch's readings as an id range, first_id..last_id (a batch is
the oldest unsealed readings, and ids are arrival order, so its readings are always such a
range). Readings after the newest batch's last_id are the unsealed ones. Ids come from the
spool's own counter and never go back, not even after pruning empties the table (SQLite
would give the next row id 1 again). Readings name their box by its number in the boxes
table, not its 32-byte key (the key is in the wire too). Version 1 kept a batch column on
every reading, set by an UPDATE of every row at sealing and indexed twice, and keyed
readings by the box's key: about twice the spool thread's CPU per reading, and half as
many bytes again (233 per reading against 152; bench/RESULTS.md, "Spool layout 2"). A
version-1 spool is rewritten to this layout at open, in one transaction (_migrate_v1).

The class is synchronous and not thread-safe: the gateway runs it on one worker thread.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, cast

from device import schnorr
from gateway import batch, event, seqranges
from gateway.settings import SpoolSettings
from gateway.sqlitetx import Immediate

log = logging.getLogger("pharmasync.gateway.spool")

BOXES_TABLE = """
CREATE TABLE IF NOT EXISTS boxes (
    no  INTEGER PRIMARY KEY,           -- the box's number in this spool: readings name it
    box BLOB    NOT NULL UNIQUE        -- the box's x-only key
)"""
READINGS_TABLE = """
CREATE TABLE IF NOT EXISTS readings (
    id           INTEGER PRIMARY KEY,   -- arrival order, which is batch order; never reused
    box_no       INTEGER NOT NULL,      -- boxes.no (the key itself is in the wire, bytes 1..32)
    seq          INTEGER NOT NULL,
    wire         BLOB    NOT NULL,      -- the exact 110 signed bytes
    box_time     INTEGER NOT NULL,
    gateway_time REAL    NOT NULL,      -- our clock at receipt, beside the box's
    UNIQUE (box_no, seq)
)"""
BATCHES_TABLE = """
CREATE TABLE IF NOT EXISTS batches (
    seq       INTEGER PRIMARY KEY,
    header    BLOB NOT NULL,            -- the signed 181-byte header
    count     INTEGER NOT NULL,
    first_id  INTEGER NOT NULL,         -- its readings: ids first_id..last_id, in leaf order
    last_id   INTEGER NOT NULL,         -- (first_id = last_id + 1: none, see _migrate_v1)
    sealed_at REAL NOT NULL,
    sent_at   REAL,                     -- when the cloud accepted it
    receipt   TEXT                      -- the cloud's receipt (JSON)
)"""
SCHEMA = f"""
{BOXES_TABLE};
{READINGS_TABLE};
{BATCHES_TABLE};
CREATE TABLE IF NOT EXISTS committed (  -- every seq ever committed, as ranges (seqranges.py)
    box   BLOB    NOT NULL,
    first INTEGER NOT NULL,
    last  INTEGER NOT NULL,            -- inclusive; ranges of a box never touch or overlap
    PRIMARY KEY (box, first)
);
CREATE TABLE IF NOT EXISTS gateway_events (
    seq       INTEGER PRIMARY KEY,      -- the gateway's event seq: 0, 1, 2, ... no gaps
    record    BLOB NOT NULL,            -- signature || canonical JSON (gateway/event.py)
    sent_at   REAL,                     -- when the cloud's receipt came; NULL: queued
    log_index INTEGER                   -- the cloud's log entry for it
);
CREATE INDEX IF NOT EXISTS gateway_events_unsent ON gateway_events (seq) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS cosigned_receipts (  -- gateway/cosigned_receipt.py
    seq          INTEGER PRIMARY KEY,   -- the batch's seq
    receipt      TEXT NOT NULL,         -- the cosigned receipt (JSON), as checked
    size         INTEGER NOT NULL,      -- the cosigned checkpoint's size
    cosignatures INTEGER NOT NULL,      -- the cosignatures it was checked to carry
    fetched_at   REAL NOT NULL
);
"""
QUARANTINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS q.quarantine (
    id          INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    source      TEXT NOT NULL,          -- e.g. mqtt:<topic>, ble:<address>
    reason      TEXT NOT NULL,          -- what was wrong, counted by reason
    detail      TEXT NOT NULL,
    payload     BLOB NOT NULL,
    size        INTEGER NOT NULL        -- what the row costs of the budget (evidence_size)
);
"""
QUARANTINE_FILE = "quarantine.sqlite"  # beside the spool
QUARANTINE_PAYLOAD_MAX = 4096  # keep evidence, not an attacker's megabytes
QUARANTINE_TEXT_MAX = 512  # source (an MQTT topic can be 64 KiB) and detail, in characters
QUARANTINE_ROW_OVERHEAD = 64  # a row's bytes besides its fields (header, rowid, index)


class SpoolError(Exception):
    """A spool file this code cannot use as it stands (e.g. a version-1 spool whose batches
    are not id ranges); the file is left as it was."""


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

    def __init__(
        self,
        path: Path,
        quarantine_max_bytes: int = SpoolSettings.quarantine_max_bytes,
        quarantine_max_rows: int = SpoolSettings.quarantine_max_rows,
    ) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk (WAL fsynced) before it returns, so before any ack.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._migrate_v1()
        self._open_quarantine(quarantine_max_bytes, quarantine_max_rows)
        self._load()

    def _load(self) -> None:
        """Load what the spool keeps in memory from the database (at open, and after a failed
        commit, whose changes to it were rolled back): box numbers, committed ranges, the
        last sealed id, the next id and the unsealed count (the only full count; afterwards
        `unsealed` keeps it by arithmetic)."""
        self._box_numbers: dict[bytes, int] = dict(self.db.execute("SELECT box, no FROM boxes"))
        self._ranges = self._load_ranges()
        (self._sealed_through,) = self.db.execute(
            "SELECT coalesce((SELECT last_id FROM batches ORDER BY seq DESC LIMIT 1), 0)"
        ).fetchone()
        # Past every id ever given, pruned or not: pruning keeps the batches' ranges.
        (top,) = self.db.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()
        self._next_id: int = max(top, self._sealed_through) + 1
        (count,) = self.db.execute(
            "SELECT count(*) FROM readings WHERE id > ?", (self._sealed_through,)
        ).fetchone()
        self._unsealed: int = count

    def _migrate_v1(self) -> None:
        """Rewrite a version-1 spool to this layout (module docstring), in one transaction:
        boxes get numbers, readings name their box by it, batches get their id ranges, and
        the batch column with its two indexes goes, as does boxes.last_seq (the committed
        ranges hold it). A batch pruned before (no readings left) gets an empty range at
        its place in the order: version 1 let SQLite reuse the ids of a table emptied by
        pruning, so its old ids may be a later batch's. Takes ~7 µs per reading (once:
        bench/spool.py --migrate), and the file grows by the copy until new rows reuse
        the old tables' pages.

        Raises SpoolError, changing nothing, if the old file's batches are not id ranges
        holding exactly their count of readings before every unsealed one (the version-1
        sealer made them so; anything else is not a spool this code understands)."""
        columns = [c[1] for c in self.db.execute("PRAGMA table_info(readings)")]
        if "batch" not in columns:
            return
        log.warning("spool %s: migrating to version 2 (batch id ranges, box numbers)", self.path)
        with self._transaction():
            for table in ("boxes", "readings", "batches"):
                self.db.execute(f"ALTER TABLE {table} RENAME TO v1_{table}")
            for table_sql in (BOXES_TABLE, READINGS_TABLE, BATCHES_TABLE):
                self.db.execute(table_sql)
            self.db.execute("INSERT INTO boxes (box) SELECT box FROM v1_boxes")
            # A spool from before the committed table: its acks said "everything up to
            # last_seq", so that is what it has committed. (Since then the committed
            # ranges say it, and version 2 keeps no last_seq.)
            self.db.execute(
                "INSERT INTO committed (box, first, last) SELECT box, 0, last_seq FROM v1_boxes "
                "WHERE box NOT IN (SELECT box FROM committed)"
            )
            copied = self.db.execute(
                "INSERT INTO readings (id, box_no, seq, wire, box_time, gateway_time) "
                "SELECT r.id, b.no, r.seq, r.wire, r.box_time, r.gateway_time "
                "FROM v1_readings r JOIN boxes b ON b.box = r.box ORDER BY r.id"
            ).rowcount
            (total,) = self.db.execute("SELECT count(*) FROM v1_readings").fetchone()
            if copied != total:
                raise SpoolError(f"version-1 spool: got {total - copied} readings of no box")
            last_id = 0  # of the batches so far
            for seq, count, *rest in self.db.execute(
                "SELECT seq, count, header, sealed_at, sent_at, receipt FROM v1_batches "
                "ORDER BY seq"
            ).fetchall():
                first, last, kept = self.db.execute(
                    "SELECT min(id), max(id), count(*) FROM v1_readings WHERE batch = ?", (seq,)
                ).fetchone()
                if kept:
                    (inside,) = self.db.execute(
                        "SELECT count(*) FROM v1_readings WHERE id BETWEEN ? AND ?", (first, last)
                    ).fetchone()
                    if not kept == inside == count:
                        raise SpoolError(
                            f"version-1 batch {seq}: got {kept} readings among {inside} in "
                            f"ids {first}..{last}, want its count {count} and no others"
                        )
                    last_id = last
                else:
                    first, last = last_id + 1, last_id  # pruned: an empty range
                self.db.execute(
                    "INSERT INTO batches (seq, count, header, sealed_at, sent_at, receipt, "
                    "first_id, last_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, count, *rest, first, last),
                )
            (early,) = self.db.execute(
                "SELECT count(*) FROM v1_readings WHERE batch IS NULL AND id <= ?", (last_id,)
            ).fetchone()
            if early:
                raise SpoolError(
                    f"version-1 spool: got {early} unsealed readings before the last batch's "
                    f"id {last_id}, want none"
                )
            for table in ("boxes", "readings", "batches"):
                self.db.execute(f"DROP TABLE v1_{table}")  # its pages go to new rows

    def _load_ranges(self) -> dict[bytes, list[seqranges.Range]]:
        ranges: dict[bytes, list[seqranges.Range]] = {}
        for box, first, last in self.db.execute(
            "SELECT box, first, last FROM committed ORDER BY box, first"
        ):
            ranges.setdefault(box, []).append((first, last))
        return ranges

    def close(self) -> None:
        self.db.close()

    # -- readings --------------------------------------------------------------------

    def last_seqs(self) -> dict[bytes, int]:
        """Return the highest committed seq of every box."""
        return {box: ranges[-1][1] for box, ranges in self._ranges.items() if ranges}

    def committed_ranges(self) -> dict[bytes, tuple[seqranges.Range, ...]]:
        """Return every box's committed seqs as ranges (ascending, never touching)."""
        return {box: tuple(r) for box, r in self._ranges.items()}

    def stored(self, box: bytes, seq: int) -> bytes | None:
        """Return the stored bytes of a box's reading, if still kept."""
        return stored(self.db, self._box_numbers.get(box), seq)

    def commit(
        self, accepted: Sequence[Accepted], rejected: Sequence[Rejected] = ()
    ) -> dict[bytes, tuple[seqranges.Range, ...]]:
        """Store readings and quarantined messages in one durable transaction. Returns the
        committed ranges of every box that had readings in it."""
        try:
            self._commit(accepted, rejected)
        except BaseException:
            self._load()  # what is kept in memory may hold what was rolled back
            raise
        self._unsealed += len(accepted)  # the transaction committed: they are in the table
        return {box: tuple(self._ranges[box]) for box in {a.box for a in accepted}}

    def _commit(self, accepted: Sequence[Accepted], rejected: Sequence[Rejected]) -> None:
        seqs: defaultdict[bytes, list[int]] = defaultdict(list)  # of each box, one pass
        for a in accepted:
            seqs[a.box].append(a.seq)
        with self._transaction():
            box_no = self._box_numbers
            for box in seqs.keys() - box_no.keys():  # a box's first reading: number it
                cur = self.db.execute("INSERT INTO boxes (box) VALUES (?)", (box,))
                box_no[box] = cast(int, cur.lastrowid)
            first = self._next_id
            self.db.executemany(
                "INSERT INTO readings (id, box_no, seq, wire, box_time, gateway_time) "
                "VALUES (?,?,?,?,?,?)",
                [
                    (i, box_no[a.box], a.seq, a.wire, a.box_time, a.gateway_time)
                    for i, a in enumerate(accepted, first)
                ],
            )
            self._next_id = first + len(accepted)
            self._add_ranges(seqs)
            quarantined = self._quarantine(rejected)
        self._quarantined = quarantined  # its totals count once the transaction committed

    def _add_ranges(self, seqs: dict[bytes, list[int]]) -> None:
        """Merge each box's accepted seqs into its committed ranges, then write what changed
        in three statements for the whole commit: rows of ranges merged away go, ranges
        that grew are updated (usually a box's newest: a commit group of one box is mostly
        one run that follows it), new ranges come. A statement or two per box and run cost
        about a millisecond per commit with a hundred boxes."""
        gone: list[tuple[bytes, int]] = []
        grown: list[tuple[int, bytes, int]] = []
        made: list[tuple[bytes, int, int]] = []
        for box, numbers in seqs.items():
            ranges = self._ranges.setdefault(box, [])
            runs = seqranges.runs(numbers)
            if len(runs) == 1 and ranges and runs[0][0] == ranges[-1][1] + 1:
                # The usual case: one run right after the box's newest range, which grows
                # (what seqranges.add would do, without the diff below: ~2 µs per box).
                first, last = ranges[-1][0], runs[0][1]
                ranges[-1] = (first, last)
                grown.append((last, box, first))
                continue
            before = dict(ranges)  # first -> last
            for first, last in runs:
                seqranges.add(ranges, first, last)
            after = dict(ranges)
            gone += [(box, first) for first in before.keys() - after.keys()]
            for first, last in after.items():
                if first not in before:
                    made.append((box, first, last))
                elif before[first] != last:
                    grown.append((last, box, first))
        self.db.executemany("DELETE FROM committed WHERE box = ? AND first = ?", gone)
        self.db.executemany("UPDATE committed SET last = ? WHERE box = ? AND first = ?", grown)
        self.db.executemany("INSERT INTO committed (box, first, last) VALUES (?, ?, ?)", made)

    def unsealed(self) -> tuple[int, float | None]:
        """Return (count, gateway time of the oldest) of readings not yet in a batch.

        The sealer asks at every tick, so this costs the same with 4 million readings
        waiting (a site draining its boxes' backlogs) as with none: the count is kept in
        memory, counted once at open and then moved by every commit and seal after its
        transaction committed (a crash loses nothing: the next open counts again), and the
        oldest is the first unsealed row in arrival order, one probe of the primary key
        past the last sealed id (arrival order is gateway-time order: rows are inserted as
        they arrive). Counting the rows here cost a scan of that index per tick, ~0.25 s per
        million readings waiting (bench/RESULTS.md, issue 13 part 3)."""
        if not self._unsealed:
            return 0, None
        row = self.db.execute(
            "SELECT gateway_time FROM readings WHERE id > ? ORDER BY id LIMIT 1",
            (self._sealed_through,),
        ).fetchone()
        return self._unsealed, None if row is None else row[0]

    # -- batches ---------------------------------------------------------------------

    def seal(self, secret: bytes, max_readings: int) -> batch.BatchHeader | None:
        """Seal up to max_readings unsealed readings, oldest first, into the next batch.

        One transaction, one row: the batch's header and its membership, the id range of its
        readings; after a crash either both exist or neither does. Returns the new header,
        or None if nothing was waiting.
        """
        with self._transaction():
            rows = self.db.execute(
                "SELECT id, wire, box_time FROM readings WHERE id > ? ORDER BY id LIMIT ?",
                (self._sealed_through, max_readings),
            ).fetchall()
            if not rows:
                return None
            last = self.db.execute(
                "SELECT seq, header FROM batches ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            head = None if last is None else batch.ChainHead(last[0], batch.header_hash(last[1]))
            seq, prev = batch.next_link(head)
            header = batch.seal(secret, seq, prev, [r[1] for r in rows], times=[r[2] for r in rows])
            self.db.execute(
                "INSERT INTO batches (seq, header, count, first_id, last_id, sealed_at) "
                "VALUES (?,?,?,?,?,?)",
                (seq, header.encode(), len(rows), rows[0][0], rows[-1][0], time.time()),
            )
        # Committed: exactly those rows left the unsealed set.
        self._sealed_through = rows[-1][0]
        self._unsealed -= len(rows)
        return header

    def batch(self, seq: int) -> SealedBatch | None:
        """Return a sealed batch with its readings in leaf order."""
        row = self.db.execute(
            "SELECT header, sent_at, receipt, first_id, last_id FROM batches WHERE seq = ?",
            (seq,),
        ).fetchone()
        if row is None:
            return None
        wires = [
            w
            for (w,) in self.db.execute(
                "SELECT wire FROM readings WHERE id BETWEEN ? AND ? ORDER BY id", row[3:]
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

    # -- cosigned receipts (gateway/cosigned_receipt.py) ------------------------------

    def next_uncosigned(self) -> tuple[int, bytes, dict] | None:
        """Return (seq, header bytes, receipt) of the oldest batch the cloud accepted that
        has no cosigned receipt yet, or None."""
        row = self.db.execute(
            "SELECT seq, header, receipt FROM batches WHERE sent_at IS NOT NULL "
            "AND seq NOT IN (SELECT seq FROM cosigned_receipts) ORDER BY seq LIMIT 1"
        ).fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def keep_cosigned(self, seq: int, receipt: dict, size: int, cosignatures: int) -> None:
        """Keep batch `seq`'s checked cosigned receipt (a second one for it is ignored)."""
        with self._transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO cosigned_receipts "
                "(seq, receipt, size, cosignatures, fetched_at) VALUES (?, ?, ?, ?, ?)",
                (seq, json.dumps(receipt), size, cosignatures, time.time()),
            )

    def cosigned(self, seq: int) -> dict | None:
        """Return batch `seq`'s kept cosigned receipt, if any."""
        row = self.db.execute(
            "SELECT receipt FROM cosigned_receipts WHERE seq = ?", (seq,)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def cosigned_counts(self) -> tuple[int, int]:
        """Return (batches with a cosigned receipt, accepted batches still without one)."""
        kept = self.db.execute("SELECT count(*) FROM cosigned_receipts").fetchone()[0]
        waiting = self.db.execute(
            "SELECT count(*) FROM batches WHERE sent_at IS NOT NULL "
            "AND seq NOT IN (SELECT seq FROM cosigned_receipts)"
        ).fetchone()[0]
        return kept, waiting

    # -- housekeeping ----------------------------------------------------------------

    def prune(self, keep_s: float, now: float | None = None) -> int:
        """Delete readings of batches the cloud accepted more than keep_s ago (return how
        many). Headers and receipts stay: small, and proof of what was sent. (Quarantine
        keeps to its budget as it is written.) Batches whose readings are gone already are
        skipped; the ids of those deleted are never given again (module docstring)."""
        cutoff = (now or time.time()) - keep_s
        with self._transaction():
            ranges = self.db.execute(
                "SELECT first_id, last_id FROM batches WHERE sent_at IS NOT NULL AND sent_at < ? "
                "AND last_id >= (SELECT min(id) FROM readings)",
                (cutoff,),
            ).fetchall()
            cur = self.db.executemany("DELETE FROM readings WHERE id BETWEEN ? AND ?", ranges)
        return cur.rowcount

    def size_bytes(self, schema: str = "main") -> int:
        """Bytes of the spool in use (of quarantine with schema "q"). Pages freed by
        pruning stay in the file and are reused by new rows, so this, not the file's
        size, is what the limit bounds (the file itself stays at its high-water mark)."""
        pages = self.db.execute(f"PRAGMA {schema}.page_count").fetchone()[0]
        free = self.db.execute(f"PRAGMA {schema}.freelist_count").fetchone()[0]
        size = self.db.execute(f"PRAGMA {schema}.page_size").fetchone()[0]
        return int((pages - free) * size)

    # -- quarantine ------------------------------------------------------------------

    def _open_quarantine(self, max_bytes: int, max_rows: int) -> None:
        """Attach quarantine.sqlite and load its totals; move rows an older spool kept in
        its own file (which counted toward the readings' limit) into it."""
        self.quarantine_max_bytes = max_bytes
        self.quarantine_max_rows = max_rows
        self.db.execute("ATTACH DATABASE ? AS q", (str(self.path.with_name(QUARANTINE_FILE)),))
        self.db.execute("PRAGMA q.journal_mode=WAL")
        self.db.execute("PRAGMA q.synchronous=NORMAL")
        self.db.executescript(QUARANTINE_SCHEMA)
        rows, size = self.db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM q.quarantine"
        ).fetchone()
        self._quarantined = (rows, size, 0)
        old = self.db.execute(
            "SELECT 1 FROM main.sqlite_master WHERE name = 'quarantine'"
        ).fetchone()
        if old:
            with self._transaction():
                kept = self.db.execute(
                    "SELECT received_at, source, reason, detail, payload FROM main.quarantine "
                    "ORDER BY id DESC LIMIT ?",
                    (max_rows,),
                ).fetchall()
                self._quarantined = self._quarantine(
                    [Rejected(s, r, d, p, t) for t, s, r, d, p in reversed(kept)]
                )
                self.db.execute("DROP TABLE main.quarantine")  # its pages go to readings

    def _quarantine(self, rejected: Sequence[Rejected]) -> tuple[int, int, int]:
        """Insert rejected messages, then drop the oldest rows while over the budget.
        Runs inside a transaction; returns the new (rows, bytes, dropped) totals."""
        rows, size, dropped = self._quarantined
        if not rejected:
            return rows, size, dropped
        new = []
        for r in rejected:
            source, detail = r.source[:QUARANTINE_TEXT_MAX], r.detail[:QUARANTINE_TEXT_MAX]
            payload = r.payload[:QUARANTINE_PAYLOAD_MAX]
            n = evidence_size(source, r.reason, detail, payload)
            new.append((r.received_at, source, r.reason, detail, payload, n))
        self.db.executemany(
            "INSERT INTO q.quarantine (received_at, source, reason, detail, payload, size) "
            "VALUES (?,?,?,?,?,?)",
            new,
        )
        rows += len(new)
        size += sum(row[-1] for row in new)
        over_rows, over_bytes = rows - self.quarantine_max_rows, size - self.quarantine_max_bytes
        if over_rows <= 0 and over_bytes <= 0:
            return rows, size, dropped
        # Oldest first: walk the rows in id order until enough are counted, then cut there.
        cut, n_rows, n_bytes = 0, 0, 0
        cur = self.db.execute("SELECT id, size FROM q.quarantine ORDER BY id")
        while n_rows < over_rows or n_bytes < over_bytes:
            chunk = cur.fetchmany(1024)
            if not chunk:
                break
            for row_id, row_size in chunk:
                cut, n_rows, n_bytes = row_id, n_rows + 1, n_bytes + row_size
                if n_rows >= over_rows and n_bytes >= over_bytes:
                    break
        cur.close()
        self.db.execute("DELETE FROM q.quarantine WHERE id <= ?", (cut,))
        return rows - n_rows, size - n_bytes, dropped + n_rows

    def quarantine_usage(self) -> tuple[int, int, int]:
        """Return quarantine's (rows, bytes of its budget used, rows dropped since open)."""
        return self._quarantined

    def quarantine_counts(self) -> dict[str, int]:
        """Return the quarantined rows kept, by reason."""
        return dict(self.db.execute("SELECT reason, count(*) FROM q.quarantine GROUP BY reason"))

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


def stored(db: sqlite3.Connection, box_no: int | None, seq: int) -> bytes | None:
    """The stored bytes of reading `seq` of box number `box_no` (boxes.no; None: the box
    has none) in the spool `db`, if still kept: one probe of the (box_no, seq) index."""
    if box_no is None:
        return None
    row = db.execute(
        "SELECT wire FROM readings WHERE box_no = ? AND seq = ?", (box_no, seq)
    ).fetchone()
    return row[0] if row else None


class SpoolReader:
    """A read-only connection to a spool for the event loop's own thread: a lookup by the
    (box, seq) index costs microseconds, where a trip to the spool thread costs an event-
    loop iteration, and the verifier looks up every duplicate in arrival order, one at a
    time (gateway/verify.py). After an outage boxes resend whole backlogs (device/
    firmware.py, ack_timeout_s): hundreds of thousands of duplicates, which at one trip
    each stalled everything behind them, live readings included (bench/RESULTS.md, issue
    13 part 3). WAL: it sees every committed transaction, and never blocks the writer."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        # A box's number never changes once given (boxes rows are never deleted), so the
        # ones seen are kept: a lookup is then one index probe, not two.
        self._box_numbers: dict[bytes, int] = {}

    def stored(self, box: bytes, seq: int) -> bytes | None:
        """Return the stored bytes of a box's reading, if still kept."""
        box_no = self._box_numbers.get(box)
        if box_no is None:
            row = self.db.execute("SELECT no FROM boxes WHERE box = ?", (box,)).fetchone()
            if row is None:
                return None  # nothing of this box committed (yet)
            box_no = self._box_numbers[box] = row[0]
        return stored(self.db, box_no, seq)

    def close(self) -> None:
        self.db.close()


def evidence_size(source: str, reason: str, detail: str, payload: bytes) -> int:
    """What one quarantined row costs of the budget: its fields' bytes and a row's overhead
    (measured: 4 KiB payloads fill SQLite's 4 KiB pages to about 95 % of this)."""
    text = len(source.encode()) + len(reason.encode()) + len(detail.encode())
    return text + len(payload) + QUARANTINE_ROW_OVERHEAD
