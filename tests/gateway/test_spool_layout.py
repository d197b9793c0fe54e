"""The spool's layout 2 (gateway/spool.py module docstring): batches as id ranges whose
ids are never given twice, readings by box number, and a spool written by the version-1
spool (a batch column on every reading) rewritten at open in one transaction, keeping every
promise: the same readings in the same batches, the same unsealed readings next, nothing
lost (tests/vectors/spool-v1.json, made by the version-1 code itself)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from device import reading, schnorr
from gateway import batch
from gateway.spool import Accepted, Spool, SpoolError, SpoolReader

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "spool-v1.json").read_text())
GATEWAY = bytes.fromhex(VECTORS["gateway_secret"])
BOX = bytes(31) + b"\x71"
NOW = 1_790_000_000


def v1_spool(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "spool.sqlite"
    db = sqlite3.connect(path)
    db.executescript(VECTORS["spools"][name])
    db.close()
    return path


def v1_truth(path: Path) -> dict:
    """What the version-1 file holds, read with version-1 SQL."""
    db = sqlite3.connect(path)
    try:
        committed: dict[bytes, tuple[tuple[int, int], ...]] = {}
        for box, first, last in db.execute("SELECT box, first, last FROM committed ORDER BY 1, 2"):
            committed[box] = (*committed.get(box, ()), (first, last))
        by_batch: dict[int | None, list[bytes]] = {}
        for b, wire in db.execute("SELECT batch, wire FROM readings ORDER BY id"):
            by_batch.setdefault(b, []).append(wire)
        return {
            "batches": [s for (s,) in db.execute("SELECT seq FROM batches ORDER BY seq")],
            "by_batch": by_batch,
            "stored": {
                (bytes(k), s): w for k, s, w in db.execute("SELECT box, seq, wire FROM readings")
            },
            "oldest": db.execute(
                "SELECT min(gateway_time) FROM readings WHERE batch IS NULL"
            ).fetchone()[0],
            "last_seqs": dict(db.execute("SELECT box, last_seq FROM boxes")),
            "committed": committed,
        }
    finally:
        db.close()


def fresh(first: int, n: int) -> list[Accepted]:
    key = schnorr.pubkey(BOX)
    return [
        Accepted(key, s, reading.sign(BOX, s, NOW + s, 500, 5000), NOW + s, NOW + s + 0.5)
        for s in range(first, first + n)
    ]


def all_ids(spool: Spool) -> list[int]:
    return [i for (i,) in spool.db.execute("SELECT id FROM readings ORDER BY id")]


@pytest.mark.parametrize("name", ["pruned", "emptied"])
def test_a_version_1_spool_keeps_its_batches_and_unsealed_readings(
    tmp_path: Path, name: str
) -> None:
    path = v1_spool(tmp_path, name)
    before = v1_truth(path)
    unsealed = before["by_batch"].get(None, [])
    assert unsealed  # each scenario leaves some

    spool = Spool(path)
    columns = [c[1] for c in spool.db.execute("PRAGMA table_info(readings)")]
    assert "batch" not in columns and "box_no" in columns
    assert spool.batch_seqs() == before["batches"]
    for seq in before["batches"]:
        kept = spool.batch(seq)
        assert kept is not None
        assert kept.readings == before["by_batch"].get(seq, [])  # pruned ones stay empty
        if kept.readings:
            batch.check_contents(kept.header, kept.readings)
    assert spool.unsealed() == (len(unsealed), before["oldest"])
    assert spool.last_seqs() == before["last_seqs"]
    assert spool.committed_ranges() == before["committed"]
    for (box, seq), wire in before["stored"].items():
        assert spool.stored(box, seq) == wire

    # The next batch is the old unsealed readings, then new ones, chained to the last batch.
    ids, new = all_ids(spool), fresh(0, 3)
    spool.commit(new)
    assert all_ids(spool)[len(ids) :] == list(range(max(ids) + 1, max(ids) + 4))
    header = spool.seal(GATEWAY, 1024)
    assert header is not None and header.seq == before["batches"][-1] + 1
    last = spool.batch(header.seq - 1)
    assert last is not None and header.prev_hash == last.header.hash()
    sealed = spool.batch(header.seq)
    assert sealed is not None and sealed.readings == unsealed + [a.wire for a in new]
    assert spool.unsealed() == (0, None)
    spool.close()

    # Migrated once: opening again changes nothing.
    again = Spool(path)
    assert again.batch(header.seq) == sealed and again.unsealed() == (0, None)
    again.close()


def test_a_spool_from_before_the_committed_table_keeps_what_its_version_1_acks_promised(
    tmp_path: Path,
) -> None:
    """Its acks said "everything up to last_seq": every box's 0..last_seq counts committed."""
    path = v1_spool(tmp_path, "pruned")
    last_seqs = v1_truth(path)["last_seqs"]
    db = sqlite3.connect(path)
    db.execute("DROP TABLE committed")
    db.commit()
    db.close()
    spool = Spool(path)
    assert spool.committed_ranges() == {box: ((0, last),) for box, last in last_seqs.items()}
    assert spool.last_seqs() == last_seqs
    spool.close()


def test_a_version_1_spool_whose_batches_are_not_id_ranges_is_refused_unchanged(
    tmp_path: Path,
) -> None:
    path = v1_spool(tmp_path, "pruned")
    db = sqlite3.connect(path)
    # A reading in the middle of batch 2 marked unsealed: batch 2 is no longer a range.
    db.execute(
        "UPDATE readings SET batch = NULL WHERE id = (SELECT min(id) + 1 FROM readings "
        "WHERE batch = 2)"
    )
    db.commit()
    dump = "\n".join(db.iterdump())
    db.close()
    with pytest.raises(SpoolError, match="version-1 batch 2: got 3 readings among 4"):
        Spool(path)
    db = sqlite3.connect(path)
    assert "\n".join(db.iterdump()) == dump  # rolled back: still the version-1 file
    db.close()


def test_ids_are_never_given_twice_even_after_pruning_empties_the_table(
    tmp_path: Path,
) -> None:
    """Version 1 let SQLite reuse the ids of a table emptied by pruning; batches are id
    ranges now, so a reused id would put a new reading into an old batch."""
    spool = Spool(tmp_path / "spool.sqlite")
    spool.commit(fresh(0, 4))
    first = spool.seal(GATEWAY, 4)
    assert first is not None
    spool.mark_sent(first.seq, {"log_index": 0})
    assert spool.prune(-1) == 4 and all_ids(spool) == []
    spool.close()

    spool = Spool(tmp_path / "spool.sqlite")  # the counter survives a restart too
    later = fresh(4, 2)
    spool.commit(later)
    assert all_ids(spool) == [5, 6]
    assert spool.unsealed()[0] == 2
    second = spool.seal(GATEWAY, 4)
    assert second is not None and second.count == 2
    old, new = spool.batch(first.seq), spool.batch(second.seq)
    assert old is not None and old.readings == []
    assert new is not None and new.readings == [a.wire for a in later]
    assert spool.prune(-1) == 0  # batch 1 is not accepted yet: nothing to prune
    spool.close()


def test_the_reader_finds_readings_of_boxes_numbered_after_it_opened(tmp_path: Path) -> None:
    """SpoolReader keeps the box numbers it has seen (they never change), never a miss."""
    spool = Spool(tmp_path / "spool.sqlite")
    reader = SpoolReader(tmp_path / "spool.sqlite")
    first = fresh(0, 2)
    assert reader.stored(first[0].box, 0) is None  # the box has no number yet
    spool.commit(first)
    assert reader.stored(first[0].box, 0) == first[0].wire
    assert reader.stored(first[0].box, 1) == first[1].wire
    assert reader.stored(first[0].box, 2) is None
    assert reader.stored(bytes(32), 0) is None and spool.stored(bytes(32), 0) is None
    reader.close()
    spool.close()
