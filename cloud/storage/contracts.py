"""Contract transactions as stored (docs/contracts.md §1): every applied transaction's
signed body, signature and commitment salt, keyed by the log index of its 0x03 entry, with
the index of the 0x04 state-root entry of its block.

The log holds only a salted commitment to each transaction (cloud/contracts/entries.py);
these rows are what a worker replays at start, what another worker catches up on under the
log's lock before it applies its own, and what a replayer fetches. The replay guards are
enforced here too: a transaction id, and a (signer, nonce) pair, are stored once.

Besides its transactions the contracts follow two more things of the log, read here in a
range of log indices (cloud/services/contract_follow.py merges them in log order): the
registry's signed entries (0x02, whose `box` registrations name a box's owner key) and the
readings first stored by each batch (the leaves holding a reading's bytes: not a duplicate
sighting, not an equivocation) of the boxes asked for.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cloud.storage.batches import device_ids
from cloud.storage.engine import Tx, marks, parts

# The columns a row is read with, in StoredTx's order.
_COLUMNS = "log_index, root_index, canonical, sig, salt"


@dataclass(frozen=True)
class StoredTx:
    """One applied transaction: its 0x03 entry's log index, the 0x04 entry's of its block,
    its canonical body bytes, its 64-byte signature and 32-byte commitment salt."""

    log_index: int
    root_index: int
    canonical: bytes
    sig: bytes
    salt: bytes


@dataclass(frozen=True)
class TxRow:
    """What is inserted for a newly applied transaction (StoredTx plus the columns kept for
    lookups: contract, id, signer's x-only key, nonce, the transaction's own time in ms)."""

    stored: StoredTx
    contract: str
    tx_id: bytes
    signer: bytes
    nonce: str
    time_ms: int


async def insert_many(tx: Tx, rows: Sequence[TxRow]) -> None:
    """Store applied transactions, in the write transaction that appended their entries.
    The database refuses a second row of the same id or (signer, nonce)."""
    now = time.time()
    await tx.executemany(
        "INSERT INTO contract_txs (log_index, root_index, contract, tx_id, signer, nonce, "
        "canonical, sig, salt, time, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.stored.log_index,
                r.stored.root_index,
                r.contract,
                r.tx_id,
                r.signer,
                r.nonce,
                r.stored.canonical,
                r.stored.sig,
                r.stored.salt,
                r.time_ms,
                now,
            )
            for r in rows
        ],
    )


async def after(tx: Tx, log_index: int, limit: int) -> list[StoredTx]:
    """Up to `limit` stored transactions whose 0x03 entry follows `log_index` (-1: from the
    start), in log order: the order every worker and replayer applies them in."""
    rows = await tx.fetchall(
        f"SELECT {_COLUMNS} FROM contract_txs WHERE log_index > ? ORDER BY log_index LIMIT ?",
        log_index,
        limit,
    )
    return [StoredTx(int(i), int(r), bytes(c), bytes(s), bytes(t)) for i, r, c, s, t in rows]


async def between(tx: Tx, after: int, end: int, limit: int) -> list[StoredTx]:
    """Up to `limit` stored transactions with after < log index < end, in log order."""
    rows = await tx.fetchall(
        f"SELECT {_COLUMNS} FROM contract_txs WHERE log_index > ? AND log_index < ? "
        "ORDER BY log_index LIMIT ?",
        after,
        end,
        limit,
    )
    return [StoredTx(int(i), int(r), bytes(c), bytes(s), bytes(t)) for i, r, c, s, t in rows]


async def authority_entries(tx: Tx, after: int, end: int) -> list[tuple[int, bytes]]:
    """Every (log index, entry) of the registry (0x02) and configuration (0x06) with
    after < index < end, in log order: what the contracts follow of them are the box
    registrations and the regulators. Unbounded: they are configuration, a few per box or
    gateway."""
    rows = await tx.fetchall(
        "SELECT e.idx, e.entry FROM authority_entries a JOIN log_entries e ON e.idx = a.idx "
        "WHERE a.idx > ? AND a.idx < ? ORDER BY a.idx",
        after,
        end,
    )
    return [(int(i), bytes(e)) for i, e in rows]


async def first_readings(
    tx: Tx, boxes: Collection[bytes], after: tuple[int, int], end: int, limit: int
) -> list[tuple[int, int, bytes]]:
    """Up to `limit` (log index, leaf, 110 bytes) of the readings of `boxes` first stored by
    a batch whose entry is before log index `end`, after position `after` ((log index,
    leaf); (-1, -1): from the start; (i, MAX_LEAF): after entry i), in log order then leaf
    order.

    Read along the leaves' primary key (log index, leaf) from `after`, the boxes filtered as
    it goes (`+device` keeps SQLite off the boxes' own index): a catch-up over a few
    batches reads those batches' leaves only, and paging through a long range reads each
    leaf once, in order, with no sort, however many readings the boxes have."""
    ids = sorted((await device_ids(tx, boxes)).values())
    found: list[tuple[int, int, bytes]] = []
    index, leaf = after
    step = max(1, tx.max_params - 5)  # the statement binds 5 more: one part as a rule
    for part in (ids[i : i + step] for i in range(0, len(ids), step)):
        rows = await tx.fetchall(
            "SELECT log_index, leaf, wire FROM leaves WHERE wire IS NOT NULL "
            "AND log_index >= ? AND log_index < ? AND (log_index > ? OR leaf > ?) "
            f"AND +device IN ({marks(len(part))}) ORDER BY log_index, leaf LIMIT ?",
            index,
            end,
            index,
            leaf,
            *part,
            limit,
        )
        found += [(int(i), int(n), bytes(w)) for i, n, w in rows]
    return sorted(found)[:limit]


async def bodies_at(tx: Tx, indices: Sequence[int]) -> list[tuple[int, str, bytes]]:
    """(log index, transaction id in hex, canonical body) of the stored transactions whose
    0x03 entries are at `indices` (those that are), in log order: what an EPCIS export
    reads of a lot's transactions (cloud/services/epcis.py), by primary key."""
    found: list[tuple[int, str, bytes]] = []
    for part in parts(tx, sorted(set(indices)), 1):
        rows = await tx.fetchall(
            "SELECT log_index, tx_id, canonical FROM contract_txs "
            f"WHERE log_index IN ({marks(len(part))})",
            *part,
        )
        found += [(int(i), bytes(t).hex(), bytes(c)) for i, t, c in rows]
    return sorted(found)
