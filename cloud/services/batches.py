"""The batch service: uploaded batches in, receipts out (docs/protocol.md, "Gateway ->
cloud", "Cosigned receipt").

A batch is re-verified off the event loop (cloud/services/ingest.py's zero-trust checks, on
the verification threads) and stored with its log entry (cloud/storage/store.py) — through
the contract service when there is one, which applies the readings of boxes on lots to the
lots' cold chains in the same commit (cloud/services/contracts.py store_batch); the
gateway gets a receipt naming the entry's log index and the signed checkpoint of the first
size that includes it, the same bytes for every resend. Later, once witnesses cosigned a
checkpoint that includes it, a cosigned receipt ties the two (gateway/cosigned_receipt.py).
Stored batches, readings, sightings and resends are counted for /metrics; every
equivocation is logged at ERROR. Raises LedgerError (cloud/services/refusals.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from cloud.log import tlog
from cloud.services.contracts import ContractService
from cloud.services.ingest import IngestError, Known, Verified, check_batch, decode_header
from cloud.services.refusals import LedgerError
from cloud.services.shared import Shared
from cloud.storage.batches import KnownState
from cloud.storage.store import BatchStored, StoreConflict
from device import reading
from gateway import batch
from gateway.cosigned_receipt import CosignedReceipt

log = logging.getLogger("pharmasync.cloud.ledger.batches")

EQUIVOCATIONS_SHOWN = 5  # named in a batch's ERROR line; the API lists them all
# A gateway may upload several batches at once ([uplink] in_flight): one that arrives
# before its predecessor is stored waits for it, if it is at most CHAIN_AHEAD_MAX batches
# ahead of the gateway's chain, for up to CHAIN_WAIT_S, looking again at least every
# CHAIN_POLL_S (another worker process may store the predecessor); then it is refused
# as before (409 "chain"), and the gateway sends it again after its predecessor.
CHAIN_AHEAD_MAX = 64
CHAIN_WAIT_S = 20.0
CHAIN_POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the gateway keeps for a stored batch (docs/protocol.md)."""

    gateway: bytes
    seq: int
    header_hash: bytes
    log_index: int
    checkpoint: str

    def to_json(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway.hex(),
            "seq": self.seq,
            "header_hash": self.header_hash.hex(),
            "log_index": self.log_index,
            "checkpoint": self.checkpoint,
        }


@dataclass
class BatchStats:
    """Counters the metrics endpoint exports (this worker's)."""

    batches: int = 0
    readings: int = 0  # readings stored for the first time (each (box, seq) once)
    duplicates: int = 0  # leaves that carried a stored reading again, same bytes
    equivocations: int = 0  # leaves that carried other bytes for a stored (box, seq)
    resends: int = 0


class BatchService:
    """Batch ingest and receipts over one Store and its log (module docstring)."""

    def __init__(self, shared: Shared, contracts: ContractService | None = None) -> None:
        """`contracts`: the contract service whose cold chains follow the readings (None:
        batches are only stored, as for a ledger without contracts in tests)."""
        self.shared = shared
        self.contracts = contracts
        self.stats = BatchStats()
        self._chain_moved = asyncio.Event()  # set (and replaced) whenever a batch is stored

    def _ahead(self, seq: int, stored_header: bytes | None, last_header: bytes | None) -> bool:
        """Whether batch `seq` (not stored) is a few batches past its gateway's last stored
        one, so that its predecessor may be on its way (CHAIN_AHEAD_MAX)."""
        if stored_header is not None:
            return False
        last = -1 if last_header is None else batch.decode(last_header).seq
        return last + 1 < seq <= last + 1 + CHAIN_AHEAD_MAX

    async def _known(self, header: batch.BatchHeader, boxes: set[bytes]) -> KnownState:
        """The store's state for the batch, once its predecessor is stored if that is on its
        way (the module's CHAIN_* constants); as it is after CHAIN_WAIT_S otherwise."""
        store = self.shared.store
        loop = asyncio.get_running_loop()
        until = loop.time() + CHAIN_WAIT_S
        while True:
            moved = self._chain_moved
            state = await store.known(header.gateway_key, header.seq, boxes)
            left = until - loop.time()
            if left <= 0 or not self._ahead(header.seq, state.stored_header, state.last_header):
                return state
            # Only a registered gateway's own batch waits (check_batch checks it again).
            if not state.gateway_registered or not header.verify_signature():
                return state
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), min(CHAIN_POLL_S, left))

    async def ingest(self, body: bytes) -> tuple[Receipt, bool]:
        """Verify and store an uploaded batch; return (receipt, True if stored now, False
        for an exact resend answered with the original receipt, even one that raced its
        original). Readings already stored are sightings, not errors (cloud/services/ingest.py).
        Raises LedgerError."""
        try:
            header = decode_header(body)  # range-checked before the store is asked
            boxes = {
                reading.key_of(body[i : i + reading.SIZE])
                for i in range(batch.SIZE, len(body), reading.SIZE)
            }
            state = await self._known(header, boxes)
            known = Known(
                lambda _key: state.gateway_registered,
                state.registered_devices.__contains__,
                lambda _key, _seq: state.stored_header,
                lambda _key: state.last_header,
            )
            result = await self.shared.off_loop(check_batch, body, known)
            if isinstance(result, Verified) and self.contracts is not None:
                stored = await self.contracts.store_batch(result)
            elif isinstance(result, Verified):
                stored = await self.shared.store.store_batch(result)
            else:
                found = await self.shared.store.batch_log_index(header.gateway_key, header.seq)
                assert found is not None, "a stored header has a log index"
                stored = BatchStored(found, created=False)
        except IngestError as e:
            raise self.shared.refusals.of(e) from None
        except StoreConflict as e:
            raise self.shared.refusals.conflict(e) from None
        await self.shared.appended()
        self._chain_moved.set()  # batches waiting for this one look again
        self._chain_moved = asyncio.Event()
        self._count(header, stored)
        note = await self.shared.log.checkpoint_at(stored.log_index + 1)
        receipt = Receipt(header.gateway_key, header.seq, header.hash(), stored.log_index, note)
        return receipt, stored.created

    def _count(self, header: batch.BatchHeader, stored: BatchStored) -> None:
        """Count a stored batch (or a resend) and log it; every equivocation at ERROR."""
        if not stored.created:
            self.stats.resends += 1
            return
        self.stats.batches += 1
        self.stats.readings += stored.new_readings
        self.stats.duplicates += stored.duplicates
        self.stats.equivocations += len(stored.equivocations)
        log.info(
            "batch %s/%d: %d readings (%d new, %d seen before) at log index %d",
            header.gateway_key.hex()[:12],
            header.seq,
            header.count,
            stored.new_readings,
            len(stored.sightings),
            stored.log_index,
        )
        if stored.equivocations:
            # One line per batch, however many: a cloned box must not flood the log.
            shown = ", ".join(
                f"box {s.key.hex()} seq {s.seq} (leaf {s.leaf}; stored at log index "
                f"{s.first[0]} leaf {s.first[1]})"
                for s in stored.equivocations[:EQUIVOCATIONS_SHOWN]
            )
            more = len(stored.equivocations) - EQUIVOCATIONS_SHOWN
            log.error(
                "EQUIVOCATION: batch %d of gateway %s (log index %d) carries %d readings "
                "signed again with other bytes (a cloned box key?), kept as evidence: %s%s",
                header.seq,
                header.gateway_key.hex(),
                stored.log_index,
                len(stored.equivocations),
                shown,
                f" and {more} more" if more > 0 else "",
            )

    async def cosigned_receipt(
        self, gateway: bytes, seq: int, min_cosignatures: int
    ) -> CosignedReceipt:
        """Return batch (gateway, seq)'s receipt with the smallest kept checkpoint that
        includes it and carries at least `min_cosignatures` witness cosignatures, and the
        proofs that tie them (gateway/cosigned_receipt.py). Raises LedgerError: 404 "no
        batch" for a batch not stored, 409 "not cosigned" while no such checkpoint exists."""
        index = await self.shared.store.batch_log_index(gateway, seq)
        cp = await self.shared.log.refresh()
        if index is None or index >= cp.size:
            raise LedgerError("no batch", f"no batch {seq} of gateway {gateway.hex()}", 404)
        found = await self.shared.store.first_cosigned(index + 1, cp.size, min_cosignatures)
        if found is None:
            raise LedgerError(
                "not cosigned",
                f"no checkpoint of size {index + 1} or more has {min_cosignatures} witness "
                "cosignatures yet; ask again later",
                409,
            )
        size, note = found
        entry = (await self.shared.store.entries(index, index + 1))[0]
        header = batch.decode(entry[1:])
        checkpoint = await self.shared.log.checkpoint_at(index + 1)
        receipt = Receipt(gateway, seq, header.hash(), index, checkpoint)
        return CosignedReceipt(
            receipt=receipt.to_json(),
            gateway=gateway,
            seq=seq,
            header_hash=receipt.header_hash,
            log_index=index,
            checkpoint=receipt.checkpoint,
            entry=entry,
            size=size,
            cosigned_checkpoint=note,
            inclusion=tuple(await tlog.inclusion_proof(self.shared.store, index, size)),
            consistency=tuple(await tlog.consistency_proof(self.shared.store, index + 1, size)),
        )
