"""Spool.unsealed keeps its count in memory (the sealer asks at every tick, and a count(*)
over millions of unsealed rows is what slowed a site's drain): it must agree with the
table after every commit and seal, after a failed commit, and after a crash anywhere,
including inside a seal's transaction."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device import reading
from gateway.spool import Accepted, Spool

BOX = bytes(31) + b"\x61"
GATEWAY = bytes(31) + b"\x62"
REPO = Path(__file__).resolve().parents[2]


def rows(first: int, n: int, now: float) -> list[Accepted]:
    from device import schnorr

    key = schnorr.pubkey(BOX)
    return [
        Accepted(key, s, reading.sign(BOX, s, int(now), 500, 5000), int(now), now + s * 1e-3)
        for s in range(first, first + n)
    ]


def truth(path: Path) -> tuple[int, float | None]:
    """What the table itself says, from another connection."""
    db = sqlite3.connect(path)
    try:
        count, oldest = db.execute(
            "SELECT count(*), min(gateway_time) FROM readings "
            "WHERE id > (SELECT coalesce(max(last_id), 0) FROM batches)"
        ).fetchone()
    finally:
        db.close()
    return count, oldest


def test_count_and_oldest_follow_commits_and_seals(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path)
    assert spool.unsealed() == (0, None)
    now = time.time()
    spool.commit(rows(0, 50, now))
    assert spool.unsealed() == truth(path) == (50, now)
    assert spool.seal(GATEWAY, 20) is not None
    assert spool.unsealed() == truth(path) == (30, now + 0.02)
    spool.commit(rows(50, 10, now))
    assert spool.unsealed() == truth(path)
    while spool.seal(GATEWAY, 16) is not None:
        assert spool.unsealed() == truth(path)
    assert spool.unsealed() == (0, None)
    spool.close()


def test_a_failed_commit_leaves_the_count_right(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path)
    now = time.time()
    spool.commit(rows(0, 10, now))
    with pytest.raises(sqlite3.IntegrityError):  # (box, seq) 5 again: rolled back whole
        spool.commit(rows(10, 5, now) + rows(5, 1, now))
    assert spool.unsealed() == truth(path) == (10, now)
    spool.close()


# A child process: commits, seals, then dies by SIGKILL at the point named by argv[2]
# ("after": between transactions; "in-seal": inside a seal's transaction, after it read
# its rows and signed the header, before the membership is written and committed).
CHILD = """
import os, signal, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from tests.gateway.test_spool_unsealed import GATEWAY, rows
from gateway import batch
from gateway.spool import Spool

spool = Spool(Path(sys.argv[1]))
now = time.time()
spool.commit(rows(0, 40, now))
spool.seal(GATEWAY, 16)
spool.commit(rows(40, 8, now))
if sys.argv[2] == "in-seal":
    real = batch.seal
    def dying(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    batch.seal = dying
    spool.seal(GATEWAY, 16)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("where", ["after", "in-seal"])
def test_the_count_is_right_after_a_crash(tmp_path: Path, where: str) -> None:
    path = tmp_path / "spool.sqlite"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), where, str(REPO)], capture_output=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    spool = Spool(path)  # counts again at open
    assert spool.unsealed() == truth(path)
    assert spool.unsealed()[0] == 40 + 8 - 16  # the interrupted seal left nothing behind
    # ...and keeps counting right from there.
    spool.commit(rows(48, 4, time.time()))
    assert spool.seal(GATEWAY, 30) is not None
    assert spool.unsealed() == truth(path) == (6, spool.unsealed()[1])
    spool.close()
    os.remove(path)
