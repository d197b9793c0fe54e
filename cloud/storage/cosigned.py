"""Cosigned checkpoints as kept (cosigned receipts, cloud/api/routes/receipts.py): off the
log, one row per tree size, the note with the most verified witness cosignatures."""

from __future__ import annotations

from cloud.storage.engine import Tx


async def note(tx: Tx, size: int) -> str | None:
    """The kept checkpoint note of `size` with its cosignature lines, if any."""
    found = await tx.fetchval("SELECT note FROM cosigned_checkpoints WHERE size = ?", size)
    return None if found is None else str(found)


async def keep(tx: Tx, size: int, note: str, cosignatures: int) -> None:
    """Keep `note` unless one with at least as many cosignatures is kept for `size`. One
    statement, atomic by itself: no log lock."""
    await tx.execute(
        "INSERT INTO cosigned_checkpoints (size, note, cosignatures) VALUES (?, ?, ?) "
        "ON CONFLICT (size) DO UPDATE SET note = excluded.note, "
        "cosignatures = excluded.cosignatures "
        "WHERE excluded.cosignatures > cosigned_checkpoints.cosignatures",
        size,
        note,
        cosignatures,
    )


async def first(
    tx: Tx, min_size: int, max_size: int, min_cosignatures: int
) -> tuple[int, str] | None:
    """(size, note) of the smallest kept checkpoint with min_size <= size <= max_size and
    at least `min_cosignatures` cosignatures, if any."""
    row = await tx.fetchone(
        "SELECT size, note FROM cosigned_checkpoints WHERE size >= ? AND size <= ? "
        "AND cosignatures >= ? ORDER BY size LIMIT 1",
        min_size,
        max_size,
        min_cosignatures,
    )
    return None if row is None else (int(row[0]), str(row[1]))
