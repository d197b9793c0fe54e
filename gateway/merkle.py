"""RFC 6962 / RFC 9162 Merkle trees: roots, inclusion and consistency proofs, batches and log.

Hash rules come from `gateway.rfc6962`; verification (and the `ProofError` family) from
`gateway.merkle_verify`, re-exported here so that `gateway.merkle.verify_inclusion` etc. work.

Two ways in:

- module functions over raw leaf data: `root`, `inclusion_proof`, `consistency_proof`,
  `verify_inclusion`, `verify_consistency`;
- `MerkleTree`, built once in O(n) hashing, which keeps every perfect subtree hash so that
  the root, inclusion proofs and consistency proofs of the tree *and of every earlier size*
  m <= n come from stored nodes with O(log n) hashing, never a rebuild.

Layout: `levels[h][i]` is the hash of the perfect subtree of 2**h leaves [i * 2**h, (i+1) * 2**h),
for every such subtree inside [0, n) (the node IDs of transparency-dev/merkle `compact`).
Level h holds n >> h hashes: 2n - popcount(n) in all. A tree of size m <= n is the right fold
of its compact range, the perfect subtrees that m's set bits name (RFC 9162 section 2.1.1
splits at the largest power of two below the size, which is exactly the highest set bit).
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256

from gateway.merkle_verify import (
    HashSizeError,
    ProofError,
    ProofSizeError,
    RootMismatchError,
    TreeRangeError,
    check_index,
    check_sizes,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
    verify_leaf_hash_inclusion,
)
from gateway.rfc6962 import EMPTY_ROOT, HASH_SIZE, LEAF_PREFIX_BYTES, NODE_PREFIX_BYTES, node_hash

__all__ = [
    "HashSizeError",
    "MerkleTree",
    "ProofError",
    "ProofSizeError",
    "RootMismatchError",
    "TreeRangeError",
    "consistency_proof",
    "hash_leaves",
    "inclusion_proof",
    "root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
    "verify_leaf_hash_inclusion",
]


def hash_leaves(leaves: Iterable[bytes]) -> list[bytes]:
    """Return SHA-256(0x00 || leaf) for every leaf input, in order (RFC 6962 section 2.1).

    Fast path of `rfc6962.leaf_hash` for whole batches: one list comprehension with the hash
    function and prefix bound to locals saves a Python call and two global lookups per leaf.
    """
    sha = sha256
    prefix = LEAF_PREFIX_BYTES
    return [sha(prefix + leaf).digest() for leaf in leaves]


def _hash_pairs(level: list[bytes]) -> list[bytes]:
    """Return SHA-256(0x01 || left || right) for each pair (level[2i], level[2i+1]).

    An unpaired last hash is left out. Fast path of `rfc6962.node_hash` for a whole level:
    zip over two strided slices (two list copies of pointers, no per-pair indexing) and one
    comprehension with locals; measured at about the rate of hashing pre-built 65-byte inputs.
    """
    sha = sha256
    prefix = NODE_PREFIX_BYTES
    return [
        sha(prefix + left + right).digest()
        for left, right in zip(level[0::2], level[1::2], strict=False)
    ]


def _root_of_leaf_hashes(level: list[bytes]) -> bytes:
    """Return MTH over `level` (leaf hashes), keeping only one level in memory at a time.

    Pairs level by level and carries an unpaired last node up unchanged. That is RFC 6962's
    recursive MTH: at every level the list holds the perfect subtrees of the leaves so far,
    then (if the count was odd somewhere below) one node equal to MTH of the remaining tail;
    the RFC splits D[n] at the largest power of two k < n, i.e. the left part is exactly one
    of those perfect subtrees and the right part is the carried tail, hashed last.
    """
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        parent = _hash_pairs(level)
        if len(level) & 1:
            parent.append(level[-1])
        level = parent
    return level[0]


def root(leaves: Iterable[bytes]) -> bytes:
    """Return the RFC 6962 Merkle tree hash of the raw leaf inputs (EMPTY_ROOT for none).

    O(n) hashing (2n - 1 SHA-256 calls for n > 0), no recursion, and no stored tree.
    """
    return _root_of_leaf_hashes(hash_leaves(leaves))


def inclusion_proof(leaves: Iterable[bytes], index: int) -> list[bytes]:
    """Return the RFC 9162 inclusion proof (PATH) of leaf `index` among the raw `leaves`.

    Requires 0 <= index < len(leaves); raises TreeRangeError otherwise. Builds a MerkleTree:
    keep one to prove many leaves.
    """
    return MerkleTree(leaves).inclusion_proof(index)


def consistency_proof(leaves: Iterable[bytes], old_size: int) -> list[bytes]:
    """Return the RFC 9162 consistency proof from the first `old_size` of `leaves` to all of them.

    Requires 0 <= old_size <= len(leaves); raises TreeRangeError otherwise. The proof is empty
    for old_size 0 and for old_size == len(leaves).
    """
    return MerkleTree(leaves).consistency_proof(old_size)


class StoredTree:
    """RFC 6962 proofs from stored perfect-subtree hashes, for the tree and every earlier size.

    A subclass keeps the hash of every complete subtree (level h, index i: leaves
    [i * 2**h, (i + 1) * 2**h)) and provides `size` and `_stored(level, index)`; this class
    derives roots, inclusion and consistency proofs from them, hashing only the incomplete
    right edge of a tree: at most about log2(n) SHA-256 calls and node reads each.
    MerkleTree keeps the nodes in memory; the cloud's log keeps them in its database.
    """

    __slots__ = ()

    @property
    def size(self) -> int:
        """Number of leaves."""
        raise NotImplementedError

    def _stored(self, level: int, index: int) -> bytes:
        """Return the stored hash of complete subtree (level, index); the caller checks range."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.size

    def _check_size(self, size: int | None) -> int:
        """Return `size` (the tree's size for None). Raise TreeRangeError unless 0 <= size <= n."""
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise TreeRangeError(f"size {size} out of range for a tree of size {self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Return the root of the first `size` leaves (default: all), EMPTY_ROOT for size 0.

        Requires 0 <= size <= self.size; raises TreeRangeError otherwise.
        """
        size = self._check_size(size)
        return self._fold(0, size) if size else EMPTY_ROOT

    def leaf_hash(self, index: int) -> bytes:
        """Return the hash of leaf `index`. Requires 0 <= index < size, else TreeRangeError."""
        check_index(index, self.size)
        return self._stored(0, index)

    def node(self, level: int, index: int) -> bytes:
        """Return the perfect subtree hash of leaves [index * 2**level, (index + 1) * 2**level).

        Requires level >= 0, index >= 0 and that range inside [0, size); raises TreeRangeError.
        """
        if level < 0 or index < 0 or (index + 1) << level > self.size:
            raise TreeRangeError(
                f"node (level {level}, index {index}) out of range for size {self.size}"
            )
        return self._stored(level, index)

    def compact_range(self, size: int | None = None) -> list[tuple[int, int, bytes]]:
        """List the perfect subtrees covering leaves [0, size), left to right: (level, index, hash).

        One per set bit of `size`, largest first (transparency-dev/merkle `compact.Range`).
        Requires 0 <= size <= self.size; raises TreeRangeError otherwise.
        """
        size = self._check_size(size)
        return self._range_nodes(0, size)

    def _range_nodes(self, begin: int, end: int) -> list[tuple[int, int, bytes]]:
        """Perfect subtrees covering [begin, end), left to right.

        Requires begin to be a multiple of the largest power of two <= end - begin (true for
        begin 0 and for the right siblings on an inclusion path); then the set bits of the
        length, highest first, name aligned subtrees.
        """
        nodes = []
        count = end - begin
        for level in range(count.bit_length() - 1, -1, -1):
            if (count >> level) & 1:
                index = begin >> level
                nodes.append((level, index, self._stored(level, index)))
                begin += 1 << level
        return nodes

    def _fold(self, begin: int, end: int) -> bytes:
        """Return MTH(D[begin:end]) from stored nodes. Requires end > begin, as `_range_nodes` does.

        RFC 9162 section 2.1.1: MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])) with k the
        largest power of two < n, so the hash is the right fold of the compact range:
        popcount(end - begin) - 1 SHA-256 calls.
        """
        nodes = self._range_nodes(begin, end)
        acc = nodes[-1][2]
        for _, _, left in reversed(nodes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def _path(self, index: int, size: int, start_level: int) -> list[bytes]:
        """Inclusion path of leaf `index` in the tree of `size`, without levels below `start_level`.

        Requires 0 <= index < size <= n, and start_level 0 or below `inner`, the level where
        the paths to `index` and to `size - 1` meet (a consistency proof's `shift` is). RFC 9162
        section 2.1.3.1 PATH, bottom-up, split as `merkle_verify._decompose` splits it: the
        `inner` siblings, all complete stored subtrees except perhaps the highest, a right
        sibling cut short by `size`; then a left sibling per set bit of index >> inner.
        """
        proof = []
        inner = (index ^ (size - 1)).bit_length()
        for level in range(start_level, inner - 1):
            proof.append(self._stored(level, (index >> level) ^ 1))
        if inner > start_level:
            # The highest inner sibling lies to the right and ends at `size`: its index at this
            # level is (size - 1) >> level, as the paths to index and size - 1 meet just above.
            # Its hash is MTH(D[begin:size]), a stored node only if the subtree is complete.
            level = inner - 1
            begin = ((index >> level) + 1) << level
            proof.append(self._fold(begin, size))
        for level in range(max(inner, start_level), index.bit_length()):
            if (index >> level) & 1:
                proof.append(self._stored(level, (index >> level) - 1))
        return proof

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof of leaf `index` in the tree of the first `size` leaves.

        RFC 9162 section 2.1.3.1 (RFC 6962 section 2.1.1 PATH), bottom-up. Requires
        0 <= index < size <= self.size (size defaults to self.size); raises TreeRangeError.
        """
        size = self._check_size(size)
        check_index(index, size)
        return self._path(index, size, 0)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the consistency proof from the tree of `old_size` leaves to that of `new_size`.

        RFC 9162 section 2.1.4.1 (RFC 6962 section 2.1.2 PROOF). Requires
        0 <= old_size <= new_size <= self.size (new_size defaults to self.size); raises
        TreeRangeError. Empty when old_size is 0 or equals new_size.
        """
        new_size = self._check_size(new_size)
        check_sizes(old_size, new_size)
        if old_size == 0 or old_size == new_size:
            return []
        # SUBPROOF descends to the last perfect subtree of the old tree, 2**shift leaves
        # ending at old_size: the proof is its hash (omitted when it is the whole old tree,
        # i.e. old_size is a power of two: b stays true in SUBPROOF) followed by its path
        # upward in the new tree, which is leaf old_size - 1's path from level `shift` on.
        shift = (old_size & -old_size).bit_length() - 1
        proof = [] if old_size == 1 << shift else [self._stored(shift, (old_size - 1) >> shift)]
        proof += self._path(old_size - 1, new_size, shift)
        return proof


class MerkleTree(StoredTree):
    """An immutable RFC 6962 tree of n leaves that proves itself and every earlier size m <= n.

    Building costs 2n - 1 SHA-256 calls. `root(m)`, `inclusion_proof(i, m)` and
    `consistency_proof(m, k)` then read stored perfect-subtree hashes and hash only the
    incomplete right edge of the smaller tree: at most about log2(n) SHA-256 calls each.
    Memory: 2n - popcount(n) stored hashes, about 73 bytes each as Python objects
    (147 MB for a million leaves).
    """

    __slots__ = ("_levels", "_root", "_size")

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        """Build the tree over raw leaf inputs (each is hashed as SHA-256(0x00 || leaf))."""
        self._build(hash_leaves(leaves))

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> MerkleTree:
        """Build the tree over precomputed leaf hashes (e.g. from storage), without rehashing.

        Requires 32-byte hashes; raises HashSizeError (a ProofError) naming the first other one.
        """
        hashes = [bytes(h) for h in leaf_hashes]
        if {len(h) for h in hashes} - {HASH_SIZE}:
            position = next(i for i, h in enumerate(hashes) if len(h) != HASH_SIZE)
            raise HashSizeError(f"leaf_hashes[{position}]", len(hashes[position]))
        tree = cls.__new__(cls)
        tree._build(hashes)
        return tree

    def _build(self, leaf_hashes: list[bytes]) -> None:
        levels = [leaf_hashes]
        while len(levels[-1]) > 1:
            levels.append(_hash_pairs(levels[-1]))
        self._levels = levels
        self._size = len(leaf_hashes)
        self._root = self._fold(0, self._size) if self._size else EMPTY_ROOT

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def __repr__(self) -> str:
        return f"MerkleTree(size={self._size}, root={self._root.hex()})"

    def _stored(self, level: int, index: int) -> bytes:
        return self._levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        """Return the root of the first `size` leaves (default: all; that one is cached).

        Requires 0 <= size <= self.size; raises TreeRangeError otherwise.
        """
        if size is None or size == self._size:
            return self._root
        return super().root(size)
