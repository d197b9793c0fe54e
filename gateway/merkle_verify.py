"""Verify RFC 6962 / RFC 9162 inclusion and consistency proofs, and the errors that reject them.

This module depends only on `hashlib` (through `gateway.rfc6962`), so an auditor's offline
verifier can copy these two files and check a reading's proof chain without the gateway.
Algorithms: RFC 9162 section 2.1.3.2 (inclusion) and 2.1.4.2 (consistency), written in the
bit-decomposition form of transparency-dev/merkle `proof/verify.go`.

Every `verify_*` function returns None when the proof holds and raises a `ProofError`
subclass otherwise (the transparency-dev way: one outcome, no boolean to forget to check):

- `TreeRangeError`: an index or size outside what the tree allows (a precondition).
- `ProofSizeError`: the proof has the wrong number of hashes for (index, size) or (m, n).
- `HashSizeError`: a proof hash or leaf hash is not 32 bytes.
- `RootMismatchError`: the proof is well formed but leads to another root.

`ProofError` derives from `ValueError`, so callers may catch either.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.rfc6962 import HASH_SIZE, leaf_hash, node_hash

__all__ = [
    "HashSizeError",
    "ProofError",
    "ProofSizeError",
    "RootMismatchError",
    "TreeRangeError",
    "check_index",
    "check_sizes",
    "consistency_proof_size",
    "inclusion_proof_size",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
    "verify_leaf_hash_inclusion",
]


class ProofError(ValueError):
    """A Merkle proof, or the index and sizes it is checked against, is invalid."""


class RootMismatchError(ProofError):
    """A proof leads to a root other than the expected one (.computed != .expected)."""

    def __init__(self, computed: bytes, expected: bytes, what: str = "root") -> None:
        self.computed = bytes(computed)
        self.expected = bytes(expected)
        self.what = what
        super().__init__(
            f"{what} mismatch: computed {self.computed.hex()}, expected {self.expected.hex()}"
        )


class ProofSizeError(ProofError):
    """A proof holds the wrong number of hashes (.got, .want)."""

    def __init__(self, got: int, want: int) -> None:
        self.got = got
        self.want = want
        super().__init__(f"incorrect proof size: got {got}, want {want}")


class HashSizeError(ProofError):
    """A hash that must be SHA-256 output has another length (.got bytes, .want = 32)."""

    def __init__(self, what: str, got: int, want: int = HASH_SIZE) -> None:
        self.what = what
        self.got = got
        self.want = want
        super().__init__(f"{what}: got {got} bytes, want {want}")


class TreeRangeError(ProofError):
    """An index or tree size is out of range: index >= size, size 0, old_size > new_size, < 0."""


def check_index(index: int, size: int) -> None:
    """Require 0 <= index < size. Raise TreeRangeError otherwise."""
    if size <= 0:
        if size == 0:
            # RFC 9162 section 2.1.3: an inclusion proof is for a leaf, and the empty tree has none.
            raise TreeRangeError("size 0 tree has no inclusion proofs")
        raise TreeRangeError(f"size {size} is negative")
    if not 0 <= index < size:
        raise TreeRangeError(f"index {index} out of range for size {size}")


def check_sizes(old_size: int, new_size: int) -> None:
    """Require 0 <= old_size <= new_size. Raise TreeRangeError otherwise."""
    if old_size < 0:
        raise TreeRangeError(f"old_size {old_size} is negative")
    if old_size > new_size:
        raise TreeRangeError(f"old_size {old_size} > new_size {new_size}")


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Split the inclusion proof of leaf `index` in a tree of `size` into (inner, border) counts.

    Requires 0 <= index < size. The first `inner` hashes are siblings below the level where
    the paths to `index` and to the last leaf `size - 1` meet: the leaf's bit at each level says
    on which side the sibling lies (the last of them may be the root of an incomplete right
    subtree). Above that level the path runs along the tree's right border, where a sibling
    exists, always on the left, for each set bit of `index >> inner` (RFC 9162 section 2.1.3.1
    splits at the largest power of two, which is what these bits encode).
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def inclusion_proof_size(index: int, size: int) -> int:
    """Return how many hashes the inclusion proof of leaf `index` in a tree of `size` holds.

    Requires 0 <= index < size; raises TreeRangeError otherwise.
    """
    check_index(index, size)
    inner, border = _decompose(index, size)
    return inner + border


def consistency_proof_size(old_size: int, new_size: int) -> int:
    """Return how many hashes the consistency proof from `old_size` to `new_size` holds.

    Requires 0 <= old_size <= new_size; raises TreeRangeError otherwise.
    """
    check_sizes(old_size, new_size)
    if old_size == 0 or old_size == new_size:
        return 0
    inner, border = _decompose(old_size - 1, new_size)
    shift = _trailing_zeros(old_size)
    # The proof starts with the node (level shift, covering old_size's last leaf), unless
    # old_size is a power of two: then that node is the old root, which the verifier holds.
    seed = 0 if old_size == 1 << shift else 1
    return seed + inner - shift + border


def _trailing_zeros(value: int) -> int:
    """Return the number of trailing zero bits of value > 0."""
    return (value & -value).bit_length() - 1


def _check_hash_sizes(proof: Sequence[bytes]) -> None:
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise HashSizeError(f"proof[{position}]", len(value))


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Return the root that `proof` gives for `leaf_hash` at `index` in a tree of `size`.

    RFC 9162 section 2.1.3.2. Requires 0 <= index < size (else TreeRangeError), a 32-byte
    leaf hash and proof hashes (else HashSizeError) and exactly the number of hashes the RFC
    path has for (index, size) (else ProofSizeError). Compares with no root: see
    `verify_leaf_hash_inclusion`.
    """
    check_index(index, size)
    if len(leaf_hash) != HASH_SIZE:
        raise HashSizeError("leaf_hash", len(leaf_hash))
    inner, border = _decompose(index, size)
    if len(proof) != inner + border:
        raise ProofSizeError(len(proof), inner + border)
    _check_hash_sizes(proof)
    computed = _chain_inner(leaf_hash, proof[:inner], index)
    return _chain_border_right(computed, proof[inner:])


def verify_leaf_hash_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `proof` includes the leaf whose hash is `leaf_hash` at `index` under `root`.

    Requires 0 <= index < size (else TreeRangeError); raises ProofSizeError or HashSizeError
    for a malformed proof and RootMismatchError if it leads to another root. Take `size` and
    `root` from one signed checkpoint: only the root binds the size, since a path also fits
    every size whose path has the same shape (leaf 0 of 3 and of 4; RFC 9162's check alike).
    """
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise RootMismatchError(computed, root)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `proof` puts raw leaf data `leaf` at `index` in the tree of `size` and `root`.

    The leaf is hashed as SHA-256(0x00 || leaf) first. Requires 0 <= index < size (else
    TreeRangeError); raises ProofSizeError or HashSizeError for a malformed proof and
    RootMismatchError if it leads to another root. Take `size` and `root` from one signed
    checkpoint (see `verify_leaf_hash_inclusion`).
    """
    verify_leaf_hash_inclusion(leaf_hash(leaf), index, size, proof, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of `new_size` with `new_root` extends the one of `old_size`, `old_root`.

    RFC 9162 section 2.1.4.2. Requires 0 <= old_size <= new_size (else TreeRangeError).
    Raises ProofSizeError unless the proof has exactly the RFC's number of hashes (none when
    old_size is 0 or equals new_size), HashSizeError for a hash that is not 32 bytes and
    RootMismatchError (.what "old root" or "new root") when a recomputed root differs.
    With equal sizes the roots must be equal. With old_size 0 the roots are not consulted:
    the empty tree is a prefix of every tree (as in transparency-dev/merkle, whose vectors
    require 0 -> 1 with arbitrary roots to pass).
    """
    check_sizes(old_size, new_size)
    if old_size == new_size:
        if proof:
            raise ProofSizeError(len(proof), 0)
        if old_root != new_root:
            raise RootMismatchError(old_root, new_root, "new root")
        return
    if old_size == 0:
        if proof:
            raise ProofSizeError(len(proof), 0)
        return

    # 0 < old_size < new_size. The proof is the inclusion path of leaf old_size - 1 in the
    # new tree, minus its lowest `shift` levels: those lie inside the perfect subtree of
    # 2**shift leaves that ends at old_size, whose hash (the seed) the proof sends first,
    # except when old_size is 2**shift and that subtree is the old tree itself (RFC 9162
    # section 2.1.4.2 step 2: "If first is an exact power of 2, then prepend first_hash").
    inner, border = _decompose(old_size - 1, new_size)
    shift = _trailing_zeros(old_size)
    inner -= shift  # > 0: old_size - 1 and new_size - 1 first differ above bit shift - 1.
    start = 0 if old_size == 1 << shift else 1
    if len(proof) != start + inner + border:
        raise ProofSizeError(len(proof), start + inner + border)
    _check_hash_sizes(proof)
    seed = proof[0] if start else old_root
    path = proof[start:]
    mask = (old_size - 1) >> shift  # The seed's index at level `shift`.

    # The old root uses only the left siblings: to the right of the seed lies the new part.
    computed_old = _chain_border_right(_chain_inner_right(seed, path[:inner], mask), path[inner:])
    if computed_old != old_root:
        raise RootMismatchError(computed_old, old_root, "old root")
    computed_new = _chain_border_right(_chain_inner(seed, path[:inner], mask), path[inner:])
    if computed_new != new_root:
        raise RootMismatchError(computed_new, new_root, "new root")


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Hash `seed` up with siblings on the side that bit i of `index` gives at level i."""
    for level, sibling in enumerate(proof):
        seed = node_hash(sibling, seed) if (index >> level) & 1 else node_hash(seed, sibling)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Like `_chain_inner`, but only the left siblings (set bits): the old tree's root path."""
    for level, sibling in enumerate(proof):
        if (index >> level) & 1:
            seed = node_hash(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    """Hash `seed` up the right border of the tree: every remaining sibling is on the left."""
    for sibling in proof:
        seed = node_hash(sibling, seed)
    return seed
