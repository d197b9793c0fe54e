"""The ledger's append-only log: an RFC 6962 tree over log entries whose complete subtrees
are stored as they complete, so appending costs O(log n) hashing per entry and proofs for
any size are read from stored nodes (gateway.merkle.StoredTree), never rebuilt.

A log entry is a kind byte and its payload; the kinds, and what is checked of each, are
one table (cloud/log/kinds.py). The leaf of an entry is RFC 6962's SHA-256(0x00 || entry
bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Protocol, TypeVar

# The kinds' names, for the log's writers (cloud/storage, cloud/services) and its tests.
from cloud.log.kinds import AUTHORITY_KINDS as AUTHORITY_KINDS
from cloud.log.kinds import ENTRY_BATCH, ENTRY_EVENT, kind_of
from cloud.log.kinds import ENTRY_CONFIG as ENTRY_CONFIG
from cloud.log.kinds import ENTRY_REGISTRY as ENTRY_REGISTRY
from cloud.log.kinds import EntryError as EntryError
from gateway import batch, event
from gateway.merkle import StoredTree
from gateway.rfc6962 import leaf_hash, node_hash

T = TypeVar("T")
NodeKey = tuple[int, int]  # (level, index): leaves [index * 2**level, (index + 1) * 2**level)


def batch_entry(header: bytes) -> bytes:
    """Return the log entry carrying a signed batch header. Raises BatchError if malformed."""
    batch.decode(header)
    return bytes([ENTRY_BATCH]) + header


def event_entry(record: bytes) -> bytes:
    """Return the log entry carrying a signed gateway event record. Raises EventError if
    the record is malformed or not canonical (its signature is not checked here)."""
    event.decode(record)
    return bytes([ENTRY_EVENT]) + record


def parse_entry(data: bytes) -> tuple[str, bytes]:
    """Return (kind name, payload) of a log entry; the payload is not checked here
    (cloud/log/kinds.py `check` does). Raises EntryError for an unknown kind."""
    return kind_of(data).name, bytes(data[1:])


def new_nodes(
    size: int, leaf_hashes: Iterable[bytes], stored: Callable[[int, int], bytes]
) -> dict[NodeKey, bytes]:
    """Return every complete-subtree node created by appending `leaf_hashes` to a log of
    `size` entries; `stored(level, index)` reads nodes that already exist.

    Appending leaf i completes the subtrees whose last leaf it is: one per trailing 1 bit
    of i, each the hash of its stored left sibling and the subtree just completed.
    """
    created: dict[NodeKey, bytes] = {}
    for i, h in enumerate(leaf_hashes, start=size):
        level, index = 0, i
        created[(0, i)] = h
        while index & 1:
            left_key = (level, index - 1)
            left = created[left_key] if left_key in created else stored(*left_key)
            h = node_hash(left, h)
            level, index = level + 1, index >> 1
            created[(level, index)] = h
    return created


class NodeSource(Protocol):
    """Reads stored nodes in one round trip (cloud.storage.store.Store provides it)."""

    async def nodes(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]: ...


class _Nodes(StoredTree):
    """A tree of `size` leaves over a dict of nodes; with record=True it returns a
    placeholder for every node and notes its key instead (a dry run)."""

    __slots__ = ("_size", "known", "record", "wanted")

    def __init__(self, size: int, known: dict[NodeKey, bytes] | None = None) -> None:
        self._size = size
        self.known = known or {}
        self.record = known is None
        self.wanted: set[NodeKey] = set()

    @property
    def size(self) -> int:
        return self._size

    def _stored(self, level: int, index: int) -> bytes:
        if self.record:
            self.wanted.add((level, index))
            return bytes(32)
        return self.known[(level, index)]


async def _compute(source: NodeSource, size: int, fn: Callable[[StoredTree], T]) -> T:
    # Which nodes a root or proof reads depends only on sizes and indices, never on hashes:
    # a dry run lists them, one query fetches them, and the real run uses them.
    dry = _Nodes(size)
    fn(dry)
    return fn(_Nodes(size, await source.nodes(dry.wanted)))


async def root(source: NodeSource, size: int) -> bytes:
    """Return the root of the log's first `size` entries."""
    return await _compute(source, size, lambda t: t.root())


async def inclusion_proof(source: NodeSource, index: int, size: int) -> list[bytes]:
    """Return the RFC 6962 inclusion proof of entry `index` in the log of `size` entries.
    Requires 0 <= index < size <= stored size; raises TreeRangeError or NotFound."""
    return await _compute(source, size, lambda t: t.inclusion_proof(index))


async def consistency_proof(source: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """Return the RFC 6962 consistency proof from `old_size` to `new_size` entries.
    Requires 0 <= old_size <= new_size <= stored size; raises TreeRangeError or NotFound."""
    return await _compute(source, new_size, lambda t: t.consistency_proof(old_size))


def entry_leaf(entry: bytes) -> bytes:
    """The RFC 6962 leaf hash of a log entry."""
    return leaf_hash(entry)
