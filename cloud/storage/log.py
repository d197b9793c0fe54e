"""The RFC 6962 entry log as stored: entries, the tree nodes they complete, and `Commit`,
the one way anything is appended.

`Commit` is a write transaction (cloud/storage/engine.py, `write()`: it holds the log's
sequencer lock) seen by a domain module: `await commit.append(entries)` appends entries
with the nodes they complete and returns the first one's index, and `commit.tx` runs the
caller's own SQL in the same transaction. `Store.commit(apply)` runs `apply(commit)` so:
either all of it is committed or none of it, an exception anywhere in `apply` rolling the
entries back with the state change. Every write that grows the log (store_batch, the
registry, configuration, events, and contracts' state changes next) is built on it:

    async def ship(commit: Commit) -> int:
        index = await commit.append([entry])
        await commit.tx.execute("UPDATE lots SET holder = ? WHERE id = ?", receiver, lot)
        return index

    index = await store.commit(ship)

`apply` awaits nothing but its commit (on SQLite the whole of it runs on the store's
thread, in one hop off the event loop).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from cloud.log import tlog
from cloud.log.tlog import NodeKey
from cloud.storage.engine import Tx, parts
from cloud.storage.errors import NotFound


class Commit:
    """A write transaction holding the log's lock (module docstring). Only the store makes
    one (Store.commit)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self._size: int | None = None  # the log's size, once read: only append() grows it

    async def size(self) -> int:
        """The number of entries in the log: the next entry's index. Read once per commit
        (the log's lock is held, so only this commit's appends change it)."""
        if self._size is None:
            self._size = await size(self.tx)
        return self._size

    async def append(self, entries: Sequence[bytes]) -> int:
        """Append `entries` with the tree nodes they complete; return the first one's log
        index (the others follow it). Raises NotFound if a stored node it hashes with is
        missing: the transaction then rolls back, leaving nothing."""
        first = await self.size()
        leaves = [tlog.entry_leaf(e) for e in entries]
        frontier = await stored_nodes(self.tx, _frontier(first))

        def stored(level: int, index: int) -> bytes:
            if (level, index) not in frontier:
                raise NotFound(node_name(level, index))
            return frontier[(level, index)]

        created = tlog.new_nodes(first, leaves, stored)
        await self.tx.executemany(
            "INSERT INTO log_entries (idx, leaf_hash, entry) VALUES (?, ?, ?)",
            [(first + i, h, e) for i, (h, e) in enumerate(zip(leaves, entries, strict=True))],
        )
        await self.tx.executemany(
            "INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)",
            [(level, idx, h) for (level, idx), h in created.items()],
        )
        self._size = first + len(entries)
        return first


def node_name(level: int, index: int) -> str:
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


async def size(tx: Tx) -> int:
    """The number of entries in the log. (Under the write lock: the next entry's index.)"""
    last = await tx.fetchval("SELECT max(idx) FROM log_entries")
    return 0 if last is None else int(last) + 1


async def stored_nodes(tx: Tx, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
    """Return those of the nodes `keys` that are stored (in one query, as a rule)."""
    found: dict[NodeKey, bytes] = {}
    for part in parts(tx, list(keys), 2):
        # A join on a VALUES table probes the primary key per pair; a row-value IN would
        # scan in SQLite.
        keys_table, bound = tx.table(("SMALLINT", "BIGINT"), part)
        rows = await tx.fetchall(
            f"WITH k(a, b) AS ({keys_table}) SELECT n.level, n.idx, n.hash FROM k "
            "JOIN log_nodes n ON n.level = k.a AND n.idx = k.b",
            *bound,
        )
        found.update(((level, idx), bytes(h)) for level, idx, h in rows)
    return found


async def nodes(tx: Tx, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
    """Return the stored tree nodes asked for. Raises NotFound naming a missing one."""
    found = await stored_nodes(tx, keys)
    for key in keys:
        if key not in found:
            raise NotFound(node_name(*key))
    return found


async def entries(tx: Tx, start: int, end: int) -> list[bytes]:
    """Log entries [start, end), fewer if the log is shorter."""
    rows = await tx.fetchall(
        "SELECT entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx", start, end
    )
    return [bytes(e) for (e,) in rows]


async def find(tx: Tx, leaf_hash: bytes) -> int | None:
    """The index of the first entry with this RFC 6962 leaf hash, if any."""
    index = await tx.fetchval("SELECT min(idx) FROM log_entries WHERE leaf_hash = ?", leaf_hash)
    return None if index is None else int(index)
