"""Inclusion proofs in a stored batch without rehashing the whole batch.

A batch's Merkle tree (RFC 6962, over its readings' bytes) is not stored node by node:
that would cost 64 bytes per reading. The ledger keeps its *tile* instead: the hashes of
its perfect subtrees of 2**TILE_HEIGHT = 16 readings, 2 bytes per reading. A proof then
needs the tile and the 16 readings of the proved reading's block (plus those of the
unfinished last block, if any): about 31 hashes and 16 rows instead of 2,047 hashes and
1,024 rows (the idea of transparency-dev tlog tiles, applied inside a batch).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from gateway import merkle
from gateway.merkle import MerkleTree, StoredTree
from gateway.rfc6962 import HASH_SIZE

TILE_HEIGHT = 4
BLOCK = 1 << TILE_HEIGHT  # readings per tile entry

# (start, end) -> those readings of the batch, in leaf order
FetchLeaves = Callable[[int, int], Awaitable[list[bytes]]]


def tile_of(wires: Sequence[bytes]) -> bytes:
    """Return the tile of a batch: the roots of its complete blocks of BLOCK readings,
    concatenated (a batch of n readings has n // BLOCK of them)."""
    full = len(wires) - len(wires) % BLOCK
    return b"".join(merkle.root(wires[i : i + BLOCK]) for i in range(0, full, BLOCK))


class _TiledTree(StoredTree):
    """A batch tree of `size` leaves whose nodes come from its tile (levels >= TILE_HEIGHT)
    and from the fetched blocks (lower levels); in a dry run (`blocks` None) it notes which
    blocks a computation reads and returns placeholders."""

    __slots__ = ("_size", "_upper", "blocks", "wanted")

    def __init__(self, size: int, tile: bytes, blocks: dict[int, MerkleTree] | None) -> None:
        self._size = size
        self._upper = MerkleTree.from_leaf_hashes(
            tile[i : i + HASH_SIZE] for i in range(0, len(tile), HASH_SIZE)
        )
        self.blocks = blocks
        self.wanted: set[int] = set()

    @property
    def size(self) -> int:
        return self._size

    def _stored(self, level: int, index: int) -> bytes:
        if level >= TILE_HEIGHT:
            return self._upper.node(level - TILE_HEIGHT, index)
        block = (index << level) >> TILE_HEIGHT
        if self.blocks is None:
            self.wanted.add(block)
            return bytes(HASH_SIZE)
        return self.blocks[block].node(level, index - (block << (TILE_HEIGHT - level)))


async def inclusion_proof(size: int, index: int, tile: bytes, fetch: FetchLeaves) -> list[bytes]:
    """Return the RFC 6962 inclusion proof of reading `index` in a batch of `size` readings
    with this tile, fetching only the blocks of readings it needs. Requires 0 <= index <
    size and len(tile) == (size // BLOCK) * 32; raises TreeRangeError otherwise."""
    if len(tile) != (size // BLOCK) * HASH_SIZE:
        raise merkle.TreeRangeError(f"tile: got {len(tile)} bytes for a batch of {size}")
    dry = _TiledTree(size, tile, None)
    dry.inclusion_proof(index)
    blocks = {}
    for block in sorted(dry.wanted):
        start = block * BLOCK
        blocks[block] = MerkleTree(await fetch(start, min(start + BLOCK, size)))
    return _TiledTree(size, tile, blocks).inclusion_proof(index)
