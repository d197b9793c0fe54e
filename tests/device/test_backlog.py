"""The flash backlog keeps readings in order until acknowledged, bounded, across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from device import reading
from device.backlog import Backlog

SECRET = bytes(31) + b"\x07"


def _reading(seq: int) -> bytes:
    return reading.sign(SECRET, seq, 1793620800 + seq * 60, 500, 5000, aux=bytes(32))


def test_readings_come_back_in_order_after_a_restart(tmp_path: Path) -> None:
    log = Backlog(str(tmp_path / "b"), slots=8)
    for seq in range(5):
        log.append(_reading(seq))
    again = Backlog(str(tmp_path / "b"), slots=8)
    assert len(again) == 5
    assert [again.get(i) for i in range(again.head, again.tail)] == [_reading(s) for s in range(5)]


def test_ack_forgets_exactly_what_was_acknowledged(tmp_path: Path) -> None:
    log = Backlog(str(tmp_path / "b"), slots=8)
    for seq in (3, 4, 9, 10):  # gaps after reboots are normal
        log.append(_reading(seq))
    assert log.ack(2) == 0
    assert log.ack(9) == 3
    assert [log.seq_at(i) for i in range(log.head, log.tail)] == [10]
    assert Backlog(str(tmp_path / "b"), slots=8).head == log.head  # durable


def test_a_full_ring_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    log = Backlog(str(tmp_path / "b"), slots=4)
    for seq in range(10):
        log.append(_reading(seq))
    assert len(log) == 4
    assert log.dropped == 6
    assert [log.seq_at(i) for i in range(log.head, log.tail)] == [6, 7, 8, 9]
    assert (tmp_path / "b.bin").stat().st_size == 4 * reading.SIZE  # bounded on flash
    assert Backlog(str(tmp_path / "b"), slots=4).dropped == 6


def test_corrupt_metadata_falls_back_to_the_intact_copy(tmp_path: Path) -> None:
    log = Backlog(str(tmp_path / "b"), slots=8)
    for seq in range(3):
        log.append(_reading(seq))
    (tmp_path / "b.meta.tmp").write_text((tmp_path / "b.meta").read_text())
    (tmp_path / "b.meta").write_text("0 3 0 1\n")  # wrong check value
    assert len(Backlog(str(tmp_path / "b"), slots=8)) == 3


def test_refuses_anything_but_a_reading(tmp_path: Path) -> None:
    log = Backlog(str(tmp_path / "b"), slots=4)
    with pytest.raises(ValueError, match="got 3 bytes, want 110"):
        log.append(b"abc")
    with pytest.raises(IndexError):
        log.get(0)
