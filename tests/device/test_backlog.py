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


def _held(log: Backlog) -> list[int]:
    return [log.seq_at(i) for i in range(log.head, log.tail) if not log.is_acked(i)]


def test_ranges_forget_the_middle_and_name_what_is_missing(tmp_path: Path) -> None:
    log = Backlog(str(tmp_path / "b"), slots=16)
    for seq in (0, 1, 2, 3, 4, 5, 8, 9, 10):  # 6, 7 never existed (a reboot skipped them)
        log.append(_reading(seq))
    forgotten, missing = log.ack_ranges([(2, 3), (5, 9)])
    assert forgotten == 5  # 2, 3, 5, 8, 9
    assert [log.seq_at(i) for i in missing] == [4]  # held, between the ranges, in none
    assert _held(log) == [0, 1, 4, 10]
    assert len(log) == 4 and log.head == 0  # the head waits for 0 and 1
    again = Backlog(str(tmp_path / "b"), slots=16)  # durable: the bitmap is on flash
    assert _held(again) == [0, 1, 4, 10] and len(again) == 4
    assert again.ack_ranges([(0, 4)]) == (3, [])  # 0, 1, 4
    assert again.head == 8 and _held(again) == [10]  # past the acknowledged run at once


def test_acked_bits_are_cleared_before_a_slot_is_reused(tmp_path: Path) -> None:
    log = Backlog(str(tmp_path / "b"), slots=8)
    for seq in range(8):
        log.append(_reading(seq))
    log.ack_ranges([(0, 5)])
    for seq in range(8, 14):  # reuse slots 0-5
        log.append(_reading(seq))
    assert _held(log) == list(range(6, 14)) and len(log) == 8 and log.dropped == 0
    log.append(_reading(14))  # full now: the oldest held one goes, counted
    assert _held(log) == list(range(7, 15)) and log.dropped == 1


def test_a_crash_between_bitmap_and_meta_resends_but_never_loses(tmp_path: Path) -> None:
    log = Backlog(str(tmp_path / "b"), slots=8)
    for seq in range(6):
        log.append(_reading(seq))
    meta_before = (tmp_path / "b.meta").read_text()
    log.ack_ranges([(0, 3)])  # writes the bitmap (bits of 0-3 cleared), then the meta
    (tmp_path / "b.meta").write_text(meta_before)  # the meta write never happened
    crashed = Backlog(str(tmp_path / "b"), slots=8)
    assert _held(crashed) == list(range(6))  # acked ones held again: resent, not lost
    torn = tmp_path / "b.acked"
    torn.write_bytes(torn.read_bytes()[:-1])  # a torn bitmap: all held, nothing lost
    assert _held(Backlog(str(tmp_path / "b"), slots=8)) == list(range(6))


def test_missing_is_bounded_and_ranges_beyond_the_backlog_are_harmless(tmp_path: Path) -> None:
    log = Backlog(str(tmp_path / "b"), slots=64)
    for seq in range(60):
        log.append(_reading(seq))
    forgotten, missing = log.ack_ranges([(0, 0), (59, 100)])
    assert forgotten == 2 and len(missing) == 32  # MISSING_MAX, oldest first
    assert log.seq_at(missing[0]) == 1
    assert log.ack_ranges([(1000, 2000)]) == (0, [])
