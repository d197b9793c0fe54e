"""What the ledger needs from storage: one async interface, two engines.

`cloud/storage/sqlite.py` (SQLite in WAL mode, the embedded default) and
`cloud/storage/postgres.py` (PostgreSQL through asyncpg, for several workers) both provide
`Store`; the service layer (`cloud/services/ledger.py`) sees nothing else, and the same test suite
(`tests/cloud/storage/test_store.py`) runs against both.

Every write that grows the log is one transaction that holds the log's write lock (SQLite:
BEGIN IMMEDIATE; PostgreSQL: an advisory transaction lock), which makes its holder the
log's single sequencer (DESIGN.md, "When one machine is not enough"). A write re-checks,
under that lock, what the caller verified without it (a batch still chains to its gateway's
last one), so racing workers cannot fork a gateway's chain: the loser gets StoreConflict.

Readings are stored exactly once by (box, seq) (issue 10, docs/protocol.md "Exactly once"):
every leaf of every batch is kept, in leaf order, for auditors who recompute batch roots,
but only the first carrier of a reading holds its 110 bytes; a later leaf with the same
bytes is a *duplicate sighting* that refers to them, and a later leaf with other bytes
under the same (box, seq) is an *equivocation*, kept as evidence beside it and never
served as the reading. `classify_leaves` is that rule, shared by both engines.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from cloud.log.tlog import ENTRY_EVENT, NodeKey
from cloud.services.ingest import Verified
from gateway.event import Event


class NotFound(LookupError):
    """No such entry or node; str() names it."""


class SchemaError(RuntimeError):
    """The database holds a ledger of a schema this code cannot use; str() says what to do.
    (Raised when a store is opened: `cloud serve` should print it as one line.)"""


class StoreConflict(Exception):
    """A write lost a race: `reason` is "conflict" (another header is stored for this
    (gateway, seq)), "chain" (the batch no longer follows the gateway's last one) or
    "replayed" (the log holds this registry entry already)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class KnownState:
    """What verifying one batch needs to know of the ledger, read in one go beforehand."""

    gateway_registered: bool
    stored_header: bytes | None  # the header stored for this (gateway, seq), if any
    last_header: bytes | None  # the gateway's newest stored header, if any
    registered_devices: frozenset[bytes]  # those of the asked keys that are registered


class StoredReading(NamedTuple):
    """A reading as stored, with what proving it needs of its batch (read in one go)."""

    wire: bytes  # the 110 signed bytes: the leaf of its batch's tree
    log_index: int  # the log entry of its batch's header
    leaf: int  # its position in the batch's tree
    entry: bytes  # that log entry, exactly as stored
    batch_size: int  # readings in the batch
    tile: bytes  # the batch's tile (cloud/log/batchtree.py)


class Leaf(NamedTuple):
    """One leaf of a batch as stored: its reading's (box, seq) and the bytes it carries
    when they are stored with it (`wire` None: they are the reading's first-stored bytes,
    held by another leaf)."""

    leaf: int  # position in the batch's tree
    key: bytes  # the box's key
    seq: int
    time: int
    wire: bytes | None  # set for the reading's first carrier


@dataclass(frozen=True, slots=True)
class Sighting:
    """A leaf that carried an already stored reading (box, seq) again: a duplicate (the
    same bytes) or an equivocation (other bytes, validly signed: the box's key may be
    cloned). `first` is where the reading is stored, as (log index, leaf)."""

    key: bytes
    seq: int
    log_index: int
    leaf: int
    first: tuple[int, int]
    wire: bytes | None  # None: a duplicate; else the equivocating bytes (the evidence)

    @property
    def equivocation(self) -> bool:
        return self.wire is not None


@dataclass(frozen=True, slots=True)
class BatchStored:
    """What store_batch did: the header's log index; `created` False if the batch was
    already stored (an exact resend, maybe racing its original: nothing was written); the
    number of readings stored for the first time; and the batch's sightings."""

    log_index: int
    created: bool
    new_readings: int = 0
    sightings: tuple[Sighting, ...] = ()

    @property
    def duplicates(self) -> int:
        return sum(1 for s in self.sightings if not s.equivocation)

    @property
    def equivocations(self) -> tuple[Sighting, ...]:
        return tuple(s for s in self.sightings if s.equivocation)


# Past any batch's last leaf: PostgreSQL's leaf column is an integer, and a batch of
# 2**31 readings (236 GB) is far beyond any upload the cloud accepts.
MAX_LEAF = 2**31 - 1

# (box key, seq) -> (first-stored bytes, (log index, leaf) of their carrier)
StoredFirst = dict[tuple[bytes, int], tuple[bytes, tuple[int, int]]]


def classify_leaves(
    log_index: int, verified: Verified, stored: StoredFirst
) -> tuple[list[Leaf], list[Sighting]]:
    """Split a batch's leaves into those that store a reading for the first time and
    sightings of readings stored before (in `stored`, read under the write lock, or
    earlier in this batch). Return (every leaf in order, the sightings)."""
    first = dict(stored)
    leaves: list[Leaf] = []
    sightings: list[Sighting] = []
    for position, (r, wire) in enumerate(zip(verified.readings, verified.wires, strict=True)):
        known = first.get((r.key, r.seq))
        if known is None:
            first[(r.key, r.seq)] = (wire, (log_index, position))
            leaves.append(Leaf(position, r.key, r.seq, r.time, wire))
            continue
        leaves.append(Leaf(position, r.key, r.seq, r.time, None))
        other = None if known[0] == wire else wire
        sightings.append(Sighting(r.key, r.seq, log_index, position, known[1], other))
    return leaves, sightings


def sighting_json(
    s: Sighting, gateway: bytes, batch_seq: int, stored_wire: bytes
) -> dict[str, object]:
    """The JSON an operator reads for one sighting (GET /v1/devices/{device}/equivocations,
    /sightings): where it was carried, and for an equivocation both signed byte strings."""
    doc: dict[str, object] = {
        "seq": s.seq,
        "log_index": s.log_index,
        "leaf": s.leaf,
        "gateway": gateway.hex(),
        "batch": batch_seq,
        "first": {"log_index": s.first[0], "leaf": s.first[1]},
    }
    if s.wire is not None:
        doc["stored"] = stored_wire.hex()  # the bytes served as the reading
        doc["conflicting"] = s.wire.hex()  # the other bytes, kept as evidence
    return doc


def events_to_store(
    events: Sequence[Event], stored: Mapping[int, tuple[int, bytes]], last: int
) -> tuple[list[bytes], list[Event]]:
    """Decide a page of a gateway's events, both engines alike: `stored` maps the page's
    seqs already stored to (log index, entry), `last` is the gateway's newest stored seq
    (-1: none). Return (log entries to append, the events they carry). Raises StoreConflict
    "event conflict" for another record at a stored seq, "event gap" for a new event whose
    seq is not the next."""
    entries, fresh = [], []
    want = last + 1
    for ev in events:
        entry = bytes([ENTRY_EVENT]) + ev.encode()
        if ev.seq in stored:
            if stored[ev.seq][1] != entry:
                raise StoreConflict(
                    "event conflict", f"another event {ev.seq} is stored for this gateway"
                )
        elif ev.seq != want:
            raise StoreConflict("event gap", f"got event {ev.seq}, want event {want}")
        else:
            entries.append(entry)
            fresh.append(ev)
            want += 1
    return entries, fresh


def answer_events(
    events: Sequence[Event], stored: Mapping[int, tuple[int, bytes]], first: int
) -> list[tuple[int, bool]]:
    """Return (log index, stored now) per event, the new ones appended from index `first`
    in page order (events_to_store's decision)."""
    answer, index = [], first
    for ev in events:
        if ev.seq in stored:
            answer.append((stored[ev.seq][0], False))
        else:
            answer.append((index, True))
            index += 1
    return answer


class Store(Protocol):
    """The ledger's storage. Methods raise NotFound for absent entries or nodes."""

    async def close(self) -> None: ...

    # -- the log ------------------------------------------------------------------------

    async def log_size(self) -> int: ...

    async def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        """Return the stored tree nodes asked for. Raises NotFound if one is missing."""
        ...

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Return log entries [start, end), fewer if the log is shorter."""
        ...

    async def find_entry(self, leaf_hash: bytes) -> int | None:
        """Return the index of the first entry with this RFC 6962 leaf hash, if any."""
        ...

    async def append(self, entries: Sequence[bytes]) -> tuple[int, int]:
        """Append entries with the tree nodes they complete, in one transaction; return
        (index of the first, new log size)."""
        ...

    # -- configuration: the owners -------------------------------------------------------

    async def owners(self) -> frozenset[bytes]:
        """The owner set after the log's last configuration entry (empty: none yet)."""
        ...

    async def rebuild_owners(self) -> frozenset[bytes]:
        """Derive the owner set again from the log's configuration entries (under the write
        lock), store it and return it: the owners table is a cache of the log, rebuilt at
        start. Raises ConfigError if the logged entries do not fold (a tampered log)."""
        ...

    async def append_config(self, entry: bytes) -> int:
        """Append a configuration entry (gateway/config_entry.py) and update the owner set
        in one transaction; return its log index. Raises StoreConflict("replayed") or
        ConfigError (no authority, a rule broken): checked under the log's write lock, as
        every registry entry's owner is (`_append_once` in the stores)."""
        ...

    async def authority_entries(self, after: int, end: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (log index, entry) of registry and configuration entries with
        after < index < end, in log order."""
        ...

    # -- the registry ---------------------------------------------------------------------

    async def register_gateway(
        self, key: bytes, site: str, entry: bytes | None = None
    ) -> int | None:
        """Register (or move) a gateway; `entry`, if given, is appended to the log in the
        same transaction (a signed registry change) and its log index returned. Raises
        StoreConflict("replayed") if the log holds that entry already, ConfigError if its
        owner is not an owner at that point of the log: the checks and the append are one
        transaction under the log's write lock."""
        ...

    async def register_device(
        self, key: bytes, site: str, label: str = "", entry: bytes | None = None
    ) -> int | None:
        """Register (or relabel) a box; `entry` as for register_gateway."""
        ...

    async def attach(
        self,
        device: bytes,
        subject: str,
        start: int,
        end: int | None,
        entry: bytes | None = None,
    ) -> int | None:
        """Attach a registered box to a lot, shipment or zone for [start, end) (Unix seconds,
        end None: open); `entry` as for register_gateway. Raises NotFound for an
        unregistered box."""
        ...

    async def attachments(self, device: bytes) -> list[dict[str, object]]:
        """The box's attachments, oldest first: {"subject", "start", "end"}."""
        ...

    async def gateways(self) -> list[dict[str, object]]:
        """Registered gateways: {"key" (hex), "site", "last_seq" (-1: none yet)}."""
        ...

    async def devices(self) -> list[dict[str, object]]:
        """Registered boxes: {"key" (hex), "site", "label", "last_seq" (-1: none yet)}."""
        ...

    # -- batches and readings ------------------------------------------------------------

    async def known(self, gateway: bytes, seq: int, devices: Collection[bytes]) -> KnownState:
        """Read what check_batch needs for a batch (gateway, seq) naming these boxes."""
        ...

    async def store_batch(self, verified: Verified) -> BatchStored:
        """Append the batch header to the log and store the batch, its leaves and its new
        readings (classify_leaves) in one transaction. If an identical header is already
        stored for (gateway, seq), store nothing and report created=False. Raises
        StoreConflict if another header is stored there or the chain moved on."""
        ...

    async def batch_log_index(self, gateway: bytes, seq: int) -> int | None: ...

    async def reading(self, device: bytes, seq: int) -> StoredReading | None:
        """The reading (device, seq) as first stored, if any, with its batch's log entry
        and tile."""
        ...

    async def batch_readings(self, log_index: int) -> list[bytes]:
        """Every leaf of the batch whose header is log entry `log_index`, in leaf order,
        each with the bytes it carried (duplicates and equivocating bytes included)."""
        ...

    async def batch_leaves(self, log_index: int, start: int, end: int) -> list[bytes]:
        """Leaves [start, end) of the batch whose header is log entry `log_index`."""
        ...

    async def history(self, device: bytes, start: int, end: int, limit: int) -> list[bytes]:
        """Up to `limit` readings of a box with start <= time < end, oldest first (each
        (box, seq) once, as first stored)."""
        ...

    async def sightings(
        self, device: bytes, equivocations: bool, limit: int
    ) -> list[dict[str, object]]:
        """The first `limit` sightings of a box's readings in log order: its equivocations,
        or (False) its duplicate sightings, each as sighting_json makes it."""
        ...

    # -- gateway events (gateway/event.py) -----------------------------------------------

    async def gateway_registered(self, key: bytes) -> bool:
        """Return whether `key` is a registered gateway."""
        ...

    async def store_events(self, gateway: bytes, events: Sequence[Event]) -> list[tuple[int, bool]]:
        """Store a page of `gateway`'s signed events, consecutive seqs in ascending order:
        each new one's log entry (kind 0x05) is appended and the event recorded, all in one
        transaction. Return (log index, True if stored now) per event; an event already
        stored with the same record is answered with its index. Raises StoreConflict
        ("event conflict": another record is stored at that seq; "event gap": a new event's
        seq is not the gateway's next, which the detail names), storing nothing."""
        ...

    async def gateway_events(
        self, gateway: bytes, after: int, limit: int
    ) -> list[tuple[int, int, bytes]]:
        """Return (seq, log index, record) of up to `limit` of `gateway`'s events with
        seq > after, oldest first."""
        ...

    # -- cosigned checkpoints (cosigned receipts, cloud/api/routes/receipts.py) --------------

    async def cosigned_note(self, size: int) -> str | None:
        """Return the kept checkpoint note of `size` with its cosignature lines, if any."""
        ...

    async def keep_cosigned(self, size: int, note: str, cosignatures: int) -> None:
        """Keep checkpoint note `note` of `size` carrying `cosignatures` verified witness
        cosignatures, unless one with at least as many is kept for that size."""
        ...

    async def first_cosigned(
        self, min_size: int, max_size: int, min_cosignatures: int
    ) -> tuple[int, str] | None:
        """Return (size, note) of the smallest kept checkpoint with min_size <= size <=
        max_size and at least `min_cosignatures` cosignatures, if any."""
        ...

    # -- relayed alarm acknowledgements (gateway/alarm_ack.py), off the log ---------------

    async def gateway_site(self, key: bytes) -> str | None:
        """The site a registered gateway is at (None: not registered)."""
        ...

    async def store_alarm_ack(
        self, gateway: bytes, digest: bytes, wire: bytes, log_size: int
    ) -> tuple[int, int, bool]:
        """Store a checked signed ack for `gateway` once (by `digest`); return (its id,
        the log size stored with it, whether it is new). A replay returns the first's."""
        ...

    async def alarm_acks(self, gateway: bytes, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (id, wire) of the acks stored for `gateway` with id > after, in
        id order."""
        ...
