"""Sign-in as stored (cloud/contracts/auth.py): the token secret the workers share, and the
outstanding challenges (each used once, deleted as it is used)."""

from __future__ import annotations

import os

from cloud.storage.engine import Tx

SECRET_BYTES = 32


async def secret(tx: Tx) -> bytes:
    """The token secret, created at first use (the first worker's wins)."""
    await tx.execute(
        "INSERT INTO auth_secret (id, secret) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
        os.urandom(SECRET_BYTES),
    )
    return bytes(await tx.fetchval("SELECT secret FROM auth_secret WHERE id = 1"))


async def add_challenge(tx: Tx, challenge: bytes, expires: int, now: int) -> None:
    """Store a fresh challenge valid until `expires`, dropping those expired by `now`."""
    await tx.execute("DELETE FROM auth_challenges WHERE expires < ?", now)
    await tx.execute(
        "INSERT INTO auth_challenges (challenge, expires) VALUES (?, ?)", challenge, expires
    )


async def use_challenge(tx: Tx, challenge: bytes, now: int) -> bool:
    """Consume a challenge: True if it was outstanding and unexpired at `now` (then it is
    gone: single use, even between workers), else False."""
    row = await tx.fetchone(
        "DELETE FROM auth_challenges WHERE challenge = ? AND expires >= ? RETURNING challenge",
        challenge,
        now,
    )
    return row is not None
