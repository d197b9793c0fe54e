"""The compact range of an RFC 6962 tree: what a log follower keeps to recompute every root.

For a tree of `size` leaves, the compact range [0, size) is the list of perfect-subtree
hashes that the set bits of `size` name, largest (leftmost) first: one hash per set bit,
at most 64 for any uint64 size (transparency-dev/merkle `compact.Range`, the "frontier").
RFC 9162 section 2.1.1 splits a tree at the largest power of two below its size, so

    root = node(h[0], node(h[1], ... node(h[k-2], h[k-1])))     (right fold)

and appending a leaf merges the trailing subtrees of equal height, exactly as a binary
counter carries: one node hash per trailing 1 bit of the old size.

A follower that holds the compact range of the entries it has verified can extend it with
newly downloaded entries and compare the resulting root with a signed checkpoint, without
storing any other part of the tree and without trusting the server's proofs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.rfc6962 import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash


class CompactRangeError(ValueError):
    """Hashes and a size that cannot be a compact range (count or hash length wrong)."""


class CompactRange:
    """The compact range [0, size) of an RFC 6962 tree: append leaves, read the root.

    Mutable on purpose (a follower folds thousands of entries into it); copy() before
    a speculative update that may have to be thrown away.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Start from a stored range. Requires one 32-byte hash per set bit of `size`, left
        to right; raises CompactRangeError otherwise (the default is the empty tree)."""
        if size < 0:
            raise CompactRangeError(f"size: got {size}, want >= 0")
        if len(hashes) != size.bit_count():
            raise CompactRangeError(
                f"hashes for size {size}: got {len(hashes)}, want {size.bit_count()} "
                "(one per set bit of the size)"
            )
        for position, value in enumerate(hashes):
            if len(value) != HASH_SIZE:
                raise CompactRangeError(
                    f"hashes[{position}]: got {len(value)} bytes, want {HASH_SIZE}"
                )
        self._size = size
        self._hashes = [bytes(h) for h in hashes]

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect-subtree hashes, largest subtree first."""
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        """Return an independent copy."""
        return CompactRange(self._size, self._hashes)

    def append_leaf_hash(self, value: bytes) -> None:
        """Append one leaf by its RFC 6962 leaf hash. Raises CompactRangeError unless 32 bytes."""
        if len(value) != HASH_SIZE:
            raise CompactRangeError(f"leaf hash: got {len(value)} bytes, want {HASH_SIZE}")
        carry = self._size
        # Each trailing 1 bit of the old size is a perfect subtree as tall as the one just
        # completed: merge them, lowest first (the new leaf is always on the right).
        while carry & 1:
            value = node_hash(self._hashes.pop(), value)
            carry >>= 1
        self._hashes.append(value)
        self._size += 1

    def append(self, entries: Iterable[bytes]) -> None:
        """Append raw leaf inputs, each hashed as SHA-256(0x00 || entry)."""
        for entry in entries:
            self.append_leaf_hash(leaf_hash(entry))

    def root(self) -> bytes:
        """Return the RFC 6962 root of the leaves covered (EMPTY_ROOT for none)."""
        if not self._hashes:
            return EMPTY_ROOT
        acc = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable
