"""Signatures checked on a pool of threads, every decision on the event loop in arrival
order (gateway/verify_pool.py): two copies of one reading racing through the pool are
accepted once, a forgery among good readings is refused alone, the checks keep their
order, and an acknowledgement still waits for the commit. Real spool, real threads."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from device import ack, reading, schnorr
from gateway import settings as gw_settings
from gateway.registry import Box, Registry
from gateway.service import Gateway
from gateway.spool import Spool
from gateway.verify import signatures_valid

SECRETS = [bytes(31) + bytes([0x71 + i]) for i in range(3)]
KEYS = [schnorr.pubkey(s) for s in SECRETS]
STRANGER = bytes(31) + b"\x7f"
NOW = int(time.time())


def make_gateway(tmp: Path, threads: int = 2) -> Gateway:
    s = gw_settings.from_dict(
        {
            "gateway": {"site": "t", "data_dir": str(tmp)},
            "spool": {"commit_interval_s": 0.0},
            "verify": {"threads": threads},
        }
    )
    tmp.mkdir(parents=True, exist_ok=True)
    reg = Registry(tmp / "registry.json")
    for i, key in enumerate(KEYS):
        reg.put(Box(key, f"fridge {i}", "t"))
    return Gateway(s, reg, Spool(tmp / "spool.sqlite"), bytes(31) + b"\x70")


def signed(seq: int, box: int = 0, t: int = NOW, temp: int = 450) -> bytes:
    return reading.sign(SECRETS[box], seq, t, temp, 5000, 0)


def forged(seq: int, box: int = 0, t: int = NOW) -> bytes:
    """A reading claiming box `box`, signed by a stranger."""
    w = bytearray(reading.sign(STRANGER, seq, t, 450, 5000, 0))
    w[1:33] = KEYS[box]
    return bytes(w)


def stored_seqs(tmp: Path) -> list[tuple[bytes, int]]:
    with sqlite3.connect(tmp / "spool.sqlite") as db:
        return [
            (bytes(k), s)
            for k, s in db.execute(
                "SELECT box, seq FROM readings JOIN boxes ON no = box_no ORDER BY 1, 2"
            )
        ]


async def test_two_copies_racing_through_the_pool_are_accepted_once(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, threads=2)
    wire = signed(1)
    # Submitted together, the copies travel in one group, split over the two threads.
    first, second = gw.submit(wire, "a"), gw.submit(wire, "b")
    await gw.verify_pool.judged()
    assert gw.counts["accepted"] == 1 and gw.counts["duplicate"] == 1
    # A third copy in a later group, while the first still waits for its commit.
    third = await gw.receive(wire, "c")
    assert gw.counts["duplicate"] == 2
    await gw.flush()
    acks = [await f for f in (first, second, third)]
    assert all(a is not None and ack.decode(a, KEYS[0], None) == [(1, 1)] for a in acks)
    assert stored_seqs(tmp_path) == [(KEYS[0], 1)]
    await gw.stop()


async def test_two_readings_with_one_seq_in_one_group_first_wins(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, threads=2)
    first = signed(4, temp=450)
    a, b = gw.submit(first, "a"), gw.submit(signed(4, temp=900), "b")
    await gw.verify_pool.judged()
    await gw.flush()
    assert await a is not None and await b is None
    assert gw.counts["accepted"] == 1 and gw.counts["seq reused"] == 1
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:
        (kept,) = db.execute("SELECT wire FROM readings").fetchone()
    assert bytes(kept) == first
    await gw.stop()


async def test_a_forgery_among_good_readings_is_refused_alone(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, threads=3)
    wires = [signed(seq, box) for seq in range(40) for box in range(3)]
    wires.insert(61, forged(1000, box=1))
    futures = [gw.submit(w, "t") for w in wires]
    await gw.verify_pool.judged()
    await gw.flush()
    results = [await f for f in futures]
    assert [i for i, r in enumerate(results) if r is None] == [61]
    assert gw.counts["bad signature"] == 1 and gw.counts["accepted"] == 120
    assert gw.rejects_by_box[KEYS[1]]["bad signature"] == 1
    assert {b: gw.ranges[b] for b in KEYS} == {b: ((0, 39),) for b in KEYS}
    await gw.stop()


async def test_checks_keep_their_order(tmp_path: Path) -> None:
    """Decoding, registry and topic before the signature; the signature before duplicates,
    reuse and time: a message failing several checks is refused for the first."""
    gw = make_gateway(tmp_path)
    good = signed(7)
    done = await gw.receive(good, "t")
    await gw.flush()
    assert await done is not None
    forged_copy = bytearray(good)
    forged_copy[100] ^= 1  # a committed reading's copy with a broken signature
    cases = [
        (forged(1, box=0, t=NOW - 30 * 86400), "bad signature"),  # also too old
        (bytes(forged_copy), "bad signature"),  # also a copy of a committed seq
        (forged(8, box=0, t=NOW + 3600), "bad signature"),  # also in the future
        (reading.sign(STRANGER, 9, NOW - 30 * 86400, 450, 5000), "unregistered"),
        (b"\x02" + good[1:], "version"),
    ]
    for wire, reason in cases:
        before = gw.counts[reason]
        assert await (await gw.receive(wire, "t")) is None
        assert gw.counts[reason] == before + 1, reason
    assert gw.counts["duplicate"] == 0 and gw.counts["time too old"] == 0
    await gw.stop()


async def test_acknowledged_only_after_the_commit(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    done = await gw.receive(signed(3), "t")
    assert not done.done() and stored_seqs(tmp_path) == []  # judged, not yet committed
    await gw.flush()
    payload = await done
    assert payload is not None and ack.decode(payload, KEYS[0], None) == [(3, 3)]
    assert stored_seqs(tmp_path) == [(KEYS[0], 3)]
    # Without a payload asked for (the MQTT ingest), the same wait, then COMMITTED.
    quiet = gw.submit(signed(4), "t", payload=False)
    await gw.verify_pool.judged()
    assert not quiet.done()
    await gw.flush()
    assert await quiet == b""
    await gw.stop()


async def test_a_running_gateway_commits_what_arrives_in_a_stream(tmp_path: Path) -> None:
    """As the MQTT reader feeds it: submits without waiting, the committer running."""
    gw = make_gateway(tmp_path, threads=2)
    await gw.start()
    wires = [signed(seq, box) for seq in range(300) for box in range(3)]
    futures = []
    for i, w in enumerate(wires):
        futures.append(gw.submit(w, "t"))
        if i % 50 == 49:
            await asyncio.sleep(0)
    results = await asyncio.wait_for(asyncio.gather(*futures), 30)
    assert all(r is not None for r in results)
    assert gw.counts["accepted"] == 900
    await gw.stop()
    assert len(stored_seqs(tmp_path)) == 900


def test_threads_setting(tmp_path: Path) -> None:
    base = {"gateway": {"site": "t", "data_dir": str(tmp_path)}}
    assert gw_settings.from_dict(base).verify.threads == (os.cpu_count() or 1)
    assert gw_settings.from_dict(base | {"verify": {"threads": 3}}).verify.threads == 3
    with pytest.raises(gw_settings.SettingsError, match=r"\[verify\] threads: got 0"):
        gw_settings.from_dict(base | {"verify": {"threads": 0}})


def test_signatures_valid_agrees_with_schnorr_verify() -> None:
    """The pool's check parses each box key once; it must judge as schnorr.verify does."""
    not_a_point = bytearray(signed(1))
    not_a_point[1:33] = b"\xff" * 32  # x >= p: no key
    wires = [signed(1), forged(2), signed(3, box=2), bytes(not_a_point)]
    want = [schnorr.verify(w[1:33], reading.message(w), w[46:110]) for w in wires]
    assert want == [True, False, True, False]
    assert signatures_valid(wires) == want
    assert signatures_valid(wires) == want  # again, from the parsed keys


async def test_a_burst_larger_than_a_group_is_judged_in_arrival_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst is cut into several groups checked at once; outcomes still follow arrival
    order across the cuts: a copy just after a cut is a duplicate, a reused seq after a cut
    is refused, a forgery is refused alone."""
    from gateway import verify_pool

    monkeypatch.setattr(verify_pool, "GROUP_MAX", 7)
    gw = make_gateway(tmp_path, threads=2)
    wires = [signed(seq, box) for seq in range(20) for box in range(3)]
    wires.insert(7, wires[6])  # a copy right after the first cut
    wires.insert(22, signed(3, box=0, temp=999))  # seq 3 of box 0 again, other bytes
    wires.insert(40, forged(500, box=2))
    futures = [gw.submit(w, "t") for w in wires]
    assert len(gw.verify_pool._arriving) == 9  # 63 readings in groups of 7
    await gw.verify_pool.judged()
    await gw.flush()
    results = [await f for f in futures]
    assert [i for i, r in enumerate(results) if r is None] == [22, 40]
    assert gw.counts["accepted"] == 60 and gw.counts["duplicate"] == 1
    assert gw.counts["seq reused"] == 1 and gw.counts["bad signature"] == 1
    assert {b: gw.ranges[b] for b in KEYS} == {b: ((0, 19),) for b in KEYS}
    await gw.stop()
