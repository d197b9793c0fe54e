"""Authority as stored: signed registry (0x02) and configuration (0x06) entries, the
index of them, and the owner set they fold to (gateway/config_entry.py).

The owners table is a cache of the log, rebuilt at start (rebuild_owners). A signed entry
is appended once (append_once): under the log's lock, so two copies of one signed request
cannot both pass the replay check, and its owner is checked against the owner set at that
point of the log; a regulator or grant entry (0x06) against the regulators at that point,
folded from the log's configuration entries under the same lock.
"""

from __future__ import annotations

from cloud.log import tlog
from cloud.storage import log
from cloud.storage.engine import Tx
from cloud.storage.errors import StoreConflict
from cloud.storage.log import Commit
from gateway import config_entry


async def owners(tx: Tx) -> frozenset[bytes]:
    """The owner set after the log's last configuration entry (empty: none yet)."""
    return frozenset(bytes(k) for (k,) in await tx.fetchall("SELECT key FROM owners"))


async def _set_owners(tx: Tx, keys: frozenset[bytes]) -> None:
    await tx.execute("DELETE FROM owners")
    await tx.executemany("INSERT INTO owners (key) VALUES (?)", [(k,) for k in keys])


async def rebuild_owners(commit: Commit) -> frozenset[bytes]:
    """Derive the owner set again from the log's configuration entries, store it and
    return it. Raises ConfigError if the logged entries do not fold (a tampered log)."""
    rows = await commit.tx.fetchall(
        "SELECT e.entry FROM authority_entries a JOIN log_entries e ON e.idx = a.idx ORDER BY a.idx"
    )
    folded = config_entry.owners_of(bytes(e) for (e,) in rows)
    await _set_owners(commit.tx, folded)
    return folded


async def append_once(commit: Commit, entry: bytes | None) -> int | None:
    """Append a signed registry or configuration entry unless the log holds it already,
    updating the owner set; return its index (None without an entry). Raises
    StoreConflict("replayed"), or ConfigError (no authority, a rule broken)."""
    if entry is None:
        return None
    if await log.find(commit.tx, tlog.entry_leaf(entry)) is not None:
        raise StoreConflict("replayed", "this signed request was applied before")
    before = after = await owners(commit.tx)
    if entry[0] in tlog.AUTHORITY_KINDS:
        after = config_entry.next_owners(before, entry)  # raises ConfigError
    if config_entry.is_contract_op(entry):  # the regulator's: the log folded under the lock
        now = await _authority(commit.tx)
        config_entry.next_contract_authority(now.regulators, now.grants, entry)
    index = await commit.append([entry])
    if entry[0] in tlog.AUTHORITY_KINDS:
        await commit.tx.execute("INSERT INTO authority_entries (idx) VALUES (?)", index)
    if after != before:
        await _set_owners(commit.tx, after)
    return index


async def _authority(tx: Tx) -> config_entry.Authority:
    """The authority after every registry and configuration entry on the log (few: they
    are configuration), folded in log order. Raises ConfigError for a tampered log."""
    rows = await tx.fetchall(
        "SELECT e.entry FROM authority_entries a JOIN log_entries e ON e.idx = a.idx ORDER BY a.idx"
    )
    return config_entry.authority_of(bytes(e) for (e,) in rows)


async def entries(tx: Tx, after: int, end: int, limit: int) -> list[tuple[int, bytes]]:
    """Up to `limit` (log index, entry) of registry and configuration entries with
    after < index < end, in log order."""
    rows = await tx.fetchall(
        "SELECT e.idx, e.entry FROM authority_entries a JOIN log_entries e ON e.idx = a.idx "
        "WHERE a.idx > ? AND a.idx < ? ORDER BY a.idx LIMIT ?",
        after,
        end,
        limit,
    )
    return [(int(i), bytes(e)) for i, e in rows]
