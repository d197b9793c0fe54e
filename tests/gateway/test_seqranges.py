"""Committed seqs as ranges: merging, membership and the ack window."""

from __future__ import annotations

import itertools
import random

from gateway import seqranges


def test_add_merges_neighbours_and_keeps_gaps() -> None:
    r: list[seqranges.Range] = []
    assert not seqranges.contains(r, 0)
    for first, last in [(0, 3), (8, 9), (5, 5), (4, 4), (11, 11)]:
        seqranges.add(r, first, last)
    assert r == [(0, 5), (8, 9), (11, 11)]
    merged, replaced = seqranges.add(r, 10, 10)
    assert merged == (8, 11) and replaced == [(8, 9), (11, 11)]
    assert r == [(0, 5), (8, 11)]
    assert [s for s in range(13) if seqranges.contains(r, s)] == [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]


def test_add_agrees_with_a_set_on_random_input() -> None:
    rng = random.Random(5)
    r: list[seqranges.Range] = []
    seen: set[int] = set()
    for first, last in seqranges.runs(rng.sample(range(400), 250)):
        seqranges.add(r, first, last)
        seen.update(range(first, last + 1))
    assert all(seqranges.contains(r, s) == (s in seen) for s in range(-1, 402))
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(r))  # never touching


def test_runs_of_one_run_any_order_with_repeats_and_of_gaps() -> None:
    assert seqranges.runs([]) == []
    assert seqranges.runs([7, 5, 6, 5, 8]) == [(5, 8)]  # one run: the short cut
    assert seqranges.runs([7]) == [(7, 7)]
    assert seqranges.runs([9, 5, 6, 5, 8]) == [(5, 6), (8, 9)]
    rng = random.Random(6)
    for _ in range(200):
        seqs = [rng.randrange(40) for _ in range(rng.randrange(1, 30))]
        want = [(k[0], k[-1]) for k in _consecutive(sorted(set(seqs)))]
        assert seqranges.runs(seqs) == want


def _consecutive(numbers: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for n in numbers:
        if out and out[-1][-1] == n - 1:
            out[-1].append(n)
        else:
            out.append([n])
    return out


def test_window_is_the_newest_ranges_or_the_ones_from_an_old_seq() -> None:
    r = [(i * 10, i * 10 + 5) for i in range(30)]
    assert seqranges.window_start(r, None, 21) == 9
    assert seqranges.window_start(r, 295, 21) == 9  # new readings: the newest
    assert seqranges.window_start(r, 33, 21) == 3  # a resent old one is covered
    assert seqranges.window_start(r, 37, 21) == 4  # in a gap: from the next range
    assert seqranges.window_start(r[:2], 0, 21) == 0
