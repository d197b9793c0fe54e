"""Make spool-v1.json: spools written by the version-1 spool (readings carry a `batch`
column; gateway/spool.py up to commit fb28697), as SQL dumps, for the test that a newer
gateway opens and migrates them (tests/gateway/test_spool_layout.py).

    git worktree add /tmp/v1 fb28697 && cd /tmp/v1 && python tests/vectors/make_spool_v1.py

It must run against that version's gateway/spool.py (it writes through the Spool class, so
the files are what a real gateway left behind); the output is committed. Keys and aux
randomness are SHA-256 of fixed labels; sealed_at and sent_at are wall-clock times.

Scenarios:
- "pruned": three boxes (one with a gap in its seqs), four batches of four readings; the
  first two accepted by the cloud and the first pruned; five readings left unsealed.
- "emptied": every batch accepted and pruned, so the table emptied and SQLite gave the
  next readings the ids the pruned batches had used (rowid = max + 1 = 1); one more batch
  sealed from them, three left unsealed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from device import reading, schnorr  # noqa: E402
from gateway.spool import Accepted, Spool  # noqa: E402

T0 = 1_780_000_000


def label(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


GATEWAY = label("spool-v1 gateway")
BOXES = [label(f"spool-v1 box {i}") for i in range(3)]


def accepted(box: int, seq: int) -> Accepted:
    secret = BOXES[box]
    t = T0 + 60 * seq
    wire = reading.sign(secret, seq, t, 400 + seq, 5000, 0, aux=label(f"aux {box} {seq}"))
    return Accepted(schnorr.pubkey(secret), seq, wire, t, t + 0.5)


def interleaved(seqs: list[list[int]]) -> list[Accepted]:
    out = []
    for i in range(max(len(s) for s in seqs)):
        out += [accepted(b, s[i]) for b, s in enumerate(seqs) if i < len(s)]
    return out


def pruned(spool: Spool) -> None:
    # Box 2 skips seqs 3..9 (a reboot's reserved block).
    spool.commit(interleaved([list(range(7)), list(range(7)), [0, 1, 2, 10, 11, 12, 13]]))
    for _ in range(4):
        spool.seal(GATEWAY, 4)
    spool.mark_sent(0, {"log_index": 0})
    spool.mark_sent(1, {"log_index": 1})
    spool.db.execute("UPDATE batches SET sent_at = sent_at - 100 WHERE seq = 0")
    assert spool.prune(50) == 4


def emptied(spool: Spool) -> None:
    spool.commit(interleaved([[0, 1, 2, 3], [0, 1, 2, 3]]))
    for seq in range(2):
        spool.seal(GATEWAY, 4)
        spool.mark_sent(seq, {"log_index": seq})
    assert spool.prune(-1) == 8
    spool.commit(interleaved([[4, 5, 6, 7], [4, 5, 6]]))
    spool.seal(GATEWAY, 4)
    ids = [i for (i,) in spool.db.execute("SELECT id FROM readings ORDER BY id")]
    assert ids == list(range(1, 8)), ids  # the pruned batches' ids, given again


def dump(make: object) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "spool.sqlite"
        spool = Spool(path)
        assert "batch" in [c[1] for c in spool.db.execute("PRAGMA table_info(readings)")]
        make(spool)  # type: ignore[operator]
        spool.close()
        db = sqlite3.connect(path)
        try:
            return "\n".join(db.iterdump())
        finally:
            db.close()


def main() -> None:
    out = {
        "made_by": "tests/vectors/make_spool_v1.py against gateway/spool.py of commit fb28697",
        "gateway_secret": GATEWAY.hex(),
        "spools": {"pruned": dump(pruned), "emptied": dump(emptied)},
    }
    (HERE / "spool-v1.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
