"""Tests for gateway.merkle: roots, inclusion and consistency proofs, MerkleTree at every size.

Checked three ways: the RFC 6962 vectors of transparency-dev/merkle (../shared/vectors),
an independent reference written straight from RFC 6962 section 2.1 (recursive MTH, PATH,
PROOF/SUBPROOF; exhaustive for small trees, hypothesis for a few hundred leaves), and a
1,000,000-leaf tree whose proofs must cost O(log n) hashing. Verification itself (errors,
mutations) is tested in test_merkle_verify.py.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import merkle, rfc6962
from gateway.merkle import (
    HashSizeError,
    MerkleTree,
    ProofError,
    TreeRangeError,
    consistency_proof,
    inclusion_proof,
    root,
    verify_consistency,
    verify_inclusion,
    verify_leaf_hash_inclusion,
)
from gateway.merkle_verify import consistency_proof_size, inclusion_proof_size

# --- Reference: RFC 6962 section 2.1, word for word, with hashlib only --------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1."""
    n = len(d)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + d[0])
    k = _split(n)
    return _sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1 (0 <= m < n)."""
    n = len(d)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 6962 section 2.1.2 (0 < m < n)."""

    def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [ref_mth(d)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, d[:k], b), ref_mth(d[k:])]
        return [*subproof(m - k, d[k:], False), ref_mth(d[:k])]

    return subproof(m, d, True)


def ref_consistency(m: int, d: Sequence[bytes]) -> list[bytes]:
    """Our convention around PROOF: empty for m == 0 and m == n (nothing to prove)."""
    return [] if m in (0, len(d)) else ref_proof(m, d)


# Distinct leaves of varying lengths, the empty leaf first.
N_EXHAUSTIVE = 130  # Crosses 128: trees of up to 9 levels, all (index, size), (m, n) pairs.
LEAVES = [b""] + [bytes(range(i % 9)) + i.to_bytes(2, "big") for i in range(1, 600)]


@pytest.fixture(scope="module")
def big_tree() -> MerkleTree:
    return MerkleTree(LEAVES)


# --- Shared vectors: transparency-dev/merkle, as transcribed in ../shared/vectors ----------


@pytest.fixture(scope="module")
def vectors(shared_vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_vectors / "rfc6962-vectors.json").read_text())
    return data


@pytest.fixture(scope="module")
def vector_leaves(vectors: dict[str, Any]) -> list[bytes]:
    entries = vectors["leaves"]
    assert [e["index"] for e in entries] == list(range(8))
    return [bytes.fromhex(e["hex"]) for e in entries]


def test_vector_roots(vectors: dict[str, Any], vector_leaves: list[bytes]) -> None:
    tree = MerkleTree(vector_leaves)
    assert [e["tree_size"] for e in vectors["roots"]] == list(range(9))
    for entry in vectors["roots"]:
        size, want = entry["tree_size"], bytes.fromhex(entry["hex"])
        assert root(vector_leaves[:size]) == want, entry["source"]
        assert tree.root(size) == want, entry["source"]
        assert MerkleTree(vector_leaves[:size]).root() == want, entry["source"]
        assert ref_mth(vector_leaves[:size]) == want, entry["source"]


def test_vector_node_hashes(vectors: dict[str, Any], vector_leaves: list[bytes]) -> None:
    tree = MerkleTree(vector_leaves)
    assert len(vectors["node_hashes"]) == 15  # All perfect subtrees of 8 leaves: 8 + 4 + 2 + 1.
    for entry in vectors["node_hashes"]:
        level, index = entry["level"], entry["index"]
        assert tree.node(level, index).hex() == entry["hex"], entry["source"]
        covered = vector_leaves[index << level : (index + 1) << level]
        assert ref_mth(covered).hex() == entry["hex"], entry["source"]


def test_vector_compact_ranges(vectors: dict[str, Any], vector_leaves: list[bytes]) -> None:
    # The compact range of [0, n) is exactly the stored perfect subtrees that n's bits name.
    tree = MerkleTree(vector_leaves)
    assert [e["tree_size"] for e in vectors["compact_ranges"]] == list(range(9))
    for entry in vectors["compact_ranges"]:
        want = [(n["level"], n["index"], bytes.fromhex(n["hex"])) for n in entry["nodes"]]
        assert tree.compact_range(entry["tree_size"]) == want, entry["source"]
        for level, index, value in want:
            assert tree.node(level, index) == value, entry["source"]


def test_vector_inclusion_proofs(vectors: dict[str, Any], vector_leaves: list[bytes]) -> None:
    tree = MerkleTree(vector_leaves)
    checked = 0
    for entry in vectors["inclusion_proofs"]:
        if entry["leaf_index"] is None:
            # Source entry {0, 0, nil}: upstream TestVerifyInclusion skips it ("i = 0 is an
            # invalid path", verify_test.go:319); it is no proof. Size 0 is tested for errors.
            assert entry["tree_size"] == 0
            continue
        index, size = entry["leaf_index"], entry["tree_size"]
        want = [bytes.fromhex(h) for h in entry["proof"]]
        expected_root = bytes.fromhex(entry["root"])
        leaf_hash = bytes.fromhex(entry["leaf_hash"])
        assert rfc6962.leaf_hash(vector_leaves[index]) == leaf_hash, entry["source"]
        assert inclusion_proof(vector_leaves[:size], index) == want, entry["source"]
        assert tree.inclusion_proof(index, size) == want, entry["source"]
        assert ref_path(index, vector_leaves[:size]) == want, entry["source"]
        assert inclusion_proof_size(index, size) == len(want)
        verify_inclusion(vector_leaves[index], index, size, want, expected_root)
        verify_leaf_hash_inclusion(leaf_hash, index, size, want, expected_root)
        checked += 1
    assert checked == 5


def test_vector_consistency_proofs(vectors: dict[str, Any], vector_leaves: list[bytes]) -> None:
    tree = MerkleTree(vector_leaves)
    assert len(vectors["consistency_proofs"]) == 5
    for entry in vectors["consistency_proofs"]:
        old, new = entry["size1"], entry["size2"]
        want = [bytes.fromhex(h) for h in entry["proof"]]
        old_root, new_root = bytes.fromhex(entry["root1"]), bytes.fromhex(entry["root2"])
        assert consistency_proof(vector_leaves[:new], old) == want, entry["source"]
        assert tree.consistency_proof(old, new) == want, entry["source"]
        assert ref_consistency(old, vector_leaves[:new]) == want, entry["source"]
        assert consistency_proof_size(old, new) == len(want)
        assert (tree.root(old), tree.root(new)) == (old_root, new_root), entry["roots_source"]
        verify_consistency(old, new, old_root, new_root, want)


# --- The whole API against the reference, every pair in small trees -----------------------


def test_roots_of_every_size_match_reference(big_tree: MerkleTree) -> None:
    # The level-by-level carry of an unpaired node (merkle.root), the fold of stored perfect
    # subtrees (MerkleTree.root) and RFC 6962's split at the largest power of two agree.
    for size in range(300):
        want = ref_mth(LEAVES[:size])
        assert root(LEAVES[:size]) == want, size
        assert big_tree.root(size) == want, size
        assert MerkleTree(LEAVES[:size]).root() == want, size


def test_every_inclusion_proof_matches_reference(big_tree: MerkleTree) -> None:
    for size in range(1, N_EXHAUSTIVE + 1):
        small = MerkleTree(LEAVES[:size])
        tree_root = big_tree.root(size)
        for index in range(size):
            want = ref_path(index, LEAVES[:size])
            assert big_tree.inclusion_proof(index, size) == want, (index, size)
            assert small.inclusion_proof(index) == want, (index, size)
            assert inclusion_proof_size(index, size) == len(want)
            verify_inclusion(LEAVES[index], index, size, want, tree_root)


def test_every_consistency_proof_matches_reference(big_tree: MerkleTree) -> None:
    for new in range(N_EXHAUSTIVE + 1):
        small = MerkleTree(LEAVES[:new])
        for old in range(new + 1):
            want = ref_consistency(old, LEAVES[:new])
            assert big_tree.consistency_proof(old, new) == want, (old, new)
            assert small.consistency_proof(old) == want, (old, new)
            assert consistency_proof_size(old, new) == len(want)
            verify_consistency(old, new, big_tree.root(old), big_tree.root(new), want)


def test_module_functions_match_tree(big_tree: MerkleTree) -> None:
    for size in (1, 2, 3, 7, 8, 9, 33):
        for index in range(size):
            assert inclusion_proof(LEAVES[:size], index) == big_tree.inclusion_proof(index, size)
        for old in range(size + 1):
            assert consistency_proof(LEAVES[:size], old) == big_tree.consistency_proof(old, size)


def test_module_functions_accept_iterators() -> None:
    leaves = LEAVES[:11]
    assert root(iter(leaves)) == ref_mth(leaves)
    assert inclusion_proof(iter(leaves), 4) == ref_path(4, leaves)
    assert consistency_proof(iter(leaves), 6) == ref_proof(6, leaves)


# --- Hypothesis: random trees and pairs up to a few hundred leaves -------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=300))
def test_root_of_arbitrary_leaves_matches_reference(leaves: list[bytes]) -> None:
    # Duplicate and empty leaves included: the tree does not care.
    want = ref_mth(leaves)
    assert root(leaves) == want
    tree = MerkleTree(leaves)
    assert tree.root() == want
    assert MerkleTree.from_leaf_hashes(rfc6962.leaf_hash(x) for x in leaves).root() == want


@st.composite
def index_and_size(draw: Callable[..., Any]) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=len(LEAVES)))
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@st.composite
def old_and_new_size(draw: Callable[..., Any]) -> tuple[int, int]:
    new = draw(st.integers(min_value=0, max_value=len(LEAVES)))
    return draw(st.integers(min_value=0, max_value=new)), new


@settings(max_examples=400, deadline=None)
@given(index_and_size())
def test_inclusion_proof_matches_reference(big_tree: MerkleTree, pair: tuple[int, int]) -> None:
    index, size = pair
    want = ref_path(index, LEAVES[:size])
    assert big_tree.inclusion_proof(index, size) == want
    verify_inclusion(LEAVES[index], index, size, want, ref_mth(LEAVES[:size]))


@settings(max_examples=400, deadline=None)
@given(old_and_new_size())
def test_consistency_proof_matches_reference(big_tree: MerkleTree, pair: tuple[int, int]) -> None:
    old, new = pair
    want = ref_consistency(old, LEAVES[:new])
    assert big_tree.consistency_proof(old, new) == want
    assert MerkleTree(LEAVES[:new]).consistency_proof(old) == want
    verify_consistency(old, new, ref_mth(LEAVES[:old]), ref_mth(LEAVES[:new]), want)


# --- MerkleTree API and preconditions ------------------------------------------------------


def test_tree_basics() -> None:
    tree = MerkleTree(LEAVES[:5])
    assert tree.size == len(tree) == 5
    assert tree.leaf_hash(4) == rfc6962.leaf_hash(LEAVES[4])
    assert tree.node(2, 0) == ref_mth(LEAVES[:4])
    assert repr(tree) == f"MerkleTree(size=5, root={ref_mth(LEAVES[:5]).hex()})"
    empty = MerkleTree()
    assert (empty.size, empty.root(), empty.compact_range()) == (0, rfc6962.EMPTY_ROOT, [])
    assert empty.consistency_proof(0) == []


def test_from_leaf_hashes_equals_building_from_leaves() -> None:
    hashes = [rfc6962.leaf_hash(x) for x in LEAVES[:37]]
    tree = MerkleTree.from_leaf_hashes(hashes)
    assert tree.root() == MerkleTree(LEAVES[:37]).root()
    assert tree.inclusion_proof(20) == ref_path(20, LEAVES[:37])
    assert tree.consistency_proof(13, 30) == ref_proof(13, LEAVES[:30])


def test_from_leaf_hashes_rejects_other_lengths() -> None:
    hashes = [rfc6962.leaf_hash(x) for x in LEAVES[:4]]
    hashes[2] = hashes[2][:31]
    with pytest.raises(HashSizeError, match=r"leaf_hashes\[2\]: got 31 bytes, want 32"):
        MerkleTree.from_leaf_hashes(hashes)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.inclusion_proof(8), "index 8 out of range for size 8"),
        (lambda t: t.inclusion_proof(-1), "index -1 out of range for size 8"),
        (lambda t: t.inclusion_proof(3, 3), "index 3 out of range for size 3"),
        (lambda t: t.inclusion_proof(0, 0), "size 0 tree has no inclusion proofs"),
        (lambda t: t.inclusion_proof(0, 9), "size 9 out of range for a tree of size 8"),
        (lambda t: t.root(9), "size 9 out of range for a tree of size 8"),
        (lambda t: t.root(-1), "size -1 out of range for a tree of size 8"),
        (lambda t: t.consistency_proof(5, 3), "old_size 5 > new_size 3"),
        (lambda t: t.consistency_proof(-1), "old_size -1 is negative"),
        (lambda t: t.consistency_proof(9), "old_size 9 > new_size 8"),
        (lambda t: t.consistency_proof(1, 9), "size 9 out of range for a tree of size 8"),
        (lambda t: t.leaf_hash(8), "index 8 out of range for size 8"),
        (lambda t: t.node(3, 1), r"node \(level 3, index 1\) out of range for size 8"),
        (lambda t: t.node(0, -1), r"node \(level 0, index -1\) out of range for size 8"),
        (lambda t: t.node(-1, 0), r"node \(level -1, index 0\) out of range for size 8"),
        (lambda t: t.compact_range(9), "size 9 out of range for a tree of size 8"),
    ],
)
def test_tree_preconditions(call: Callable[[MerkleTree], object], message: str) -> None:
    # Negative indices must never reach a list and wrap around to the end.
    with pytest.raises(TreeRangeError, match=f"^{message}$"):
        call(MerkleTree(LEAVES[:8]))


def test_module_function_preconditions() -> None:
    with pytest.raises(TreeRangeError, match=r"^size 0 tree has no inclusion proofs$"):
        inclusion_proof([], 0)
    with pytest.raises(TreeRangeError, match=r"^index 9 out of range for size 8$"):
        inclusion_proof(LEAVES[:8], 9)
    with pytest.raises(TreeRangeError, match=r"^old_size 5 > new_size 3$"):
        consistency_proof(LEAVES[:3], 5)
    assert issubclass(TreeRangeError, ProofError)
    assert issubclass(ProofError, ValueError)


# --- Scale: a million leaves, proofs from stored nodes ------------------------------------

MILLION = 1_000_000


@pytest.fixture(scope="module")
def million() -> tuple[list[bytes], MerkleTree]:
    leaves = [i.to_bytes(4, "big") for i in range(MILLION)]  # Cheap and distinct.
    return leaves, MerkleTree(leaves)


class HashCounter:
    """Counts SHA-256 calls made through the gateway Merkle modules."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes = b"") -> Any:
        self.calls += 1
        return hashlib.sha256(data)


@pytest.fixture
def hash_counter(monkeypatch: pytest.MonkeyPatch) -> HashCounter:
    counter = HashCounter()
    # Every SHA-256 in tree building and proving goes through one of these two names.
    monkeypatch.setattr(merkle, "sha256", counter)
    monkeypatch.setattr(rfc6962, "sha256", counter)
    # The counter sees building (2n - 1 calls) and the fold of a non-power-of-two root.
    MerkleTree(LEAVES[:8])
    assert counter.calls == 15
    eight = MerkleTree.from_leaf_hashes([b"\x00" * 32] * 8)
    assert counter.calls == 15 + 7  # Node hashes only: 4 + 2 + 1.
    eight.root(7)
    assert counter.calls == 15 + 7 + 2  # The fold of the perfect subtrees of 4, 2 and 1 leaves.
    counter.calls = 0
    return counter


def test_million_leaf_tree_proves_without_rebuilding(
    million: tuple[list[bytes], MerkleTree], hash_counter: HashCounter
) -> None:
    leaves, tree = million
    limit = MILLION.bit_length()  # 20: at most one hash per level, whatever the size.
    rng = random.Random(6962)
    sizes = [MILLION, MILLION - 1, 1 << 19, (1 << 19) + 1, 999_983, 3, 1]
    sizes += [rng.randrange(1, MILLION + 1) for _ in range(100)]
    for size in sizes:
        hash_counter.calls = 0
        size_root = tree.root(size)
        assert hash_counter.calls <= limit, size
        for index in (0, size - 1, rng.randrange(size)):
            hash_counter.calls = 0
            proof = tree.inclusion_proof(index, size)
            assert hash_counter.calls <= limit, (index, size)
            verify_inclusion(leaves[index], index, size, proof, size_root)
        old = rng.randrange(0, size + 1)
        hash_counter.calls = 0
        proof = tree.consistency_proof(old, size)
        old_root = tree.root(old)
        assert hash_counter.calls <= 2 * limit, (old, size)
        verify_consistency(old, size, old_root, size_root, proof)


def test_million_leaf_roots_match_the_carrying_builder(
    million: tuple[list[bytes], MerkleTree],
) -> None:
    # Independent of the stored levels: merkle.root pairs level by level from scratch.
    leaves, tree = million
    for size in (MILLION, (1 << 19) + 3):
        assert tree.root(size) == root(leaves[:size])
