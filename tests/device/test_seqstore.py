"""Sequence numbers are never reused: not across restarts, torn writes or SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from device.seqstore import SeqExhausted, SeqStore
from tests.conftest import REPO, micropython_binary


def test_numbers_increase_across_restarts_with_at_most_a_block_skipped(tmp_path: Path) -> None:
    path = str(tmp_path / "seq")
    first = SeqStore(path, block=8)
    used = [first.next() for _ in range(5)]
    assert used == [0, 1, 2, 3, 4]
    second = SeqStore(path, block=8)  # a restart: the rest of the block is skipped
    assert second.next() == 8
    assert (tmp_path / "seq").read_text().split()[0] == "16"


def test_a_deep_sleep_wake_resumes_inside_the_reserved_block(tmp_path: Path) -> None:
    path = str(tmp_path / "seq")
    store = SeqStore(path, block=8)
    for _ in range(3):
        store.next()
    woke = SeqStore(path, block=8, resume=store.peek())
    assert woke.next() == 3  # no gap after deep sleep
    stale = SeqStore(path, block=8, resume=100)  # RTC memory beyond the mark: not trusted
    assert stale.next() == 8


@pytest.mark.parametrize("garbage", ["", "12", "12 13\n", "x y\n", "16 0\n"])
def test_a_torn_or_corrupt_file_never_lowers_the_mark(tmp_path: Path, garbage: str) -> None:
    path = str(tmp_path / "seq")
    store = SeqStore(path, block=16)
    store.next()  # mark 16 is durable
    (tmp_path / "seq.tmp").write_text(garbage)  # a crash while writing the next mark
    assert SeqStore(path, block=16).next() == 16


def test_an_intact_tmp_file_whose_rename_was_lost_is_honoured(tmp_path: Path) -> None:
    path = str(tmp_path / "seq")
    SeqStore(path, block=16).next()
    (tmp_path / "seq.tmp").write_text(f"32 {32 ^ 0x5EC5EC5E}\n")
    assert SeqStore(path, block=16).next() == 32


def test_the_u32_space_ends_loudly(tmp_path: Path) -> None:
    path = str(tmp_path / "seq")
    store = SeqStore(path, block=1, resume=None)
    store._next = store._limit = 2**32  # as if every number were used
    with pytest.raises(SeqExhausted):
        store.next()


LOOP = """
from device.seqstore import SeqStore
import sys
s = SeqStore(sys.argv[1] if len(sys.argv) > 1 else %r, block=%d)
while True:
    n = s.next()
    print(n)
"""


def test_sigkill_at_random_points_never_reuses_a_number(tmp_path: Path) -> None:
    """Kill a real MicroPython process handing out numbers, 25 times at random moments."""
    binary = micropython_binary()
    if binary is None:
        pytest.skip("micropython not installed (test extra)")
    path = str(tmp_path / "seq")
    rng = random.Random(7)
    seen: list[int] = []
    for _ in range(25):
        proc = subprocess.Popen(
            [binary, "-c", LOOP % (path, 4)],
            stdout=subprocess.PIPE,
            env=dict(os.environ, MICROPYPATH=str(REPO)),
        )
        time.sleep(rng.uniform(0.01, 0.15))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        lines = out.decode().split("\n")
        numbers = [int(x) for x in lines[:-1]]  # the last line may be cut by the kill
        assert numbers == sorted(set(numbers)), "numbers not strictly increasing in one run"
        if seen and numbers:
            assert numbers[0] > seen[-1], f"restart reused {numbers[0]} (last was {seen[-1]})"
        seen.extend(numbers)
    assert len(seen) > 1000  # the kills really interrupted a busy writer
    assert len(set(seen)) == len(seen)
