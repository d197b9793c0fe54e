"""A copy-on-write fork of the contracts' State: what the contract service applies
transactions to inside a database transaction, so that the State it answers reads from
moves only once that transaction has committed (docs/contracts.md §1, "a refused
transaction leaves nothing"; and a commit that fails leaves nothing either).

The engine (cloud/contracts/engine.py) changes a State through five things only: its
records (get, `in`, `del`, update), its replay guards (`in`, add), its pending leaf changes,
its tree's NodeStore and the serial index (State.packs, which only grows); following the log
adds a sixth, the registry's boxes (State.boxes). A Fork gives a fresh State overlays of the
base's records, guards, boxes, serial index and tree nodes: reads fall through to the base,
writes stay in the overlay, and `merge()` writes them into the base at once. The base must
not change while a fork of it is open (the service holds its lock).

The cold chains (lots_coldchain.ColdChains) are not forked: they change in place, and the
contract service rebuilds them with the State by replay when a commit fails after they
changed (cloud/services/contracts.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, MutableSet
from typing import Generic, TypeVar, cast

from cloud.contracts.engine import Record, State
from cloud.contracts.statetree import StateTree
from cloud.contracts.statetree_store import Node, NodeChanges, NodeStore, Position

K = TypeVar("K")
V = TypeVar("V")
_GONE = object()  # a key the overlay deleted
_UNCHANGED = object()  # a position the fork has not written


class _Overlay(MutableMapping[K, V], Generic[K, V]):
    """A dict's changes kept apart from it: reads see the base with the changes on top."""

    def __init__(self, base: Mapping[K, V]) -> None:
        self.base = base
        self.changes: dict[K, object] = {}

    def __getitem__(self, key: K) -> V:
        if key in self.changes:
            value = self.changes[key]
            if value is _GONE:
                raise KeyError(key)
            return cast(V, value)
        return self.base[key]

    def __setitem__(self, key: K, value: V) -> None:
        self.changes[key] = value

    def __delitem__(self, key: K) -> None:
        if key not in self:
            raise KeyError(key)
        self.changes[key] = _GONE

    def __iter__(self) -> Iterator[K]:
        yield from (k for k in self.base if k not in self.changes)
        yield from (k for k, v in self.changes.items() if v is not _GONE)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Added(MutableSet[K], Generic[K]):
    """A set's additions kept apart from it (the replay guards only grow)."""

    def __init__(self, base: set[K]) -> None:
        self.base = base
        self.added: set[K] = set()

    def __contains__(self, item: object) -> bool:
        return item in self.added or item in self.base

    def __iter__(self) -> Iterator[K]:
        yield from self.base
        yield from (k for k in self.added if k not in self.base)

    def __len__(self) -> int:
        return len(self.base) + len(self.added - self.base)

    def add(self, value: K) -> None:
        self.added.add(value)

    def discard(self, value: K) -> None:
        raise TypeError("a replay guard is never removed")


class _Nodes:
    """A NodeStore's changes kept apart from it (None: a position emptied)."""

    def __init__(self, base: NodeStore) -> None:
        self.base = base
        self.changes: dict[Position, Node | None] = {}
        self._base_node = base.node  # bound once: read at every level of every update

    def node(self, at: Position) -> Node | None:
        found = self.changes.get(at, _UNCHANGED)
        return self._base_node(at) if found is _UNCHANGED else found  # type: ignore[return-value]

    def apply(self, changes: NodeChanges) -> None:
        self.changes.update(dict.fromkeys(changes.removed))
        self.changes.update(changes.written)

    def net(self) -> NodeChanges:
        """The changes as one NodeChanges for the base: emptied positions the base holds."""
        written = {at: n for at, n in self.changes.items() if n is not None}
        removed = frozenset(
            at for at, n in self.changes.items() if n is None and self.base.node(at) is not None
        )
        return NodeChanges(written, removed, 0)


class Fork:
    """A State to apply transactions to (`state`) over `base`, left untouched until merge().
    The base's pending leaf changes are entered into its tree first."""

    def __init__(self, base: State) -> None:
        base.flush()
        self.base = base
        self._nodes = _Nodes(base.tree.store)
        self.state = State(base.regulators, StateTree(self._nodes, base.tree.records))
        self._records: _Overlay[bytes, Record] = _Overlay(base.records)
        self._nonces: _Added[tuple[bytes, str]] = _Added(base.nonces)
        self._tx_ids: _Added[str] = _Added(base.tx_ids)
        self._boxes: _Overlay[bytes, bytes] = _Overlay(base.boxes)
        # The engine uses only the mapping and set operations the overlays have.
        self.state.records = cast(dict[bytes, Record], self._records)
        self.state.nonces = cast(set[tuple[bytes, str]], self._nonces)
        self.state.tx_ids = cast(set[str], self._tx_ids)
        self.state.boxes = cast(dict[bytes, bytes], self._boxes)
        self._packs = base.packs.overlay()  # the serial index: only ever added to
        self.state.packs = self._packs

    def merge(self) -> None:
        """Write the fork's changes into the base: records, guards, boxes, regulators and
        tree, its root and count then the fork's. Call once, after the database transaction
        committed."""
        self.state.flush()
        base = self.base
        for key, value in self._records.changes.items():
            if value is _GONE:
                base.records.pop(key, None)
            else:
                base.records[key] = cast(Record, value)
        base.nonces |= self._nonces.added
        base.tx_ids |= self._tx_ids.added
        base.boxes.update(cast(dict[bytes, bytes], self._boxes.changes))  # boxes are never removed
        self._packs.commit()
        base.set_regulators(self.state.regulators)  # a 0x06 "regulator" entry followed
        base.tree.store.apply(self._nodes.net())
        base.tree = StateTree(base.tree.store, self.state.tree.records)
