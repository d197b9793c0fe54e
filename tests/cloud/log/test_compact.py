"""The compact range: appending leaf by leaf gives the reference tree's perfect subtrees and
root at every size, resumes from stored hashes, and refuses hashes that cannot be one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.log.compact import CompactRange, CompactRangeError
from gateway import merkle
from gateway.rfc6962 import EMPTY_ROOT, leaf_hash


def leaves(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") for i in range(n)]


def test_every_size_matches_the_reference_tree() -> None:
    data = leaves(70)
    reference = merkle.MerkleTree(data)
    compact = CompactRange()
    assert compact.root() == EMPTY_ROOT
    for size in range(1, 71):
        compact.append_leaf_hash(leaf_hash(data[size - 1]))
        assert compact.size == size
        assert compact.hashes == tuple(h for _, _, h in reference.compact_range(size))
        assert compact.root() == reference.root(size), f"size {size}"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=8))
def test_resuming_from_stored_hashes_equals_appending_at_once(chunks: list[int]) -> None:
    total = sum(chunks)
    data = leaves(total)
    compact = CompactRange()
    done = 0
    for n in chunks:
        compact = CompactRange(compact.size, compact.hashes)  # as if loaded from a file
        compact.append(data[done : done + n])
        done += n
    assert compact.root() == merkle.root(data)


def test_copy_is_independent() -> None:
    a = CompactRange()
    a.append(leaves(3))
    b = a.copy()
    b.append(leaves(1))
    assert (a.size, b.size) == (3, 4)
    assert a != b and a == CompactRange(3, a.hashes)


@pytest.mark.parametrize(
    ("size", "hashes", "message"),
    [
        (3, [bytes(32)], "got 1, want 2"),
        (4, [bytes(32), bytes(32)], "got 2, want 1"),
        (1, [bytes(31)], "hashes[0]: got 31 bytes, want 32"),
        (-1, [], "size: got -1"),
    ],
)
def test_impossible_ranges_are_refused(size: int, hashes: list[bytes], message: str) -> None:
    with pytest.raises(CompactRangeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        CompactRange(size, hashes)


def test_a_leaf_hash_must_be_32_bytes() -> None:
    with pytest.raises(CompactRangeError, match="leaf hash: got 3 bytes"):
        CompactRange().append_leaf_hash(b"abc")
