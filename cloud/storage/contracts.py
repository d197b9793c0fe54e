"""Contract transactions as stored (docs/contracts.md §1): every applied transaction's
signed body, signature and commitment salt, keyed by the log index of its 0x03 entry, with
the index of the 0x04 state-root entry of its block.

The log holds only a salted commitment to each transaction (cloud/contracts/entries.py);
these rows are what a worker replays at start, what another worker catches up on under the
log's lock before it applies its own, and what a replayer fetches. The replay guards are
enforced here too: a transaction id, and a (signer, nonce) pair, are stored once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from cloud.storage.engine import Tx

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
