"""The spool's committed ranges (Spool._add_ranges writes only what changed, with a short
cut for a run that follows a box's newest range): after any mix of commit groups, in
memory and on disk they are exactly the seqs committed."""

from __future__ import annotations

import random
from pathlib import Path

from gateway import seqranges
from gateway.spool import Accepted, Spool

BOXES = [bytes(31) + bytes([i]) for i in range(1, 4)]


def expected(seen: dict[bytes, set[int]]) -> dict[bytes, tuple[seqranges.Range, ...]]:
    return {box: tuple(seqranges.runs(seqs)) for box, seqs in seen.items()}


def test_ranges_follow_runs_gaps_and_old_seqs_filled_in(tmp_path: Path) -> None:
    rng = random.Random(7)
    spool = Spool(tmp_path / "spool.sqlite")
    seen: dict[bytes, set[int]] = {}
    for _ in range(60):
        group = []
        for box in BOXES:
            kind = rng.choice(["run after", "gap", "fill", "none"])
            top = max(seen.get(box, {-1}))
            if kind == "run after":
                seqs = list(range(top + 1, top + 1 + rng.randrange(1, 6)))
            elif kind == "gap":
                start = top + rng.randrange(2, 8)
                seqs = rng.sample(range(start, start + 10), rng.randrange(1, 6))
            elif kind == "fill":
                missing = sorted(set(range(top + 1)) - seen.get(box, set()))
                seqs = rng.sample(missing, min(len(missing), rng.randrange(1, 4)))
            else:
                seqs = []
            if seqs:
                seen.setdefault(box, set()).update(seqs)
            group += [Accepted(box, s, bytes(110), 0, 0.0) for s in seqs]
        rng.shuffle(group)
        if group:
            spool.commit(group)
        assert spool.committed_ranges() == expected(seen)
    spool.close()
    reopened = Spool(tmp_path / "spool.sqlite")  # what the committed table holds
    assert reopened.committed_ranges() == expected(seen)
    assert reopened.last_seqs() == {box: max(seqs) for box, seqs in seen.items()}
    reopened.close()
