"""Node positions and the in-memory node store (cloud/contracts/statetree_store.py)."""

from __future__ import annotations

import pytest

from cloud.contracts.statetree import StateTree
from cloud.contracts.statetree_store import (
    ROOT,
    Internal,
    Leaf,
    MemoryNodeStore,
    NodeChanges,
    Position,
    position,
    stored,
)

KEY = bytes([0b1011_0110, 0b1100_0011]) + bytes(29) + b"\x01"


@pytest.mark.parametrize(
    ("depth", "prefix"),
    [
        (0, b""),
        (1, b"\x80"),
        (3, b"\xa0"),
        (8, b"\xb6"),
        (9, b"\xb6\x80"),
        (10, b"\xb6\xc0"),
        (16, b"\xb6\xc3"),
        (256, KEY),
    ],
)
def test_positions_pack_the_prefix_most_significant_bit_first(depth: int, prefix: bytes) -> None:
    assert position(KEY, depth) == Position(depth, prefix)


def test_position_refuses_depths_outside_the_key() -> None:
    with pytest.raises(ValueError, match=r"depth 257, want 0..256"):
        position(KEY, 257)
    with pytest.raises(ValueError, match="depth -1"):
        position(KEY, -1)
    assert position(KEY, 0) == ROOT


def test_memory_store_applies_writes_and_removals() -> None:
    store = MemoryNodeStore()
    leaf = Leaf(KEY, b"v", bytes(32), b"\x01" * 32)
    store.apply(NodeChanges({ROOT: stored(leaf)}, frozenset(), 1))
    assert store.node(ROOT) == leaf
    node = Internal(b"\x01" * 32, bytes(32), b"\x02" * 32)
    at = position(KEY, 1)
    store.apply(NodeChanges({ROOT: stored(node), at: stored(leaf)}, frozenset(), 1))
    assert store.nodes == {ROOT: node, at: leaf}
    store.apply(NodeChanges({ROOT: stored(leaf)}, frozenset({at}), 0))
    assert store.nodes == {ROOT: leaf}


def test_a_tree_reads_what_its_store_holds() -> None:
    first = StateTree()
    first.put(KEY, b"v")
    assert StateTree(first.store, records=1).get(KEY) == b"v"
    with pytest.raises(ValueError, match="records -1, want >= 0"):
        StateTree(records=-1)


def test_a_store_missing_a_node_is_reported_not_guessed() -> None:
    tree = StateTree()
    other = bytes([0b0100_0000]) + bytes(31)
    tree.update({KEY: b"a", other: b"b"})
    assert isinstance(tree.store, MemoryNodeStore)
    del tree.store.levels[1][position(KEY, 1).prefix]
    root = tree.root
    with pytest.raises(LookupError, match="store has no node at depth 1"):
        tree.put(KEY, b"changed")
    with pytest.raises(LookupError, match="store has no node at depth 1"):
        tree.get(KEY)
    assert tree.root == root
