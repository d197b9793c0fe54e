"""Batches and their readings as stored, once for every engine.

A batch's header is one log entry (kind 0x01); its leaves, tile and new readings are
stored in the same transaction (log.Commit). store_batch re-checks, under the log's lock,
what the caller verified without it (the header is not stored yet, the batch still chains
to its gateway's last one), so racing workers cannot fork a gateway's chain: the loser gets
StoreConflict.

Readings are stored exactly once by (box, seq) (issue 10, docs/protocol.md "Exactly once"):
every leaf of every batch is kept, in leaf order, for auditors who recompute batch roots,
but only the first carrier of a reading holds its 110 bytes; a later leaf with the same
bytes is a *duplicate sighting* that refers to them, and a later leaf with other bytes
under the same (box, seq) is an *equivocation*, kept as evidence beside it and never
served as the reading. `classify_leaves` is that rule.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import NamedTuple

from cloud.log import batchtree, tlog
from cloud.log.verified import Verified
from cloud.storage.engine import Tx, marks, parts
from cloud.storage.errors import NotFound, StoreConflict
from cloud.storage.log import Commit
from gateway import batch


@dataclass(frozen=True, slots=True)
class KnownState:
    """What verifying one batch needs to know of the ledger, read in one go beforehand."""

    gateway_registered: bool
    stored_header: bytes | None  # the header stored for this (gateway, seq), if any
    last_header: bytes | None  # the gateway's newest stored header, if any
    registered_devices: frozenset[bytes]  # those of the asked keys that are registered


class StoredReading(NamedTuple):
    """A reading as stored, with what proving it needs of its batch (read in one go)."""

    wire: bytes  # the 110 signed bytes: the leaf of its batch's tree
    log_index: int  # the log entry of its batch's header
    leaf: int  # its position in the batch's tree
    entry: bytes  # that log entry, exactly as stored
    batch_size: int  # readings in the batch
    tile: bytes  # the batch's tile (cloud/log/batchtree.py)


class Leaf(NamedTuple):
    """One leaf of a batch as stored: its reading's (box, seq) and the bytes it carries
    when they are stored with it (`wire` None: they are the reading's first-stored bytes,
    held by another leaf)."""

    leaf: int  # position in the batch's tree
    key: bytes  # the box's key
    seq: int
    time: int
    wire: bytes | None  # set for the reading's first carrier


@dataclass(frozen=True, slots=True)
class Sighting:
    """A leaf that carried an already stored reading (box, seq) again: a duplicate (the
    same bytes) or an equivocation (other bytes, validly signed: the box's key may be
    cloned). `first` is where the reading is stored, as (log index, leaf)."""

    key: bytes
    seq: int
    log_index: int
    leaf: int
    first: tuple[int, int]
    wire: bytes | None  # None: a duplicate; else the equivocating bytes (the evidence)

    @property
    def equivocation(self) -> bool:
        return self.wire is not None


@dataclass(frozen=True, slots=True)
class BatchStored:
    """What store_batch did: the header's log index; `created` False if the batch was
    already stored (an exact resend, maybe racing its original: nothing was written); the
    number of readings stored for the first time; and the batch's sightings."""

    log_index: int
    created: bool
    new_readings: int = 0
    sightings: tuple[Sighting, ...] = ()

    @property
    def duplicates(self) -> int:
        return sum(1 for s in self.sightings if not s.equivocation)

    @property
    def equivocations(self) -> tuple[Sighting, ...]:
        return tuple(s for s in self.sightings if s.equivocation)


# Past any batch's last leaf: PostgreSQL's leaf column is an integer, and a batch of
# 2**31 readings (236 GB) is far beyond any upload the cloud accepts.
MAX_LEAF = 2**31 - 1

# (box key, seq) -> (first-stored bytes, (log index, leaf) of their carrier)
StoredFirst = dict[tuple[bytes, int], tuple[bytes, tuple[int, int]]]


def classify_leaves(
    log_index: int, verified: Verified, stored: StoredFirst
) -> tuple[list[Leaf], list[Sighting]]:
    """Split a batch's leaves into those that store a reading for the first time and
    sightings of readings stored before (in `stored`, read under the write lock, or
    earlier in this batch). Return (every leaf in order, the sightings)."""
    first = dict(stored)
    leaves: list[Leaf] = []
    sightings: list[Sighting] = []
    for position, (r, wire) in enumerate(zip(verified.readings, verified.wires, strict=True)):
        known = first.get((r.key, r.seq))
        if known is None:
            first[(r.key, r.seq)] = (wire, (log_index, position))
            leaves.append(Leaf(position, r.key, r.seq, r.time, wire))
            continue
        leaves.append(Leaf(position, r.key, r.seq, r.time, None))
        other = None if known[0] == wire else wire
        sightings.append(Sighting(r.key, r.seq, log_index, position, known[1], other))
    return leaves, sightings


def sighting_json(
    s: Sighting, gateway: bytes, batch_seq: int, stored_wire: bytes
) -> dict[str, object]:
    """The JSON an operator reads for one sighting (GET /v1/devices/{device}/equivocations,
    /sightings): where it was carried, and for an equivocation both signed byte strings."""
    doc: dict[str, object] = {
        "seq": s.seq,
        "log_index": s.log_index,
        "leaf": s.leaf,
        "gateway": gateway.hex(),
        "batch": batch_seq,
        "first": {"log_index": s.first[0], "leaf": s.first[1]},
    }
    if s.wire is not None:
        doc["stored"] = stored_wire.hex()  # the bytes served as the reading
        doc["conflicting"] = s.wire.hex()  # the other bytes, kept as evidence
    return doc


# The header stored for (gateway, seq), its log index, and the gateway's newest header.
_HEADERS = (
    "SELECT (SELECT header FROM batches WHERE gateway = ? AND seq = ?), "
    "(SELECT log_index FROM batches WHERE gateway = ? AND seq = ?), "
    "(SELECT header FROM batches WHERE gateway = ? ORDER BY seq DESC LIMIT 1)"
)


async def _headers(
    tx: Tx, gateway: bytes, seq: int
) -> tuple[bytes | None, int | None, bytes | None]:
    row = await tx.fetchone(_HEADERS, gateway, seq, gateway, seq, gateway)
    assert row is not None
    stored, index, last = row
    return (
        None if stored is None else bytes(stored),
        None if index is None else int(index),
        None if last is None else bytes(last),
    )


async def device_ids(tx: Tx, keys: Collection[bytes]) -> dict[bytes, int]:
    """The ids of those of the boxes `keys` that are registered."""
    ids: dict[bytes, int] = {}
    for part in parts(tx, list(keys), 1):
        rows = await tx.fetchall(
            f"SELECT key, id FROM devices WHERE key IN ({marks(len(part))})", *part
        )
        ids.update((bytes(k), int(i)) for k, i in rows)
    return ids


async def known(tx: Tx, gateway: bytes, seq: int, devices: Collection[bytes]) -> KnownState:
    """Read what check_batch needs for a batch (gateway, seq) naming these boxes."""
    registered = await tx.fetchval("SELECT count(*) FROM gateways WHERE key = ?", gateway)
    stored, _, last = await _headers(tx, gateway, seq)
    return KnownState(bool(registered), stored, last, frozenset(await device_ids(tx, set(devices))))


async def store_batch(commit: Commit, verified: Verified) -> BatchStored:
    """Append the batch header to the log and store the batch, its leaves and its new
    readings (classify_leaves), in the commit's transaction. If an identical header is
    already stored for (gateway, seq), store nothing and report created=False. Raises
    StoreConflict if another header is stored there or the chain moved on, NotFound for
    an unregistered box (the caller verified them: a bug elsewhere; all rolls back)."""
    header, tx = verified.header, commit.tx
    # The caller checked all this without the lock; another worker may have stored since.
    stored, stored_index, last = await _headers(tx, header.gateway_key, header.seq)
    if stored is not None:
        if stored != verified.header_bytes:
            raise StoreConflict("conflict", f"another batch {header.seq} is stored")
        assert stored_index is not None
        return BatchStored(stored_index, created=False)
    broken = batch.chain_break(header, last)
    if broken:
        raise StoreConflict("chain", broken)
    index = await commit.append([tlog.batch_entry(verified.header_bytes)])
    await tx.execute(
        "INSERT INTO batches (gateway, seq, header, log_index, count, tile, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        header.gateway_key,
        header.seq,
        verified.header_bytes,
        index,
        header.count,
        batchtree.tile_of(verified.wires),
        time.time(),
    )
    ids, stored_first = await _boxes(tx, verified)
    if unknown := {r.key for r in verified.readings} - ids.keys():
        raise NotFound(f"box {min(unknown).hex()} is not registered")
    leaves, sightings = classify_leaves(index, verified, stored_first)
    await tx.executemany(
        "INSERT INTO leaves (log_index, leaf, device, seq, time, wire) VALUES (?, ?, ?, ?, ?, ?)",
        [(index, x.leaf, ids[x.key], x.seq, x.time, x.wire) for x in leaves],
    )
    now = time.time()
    await tx.executemany(
        "INSERT INTO equivocations (log_index, leaf, wire, received_at) VALUES (?, ?, ?, ?)",
        [(index, x.leaf, x.wire, now) for x in sightings if x.wire is not None],
    )
    return BatchStored(index, True, len(leaves) - len(sightings), tuple(sightings))


async def _boxes(tx: Tx, verified: Verified) -> tuple[dict[bytes, int], StoredFirst]:
    """Read, in one query per part, the ids of a batch's boxes (those registered) and the
    readings among its (box, seq) that are stored: their bytes and carrier. A join on a
    table of the pairs probes the boxes' key and the readings' unique index per pair (a
    row-value IN would scan)."""
    pairs = list({(r.key, r.seq) for r in verified.readings})
    ids: dict[bytes, int] = {}
    stored: StoredFirst = {}
    for part in parts(tx, pairs, 2):
        pairs_table, bound = tx.table(("BLOB", "BIGINT"), part)
        rows = await tx.fetchall(
            f"WITH k(a, b) AS ({pairs_table}) "
            "SELECT k.a, d.id, k.b, l.wire, l.log_index, l.leaf FROM k "
            "JOIN devices d ON d.key = k.a "
            "LEFT JOIN leaves l ON l.device = d.id AND l.seq = k.b AND l.wire IS NOT NULL",
            *bound,
        )
        for key, box, seq, wire, index, leaf in rows:
            ids[bytes(key)] = int(box)
            if wire is not None:
                stored[(bytes(key), int(seq))] = (bytes(wire), (int(index), int(leaf)))
    return ids, stored


async def batch_log_index(tx: Tx, gateway: bytes, seq: int) -> int | None:
    _, index, _ = await _headers(tx, gateway, seq)
    return index


async def reading(tx: Tx, device: bytes, seq: int) -> StoredReading | None:
    """The reading (device, seq) as first stored, if any, with its batch's log entry and
    tile."""
    row = await tx.fetchone(
        "SELECT r.wire, r.log_index, r.leaf, e.entry, b.count, b.tile FROM leaves r "
        "JOIN devices d ON d.id = r.device JOIN log_entries e ON e.idx = r.log_index "
        "JOIN batches b ON b.log_index = r.log_index "
        "WHERE d.key = ? AND r.seq = ? AND r.wire IS NOT NULL",
        device,
        seq,
    )
    if row is None:
        return None
    wire, log_index, leaf, entry, count, tile = row
    return StoredReading(bytes(wire), log_index, leaf, bytes(entry), count, bytes(tile))


async def batch_leaves(tx: Tx, log_index: int, start: int, end: int) -> list[bytes]:
    """Leaves [start, end) of the batch whose header is log entry `log_index`, each with
    the bytes it carried: its own (the reading's first carrier), the equivocating ones
    kept as evidence, or those it sighted again. COALESCE evaluates lazily, so a first
    carrier costs no further lookup."""
    rows = await tx.fetchall(
        "SELECT coalesce(l.wire, e.wire, (SELECT f.wire FROM leaves f "
        "WHERE f.device = l.device AND f.seq = l.seq AND f.wire IS NOT NULL)) "
        "FROM leaves l LEFT JOIN equivocations e ON e.log_index = l.log_index AND e.leaf = l.leaf "
        "WHERE l.log_index = ? AND l.leaf >= ? AND l.leaf < ? ORDER BY l.leaf",
        log_index,
        start,
        end,
    )
    return [bytes(w) for (w,) in rows]


async def history(tx: Tx, device: bytes, start: int, end: int, limit: int) -> list[bytes]:
    """Up to `limit` readings of a box with start <= time < end, oldest first (each
    (box, seq) once, as first stored)."""
    rows = await tx.fetchall(
        "SELECT r.wire FROM leaves r JOIN devices d ON d.id = r.device "
        "WHERE d.key = ? AND r.time >= ? AND r.time < ? AND r.wire IS NOT NULL "
        "ORDER BY r.time, r.seq LIMIT ?",
        device,
        start,
        end,
        limit,
    )
    return [bytes(w) for (w,) in rows]


async def sightings(
    tx: Tx, device: bytes, equivocations: bool, limit: int
) -> list[dict[str, object]]:
    """The first `limit` sightings of a box's readings in log order: its equivocations,
    or (False) its duplicate sightings, each as sighting_json makes it."""
    rows = await tx.fetchall(
        "SELECT l.seq, l.log_index, l.leaf, e.wire, f.log_index, f.leaf, f.wire, "
        "b.gateway, b.seq FROM leaves l JOIN devices d ON d.id = l.device "
        "JOIN leaves f ON f.device = l.device AND f.seq = l.seq AND f.wire IS NOT NULL "
        "JOIN batches b ON b.log_index = l.log_index "
        "LEFT JOIN equivocations e ON e.log_index = l.log_index AND e.leaf = l.leaf "
        f"WHERE d.key = ? AND l.wire IS NULL AND e.wire IS {'NOT ' if equivocations else ''}NULL "
        "ORDER BY l.log_index, l.leaf LIMIT ?",
        device,
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
