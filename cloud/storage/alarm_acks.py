"""Signed alarm acknowledgements relayed to gateways (gateway/alarm_ack.py): off the log,
each stored once by its digest, fetched by gateways in id order."""

from __future__ import annotations

import time

from cloud.storage.engine import Tx


async def store(
    tx: Tx, gateway: bytes, digest: bytes, wire: bytes, log_size: int
) -> tuple[int, int, bool]:
    """Store a checked signed ack once (by `digest`); return (its id, the log size stored
    with it, whether it is new). A replay returns the first's. Needs a transaction."""
    new = await tx.fetchval(
        "INSERT INTO alarm_acks (gateway, digest, wire, log_size, received_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING RETURNING id",
        gateway,
        digest,
        wire,
        log_size,
        time.time(),
    )
    row = await tx.fetchone("SELECT id, log_size FROM alarm_acks WHERE digest = ?", digest)
    assert row is not None
    return int(row[0]), int(row[1]), new is not None


async def acks(tx: Tx, gateway: bytes, after: int, limit: int) -> list[tuple[int, bytes]]:
    """Up to `limit` (id, wire) of the acks stored for `gateway` with id > after."""
    rows = await tx.fetchall(
        "SELECT id, wire FROM alarm_acks WHERE gateway = ? AND id > ? ORDER BY id LIMIT ?",
        gateway,
        after,
        limit,
    )
    return [(int(i), bytes(w)) for i, w in rows]
