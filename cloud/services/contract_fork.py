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
from cloud.contracts.statetree_store import (
    NodeChanges,
    NodeStore,
    Position,
    Stored,
    read,
)

K = TypeVar("K")
V = TypeVar("V")
_GONE = object()  # a key the overlay deleted


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


class _Level(dict[bytes, Stored | None]):
    """One depth of a NodeStore's changes: a prefix the fork has not written reads the base
    (`__missing__`, so a read is still one indexing); None is a position emptied."""

    __slots__ = ("base",)

    def __init__(self, base: Mapping[bytes, Stored | None]) -> None:
        super().__init__()
        self.base = base

    def __missing__(self, prefix: bytes) -> Stored | None:
        return self.base[prefix]


class _Nodes:
    """A NodeStore's changes kept apart from it, one _Level per depth."""

    def __init__(self, base: NodeStore) -> None:
        self.base = base
        self.levels = [_Level(level) for level in base.levels]

    def apply(self, changes: NodeChanges) -> None:
        levels = self.levels
        for at in changes.removed:
            levels[at[0]][at[1]] = None
        for at, kept in changes.kept.items():
            levels[at[0]][at[1]] = kept

    def net(self) -> NodeChanges:
        """The changes as one NodeChanges for the base: emptied positions the base holds."""
        written: dict[Position, Stored] = {}
        removed: set[Position] = set()
        for depth, level in enumerate(self.levels):
            for prefix, kept in dict.items(level):
                at = Position(depth, prefix)
                if kept is not None:
                    written[at] = kept
                elif read(self.base, at) is not None:
                    removed.add(at)
        return NodeChanges(written, frozenset(removed), 0)


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
