"""The live lane (gateway/live_lane.py): a second, clean session that hands the gateway
only readings taken online, so they need not wait behind a backlog being drained; what it
hands over is judged like any reading, and what it refuses is left to the persistent
session (not counted twice, not quarantined twice). Real Mosquitto, real spool."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import suppress
from pathlib import Path

import aiomqtt

from device import reading, schnorr, topics
from gateway.ingest_mqtt import MqttIngest
from gateway.live_lane import LiveLane
from tests.conftest import Mosquitto
from tests.gateway.test_service import BOX, BOX_SECRET, DEV, NOW, make_gateway


def signed(seq: int, flags: int = 0, secret: bytes = BOX_SECRET) -> bytes:
    return reading.sign(secret, seq, NOW, 450, 5000, flags, aux=bytes(32))


def forged(seq: int) -> bytes:
    """A reading naming our box, signed by another key."""
    w = bytearray(signed(seq, secret=bytes(31) + b"\x77"))
    w[1:33] = schnorr.pubkey(BOX_SECRET)
    return bytes(w)


async def until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_the_lane_takes_only_live_readings_and_counts_nothing_twice(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    gw = make_gateway(tmp_path / "gw", mosquitto.port)
    await gw.start()
    lane = LiveLane(gw)
    task = asyncio.create_task(lane.run())
    try:
        await until(lambda: lane.connected)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as box:
            topic = topics.reading("t", DEV)
            await box.publish(topic, signed(0, reading.FLAG_BACKLOG), 1)  # from the backlog
            await box.publish(topic, forged(1), 1)  # a forgery: the lane's copy is not counted
            await box.publish(topic, b"\x01" * 7, 1)  # not a reading at all
            await box.publish(topic, signed(2), 1)  # taken online: the lane takes it
            await until(lambda: gw.counts["accepted"] == 1)
            await gw.verify_pool.judged()
        await gw.flush()
        await until(lambda: gw.committed.get(BOX) == 2)  # the committer may hold it
        assert lane.taken == 2  # the forgery and the live reading; not the backlog, not junk
        assert dict(gw.counts) == {"accepted": 1}  # the forgery is the persistent session's
        assert gw.spool.quarantine_usage()[0] == 0
        db = sqlite3.connect(tmp_path / "gw" / "spool.sqlite")
        assert [s for (s,) in db.execute("SELECT seq FROM readings")] == [2]
        db.close()
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await gw.stop()


async def test_with_both_sessions_each_reading_is_stored_once_and_every_message_judged(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    gw = make_gateway(tmp_path / "gw", mosquitto.port)
    await gw.start()
    lane, ingest = LiveLane(gw), MqttIngest(gw)
    tasks = [asyncio.create_task(lane.run()), asyncio.create_task(ingest.run())]
    try:
        await until(lambda: lane.connected and ingest.connects == 1)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as box:
            topic = topics.reading("t", DEV)
            for seq in range(20):
                flags = reading.FLAG_BACKLOG if seq < 10 else 0
                await box.publish(topic, signed(seq, flags), 1)
            await box.publish(topic, forged(20), 1)
            # The persistent session judges all 21 (the forgery last); of 10..19 the lane's
            # copy comes first (then the session's copy is acknowledged as a duplicate) or
            # second (then it is dropped); neither way is it counted as a box's resend.
            await until(lambda: gw.counts["bad signature"] == 1 and gw.counts["accepted"] == 20)
            await until(lambda: lane.taken == 11)
            await gw.verify_pool.judged()
        await gw.flush()
        await until(lambda: gw.ranges.get(BOX) == ((0, 19),))
        assert gw.counts["accepted"] == 20 and gw.counts["duplicate"] == 0
        assert gw.counts["bad signature"] == 1  # counted once, quarantined once
        assert gw.spool.quarantine_usage()[0] == 1
        assert lane.taken == 11
        db = sqlite3.connect(tmp_path / "gw" / "spool.sqlite")
        seqs = sorted(s for (s,) in db.execute("SELECT seq FROM readings"))
        db.close()
        assert seqs == list(range(20))
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        await gw.stop()
