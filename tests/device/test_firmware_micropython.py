"""The box firmware for real: device/firmware.py under the real MicroPython interpreter,
publishing to a real (private) Mosquitto, checked by a CPython receiver that verifies every
signature with coincurve and acknowledges like the gateway (tests/device/receiver.py).

Only the DHT22 is simulated (device/simsensor.py): there is no sensor on this machine.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

from device import reading, schnorr
from tests.conftest import REPO, Mosquitto, micropython_binary, need_or_skip
from tests.device.receiver import GATEWAY_SECRET, OWNER, Receiver, running, stop

SITE = "test-site"
SECRET = bytes.fromhex("11" * 32)
KEY = schnorr.pubkey(SECRET)

BOX = """
import asyncio
from binascii import unhexlify
from device import config, firmware
from device.board_sim import Board
cfg = config.validate({"site": %(site)r, "label": "cold room", "seq_block": 4,
                       "mqtt": {"host": "127.0.0.1", "port": %(port)d, "keepalive": 5},
                       "ack_timeout_s": %(ack_timeout)d, "max_backoff_s": 1,
                       "max_resend_s": %(max_resend)d, "owner_key": %(owner)r})
board = Board(%(data)r, profile=%(profile)r, seed=3, quiet=False)
box = firmware.Box(board, cfg, unhexlify(%(secret)r), %(interval)r)
asyncio.run(box.run(%(count)r, drain_s=%(drain)r))
print("RESENDS", box.resends, box.resend_wait, box.missing_resent, box.rejected_certs)
print("DONE", box.taken, len(box.backlog), box.rejected_acks)
"""


async def start_box(
    broker: Mosquitto,
    data: Path,
    count: int | None,
    interval: float = 0.05,
    drain: float = 20,
    profile: str = "door",
    port: int | None = None,
    ack_timeout: int = 2,
    max_resend: int = 1920,
) -> asyncio.subprocess.Process:
    binary = micropython_binary()
    if binary is None:
        need_or_skip("micropython not installed (test extra)")
    script = BOX % {
        "site": SITE,
        "port": broker.port if port is None else port,
        "data": str(data),
        "profile": profile,
        "owner": OWNER,
        "ack_timeout": ack_timeout,
        "max_resend": max_resend,
        "secret": SECRET.hex(),
        "interval": interval,
        "count": count,
        "drain": drain,
    }
    return await asyncio.create_subprocess_exec(
        binary,
        "-X",
        "heapsize=1M",
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ, MICROPYPATH=f"{REPO}:.frozen"),
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60) -> str:
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    text = out.decode()
    assert proc.returncode == 0, text
    return text


def check_seqs_never_reused(receiver: Receiver) -> None:
    """Every copy of a (key, seq) that arrived is byte-identical: no number signed twice."""
    for wire in receiver.arrivals:
        r = reading.decode(wire)
        assert receiver.kept[(r.key, r.seq)] == wire, f"seq {r.seq} signed twice"


async def test_box_publishes_every_reading_signed_and_acknowledged(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    receiver = Receiver(mosquitto.port, SITE)
    task = await running(receiver)
    try:
        out = await finish(await start_box(mosquitto, tmp_path / "box", count=40))
        await asyncio.sleep(0.5)  # the broker delivers the last will
    finally:
        await stop(task)
    assert receiver.bad_signatures == 0
    assert receiver.seqs(KEY) == list(range(40))
    assert out.strip().endswith("DONE 40 0 0")  # 40 taken, none left unacknowledged
    first = reading.decode(receiver.kept[(KEY, 0)])
    assert 1 <= first.temperature // 100 <= 15 and not first.flags & reading.FLAG_SENSOR_ERROR
    states = [s["state"] for s in receiver.statuses]
    assert states[0] == "online" and states[-1] == "offline"  # retained status, then the will
    online = next(s for s in receiver.statuses if s["state"] == "online")
    assert online["label"] == "cold room" and online["dropped"] == 0


async def test_broker_outage_loses_nothing_and_flags_the_backlog(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    receiver = Receiver(mosquitto.port, SITE)
    task = await running(receiver)
    try:
        proc = await start_box(mosquitto, tmp_path / "box", count=120, interval=0.05, drain=30)
        await asyncio.sleep(2.0)
        mosquitto.stop()  # mid-stream
        await asyncio.sleep(2.0)
        mosquitto.start()
        out = await finish(proc, timeout=90)
    finally:
        await stop(task)
    assert receiver.bad_signatures == 0
    assert receiver.seqs(KEY) == list(range(120)), out  # every reading arrived
    check_seqs_never_reused(receiver)
    flagged = [s for (k, s), w in receiver.kept.items() if reading.decode(w).flags & 0x08]
    assert flagged, "readings taken during the outage must carry the backlog flag"
    assert len(receiver.arrivals) >= 120
    print(f"outage: {len(flagged)} readings flagged backlog, {len(receiver.arrivals)} arrivals")
    # In order: the first arrival of each seq comes after the first arrival of seq - 1.
    first_seen: dict[int, int] = {}
    for i, wire in enumerate(receiver.arrivals):
        first_seen.setdefault(reading.decode(wire).seq, i)
    order = [first_seen[s] for s in range(120)]
    assert order == sorted(order)


async def test_sigkill_at_random_points_reuses_no_seq_and_loses_no_reading(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Kill the firmware process 20 times at random moments while it streams, restart it
    each time on the same flash folder, then let it drain."""
    receiver = Receiver(mosquitto.port, SITE)
    task = await running(receiver)
    rng = random.Random(11)
    data = tmp_path / "box"
    try:
        for _ in range(20):
            proc = await start_box(mosquitto, data, count=None, interval=0.02)
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        out = await finish(await start_box(mosquitto, data, count=5, drain=30), timeout=90)
    finally:
        await stop(task)
    assert receiver.bad_signatures == 0
    check_seqs_never_reused(receiver)
    seqs = receiver.seqs(KEY)
    assert len(seqs) > 100, "the kills interrupted a busy box"
    assert out.split()[-2] == "0", out  # backlog empty: everything kept was delivered
    # Nothing the box stored is missing: every stored reading was delivered; the only
    # numbers absent are skipped reservations (at most one block of 4 per restart) and
    # readings signed but killed before they reached flash.
    missing = set(range(seqs[-1] + 1)) - set(seqs)
    assert len(missing) <= 21 * 4, sorted(missing)


async def test_forged_and_impossible_acks_do_not_make_the_box_forget(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A receiver that never acks; an attacker acks a seq the box has not signed yet."""
    import aiomqtt

    from device import ack, topics

    receiver = Receiver(mosquitto.port, SITE, acking=False)
    task = await running(receiver)
    try:
        proc = await start_box(mosquitto, tmp_path / "box", count=10, interval=0.05, drain=2)
        await asyncio.sleep(1.0)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as attacker:
            dev = topics.device_id(KEY)
            stranger = bytes(31) + b"\x66"  # a gateway nobody certified
            await attacker.publish(topics.ack(SITE, dev), ack.encode([(0, 9)], KEY, stranger), 1)
            # Signed by the certified gateway, but naming readings never signed.
            beyond = ack.encode([(0, 10**6)], KEY, GATEWAY_SECRET)
            await attacker.publish(topics.ack(SITE, dev), beyond, 1)
            await attacker.publish(topics.ack(SITE, dev), b"\x00\x01", 1)
        out = await finish(proc)
    finally:
        await stop(task)
    taken, pending, rejected = (int(x) for x in out.split()[-3:])
    assert "ack rejected: gateway: no verified certificate" in out
    assert (taken, pending) == (10, 10)  # nothing acknowledged: everything is kept
    assert rejected == 3
    online = [s for s in receiver.statuses if s["state"] == "online"]
    assert online[-1]["backlog"] >= 1  # the box reports what it is still holding


BATTERY = """
import asyncio
from binascii import unhexlify
from device import config, firmware
from device.board_sim import Board
cfg = config.validate({"site": %(site)r, "power": "battery", "publish_every": 3,
                       "seq_block": 16, "ack_timeout_s": 2, "max_backoff_s": 3600,
                       "owner_key": %(owner)r,
                       "mqtt": {"host": "127.0.0.1", "port": %(port)d}})
board = Board(%(data)r, quiet=True)  # its retained dict plays the ESP32's RTC memory
for wake in range(%(wakes)d):
    box = firmware.Box(board, cfg, unhexlify(%(secret)r), 60)  # a fresh boot each wake
    board.network = %(network)r
    asyncio.run(box.wake())
    r = board.load_retained()
    print("WAKE", box.last_seq, len(box.backlog), r.get("wakes"), r.get("backoff", 1))
"""


async def run_wakes(broker: Mosquitto, data: Path, wakes: int, network: bool = True) -> list:
    binary = micropython_binary()
    if binary is None:
        need_or_skip("micropython not installed (test extra)")
    script = BATTERY % {
        "site": SITE,
        "port": broker.port,
        "data": str(data),
        "secret": SECRET.hex(),
        "wakes": wakes,
        "network": network,
        "owner": OWNER,
    }
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ, MICROPYPATH=f"{REPO}:.frozen"),
    )
    text = await finish(proc, timeout=120)
    return [
        [int(x) for x in line.split()[1:]] for line in text.splitlines() if line.startswith("WAKE")
    ]


async def test_battery_box_wakes_flushes_in_bursts_and_backs_off_in_an_outage(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    receiver = Receiver(mosquitto.port, SITE)
    task = await running(receiver)
    data = tmp_path / "box"
    signed: list[int] = []
    try:
        # Radio every 3rd wake: readings go out in bursts and are acknowledged.
        wakes = await run_wakes(mosquitto, data, 6)
        assert [w[1] for w in wakes] == [1, 2, 0, 1, 2, 0]  # backlog after each wake
        assert [w[0] for w in wakes] == list(range(6))  # deep sleep burns no seq block
        signed += [w[0] for w in wakes]
        # Outage (after a power cycle: a new process, RTC memory lost, next seq block).
        mosquitto.stop()
        wakes = await run_wakes(mosquitto, data, 9)
        seqs = [w[0] for w in wakes]
        assert seqs[0] > signed[-1] and seqs == list(range(seqs[0], seqs[0] + 9))
        signed += seqs
        assert [w[3] for w in wakes] == [1, 1, 2, 2, 2, 2, 2, 2, 4]  # gaps double
        assert [w[1] for w in wakes] == list(range(1, 10))  # nothing lost, all kept
        mosquitto.start()
        await asyncio.wait_for(receiver.connected.wait(), 10)
        wakes = await run_wakes(mosquitto, data, 12)
        signed += [w[0] for w in wakes]
        assert wakes[2][1] == 0  # the first radio wake delivers the whole outage backlog
        assert wakes[-1][3] == 1 and wakes[-1][1] == 0
    finally:
        await stop(task)
    assert receiver.seqs(KEY) == signed
    backlog = [reading.decode(receiver.kept[(KEY, s)]).flags & 0x08 for s in signed]
    assert all(backlog)  # a battery box takes every reading with its radio off
