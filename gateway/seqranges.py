"""Sets of sequence numbers kept as sorted, disjoint, non-adjacent ranges (first, last),
inclusive: what a gateway has committed of one box. A box's numbers have gaps (it skips
the rest of a reserved block after a reboot, device/seqstore.py), so its set is a few
ranges per reboot, not one; the version-2 ack (device/ack.py) lists them.

Pure functions over a list of (first, last) tuples; the spool keeps the durable copy.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

Range = tuple[int, int]


def runs(seqs: Iterable[int]) -> list[Range]:
    """Return the ranges of consecutive numbers in `seqs` (any order, repeats allowed)."""
    numbers = set(seqs)
    if not numbers:
        return []
    lo, hi = min(numbers), max(numbers)
    if hi - lo + 1 == len(numbers):
        # One run, the usual case (a box's readings in a commit group follow each other):
        # three passes in C instead of a sort and a Python loop.
        return [(lo, hi)]
    out: list[Range] = []
    for s in sorted(numbers):
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def _index(ranges: Sequence[Range], seq: int) -> int:
    """Index of the range whose first is the greatest <= seq, or -1."""
    return bisect_right(ranges, (seq, 1 << 64)) - 1


def contains(ranges: Sequence[Range], seq: int) -> bool:
    """True if `seq` is in one of `ranges`."""
    if not ranges or seq > ranges[-1][1]:  # a new reading: past the last range, no search
        return False
    i = _index(ranges, seq)
    return i >= 0 and ranges[i][1] >= seq


def add(ranges: list[Range], first: int, last: int) -> tuple[Range, list[Range]]:
    """Add first..last to `ranges` in place, merging neighbours it touches or overlaps.

    Returns (the merged range now in the list, the ranges it replaced). Requires first <= last.
    """
    if first > last:
        raise ValueError(f"range: got {first}..{last}, want first <= last")
    i = _index(ranges, first)
    if i < 0 or ranges[i][1] < first - 1:
        i += 1  # the range at i starts after first - 1, or there is none below
    j = i
    lo, hi = first, last
    while j < len(ranges) and ranges[j][0] <= last + 1:
        lo, hi = min(lo, ranges[j][0]), max(hi, ranges[j][1])
        j += 1
    replaced = ranges[i:j]
    ranges[i:j] = [(lo, hi)]
    return (lo, hi), replaced


def window_start(ranges: Sequence[Range], near: int | None, cap: int) -> int:
    """Return the index of the first of up to `cap` consecutive ranges an acknowledgement
    lists: the newest `cap` ranges, or, if `near` is older than those, the `cap` ranges from
    the one holding or following `near`. Requires cap >= 1."""
    start = max(0, len(ranges) - cap)
    if near is not None:
        i = _index(ranges, near)
        if i < 0 or ranges[i][1] < near:
            i += 1
        start = min(start, i)
    return start
