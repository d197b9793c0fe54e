"""Stamped checkpoints (the public check, cloud/services/public_check.py): off the log, one
row per tree size, the checkpoint note of that size signed by the log with the log's own
timestamped cosignature line, kept the first time it is made so that every later answer
(any worker, after restarts) carries the same bytes and the same "as of" time."""

from __future__ import annotations

from cloud.storage.engine import Tx


async def keep_first(tx: Tx, size: int, note: str) -> str:
    """Keep `note` for `size` unless one is kept already; return the kept one. The insert
    is one statement, atomic by itself (no log lock): of two workers stamping one size, the
    first insert wins and both answer with it."""
    await tx.execute(
        "INSERT INTO stamped_checkpoints (size, note) VALUES (?, ?) ON CONFLICT (size) DO NOTHING",
        size,
        note,
    )
    kept = await tx.fetchval("SELECT note FROM stamped_checkpoints WHERE size = ?", size)
    return str(kept)


async def note(tx: Tx, size: int) -> str | None:
    """The kept stamped checkpoint note of `size`, if any."""
    found = await tx.fetchval("SELECT note FROM stamped_checkpoints WHERE size = ?", size)
    return None if found is None else str(found)
