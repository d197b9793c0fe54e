"""Every bad message gets its own reason, is counted and quarantined, and the gateway keeps
serving: random bytes, truncated, oversized, forged, replayed, reused, unregistered,
wrong topic, implausible time. Driven through Gateway.receive with a real spool."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device import reading, schnorr, topics
from gateway import settings as gw_settings
from gateway.registry import Box, Registry
from gateway.service import Gateway
from gateway.spool import Spool

BOX_SECRET = bytes(31) + b"\x21"
BOX_KEY = schnorr.pubkey(BOX_SECRET)
STRANGER = bytes(31) + b"\x22"
NOW = int(time.time())


def make_gateway(tmp: Path) -> Gateway:
    s = gw_settings.from_dict(
        {"gateway": {"site": "t", "data_dir": str(tmp)}, "spool": {"commit_interval_s": 0.0}}
    )
    tmp.mkdir(parents=True, exist_ok=True)
    reg = Registry(tmp / "registry.json")
    reg.put(Box(BOX_KEY, "fridge", "t"))
    return Gateway(s, reg, Spool(tmp / "spool.sqlite"), bytes(31) + b"\x30")


def signed(seq: int, t: int = NOW, secret: bytes = BOX_SECRET, flags: int = 0) -> bytes:
    return reading.sign(secret, seq, t, 450, 5000, flags)


async def deliver(gw: Gateway, wire: bytes, topic_id: str | None = None) -> bytes | None:
    done = await gw.receive(wire, "test", topic_id)
    await gw.flush()
    return await done


async def test_each_bad_message_has_its_own_reason(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    dev = topics.device_id(BOX_KEY)
    assert await deliver(gw, signed(5), dev) is not None  # a good one first
    first = signed(6)
    assert await deliver(gw, first, dev) is not None
    forged = bytearray(signed(7))
    forged[42] ^= 1  # temperature changed after signing
    cases = {
        "length": b"\x01" * 50,
        "version": b"\x02" + signed(8)[1:],
        "unregistered": signed(1, secret=STRANGER),
        "bad signature": bytes(forged),
        "seq reused": signed(6, t=NOW + 1),  # validly signed, different bytes, same seq
        "stale seq": signed(3),
        "time in future": signed(20, t=NOW + 3600),
        "time too old": signed(21, t=NOW - 30 * 86400),
    }
    for reason, wire in cases.items():
        assert await deliver(gw, wire, dev) is None, reason
    assert await deliver(gw, signed(22), "0123456789abcdef") is None  # topic names another box
    for reason in cases:
        assert gw.counts[reason] == 1, reason
    assert gw.counts["topic mismatch"] == 1
    # A duplicate is not an error: acknowledged again with the committed seq.
    ack_again = await deliver(gw, first, dev)
    assert ack_again is not None and int.from_bytes(ack_again[:4], "big") == 6
    assert gw.counts["duplicate"] == 1
    # An unsynced box's clock is not checked; our receive time is recorded beside it.
    assert await deliver(gw, signed(23, t=100, flags=reading.FLAG_CLOCK_UNSYNCED), dev)
    # The gateway kept serving and stored exactly the good readings, the rest as evidence.
    assert await deliver(gw, signed(24), dev) is not None
    db = sqlite3.connect(tmp_path / "spool.sqlite")
    assert [s for (s,) in db.execute("SELECT seq FROM readings ORDER BY id")] == [5, 6, 23, 24]
    q = sqlite3.connect(tmp_path / "quarantine.sqlite")  # evidence, in its own budget
    quarantined = dict(q.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason"))
    assert quarantined == {**{r: 1 for r in cases}, "topic mismatch": 1}
    await gw.stop()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payloads=st.lists(
        st.one_of(
            st.binary(max_size=300),  # random, truncated, oversized
            st.builds(lambda b, n: b[:n], st.just(signed(1000)), st.integers(0, 110)),
            st.builds(
                lambda i, bit: bytes(
                    w ^ (1 << bit) if j == i else w for j, w in enumerate(signed(1001))
                ),
                st.integers(0, 109),
                st.integers(0, 7),
            ),
        ),
        max_size=20,
    )
)
def test_fuzzed_payloads_never_crash_or_stall_the_gateway(tmp_path_factory, payloads) -> None:
    async def run() -> None:
        gw = make_gateway(tmp_path_factory.mktemp("fuzz"))
        for p in payloads:
            await asyncio.wait_for(deliver(gw, p), 5)  # never raises, never hangs
        rejected = sum(
            n for reason, n in gw.counts.items() if reason not in ("accepted", "duplicate")
        )
        assert gw.counts["accepted"] + gw.counts["duplicate"] + rejected == len(payloads)
        assert await deliver(gw, signed(2000)) is not None  # still serving
        await gw.stop()

    asyncio.run(run())
