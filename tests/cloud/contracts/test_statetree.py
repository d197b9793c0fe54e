"""The state tree (cloud/contracts/statetree.py) against a naive reference, with hypothesis.

The reference below is the recursive definition of docs/protocol.md, "State tree", written
again here on purpose: a root over the whole set, recomputed from scratch after every step.
"""

from __future__ import annotations

import random
from statistics import mean

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.contracts.statetree import StateTree
from cloud.contracts.statetree_hash import EMPTY, bit, leaf_hash, node_hash, value_hash
from cloud.contracts.statetree_proof import ProofError, proof_from_bytes, verify_proof
from cloud.contracts.statetree_store import ROOT, Internal, MemoryNodeStore, Position


def reference_root(records: dict[bytes, bytes], depth: int = 0) -> bytes:
    """Root of a set of records: empty, one leaf, or a node over the two halves."""
    if not records:
        return EMPTY
    if len(records) == 1:
        ((key, value),) = records.items()
        return leaf_hash(key, value_hash(value))
    left = {k: v for k, v in records.items() if not bit(k, depth)}
    right = {k: v for k, v in records.items() if bit(k, depth)}
    return node_hash(reference_root(left, depth + 1), reference_root(right, depth + 1))


def child(at: Position, side: int) -> Position:
    bits = int.from_bytes(at.prefix, "big") << (8 * ((at.depth + 8) // 8 - len(at.prefix)))
    size = (at.depth + 8) // 8
    bits |= side << (8 * size - at.depth - 1)
    return Position(at.depth + 1, bits.to_bytes(size, "big"))


def assert_store_is_exactly_the_tree(tree: StateTree) -> None:
    """Every stored node is reachable from the root at the position its parent implies, and
    every non-empty child is stored: nothing stale, nothing missing."""
    assert isinstance(tree.store, MemoryNodeStore)
    nodes = tree.store.nodes
    reached, stack = 0, ([ROOT] if nodes else [])
    while stack:
        at = stack.pop()
        node = nodes[at]
        reached += 1
        if isinstance(node, Internal):
            assert (node.left, node.right) != (EMPTY, EMPTY)
            for side, digest in ((0, node.left), (1, node.right)):
                if digest != EMPTY:
                    assert nodes[child(at, side)].hash == digest
                    stack.append(child(at, side))
    assert reached == len(nodes)


# Keys drawn from few distinct prefixes so that long shared prefixes, chains of one-sided
# nodes and leaves moving up and down all happen often.
keys = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from([b"", b"\x00", b"\xab\xc0", b"\xff" * 31]),
    st.binary(min_size=32, max_size=32),
).map(lambda k: k[:32])
values = st.binary(max_size=8)
steps = st.lists(st.tuples(keys, st.none() | values), max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_every_step_matches_the_reference(ops: list[tuple[bytes, bytes | None]]) -> None:
    tree, records = StateTree(), {}
    for key, value in ops:
        if value is None:
            tree.delete(key)
            records.pop(key, None)
        else:
            tree.put(key, value)
            records[key] = value
        assert tree.root == reference_root(records)
        assert tree.records == len(records)
    assert_store_is_exactly_the_tree(tree)
    for key, value in records.items():
        assert tree.get(key) == value


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, values, max_size=30), st.randoms(use_true_random=False))
def test_root_depends_only_on_the_set(records: dict[bytes, bytes], rnd: random.Random) -> None:
    one_by_one = StateTree()
    order = list(records.items())
    rnd.shuffle(order)
    for key, value in order:
        one_by_one.put(key, value)
    batch = StateTree()
    batch.update(records)
    assert one_by_one.root == batch.root == reference_root(records)
    assert isinstance(one_by_one.store, MemoryNodeStore)
    assert isinstance(batch.store, MemoryNodeStore)
    assert one_by_one.store.nodes == batch.store.nodes  # the same nodes at the same positions


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(keys, values, max_size=30),
    st.dictionaries(keys, st.none() | values, max_size=20),
)
def test_batch_update_reports_exactly_what_changed(
    before: dict[bytes, bytes], changes: dict[bytes, bytes | None]
) -> None:
    tree = StateTree()
    tree.update(before)
    assert isinstance(tree.store, MemoryNodeStore)
    old = dict(tree.store.nodes)
    applied = tree.update(changes)
    after = {**before, **changes}
    after = {k: v for k, v in after.items() if v is not None}
    assert tree.root == reference_root(after)
    assert tree.records == len(after)
    new = tree.store.nodes
    # What a database would write and delete, and nothing else.
    assert applied.written == {at: n for at, n in new.items() if old.get(at) != n}
    assert applied.removed == old.keys() - new.keys()
    assert_store_is_exactly_the_tree(tree)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, values, max_size=30), st.lists(keys, max_size=5))
def test_every_proof_verifies(records: dict[bytes, bytes], absent: list[bytes]) -> None:
    tree = StateTree()
    tree.update(records)
    for key, value in records.items():
        verify_proof(tree.root, key, value, tree.prove(key))
    for key in absent:
        if key not in records:
            verify_proof(tree.root, key, None, tree.prove(key))


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(keys, values, min_size=1, max_size=30),
    st.data(),
)
def test_tampered_proofs_fail(records: dict[bytes, bytes], data: st.DataObject) -> None:
    tree = StateTree()
    tree.update(records)
    key = data.draw(st.sampled_from(sorted(records)))
    value = records[key]
    proof = tree.prove(key)
    raw = bytearray(proof.to_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(ProofError):
        verify_proof(tree.root, key, value, proof_from_bytes(bytes(raw)))
    # Right proof, wrong claims.
    with pytest.raises(ProofError):
        verify_proof(tree.root, key, value + b"!", proof)
    with pytest.raises(ProofError):
        verify_proof(tree.root, key, None, proof)
    wrong_root = bytes([tree.root[0] ^ 1]) + tree.root[1:]
    with pytest.raises(ProofError):
        verify_proof(wrong_root, key, value, proof)


def test_empty_and_single_record_trees() -> None:
    tree = StateTree()
    key = bytes(range(32))
    assert tree.root == EMPTY
    assert tree.get(key) is None
    verify_proof(EMPTY, key, None, tree.prove(key))
    changes = tree.put(key, b"v")
    assert tree.root == leaf_hash(key, value_hash(b"v"))
    assert list(changes.written) == [ROOT] and not changes.removed and changes.hashes == 1
    tree.put(key, b"v")  # the same value again: nothing to write
    assert tree.put(key, b"v").written == {}
    changes = tree.delete(key)
    assert tree.root == EMPTY and changes.removed == {ROOT} and tree.records == 0
    assert tree.delete(key).removed == frozenset()  # deleting an absent key: a no-op


def test_keys_that_share_255_bits() -> None:
    a, b = bytes(31) + b"\x00", bytes(31) + b"\x01"
    tree = StateTree()
    tree.put(a, b"a")
    changes = tree.put(b, b"b")
    assert changes.hashes == 1 + 256  # b's leaf, then a node at every depth 255..0
    assert tree.root == reference_root({a: b"a", b: b"b"})
    assert tree.prove(a).depth == 256
    verify_proof(tree.root, a, b"a", tree.prove(a))
    tree.delete(b)
    assert tree.root == leaf_hash(a, value_hash(b"a"))
    assert_store_is_exactly_the_tree(tree)


def test_refuses_malformed_keys_and_values() -> None:
    tree = StateTree()
    with pytest.raises(ValueError, match="key is 31 bytes, want 32"):
        tree.put(bytes(31), b"v")
    with pytest.raises(ValueError, match="key is str, want 32 bytes"):
        tree.get("k" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is str, want bytes"):
        tree.update({bytes(32): "v"})  # type: ignore[dict-item]
    assert tree.root == EMPTY and tree.records == 0


def test_an_existing_store_is_reopened() -> None:
    rnd = random.Random(7)
    first = StateTree()
    first.update({rnd.randbytes(32): b"x" for _ in range(100)})
    again = StateTree(first.store, records=first.records)
    assert again.root == first.root
    key = rnd.randbytes(32)
    again.put(key, b"y")
    assert again.get(key) == b"y" and again.records == 101


def mean_hashes_per_update(size: int, samples: int, rnd: random.Random) -> float:
    tree = StateTree()
    tree.update({rnd.randbytes(32): rnd.randbytes(8) for _ in range(size)})
    return mean(tree.put(rnd.randbytes(32), b"new").hashes for _ in range(samples))


def test_an_update_costs_log_n_hashes_not_256() -> None:
    rnd = random.Random(11)
    small = mean_hashes_per_update(1_000, 400, rnd)
    large = mean_hashes_per_update(64_000, 400, rnd)
    # About log2(n) + 3 (a leaf, a path of log2 n nodes, a chain where neighbours share bits).
    assert 10 < small < 16
    assert 16 < large < 22
    # 64 times the records, log2 64 = 6 more hashes, give or take the chains.
    assert 4 < large - small < 8
    assert large / small < 1.6
