"""Proofs from a batch's tile equal proofs from the whole tree, for every reading of
batches of every size up to a few blocks, and read only the blocks they need."""

from __future__ import annotations

import pytest

from cloud.log import batchtree
from gateway import merkle


def wires(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") * 27 + b"\x00\x01" for i in range(n)]  # 110 bytes each


@pytest.mark.parametrize("size", [1, 2, 15, 16, 17, 31, 32, 33, 47, 64, 100, 1024])
async def test_tile_proofs_equal_full_tree_proofs(size: int) -> None:
    leaves = wires(size)
    tree = merkle.MerkleTree(leaves)
    tile = batchtree.tile_of(leaves)
    assert len(tile) == (size // batchtree.BLOCK) * 32
    fetched: list[tuple[int, int]] = []

    async def fetch(start: int, end: int) -> list[bytes]:
        fetched.append((start, end))
        return leaves[start:end]

    for index in range(size) if size <= 100 else range(0, size, 37):
        fetched.clear()
        proof = await batchtree.inclusion_proof(size, index, tile, fetch)
        assert proof == tree.inclusion_proof(index), index
        merkle.verify_inclusion(leaves[index], index, size, proof, tree.root())
        # at most its own block and the unfinished last one, each a block-aligned range
        assert len(fetched) <= 2
        assert all(start % batchtree.BLOCK == 0 and end - start <= 16 for start, end in fetched)


async def test_a_tile_of_the_wrong_size_is_refused() -> None:
    async def fetch(start: int, end: int) -> list[bytes]:
        return wires(40)[start:end]

    with pytest.raises(merkle.TreeRangeError, match="tile"):
        await batchtree.inclusion_proof(40, 3, bytes(32), fetch)
