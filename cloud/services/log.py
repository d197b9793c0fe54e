"""The log service: the log's signed checkpoints and what a reader of the log asks for.

It signs a checkpoint (gateway/checkpoint.py) for the log's size whenever the log grew —
other services append, then call refresh(); other workers on one database append too — and
attaches the witnesses' cosignatures (cloud/services/witnessing.py). It serves entries, leaf
hashes and RFC 6962 inclusion and consistency proofs from stored tree nodes
(cloud/log/tlog.py), never beyond the latest checkpoint: a reader is only shown what a
signed checkpoint commits to. Raises LedgerError (cloud/services/refusals.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from cloud.log import tlog
from cloud.services.refusals import LedgerError
from cloud.storage.store import Store
from cloud.witness.client import add_cosignatures
from gateway import merkle
from gateway.checkpoint import Checkpoint, sign_checkpoint
from gateway.note import Signer, parse_note

MAX_ENTRIES_PAGE = 1000  # entries per GET /v1/log/entries answer


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """The log's state as signed: its size, root hash and the signed note."""

    size: int
    root: bytes
    note: str


class LogService:
    """The log of one Store, signed by one key (module docstring)."""

    def __init__(self, store: Store, signer: Signer) -> None:
        self.store = store
        self.signer = signer
        self.origin = signer.name
        self._checkpoint = SignedCheckpoint(0, merkle.EMPTY_ROOT, self._sign(0, merkle.EMPTY_ROOT))
        self._refresh_lock = asyncio.Lock()

    @property
    def log_vkey(self) -> str:
        """The log's verifier key string (signed-note format)."""
        return self.signer.verifier().to_vkey()

    # -- checkpoints ---------------------------------------------------------------------

    def _sign(self, size: int, root: bytes) -> str:
        return sign_checkpoint(Checkpoint(self.origin, size, root), self.signer)

    @property
    def checkpoint(self) -> SignedCheckpoint:
        """The latest checkpoint this worker signed (refresh() brings it up to date)."""
        return self._checkpoint

    async def refresh(self) -> SignedCheckpoint:
        """Sign a checkpoint for the log's current size if it grew (after this worker's own
        appends, and other workers may have appended too) and return the latest."""
        async with self._refresh_lock:
            size = await self.store.log_size()
            if size > self._checkpoint.size:
                root = await tlog.root(self.store, size)
                self._checkpoint = SignedCheckpoint(size, root, self._sign(size, root))
            return self._checkpoint

    async def checkpoint_at(self, size: int) -> str:
        """The log's signed checkpoint note of `size` entries (without cosignatures). The
        same bytes every time (Ed25519 signatures are deterministic): a receipt carries the
        checkpoint of the first size that includes its batch, so a resend gets exactly the
        original receipt."""
        cp = self._checkpoint  # usually that size: the root refresh() just read
        root = cp.root if cp.size == size else await tlog.root(self.store, size)
        return self._sign(size, root)

    def add_cosignatures(self, size: int, lines: list[str]) -> None:
        """Attach verified witness cosignature lines to the checkpoint of `size`, if it is
        still the latest (a newer one will be cosigned in its turn)."""
        cp = self._checkpoint
        if cp.size == size:
            self._checkpoint = replace(cp, note=add_cosignatures(cp.note, lines))

    async def keep_cosignatures(self, size: int, lines: list[str]) -> None:
        """Attach verified witness cosignature `lines` to the checkpoint of `size` (as
        add_cosignatures) and keep that checkpoint with every cosignature it has gathered
        in the store, so any worker serves cosigned receipts from it, after restarts too."""
        self.add_cosignatures(size, lines)
        kept = await self.store.cosigned_note(size)
        note = add_cosignatures(kept or await self.checkpoint_at(size), lines)
        cosignatures = len(parse_note(note)[1]) - 1  # every line but the log's own
        await self.store.keep_cosigned(size, note, cosignatures)

    # -- entries and proofs --------------------------------------------------------------

    def _check_size(self, size: int | None) -> int:
        current = self._checkpoint.size
        if size is None:
            return current
        if not 0 <= size <= current:
            raise LedgerError("size", f"got {size}, want 0 to {current} (the latest checkpoint)")
        return size

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Log entries [start, min(end, start + MAX_ENTRIES_PAGE, checkpoint size)).
        Raises LedgerError "range" unless 0 <= start < end and start < the checkpoint's size."""
        size = self._checkpoint.size
        if not 0 <= start < size or end <= start:
            raise LedgerError(
                "range", f"got [{start}, {end}), want 0 <= start < end, start < {size}"
            )
        return await self.store.entries(start, min(end, start + MAX_ENTRIES_PAGE, size))

    async def inclusion(self, index: int, size: int | None = None) -> tuple[int, list[bytes]]:
        """Return (size, proof) of entry `index` in the log of `size` entries (default:
        the latest checkpoint's). Raises LedgerError for an index or size out of range."""
        size = self._check_size(size)
        if not 0 <= index < size:
            raise LedgerError("index", f"got {index}, want 0 <= index < {size}")
        return size, await tlog.inclusion_proof(self.store, index, size)

    async def leaf_hash(self, index: int) -> bytes:
        """The RFC 6962 leaf hash of entry `index`. Requires an index inclusion() accepted."""
        return (await self.store.nodes([(0, index)]))[(0, index)]

    async def find(self, leaf_hash: bytes) -> int:
        """Return the log index of the entry with this leaf hash. Raises LedgerError 404."""
        index = await self.store.find_entry(leaf_hash)
        if index is None or index >= self._checkpoint.size:
            raise LedgerError("not found", f"no entry with leaf hash {leaf_hash.hex()}", 404)
        return index

    async def consistency(self, old: int, new: int | None = None) -> tuple[int, list[bytes]]:
        """Return (new size, proof) that the log of `old` entries is a prefix of the log of
        `new` entries (default: the latest checkpoint's). Raises LedgerError."""
        new = self._check_size(new)
        if not 0 <= old <= new:
            raise LedgerError("old", f"got {old}, want 0 <= old <= {new}")
        return new, await tlog.consistency_proof(self.store, old, new)
