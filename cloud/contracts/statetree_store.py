"""The state tree's nodes, where they sit, and the store that keeps them.

A node is identified by its position: its depth (0 = the root, up to 256) and the first
`depth` bits of every key below it, packed most significant bit first into ceil(depth / 8)
bytes with the unused low bits zero. (depth, prefix bytes) is what a database keys a node by.
A leaf sits at the shortest prefix no other key shares; an internal node has at least two
leaves below it. An update reports the positions it wrote and removed (NodeChanges), so a
store writes just those.

A store keeps its nodes in one dict per depth (`levels`), keyed by the prefix bytes, and an
internal node as one 96-byte bytes (left ‖ right ‖ its hash; a leaf as its Leaf). Every level
of an update or a proof reads one node, and at a million records each read misses the CPU's
caches: this layout follows ~3 objects per read where a dict of Position → Internal followed
six or seven (bench/RESULTS.md, "State tree"). The nodes, roots and proofs are the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from cloud.contracts.statetree_hash import KEY_BITS


class Position(NamedTuple):
    """Where a node sits: depth in bits and the key prefix of that many bits (see module)."""

    depth: int
    prefix: bytes


ROOT = Position(0, b"")


_new_tuple = tuple.__new__
_BYTES = tuple(bytes((i,)) for i in range(256))  # each byte value as a 1-byte bytes
_KEEP = tuple((0xFF << (8 - spare)) & 0xFF for spare in range(8))  # a byte's first bits


def position(key: bytes, depth: int) -> Position:
    """Return the position at `depth` on the path of `key`.

    Requires a 32-byte key and 0 <= depth <= 256; raises ValueError for a depth outside.
    Every level of every update makes one, so it is built as directly as CPython allows
    (tuple.__new__ skips the named tuple's own constructor; bytes from tables).
    """
    if not 0 <= depth <= KEY_BITS:
        raise ValueError(f"depth {depth}, want 0..{KEY_BITS}")
    size, spare = depth >> 3, depth & 7
    if spare:
        return _new_tuple(Position, (depth, key[:size] + _BYTES[key[size] & _KEEP[spare]]))
    return _new_tuple(Position, (depth, key[:size]))


@dataclass(frozen=True, slots=True)
class Leaf:
    """One record: its 32-byte key, its value bytes, SHA-256 of the value and the leaf hash.

    value_digest and hash are kept so a leaf that moves when a neighbour arrives or leaves
    is not hashed again. Leaves compare by hash, which commits to the key and the value.
    """

    key: bytes = field(compare=False)
    value: bytes = field(compare=False)
    value_digest: bytes = field(compare=False)
    hash: bytes


@dataclass(frozen=True, slots=True)
class Internal:
    """An internal node: its children's hashes (EMPTY for an empty side) and node_hash of them.

    The tree computes `hash` (and counts it) when it makes the node; a database stores it so
    a root or a proof never rehashes an unchanged subtree. Nodes compare by hash.
    """

    left: bytes = field(compare=False)
    right: bytes = field(compare=False)
    hash: bytes


Node = Leaf | Internal

# A node as a store keeps it: an internal node as left ‖ right ‖ hash (96 bytes), a leaf as
# its Leaf. Code on the hot path tells them apart by `.__class__ is bytes`.
Stored = bytes | Leaf

LEFT = slice(0, 32)
RIGHT = slice(32, 64)
HASH = slice(64, 96)


def stored(node: Node) -> Stored:
    """Return `node` as a store keeps it."""
    if node.__class__ is Internal:
        return node.left + node.right + node.hash  # type: ignore[union-attr]
    return node  # type: ignore[return-value]


def unstored(kept: Stored | None) -> Node | None:
    """Return the node a store keeps as `kept` (None stays None)."""
    if kept.__class__ is bytes:
        return Internal(kept[LEFT], kept[RIGHT], kept[HASH])  # type: ignore[index]
    return kept  # type: ignore[return-value]


def stored_hash(kept: Stored) -> bytes:
    """Return the hash of a node as a store keeps it."""
    return kept[HASH] if kept.__class__ is bytes else kept.hash  # type: ignore[index, union-attr]


@dataclass(frozen=True)
class NodeChanges:
    """What one update changed: nodes written (new or different; `kept`, as a store keeps
    them) and positions emptied.

    A position appears in at most one of the two. `hashes` counts the leaf and node hashes
    the update computed (its cost; bench/statetree.py and the tests read it).
    """

    kept: dict[Position, Stored]
    removed: frozenset[Position]
    hashes: int

    @property
    def written(self) -> dict[Position, Node]:
        """The nodes written, as Leaf and Internal objects (a new dict)."""
        return {at: unstored(kept) for at, kept in self.kept.items()}  # type: ignore[misc]


class NodeStore(Protocol):
    """Where the tree's nodes live: the in-memory MemoryNodeStore here, a database later.

    `levels[depth][prefix]` is the node at Position(depth, prefix) as the store keeps it
    (Stored); it raises KeyError, or gives None (an overlay's emptied position), if that
    position is empty. The tree reads nodes only this way, by indexing (a dict's own C code,
    no Python call per level).
    """

    @property
    def levels(self) -> Sequence[Mapping[bytes, Stored | None]]: ...

    def apply(self, changes: NodeChanges) -> None:
        """Write changes.written and delete changes.removed, all at once."""
        ...


def read(store: NodeStore, at: Position) -> Stored | None:
    """Return the node at `at` as `store` keeps it, or None if that position is empty."""
    try:
        return store.levels[at[0]][at[1]]
    except KeyError:
        return None


def node(store: NodeStore, at: Position) -> Node | None:
    """Return the node at `at` in `store`, or None if that position is empty."""
    return unstored(read(store, at))


class MemoryNodeStore:
    """A NodeStore over one dict per depth, for tests, the bench and a replay held in memory."""

    def __init__(self) -> None:
        self.levels: list[dict[bytes, Stored | None]] = [{} for _ in range(KEY_BITS + 1)]

    def node(self, at: Position) -> Node | None:
        """Return the node at `at`, or None if that position is empty."""
        return node(self, at)

    @property
    def nodes(self) -> dict[Position, Node]:
        """Every node, by position (a new dict: for tests and tools, not the hot path)."""
        return {
            Position(depth, prefix): unstored(kept)  # type: ignore[misc]
            for depth, level in enumerate(self.levels)
            for prefix, kept in level.items()
        }

    def apply(self, changes: NodeChanges) -> None:
        """Write changes.written and delete changes.removed."""
        levels = self.levels
        for at in changes.removed:
            del levels[at[0]][at[1]]
        for at, kept in changes.kept.items():
            levels[at[0]][at[1]] = kept
