"""The ledger service: what the HTTP API does, without HTTP.

It verifies uploaded batches off the event loop and stores them (cloud/services/ingest.py,
cloud/storage/store.py), applies signed registry and owner changes (gateway/registry_change.py,
gateway/config_entry.py), keeps the latest signed checkpoint of the log
(gateway/checkpoint.py) and answers proofs and proof bundles from stored tree nodes
(cloud/log/tlog.py). Domain errors are raised as LedgerError with the
HTTP status they deserve; only the views (cloud/api/routes/) turn them into responses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

from cloud.log import batchtree, tlog
from cloud.services.ingest import IngestError, Known, Verified, check_batch, decode_header
from cloud.storage.store import BatchStored, Store, StoreConflict
from cloud.witness.client import add_cosignatures
from device import reading
from gateway import alarm_ack, batch, config_entry, event, merkle
from gateway import registry_change as registry
from gateway.checkpoint import Checkpoint, sign_checkpoint
from gateway.cosigned_receipt import CosignedReceipt
from gateway.note import Signer, parse_note
from gateway.ratelog import RateLimitedLog
from gateway.refusal import Refused

log = logging.getLogger("pharmasync.cloud.ledger")

MAX_ENTRIES_PAGE = 1000  # entries per GET /v1/log/entries answer
MAX_AUTHORITY_PAGE = 500  # entries per GET /v1/registry/entries answer
EQUIVOCATIONS_SHOWN = 5  # named in a batch's ERROR line; the API lists them all


class LedgerError(Refused):
    """A refused request (gateway/refusal.py): the views answer it as problem+json."""


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """The log's state as signed: its size, root hash and the signed note."""

    size: int
    root: bytes
    note: str


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
class LedgerStats:
    """Counters the metrics endpoint exports."""

    batches: int = 0
    readings: int = 0  # readings stored for the first time (each (box, seq) once)
    duplicates: int = 0  # leaves that carried a stored reading again, same bytes
    equivocations: int = 0  # leaves that carried other bytes for a stored (box, seq)
    resends: int = 0
    registry_changes: int = 0
    config_changes: int = 0  # owner changes (the bootstrap included)
    events: int = 0  # gateway events stored
    event_resends: int = 0  # stored events sent again, answered with their log index


class Ledger:
    """The cloud's service layer over one Store and the log's signing key."""

    def __init__(
        self,
        store: Store,
        signer: Signer,
        owners: Collection[bytes] = (),
        *,
        verify_pool: Executor | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.origin = signer.name
        self.owners = frozenset(owners)  # the log's (load_owners), else these pinned keys
        self.stats = LedgerStats()
        self.refused: dict[str, int] = {}  # refusals by reason, for the metrics
        self.refusal_log = RateLimitedLog(log, "refused")  # bounded lines; counts stay exact
        self._pool = verify_pool  # None: the loop's default executor
        self._checkpoint = SignedCheckpoint(0, merkle.EMPTY_ROOT, self._sign(0, merkle.EMPTY_ROOT))
        self._refresh_lock = asyncio.Lock()

    @property
    def log_vkey(self) -> str:
        """The log's verifier key string (signed-note format)."""
        return self.signer.verifier().to_vkey()

    # -- checkpoints ---------------------------------------------------------------------

    def _sign(self, size: int, root: bytes) -> str:
        return sign_checkpoint(Checkpoint(self.origin, size, root), self.signer)

    async def refresh(self) -> SignedCheckpoint:
        """Sign a checkpoint for the log's current size if it grew (other workers may have
        appended too) and return the latest."""
        async with self._refresh_lock:
            size = await self.store.log_size()
            if size > self._checkpoint.size:
                root = await tlog.root(self.store, size)
                self._checkpoint = SignedCheckpoint(size, root, self._sign(size, root))
            return self._checkpoint

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

    @property
    def checkpoint(self) -> SignedCheckpoint:
        """The latest checkpoint this worker signed (refresh() brings it up to date)."""
        return self._checkpoint

    # -- batch ingest --------------------------------------------------------------------

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
            state = await self.store.known(header.gateway_key, header.seq, boxes)
            known = Known(
                lambda _key: state.gateway_registered,
                state.registered_devices.__contains__,
                lambda _key, _seq: state.stored_header,
                lambda _key: state.last_header,
            )
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._pool, check_batch, body, known)
            if isinstance(result, Verified):
                stored = await self.store.store_batch(result)
            else:
                found = await self.store.batch_log_index(header.gateway_key, header.seq)
                assert found is not None, "a stored header has a log index"
                stored = BatchStored(found, created=False)
        except IngestError as e:
            raise self._refuse(e.reason, e.detail, e.status) from None
        except StoreConflict as e:
            raise self._refuse(e.reason, e.detail, 409) from None
        await self.refresh()
        self._count(header, stored)
        note = await self.checkpoint_at(stored.log_index + 1)
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

    async def checkpoint_at(self, size: int) -> str:
        """The log's signed checkpoint note of `size` entries (without cosignatures). The
        same bytes every time (Ed25519 signatures are deterministic): a receipt carries the
        checkpoint of the first size that includes its batch, so a resend gets exactly the
        original receipt."""
        cp = self._checkpoint  # usually that size: the root refresh() just read
        root = cp.root if cp.size == size else await tlog.root(self.store, size)
        return self._sign(size, root)

    async def cosigned_receipt(
        self, gateway: bytes, seq: int, min_cosignatures: int
    ) -> CosignedReceipt:
        """Return batch (gateway, seq)'s receipt with the smallest kept checkpoint that
        includes it and carries at least `min_cosignatures` witness cosignatures, and the
        proofs that tie them (gateway/cosigned_receipt.py). Raises LedgerError: 404 "no
        batch" for a batch not stored, 409 "not cosigned" while no such checkpoint exists."""
        index = await self.store.batch_log_index(gateway, seq)
        cp = await self.refresh()
        if index is None or index >= cp.size:
            raise LedgerError("no batch", f"no batch {seq} of gateway {gateway.hex()}", 404)
        found = await self.store.first_cosigned(index + 1, cp.size, min_cosignatures)
        if found is None:
            raise LedgerError(
                "not cosigned",
                f"no checkpoint of size {index + 1} or more has {min_cosignatures} witness "
                "cosignatures yet; ask again later",
                409,
            )
        size, note = found
        entry = (await self.store.entries(index, index + 1))[0]
        header = batch.decode(entry[1:])
        receipt = Receipt(gateway, seq, header.hash(), index, await self.checkpoint_at(index + 1))
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
            inclusion=tuple(await tlog.inclusion_proof(self.store, index, size)),
            consistency=tuple(await tlog.consistency_proof(self.store, index + 1, size)),
        )

    def _refuse(self, reason: str, detail: str, status: int) -> LedgerError:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self.refusal_log("", reason, detail)
        return LedgerError(reason, detail, status)

    # -- registry ------------------------------------------------------------------------

    async def apply_registry(self, request: object, now: float | None = None) -> int:
        """Check a signed registry request and apply it, logging it; return the log index
        of its entry. Raises LedgerError (replays: 409 "replayed")."""
        try:
            # Whether the owner is one is the store's check, in the appending transaction:
            # other workers may have changed the owners since this one last looked.
            change, entry = registry.open_request(request, None, now)
        except registry.RegistryError as e:
            raise self._refuse(e.reason, e.detail, e.status) from None
        # The replay check is the store's, in the transaction that appends: checked here
        # first, two copies of one request sent at once could both pass it.
        try:
            if change.op == "gateway":
                assert change.site is not None
                index = await self.store.register_gateway(change.key, change.site, entry)
            elif change.op == "box":
                assert change.site is not None
                index = await self.store.register_device(
                    change.key, change.site, change.label or "", entry
                )
            else:
                assert change.subject is not None and change.start is not None
                index = await self.store.attach(
                    change.key, change.subject, change.start, change.end, entry
                )
        except StoreConflict as e:
            raise self._refuse(e.reason, e.detail, 409) from None
        except LookupError as e:
            raise self._refuse("unregistered box", str(e), 404) from None
        except Refused as e:  # the owner is not one at this point of the log
            raise self._refuse(e.reason, e.detail, e.status) from None
        assert index is not None, "a store returns the index of the entry it appended"
        self.stats.registry_changes += 1
        log.info("registry: %s %s", change.op, change.key.hex()[:12])
        await self.refresh()
        return index

    # -- configuration: the owners, on the log ------------------------------------------

    async def load_owners(self, pinned: Collection[bytes] = ()) -> frozenset[bytes]:
        """Return the log's owner set, writing the bootstrap entry naming `pinned` (the
        `serve --owner` keys) if the log has no configuration entry yet. Keys that differ
        from the log's are reported (the log wins): changes go through signed requests.
        The store's owner set is rebuilt from the log's configuration entries first."""
        owners = await self.store.rebuild_owners()
        if not owners and pinned:
            try:
                await self.store.append_config(
                    config_entry.bootstrap_entry(pinned, int(time.time()))
                )
                self.stats.config_changes += 1
                log.info("owners: bootstrap names %d owner(s) on the log", len(set(pinned)))
            except (StoreConflict, Refused) as e:  # another worker wrote it first
                log.info("owners: bootstrap written by another worker (%s)", e)
            owners = await self.store.owners()
        if pinned and owners != frozenset(pinned):
            log.warning(
                "owners: --owner %s differ from the log's owners %s; the log wins "
                "(change owners with `pharmasync cloud owners add/remove`)",
                sorted(k.hex()[:12] for k in set(pinned)),
                sorted(k.hex()[:12] for k in owners),
            )
        self.owners = owners
        await self.refresh()
        return owners

    async def apply_config(self, request: object, now: float | None = None) -> int:
        """Check a signed owner change and append it, updating the owner set; return its
        log index. Raises LedgerError: 403 for a signer that is not an owner, 409 for a
        replay or a change the owner set forbids (gateway/config_entry.py)."""
        try:
            change, entry = config_entry.open_request(request, now)
            signer = entry[1 : 1 + 32]
            if change.op in config_entry.ACK_OPS and signer in await self.store.owners():
                await self._check_ack_key_change(change)  # tells owners only
            index = await self.store.append_config(entry)
        except StoreConflict as e:
            raise self._refuse(e.reason, e.detail, 409) from None
        except Refused as e:
            raise self._refuse(e.reason, e.detail, e.status) from None
        self.stats.config_changes += 1
        assert change.key is not None
        log.info("owners: %s %s", change.op, change.key.hex()[:12])
        self.owners = await self.store.owners()
        await self.refresh()
        return index

    async def authority_entries(self, after: int) -> list[tuple[int, bytes]]:
        """Registry and configuration entries after log index `after` (-1: from the start),
        in log order, up to MAX_AUTHORITY_PAGE, within the latest checkpoint."""
        end = self._checkpoint.size
        return await self.store.authority_entries(after, end, MAX_AUTHORITY_PAGE)

    # -- the log -------------------------------------------------------------------------

    def _check_size(self, size: int | None) -> int:
        current = self._checkpoint.size
        if size is None:
            return current
        if not 0 <= size <= current:
            raise LedgerError("size", f"got {size}, want 0 to {current} (the latest checkpoint)")
        return size

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Log entries [start, min(end, start + MAX_ENTRIES_PAGE, checkpoint size))."""
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

    async def entry_readings(self, index: int) -> list[bytes]:
        """Every leaf of the batch whose header is log entry `index`, in leaf order, as
        carried (duplicates and equivocating bytes included: auditors recompute the
        batch's root from them). Raises LedgerError 404 for an entry that is no batch."""
        size = self._checkpoint.size
        entries = await self.store.entries(index, index + 1) if 0 <= index < size else []
        if not entries or entries[0][0] != tlog.ENTRY_BATCH:
            raise LedgerError("not a batch", f"log entry {index} is not a batch header", 404)
        return await self.store.batch_readings(index)

    # -- proof bundles -------------------------------------------------------------------

    async def bundle(self, device: bytes, seq: int) -> dict[str, Any]:
        """Return everything needed to verify reading (device, seq) offline: the reading,
        its batch inclusion proof and header, the header's log inclusion proof and the
        signed checkpoint of that log size (docs/protocol.md). Raises LedgerError 404."""
        found = await self.store.reading(device, seq)
        cp = self._checkpoint
        if found is None or found.log_index >= cp.size:
            raise LedgerError("not found", f"no reading {seq} of box {device.hex()}", 404)
        entry, count = found.entry, found.batch_size

        async def leaves(start: int, end: int) -> list[bytes]:
            return await self.store.batch_leaves(found.log_index, start, end)

        batch_proof = await batchtree.inclusion_proof(count, found.leaf, found.tile, leaves)
        log_proof = await tlog.inclusion_proof(self.store, found.log_index, cp.size)
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
            "log_vkey": self.log_vkey,
        }

    async def history(
        self, device: bytes, start: int, end: int, limit: int = 1000
    ) -> list[reading.Reading]:
        """Up to `limit` readings of a box with start <= time < end, oldest first."""
        return [reading.decode(w) for w in await self.store.history(device, start, end, limit)]

    # -- evidence ------------------------------------------------------------------------

    async def sightings(
        self, device: bytes, equivocations: bool, limit: int = 1000
    ) -> list[dict[str, object]]:
        """The first `limit` equivocations (or duplicate sightings) of a box's readings, in
        log order, as cloud/storage/batches.py's sighting_json; only those of entries the latest
        checkpoint includes."""
        size = self._checkpoint.size
        found = await self.store.sightings(device, equivocations, limit)
        return [s for s in found if isinstance(s["log_index"], int) and s["log_index"] < size]

    # -- gateway events ------------------------------------------------------------------

    async def append_events(self, page: object) -> tuple[dict[str, Any], bool]:
        """Check a page of signed gateway events (POST /v1/events, gateway/event.py) and
        store each new one as its own log entry (kind 0x05), the page in one transaction.
        Return (answer, True if any was stored now); events stored before are answered with
        their log index. Raises LedgerError: 400 "event <field>" for a malformed or forged
        event, 403 "unregistered gateway", 409 "event conflict" / "event gap"."""
        try:
            events = event.parse_page(page)
        except event.EventError as e:
            raise self._refuse(e.reason, e.detail, 400) from None
        gateway = events[0].gateway
        if not await self.store.gateway_registered(gateway):
            raise self._refuse("unregistered gateway", f"gateway {gateway.hex()}", 403)
        loop = asyncio.get_running_loop()
        forged = await loop.run_in_executor(self._pool, _first_forged, events)
        if forged is not None:
            raise self._refuse(
                "event signature", f"event {forged} is not signed by gateway {gateway.hex()}", 400
            )
        try:
            stored = await self.store.store_events(gateway, events)
        except StoreConflict as e:
            raise self._refuse(e.reason, e.detail, 409) from None
        created = sum(new for _, new in stored)
        self.stats.events += created
        self.stats.event_resends += len(stored) - created
        if created:
            await self.refresh()
            log.info("events %s/%d..%d stored", gateway.hex()[:12], events[0].seq, events[-1].seq)
        answer = {
            "gateway": gateway.hex(),
            "events": [
                {"seq": ev.seq, "log_index": index}
                for ev, (index, _) in zip(events, stored, strict=True)
            ],
        }
        return answer, created > 0

    async def gateway_events(self, gateway: bytes, after: int, limit: int) -> dict[str, Any]:
        """Return a registered gateway's events with seq > after (up to `limit`, oldest
        first) as GET /v1/gateways/{key}/events answers. Raises LedgerError 404 for an
        unregistered gateway."""
        if not await self.store.gateway_registered(gateway):
            raise LedgerError("unregistered gateway", f"gateway {gateway.hex()}", 404)
        found = []
        for seq, index, record in await self.store.gateway_events(gateway, after, limit):
            found.append({"seq": seq, "log_index": index, **event.decode(record).to_wire()})
        return {"gateway": gateway.hex(), "events": found}

    # -- relayed alarm acknowledgements (gateway/alarm_ack.py), off the log ---------------

    async def relay_alarm_ack(self, body: object) -> tuple[dict[str, Any], bool]:
        """Check a signed alarm acknowledgement and store it for its gateway to fetch;
        return (the answer, whether it is new). A replay answers as the first time did.
        Raises LedgerError: 400 "malformed", 403 "bad signature", 404 "unregistered
        gateway", 403 "unauthorised key" (not authorised for the gateway's site by the
        configuration entries in the log so far, gateway/config_entry.py)."""
        try:
            signed = alarm_ack.decode(json.dumps(body, separators=(",", ":")).encode())
        except alarm_ack.AckError as e:
            status = 403 if e.reason == "bad signature" else 400
            raise self._refuse(e.reason, e.detail, status) from None
        gateway = signed.ack.gateway
        site = await self.store.gateway_site(gateway)
        if site is None:
            raise self._refuse("unregistered gateway", f"gateway {gateway.hex()}", 404)
        size = await self.store.log_size()
        authority = config_entry.authority_of(await self._authority_entries(size))
        if signed.key not in authority.ack_keys_for(site):
            detail = f"key {signed.key.hex()} may not acknowledge alarms of site {site}"
            raise self._refuse("unauthorised key", detail, 403)
        wire = signed.wire()
        ack_id, checked_at, new = await self.store.store_alarm_ack(
            gateway, signed.digest(), wire, size
        )
        if new:
            log.info("alarm ack %s of %s relayed", signed.ack.alarm, gateway.hex()[:12])
        answer = {"id": ack_id, "gateway": gateway.hex(), "alarm": signed.ack.alarm}
        return answer | {"log_size": checked_at}, new

    async def _check_ack_key_change(self, change: config_entry.ConfigChange) -> None:
        """Refuse an ack-key change that would change nothing (409 "ack key exists" or
        "not an ack key"): most likely a mistake its sender should hear of. Not a rule of
        the log (such an entry would fold as a no-op), so not checked under the lock."""
        assert change.site is not None and change.key is not None
        size = await self.store.log_size()
        keys = config_entry.authority_of(await self._authority_entries(size)).ack_keys
        there = (change.site, change.key) in keys
        if change.op == config_entry.ACK_KEY_ADD and there:
            detail = f"key {change.key.hex()} may acknowledge alarms of site {change.site} already"
            raise config_entry.ConfigError("ack key exists", detail, 409)
        if change.op == config_entry.ACK_KEY_REMOVE and not there:
            detail = f"key {change.key.hex()} may not acknowledge alarms of site {change.site}"
            raise config_entry.ConfigError("not an ack key", detail, 409)

    async def _authority_entries(self, end: int) -> list[bytes]:
        """Every registry and configuration entry below log index `end`, in log order."""
        found: list[bytes] = []
        after = -1
        while page := await self.store.authority_entries(after, end, MAX_AUTHORITY_PAGE):
            found += [entry for _, entry in page]
            after = page[-1][0]
        return found

    async def alarm_acks(self, gateway: bytes, after: int, limit: int) -> dict[str, Any]:
        """The signed acks relayed to a registered gateway with id > after (up to `limit`,
        oldest first), as GET /v1/gateways/{key}/alarm-acks answers. Raises LedgerError
        404 for an unregistered gateway."""
        if await self.store.gateway_site(gateway) is None:
            raise LedgerError("unregistered gateway", f"gateway {gateway.hex()}", 404)
        found = [
            {"id": i, "signed_ack": json.loads(wire)}
            for i, wire in await self.store.alarm_acks(gateway, after, limit)
        ]
        return {"gateway": gateway.hex(), "acks": found}


def _first_forged(events: list[event.Event]) -> int | None:
    """Return the seq of the first event whose signature does not verify, if any."""
    return next((ev.seq for ev in events if not ev.verify_signature()), None)
