"""The state tree's nodes, where they sit, and the store that keeps them.

A node is identified by its position: its depth (0 = the root, up to 256) and the first
`depth` bits of every key below it, packed most significant bit first into ceil(depth / 8)
bytes with the unused low bits zero. (depth, prefix bytes) is what a database keys a node by.
A leaf sits at the shortest prefix no other key shares; an internal node has at least two
leaves below it. An update reports the positions it wrote and removed (NodeChanges), so a
store writes just those.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class NodeChanges:
    """What one update changed: nodes written (new or different) and positions emptied.

    A position appears in at most one of the two. `hashes` counts the leaf and node hashes
    the update computed (its cost; bench/statetree.py and the tests read it).
    """

    written: dict[Position, Node]
    removed: frozenset[Position]
    hashes: int


class NodeStore(Protocol):
    """Where the tree's nodes live: the in-memory MemoryNodeStore here, a database later."""

    def node(self, at: Position) -> Node | None:
        """Return the node at `at`, or None if that position is empty."""
        ...

    def apply(self, changes: NodeChanges) -> None:
        """Write changes.written and delete changes.removed, all at once."""
        ...


class MemoryNodeStore:
    """A NodeStore over a dict, for tests, the bench and a replay held in memory."""

    def __init__(self) -> None:
        self.nodes: dict[Position, Node] = {}
        # The dict's own get, as the instance's `node`: every level of every update reads a
        # node, and a C call costs a fraction of a Python method's (bench/statetree.py).
        self.node = self.nodes.get  # type: ignore[method-assign, assignment]

    def node(self, at: Position) -> Node | None:
        """Return the node at `at`, or None if that position is empty."""
        return self.nodes.get(at)

    def apply(self, changes: NodeChanges) -> None:
        """Write changes.written and delete changes.removed."""
        for at in changes.removed:
            del self.nodes[at]
        self.nodes.update(changes.written)
