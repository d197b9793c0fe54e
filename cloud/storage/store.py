"""What the ledger needs from storage: `Store`, one class over either engine.

Three layers, written once each (docs/layout.md):

- the engine (`engine.py`): a connection in a transaction, with one SQL dialect; SQLite
  (`sqlite.py`, the embedded default) or PostgreSQL (`postgres.py`, several workers);
- the domain modules, one per thing stored: the log and `Commit` (`log.py`), batches and
  readings (`batches.py`), the registry (`registry.py`), authority entries and owners
  (`authority.py`), gateway events (`events.py`), cosigned checkpoints (`cosigned.py`),
  relayed alarm acknowledgements (`alarm_acks.py`), applied contract transactions
  (`contracts.py`);
- `Store` (here): opens the engine, and gives each call its transaction. The service layer
  (cloud/services/) sees nothing else, and tests/cloud/storage/test_store.py runs
  against both engines.

Every write that grows the log is one `commit(apply)` (cloud/storage/log.py): a transaction
holding the log's lock, whose holder is the log's single sequencer (DESIGN.md, "When one
machine is not enough"), in which entries are appended and the caller's state change is
applied, or neither. A write re-checks under that lock what the caller verified without
it (a batch still chains to its gateway's last one), so racing workers cannot fork a
gateway's chain: the loser gets StoreConflict. Methods raise NotFound for absent entries
or nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import TypeVar

from cloud.log.tlog import NodeKey
from cloud.log.verified import Verified
from cloud.storage import alarm_acks, auth, authority, batches, cosigned, log, registry, stamped
from cloud.storage import contracts as contract_txs
from cloud.storage import events as event_log
from cloud.storage.batches import MAX_LEAF, BatchStored, KnownState, Sighting, StoredReading
from cloud.storage.contracts import StoredTx
from cloud.storage.engine import Engine, Tx
from cloud.storage.errors import NotFound, SchemaError, StoreConflict
from cloud.storage.log import Commit
from gateway.event import Event

T = TypeVar("T")

# What callers import from here: the Store and the values and errors of its interface.
__all__ = [
    "BatchStored",
    "Commit",
    "KnownState",
    "NotFound",
    "SchemaError",
    "Sighting",
    "Store",
    "StoreConflict",
    "StoredReading",
    "StoredTx",
]


class Store:
    """The ledger's storage on one engine (module docstring). Open it with sqlite(),
    postgres() or open(); `engine` is the engine it runs on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def sqlite(cls, path: Path) -> Store:
        """The ledger in the SQLite file `path` (created if absent). Raises SchemaError for
        a file of an older schema."""
        from cloud.storage.sqlite import SqliteEngine

        return cls(SqliteEngine(path))

    @classmethod
    async def postgres(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> Store:
        """The ledger in the PostgreSQL database (and search_path) of `dsn`, through a pool
        of min_size..max_size connections. Raises SchemaError for another schema version,
        asyncpg's errors if the database cannot be reached."""
        from cloud.storage.postgres import PostgresEngine

        return cls(await PostgresEngine.open(dsn, min_size=min_size, max_size=max_size))

    @classmethod
    async def open(cls, database: str | None, sqlite_path: Path) -> Store:
        """PostgreSQL if `database` (a postgresql:// URL) is set, else SQLite at
        `sqlite_path` (its folder created if absent)."""
        if database:
            return await cls.postgres(database)
        sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return cls.sqlite(sqlite_path)

    async def close(self) -> None:
        await self.engine.close()

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Return `await fn(tx)` over a read connection (each statement sees what was
        committed before it): for a service that composes a domain module's reads, as the
        contract service follows the log (cloud/services/contract_follow.py). `fn` awaits
        nothing but `tx`, as in commit()."""
        return await self.engine.read(fn)

    async def commit(self, apply: Callable[[Commit], Awaitable[T]]) -> T:
        """Return `await apply(commit)`, run in one transaction holding the log's lock:
        the entries it appends and the state change it makes are committed together when
        it returns, or rolled back together if it raises (cloud/storage/log.py). `apply`
        awaits nothing but its commit (cloud/storage/engine.py)."""
        return await self.engine.write(lambda tx: apply(Commit(tx)))

    # -- the log ------------------------------------------------------------------------

    async def log_size(self) -> int:
        return await self.engine.read(log.size)

    async def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        """Return the stored tree nodes asked for. Raises NotFound if one is missing."""
        return await self.engine.read(lambda tx: log.nodes(tx, keys))

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Return log entries [start, end), fewer if the log is shorter."""
        return await self.engine.read(lambda tx: log.entries(tx, start, end))

    async def find_entry(self, leaf_hash: bytes) -> int | None:
        """Return the index of the first entry with this RFC 6962 leaf hash, if any."""
        return await self.engine.read(lambda tx: log.find(tx, leaf_hash))

    async def append(self, entries: Sequence[bytes]) -> tuple[int, int]:
        """Append entries with the tree nodes they complete, in one transaction; return
        (index of the first, new log size)."""
        first = await self.commit(lambda c: c.append(entries))
        return first, first + len(entries)

    # -- configuration: the owners -------------------------------------------------------

    async def owners(self) -> frozenset[bytes]:
        """The owner set after the log's last configuration entry (empty: none yet)."""
        return await self.engine.read(authority.owners)

    async def rebuild_owners(self) -> frozenset[bytes]:
        """Derive the owner set again from the log's configuration entries (under the write
        lock), store it and return it: the owners table is a cache of the log, rebuilt at
        start. Raises ConfigError if the logged entries do not fold (a tampered log)."""
        return await self.commit(authority.rebuild_owners)

    async def append_config(self, entry: bytes) -> int:
        """Append a configuration entry (gateway/config_entry.py) and update the owner set
        in one transaction; return its log index. Raises StoreConflict("replayed") or
        ConfigError (no authority, a rule broken): checked under the log's write lock, as
        every registry entry's owner is (authority.append_once)."""
        index = await self.commit(lambda c: authority.append_once(c, entry))
        assert index is not None
        return index

    async def authority_entries(self, after: int, end: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (log index, entry) of registry and configuration entries with
        after < index < end, in log order."""
        return await self.engine.read(lambda tx: authority.entries(tx, after, end, limit))

    # -- the registry ---------------------------------------------------------------------

    async def register_gateway(
        self, key: bytes, site: str, entry: bytes | None = None
    ) -> int | None:
        """Register (or move) a gateway; `entry`, if given, is appended to the log in the
        same transaction (a signed registry change) and its log index returned. Raises
        StoreConflict("replayed") if the log holds that entry already, ConfigError if its
        owner is not an owner at that point of the log: the checks and the append are one
        transaction under the log's write lock."""
        return await self.commit(lambda c: registry.register_gateway(c, key, site, entry))

    async def register_device(
        self, key: bytes, site: str, label: str = "", entry: bytes | None = None
    ) -> int | None:
        """Register (or relabel) a box; `entry` as for register_gateway."""
        return await self.commit(lambda c: registry.register_device(c, key, site, label, entry))

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
        return await self.commit(lambda c: registry.attach(c, device, subject, start, end, entry))

    async def attachments(self, device: bytes) -> list[dict[str, object]]:
        """The box's attachments, oldest first: {"subject", "start", "end"}."""
        return await self.engine.read(lambda tx: registry.attachments(tx, device))

    async def gateways(self) -> list[dict[str, object]]:
        """Registered gateways: {"key" (hex), "site", "last_seq" (-1: none yet)}."""
        return await self.engine.read(registry.gateways)

    async def devices(self) -> list[dict[str, object]]:
        """Registered boxes: {"key" (hex), "site", "label", "last_seq" (-1: none yet)}."""
        return await self.engine.read(registry.devices)

    async def gateway_registered(self, key: bytes) -> bool:
        """Return whether `key` is a registered gateway."""
        return await self.gateway_site(key) is not None

    async def gateway_site(self, key: bytes) -> str | None:
        """The site a registered gateway is at (None: not registered)."""
        return await self.engine.read(lambda tx: registry.gateway_site(tx, key))

    async def site_boxes(self, site: str) -> list[bytes]:
        """The keys of the boxes registered at `site`, in key order."""
        return await self.engine.read(lambda tx: registry.site_boxes(tx, site))

    # -- batches and readings ------------------------------------------------------------

    async def known(self, gateway: bytes, seq: int, devices: Collection[bytes]) -> KnownState:
        """Read what check_batch needs for a batch (gateway, seq) naming these boxes."""
        return await self.engine.read(lambda tx: batches.known(tx, gateway, seq, devices))

    async def store_batch(self, verified: Verified) -> BatchStored:
        """Append the batch header to the log and store the batch, its leaves and its new
        readings (classify_leaves) in one transaction. If an identical header is already
        stored for (gateway, seq), store nothing and report created=False. Raises
        StoreConflict if another header is stored there or the chain moved on."""
        return await self.commit(lambda c: batches.store_batch(c, verified))

    async def batch_log_index(self, gateway: bytes, seq: int) -> int | None:
        return await self.engine.read(lambda tx: batches.batch_log_index(tx, gateway, seq))

    async def reading(self, device: bytes, seq: int) -> StoredReading | None:
        """The reading (device, seq) as first stored, if any, with its batch's log entry
        and tile."""
        return await self.engine.read(lambda tx: batches.reading(tx, device, seq))

    async def batch_readings(self, log_index: int) -> list[bytes]:
        """Every leaf of the batch whose header is log entry `log_index`, in leaf order,
        each with the bytes it carried (duplicates and equivocating bytes included)."""
        return await self.batch_leaves(log_index, 0, MAX_LEAF)

    async def batch_leaves(self, log_index: int, start: int, end: int) -> list[bytes]:
        """Leaves [start, end) of the batch whose header is log entry `log_index`."""
        return await self.engine.read(lambda tx: batches.batch_leaves(tx, log_index, start, end))

    async def history(self, device: bytes, start: int, end: int, limit: int) -> list[bytes]:
        """Up to `limit` readings of a box with start <= time < end, oldest first (each
        (box, seq) once, as first stored)."""
        return await self.engine.read(lambda tx: batches.history(tx, device, start, end, limit))

    async def sightings(
        self, device: bytes, equivocations: bool, limit: int
    ) -> list[dict[str, object]]:
        """The first `limit` sightings of a box's readings in log order: its equivocations,
        or (False) its duplicate sightings, each as sighting_json makes it."""
        return await self.engine.read(
            lambda tx: batches.sightings(tx, device, equivocations, limit)
        )

    # -- gateway events (gateway/event.py) -----------------------------------------------

    async def store_events(self, gateway: bytes, events: Sequence[Event]) -> list[tuple[int, bool]]:
        """Store a page of `gateway`'s signed events, consecutive seqs in ascending order:
        each new one's log entry (kind 0x05) is appended and the event recorded, all in one
        transaction. Return (log index, True if stored now) per event; an event already
        stored with the same record is answered with its index. Raises StoreConflict
        ("event conflict": another record is stored at that seq; "event gap": a new event's
        seq is not the gateway's next, which the detail names), storing nothing."""
        return await self.commit(lambda c: event_log.store_events(c, gateway, events))

    async def gateway_events(
        self, gateway: bytes, after: int, limit: int
    ) -> list[tuple[int, int, bytes]]:
        """Return (seq, log index, record) of up to `limit` of `gateway`'s events with
        seq > after, oldest first."""
        return await self.engine.read(
            lambda tx: event_log.gateway_events(tx, gateway, after, limit)
        )

    # -- cosigned checkpoints (cosigned receipts, cloud/api/routes/receipts.py) --------------

    async def cosigned_note(self, size: int) -> str | None:
        """Return the kept checkpoint note of `size` with its cosignature lines, if any."""
        return await self.engine.read(lambda tx: cosigned.note(tx, size))

    async def keep_cosigned(self, size: int, note: str, cosignatures: int) -> None:
        """Keep checkpoint note `note` of `size` carrying `cosignatures` verified witness
        cosignatures, unless one with at least as many is kept for that size."""
        # One statement, atomic by itself, off the log: no log lock.
        await self.engine.read(lambda tx: cosigned.keep(tx, size, note, cosignatures))

    async def first_cosigned(
        self, min_size: int, max_size: int, min_cosignatures: int
    ) -> tuple[int, str] | None:
        """Return (size, note) of the smallest kept checkpoint with min_size <= size <=
        max_size and at least `min_cosignatures` cosignatures, if any."""
        return await self.engine.read(
            lambda tx: cosigned.first(tx, min_size, max_size, min_cosignatures)
        )

    # -- stamped checkpoints (the public check, cloud/services/public_check.py) -------------

    async def keep_stamped(self, size: int, note: str) -> str:
        """Keep stamped checkpoint `note` of `size` unless one is kept; return the kept one."""
        # Off the log, atomic by itself: no log lock.
        return await self.engine.read(lambda tx: stamped.keep_first(tx, size, note))

    async def stamped_note(self, size: int) -> str | None:
        """Return the kept stamped checkpoint note of `size`, if any."""
        return await self.engine.read(lambda tx: stamped.note(tx, size))

    # -- relayed alarm acknowledgements (gateway/alarm_ack.py), off the log ---------------

    async def store_alarm_ack(
        self, gateway: bytes, digest: bytes, wire: bytes, log_size: int
    ) -> tuple[int, int, bool]:
        """Store a checked signed ack for `gateway` once (by `digest`); return (its id,
        the log size stored with it, whether it is new). A replay returns the first's."""
        return await self.engine.write(
            lambda tx: alarm_acks.store(tx, gateway, digest, wire, log_size)
        )

    async def alarm_acks(self, gateway: bytes, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (id, wire) of the acks stored for `gateway` with id > after, in
        id order."""
        return await self.engine.read(lambda tx: alarm_acks.acks(tx, gateway, after, limit))

    # -- sign-in for reads (cloud/storage/auth.py) ----------------------------------------

    async def auth_secret(self) -> bytes:
        """The token secret the workers share (created at first use)."""
        return await self.engine.write(auth.secret)

    async def add_challenge(self, challenge: bytes, expires: int, now: int) -> None:
        """Store a sign-in challenge valid until `expires` (Unix s)."""
        await self.engine.write(lambda tx: auth.add_challenge(tx, challenge, expires, now))

    async def use_challenge(self, challenge: bytes, now: int) -> bool:
        """Consume a sign-in challenge: whether it was outstanding and unexpired."""
        return await self.engine.write(lambda tx: auth.use_challenge(tx, challenge, now))

    # -- contract transactions (cloud/storage/contracts.py) -------------------------------

    async def contract_txs(self, after: int, limit: int) -> list[StoredTx]:
        """Up to `limit` applied contract transactions whose 0x03 entry follows log index
        `after` (-1: from the start), in log order."""
        return await self.engine.read(lambda tx: contract_txs.after(tx, after, limit))
