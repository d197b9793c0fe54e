"""The ledger's log: incremental node storage agrees with a tree built in one go, proofs
from stored nodes verify, appends are atomic, and tampering with a node is detected."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud import tlog
from cloud.store_sqlite import SqliteStore
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


def test_sqlite_log_proves_every_size_like_the_reference(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ledger.sqlite")
    rng = random.Random(3)
    all_entries: list[bytes] = []
    while len(all_entries) < 300:
        batch = entries(min(rng.randint(1, 37), 300 - len(all_entries)), len(all_entries))
        first, size = store.append(batch)
        assert first == len(all_entries)
        all_entries += batch
        assert size == len(all_entries)
    reference = merkle.MerkleTree(all_entries)
    log = tlog.LogTree(store)
    assert log.size == 300 and log.root() == reference.root()
    for _ in range(300):
        size = rng.randint(1, 300)
        index = rng.randrange(size)
        old = rng.randint(0, size)
        proof = log.inclusion_proof(index, size)
        assert proof == reference.inclusion_proof(index, size)
        merkle.verify_inclusion(all_entries[index], index, size, proof, reference.root(size))
        assert log.consistency_proof(old, size) == reference.consistency_proof(old, size)
    assert store.find_entry(tlog.entry_leaf(all_entries[42])) == 42
    assert store.entry(42) == all_entries[42]
    store.close()
    reopened = SqliteStore(tmp_path / "ledger.sqlite")  # a restart continues the same log
    reopened.append(entries(5, 300))
    assert tlog.LogTree(reopened).root() == merkle.MerkleTree(all_entries + entries(5, 300)).root()
    reopened.close()


def test_a_failed_append_leaves_nothing_behind(tmp_path: Path) -> None:
    from cloud.store_sqlite import NotFound

    store = SqliteStore(tmp_path / "ledger.sqlite")
    store.append(entries(7))
    # Appending entry 7 completes subtrees that need the stored node (0, 6): without it the
    # append must fail and roll back, not write a log whose nodes are wrong.
    store.db.execute("DELETE FROM log_nodes WHERE level = 0 AND idx = 6")
    with pytest.raises(NotFound, match=r"log node \(level 0, index 6\)"):
        store.append(entries(3, 7))
    assert store.log_size() == 7
    assert store.db.execute("SELECT count(*) FROM log_nodes WHERE idx >= 7").fetchone()[0] == 0
    store.close()


def test_a_tampered_node_fails_proof_verification(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ledger.sqlite")
    data = entries(64)
    store.append(data)
    honest_root = tlog.LogTree(store).root()
    # (2, 1) covers leaves 4-7: the level-2 sibling on leaf 0's path
    store.db.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 1")
    proof = tlog.LogTree(store).inclusion_proof(0, 64)
    with pytest.raises(RootMismatchError):
        merkle.verify_inclusion(data[0], 0, 64, proof, honest_root)
    store.close()


def test_entries_carry_batch_headers_and_reject_unknown_kinds() -> None:
    header = bytes.fromhex(json.loads((GOLDEN / "batch-v1.json").read_text())["headers"][0]["wire"])
    entry = tlog.batch_entry(header)
    assert entry[0] == tlog.ENTRY_BATCH and tlog.parse_entry(entry) == ("batch", header)
    with pytest.raises(tlog.EntryError, match="entry kind: got 7f"):
        tlog.parse_entry(b"\x7f" + header)
    with pytest.raises(tlog.EntryError, match="got nothing"):
        tlog.parse_entry(b"")
