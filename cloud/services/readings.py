"""The readings service: stored readings as their readers ask for them — a reading's proof
bundle, verifiable offline (docs/protocol.md, "Proof bundle"), a box's history, the leaves of
a batch entry, and a box's equivocations and duplicate sightings (the evidence the ledger
keeps instead of refusing a batch, cloud/services/ingest.py). Only what the latest signed
checkpoint includes is served. Raises LedgerError (cloud/services/refusals.py).
"""

from __future__ import annotations

from typing import Any

from cloud.log import batchtree, tlog
from cloud.services.refusals import LedgerError
from cloud.services.shared import Shared
from device import reading


class ReadingService:
    """Readings of one Store, as of its log's latest checkpoint (module docstring)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    async def bundle(self, device: bytes, seq: int) -> dict[str, Any]:
        """Return everything needed to verify reading (device, seq) offline: the reading,
        its batch inclusion proof and header, the header's log inclusion proof and the
        signed checkpoint of that log size (docs/protocol.md). Raises LedgerError 404."""
        found = await self.shared.store.reading(device, seq)
        cp = self.shared.log.checkpoint
        if found is None or found.log_index >= cp.size:
            raise LedgerError("not found", f"no reading {seq} of box {device.hex()}", 404)
        entry, count = found.entry, found.batch_size

        async def leaves(start: int, end: int) -> list[bytes]:
            return await self.shared.store.batch_leaves(found.log_index, start, end)

        batch_proof = await batchtree.inclusion_proof(count, found.leaf, found.tile, leaves)
        log_proof = await tlog.inclusion_proof(self.shared.store, found.log_index, cp.size)
        return {
            "reading": found.wire.hex(),
            "batch": {
                "header": entry[1:].hex(),
                "index": found.leaf,
                "size": count,
                "proof": [h.hex() for h in batch_proof],
            },
            "log": {
                "entry": entry.hex(),
                "index": found.log_index,
                "size": cp.size,
                "proof": [h.hex() for h in log_proof],
            },
            "checkpoint": cp.note,
            "log_vkey": self.shared.log.log_vkey,
        }

    async def history(
        self, device: bytes, start: int, end: int, limit: int = 1000
    ) -> list[reading.Reading]:
        """Up to `limit` readings of a box with start <= time < end, oldest first."""
        return [
            reading.decode(w) for w in await self.shared.store.history(device, start, end, limit)
        ]

    async def entry_readings(self, index: int) -> list[bytes]:
        """Every leaf of the batch whose header is log entry `index`, in leaf order, as
        carried (duplicates and equivocating bytes included: auditors recompute the
        batch's root from them). Raises LedgerError 404 for an entry that is no batch."""
        size = self.shared.log.checkpoint.size
        entries = await self.shared.store.entries(index, index + 1) if 0 <= index < size else []
        if not entries or entries[0][0] != tlog.ENTRY_BATCH:
            raise LedgerError("not a batch", f"log entry {index} is not a batch header", 404)
        return await self.shared.store.batch_readings(index)

    async def sightings(
        self, device: bytes, equivocations: bool, limit: int = 1000
    ) -> list[dict[str, object]]:
        """The first `limit` equivocations (or duplicate sightings) of a box's readings, in
        log order, as cloud/storage/store.py's sighting_json; only those of entries the latest
        checkpoint includes."""
        size = self.shared.log.checkpoint.size
        found = await self.shared.store.sightings(device, equivocations, limit)
        return [s for s in found if isinstance(s["log_index"], int) and s["log_index"] < size]
