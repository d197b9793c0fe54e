"""The ledger's log: incremental node storage agrees with a tree built in one go, proofs
from stored nodes verify, appends are atomic, and tampering with a node is detected."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.log import tlog
from cloud.storage.sqlite import SqliteEngine
from cloud.storage.store import NotFound, Store
from gateway import merkle
from gateway.merkle_verify import RootMismatchError
from tests.conftest import GOLDEN


def entries(n: int, start: int = 0) -> list[bytes]:
    return [bytes([tlog.ENTRY_BATCH]) + i.to_bytes(8, "big") for i in range(start, start + n)]


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.integers(1, 40), min_size=1, max_size=12))
def test_incremental_nodes_equal_those_of_a_tree_built_at_once(chunks: list[int]) -> None:
    stored: dict[tlog.NodeKey, bytes] = {}
    size = 0
    for n in chunks:
        new = tlog.new_nodes(
            size, [tlog.entry_leaf(e) for e in entries(n, size)], lambda lv, i: stored[(lv, i)]
        )
        assert not set(new) & set(stored), "a node was written twice"
        stored.update(new)
        size += n
    reference = merkle.MerkleTree(entries(size))
    expected = {
        (level, i): reference.node(level, i)
        for level in range(size.bit_length())
        for i in range(size >> level)
    }
    assert stored == expected


async def test_the_stored_log_proves_every_size_like_the_reference(store: Store) -> None:
    rng = random.Random(3)
    all_entries: list[bytes] = []
    while len(all_entries) < 300:
        batch = entries(min(rng.randint(1, 37), 300 - len(all_entries)), len(all_entries))
        first, size = await store.append(batch)
        assert first == len(all_entries)
        all_entries += batch
        assert size == len(all_entries)
    reference = merkle.MerkleTree(all_entries)
    assert await store.log_size() == 300
    assert await tlog.root(store, 300) == reference.root()
    for _ in range(300):
        size = rng.randint(1, 300)
        index = rng.randrange(size)
        old = rng.randint(0, size)
        proof = await tlog.inclusion_proof(store, index, size)
        assert proof == reference.inclusion_proof(index, size)
        merkle.verify_inclusion(all_entries[index], index, size, proof, reference.root(size))
        assert await tlog.consistency_proof(store, old, size) == reference.consistency_proof(
            old, size
        )
    assert await store.find_entry(tlog.entry_leaf(all_entries[42])) == 42
    assert await store.entries(41, 44) == all_entries[41:44]
    assert await store.entries(298, 400) == all_entries[298:]
    with pytest.raises(NotFound):  # nodes of a size the log does not have yet
        await tlog.inclusion_proof(store, 0, 301)
    with pytest.raises(merkle.TreeRangeError):
        await tlog.inclusion_proof(store, 300, 300)


async def test_a_restart_continues_the_same_log(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "ledger.sqlite")
    await store.append(entries(300))
    await store.close()
    reopened = Store.sqlite(tmp_path / "ledger.sqlite")
    await reopened.append(entries(5, 300))
    assert await tlog.root(reopened, 305) == merkle.MerkleTree(entries(305)).root()
    await reopened.close()


async def test_a_failed_append_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "ledger.sqlite")
    assert isinstance(store.engine, SqliteEngine)
    db = store.engine.db
    await store.append(entries(7))
    # Appending entry 7 completes subtrees that need the stored node (0, 6): without it the
    # append must fail and roll back, not write a log whose nodes are wrong.
    db.execute("DELETE FROM log_nodes WHERE level = 0 AND idx = 6")
    with pytest.raises(NotFound, match=r"log node \(level 0, index 6\)"):
        await store.append(entries(3, 7))
    assert await store.log_size() == 7
    assert db.execute("SELECT count(*) FROM log_nodes WHERE idx >= 7").fetchone()[0] == 0
    await store.close()


async def test_a_tampered_node_fails_proof_verification(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "ledger.sqlite")
    data = entries(64)
    await store.append(data)
    honest_root = await tlog.root(store, 64)
    # (2, 1) covers leaves 4-7: the level-2 sibling on leaf 0's path
    assert isinstance(store.engine, SqliteEngine)
    store.engine.db.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 1")
    proof = await tlog.inclusion_proof(store, 0, 64)
    with pytest.raises(RootMismatchError):
        merkle.verify_inclusion(data[0], 0, 64, proof, honest_root)
    await store.close()


def test_entries_carry_batch_headers_and_reject_unknown_kinds() -> None:
    header = bytes.fromhex(json.loads((GOLDEN / "batch-v1.json").read_text())["headers"][0]["wire"])
    entry = tlog.batch_entry(header)
    assert entry[0] == tlog.ENTRY_BATCH and tlog.parse_entry(entry) == ("batch", header)
    with pytest.raises(tlog.EntryError, match="entry kind: got 7f"):
        tlog.parse_entry(b"\x7f" + header)
    with pytest.raises(tlog.EntryError, match="got nothing"):
        tlog.parse_entry(b"")
