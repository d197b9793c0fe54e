"""The gateway's BLE ingest (gateway/ble.py), in two parts.

Part 1: BoxLink and BleIngest against FakeAir, a BleTransport whose connection attempts are
scripted (refused, hanging, dropped mid-stream, failing writes, a disconnect nobody reports).
It replaces only the radio, the thinnest boundary there is, and checks the link's own
logic: it always recovers, backoff grows, is bounded and resets, REPLAY asks from the right
seq, acks follow commits and are coalesced, a failing core does not kill the link.

Part 2: the real path, BleakTransport -> bleak's BlueZ backend -> dbus-fast -> a private
D-Bus daemon -> python-dbusmock's bluez5 template extended with the box's GATT service
(tests/gateway/bluez_mock.py; its control characteristic answers with the box's own
command codec, device/ble.py decode_command). Exercised for real: bleak's BlueZ manager
(GetManagedObjects, InterfacesAdded and PropertiesChanged signals), adapter selection,
discovery (SetDiscoveryFilter, StartDiscovery, advertisements seen as property changes,
StopDiscovery, BlueZ's InProgress for a second discovery, which our scan lock avoids),
Device1.Connect and the wait for ServicesResolved, services from GattService1 and
GattCharacteristic1 objects, StartNotify and notifications as Value changes, ReadValue,
WriteValue with response, the disconnected callback when BlueZ drops the link, D-Bus
errors from Connect, a box that is not advertising, taking over a connection BlueZ still
holds, reconnecting with a new BleakClient, Disconnect on stop(), and the MTU BlueZ reports.
Not exercised without a radio and a real bluetoothd: the ATT MTU exchange itself, radio
timing and loss, BlueZ's own GATT discovery, caching and error codes, pairing and bonding,
AcquireNotify (bleak uses StartNotify by default), and the box's side of the radio
(device/ble.py serve() needs aioble).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from bleak.exc import BleakError
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from device import ack, ble, cert, reading
from gateway.ble import BleakTransport, BleIngest, BoxLink, LinkState, LinkTiming
from tests.conftest import REPO, need_or_skip

ADDR = "C0:FF:EE:00:00:01"
BOX = "box-1"
HANG = "hang"  # a scripted connect that never returns
# Fast timing for tests that do not look at the backoff delays themselves.
FAST = {
    "connect_timeout": 0.05,
    "op_timeout": 0.5,
    "backoff_min": 0.01,
    "backoff_max": 0.05,
    "ack_interval": 0.05,
    "liveness": 0.05,
}


def wire(seq: int) -> bytes:
    """110 bytes carrying `seq` where a reading does: BoxLink never looks inside."""
    return bytes(33) + seq.to_bytes(4, "big") + bytes(reading.SIZE - 37)


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)


# -- part 1: the link's logic against a scripted radio -------------------------------------


class FakeRadio:
    """One box on the air: scripts its next connection attempts, records what it was sent."""

    def __init__(self, status: bytes = b'{"id":"fake"}') -> None:
        self.fail: list[BaseException | str] = []  # outcome of the next connects: raise, HANG
        self.write_error: BaseException | None = None  # raised by the next write
        self.status = status
        self.log: list[tuple[str, bytes]] = []  # (operation, data), every transport
        self.transports: list[FakeTransport] = []
        self.write_times: list[float] = []  # monotonic time of each write

    @property
    def link(self) -> FakeTransport:
        return self.transports[-1]

    def writes(self, transport: FakeTransport | None = None) -> list[tuple[int, Any]]:
        logs = self.log if transport is None else transport.log
        return [ble.decode_command(data) for op, data in logs if op == "write"]

    def acks(self) -> list[int]:
        """The last seq of each ACK written (the stand-in core acks 0..seq)."""
        return [ack.parse(arg)[1][-1][1] for op, arg in self.writes() if op == ble.OP_ACK]


class FakeTransport:
    """BleTransport on FakeAir."""

    def __init__(self, air: FakeAir) -> None:
        self.air = air
        self.disconnected = asyncio.Event()
        self.log: list[tuple[str, bytes]] = []
        self.callback: Callable[[bytes], None] | None = None
        self._up = False

    @property
    def is_connected(self) -> bool:
        return self._up

    def _record(self, op: str, data: bytes = b"") -> None:
        self.log.append((op, data))
        self.radio.log.append((op, data))

    async def connect(self, address: str, timeout: float) -> None:
        self.radio = self.air.radios[address]
        self.radio.transports.append(self)
        await asyncio.sleep(0)
        outcome = self.radio.fail.pop(0) if self.radio.fail else None
        if outcome == HANG:
            await asyncio.Event().wait()
        if isinstance(outcome, BaseException):
            raise outcome
        self._up = True

    async def start_notify(self, uuid: str, callback: Callable[[bytes], None]) -> None:
        assert self._up and uuid == ble.READING_UUID
        self.callback = callback
        self._record("notify")

    async def read(self, uuid: str) -> bytes:
        assert self._up and uuid == ble.STATUS_UUID
        self._record("read")
        return self.radio.status

    async def write(self, uuid: str, data: bytes) -> None:
        assert uuid == ble.CONTROL_UUID
        if not self._up:
            raise BleakError("not connected")
        if self.radio.write_error is not None:
            error, self.radio.write_error = self.radio.write_error, None
            raise error
        self._record("write", data)
        self.radio.write_times.append(time.monotonic())

    async def disconnect(self) -> None:
        self._record("disconnect")
        self.drop()

    def notify(self, data: bytes) -> None:
        assert self.callback is not None
        self.callback(data)

    def drop(self) -> None:
        """The radio loses the box."""
        self._up = False
        self.disconnected.set()


class FakeAir:
    """The transport factory: a new FakeTransport per attempt, reaching radios by address."""

    def __init__(self, *addresses: str) -> None:
        self.radios = {a: FakeRadio() for a in addresses or (ADDR,)}

    def __call__(self) -> FakeTransport:
        return FakeTransport(self)

    @property
    def radio(self) -> FakeRadio:
        return self.radios[ADDR]


def ack_upto(seq: int) -> bytes:
    """A version-2 ack of 0..seq, standing in for the core's payload."""
    return ack.encode([(0, seq)], bytes(32), bytes(31) + b"\x44", aux=bytes(32))


async def acked(wire: bytes, address: str) -> bytes | None:
    return ack_upto(reading.seq_of(wire))


def make_link(
    air: FakeAir,
    on_reading: Callable[[bytes, str], Awaitable[bytes | None]] = acked,
    last_committed: Callable[[str], int] = lambda box: -1,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    **timing: float,
) -> BoxLink:
    t = LinkTiming(**(FAST | timing))
    return BoxLink(ADDR, BOX, air, on_reading, last_committed, timing=t, sleep=sleep, rng=rng)


class Delays:
    """A BoxLink `sleep` that records each backoff delay and the state it was taken in."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.link: BoxLink | None = None

    async def __call__(self, delay: float) -> None:
        assert self.link is not None and self.link.state is LinkState.BACKING_OFF
        self.delays.append(delay)
        await asyncio.sleep(0)


async def test_ten_failures_of_every_kind_then_success_backoff_grows_bounded() -> None:
    air, delays = FakeAir(), Delays()
    air.radio.fail = [
        BleakError("[org.bluez.Error.Failed] Software caused connection abort"),
        HANG,  # a connect that never returns: only the link's own timeout ends it
        OSError("hci0: No such device"),
        TimeoutError(),
        BleakError("Device with address C0:FF:EE:00:00:01 was not found"),
        HANG,
        RuntimeError("bleak bug"),
        BleakError("failed to discover services, device disconnected"),
        HANG,
        BleakError("[org.bluez.Error.InProgress] Operation already in progress"),
    ]
    link = make_link(
        air,
        sleep=delays,
        rng=random.Random(7),
        connect_timeout=0.01,
        op_timeout=0.05,
        backoff_min=1,
        backoff_max=60,
    )
    delays.link = link
    link.start()
    try:
        await until(lambda: link.state is LinkState.CONNECTED)
        assert link.stats.connects == 1 and len(air.radio.transports) == 11
        ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]  # doubling from 1 s, capped at 60 s
        assert len(delays.delays) == 10
        for delay, ceiling in zip(delays.delays, ceilings, strict=True):
            assert ceiling * 0.5 <= delay <= ceiling  # jitter 0.5: drawn from [d/2, d]
        assert len(set(delays.delays)) == 10  # jittered, not in lockstep
        assert (
            link.stats.last_error
            == "BleakError: [org.bluez.Error.InProgress] Operation already in progress"
        )
        await until(lambda: len(air.radio.writes()) == 1)
        assert air.radio.writes() == [(ble.OP_REPLAY, 0)]
    finally:
        await link.stop()
    assert link.state is LinkState.STOPPED


async def test_backoff_resets_after_a_stable_connection_only() -> None:
    air, delays = FakeAir(), Delays()
    air.radio.fail = [BleakError("refused"), BleakError("refused")]
    link = make_link(air, sleep=delays, backoff_min=1, backoff_max=60, jitter=0, stable_after=0.5)
    delays.link = link
    link.start()
    try:
        await until(lambda: link.state is LinkState.CONNECTED)
        await asyncio.sleep(0.6)  # lasted past stable_after
        air.radio.link.drop()
        await until(lambda: link.stats.connects == 2 and link.state is LinkState.CONNECTED)
        air.radio.link.drop()  # a short connection: the backoff keeps growing
        await until(lambda: len(delays.delays) == 4)
        assert delays.delays == [1, 2, 1, 2]
        assert (
            link.stats.disconnects == 2
            and link.stats.last_error == "ConnectionError: box disconnected"
        )
    finally:
        await link.stop()


@pytest.mark.parametrize(
    ("committed", "from_seq"), [(-1, 0), (0, 1), (41, 42), (2**32 - 1, 2**32 - 1)]
)
async def test_replay_asks_for_what_follows_the_highest_committed_seq(
    committed: int, from_seq: int
) -> None:
    air, asked = FakeAir(), []

    def last_committed(box: str) -> int:
        asked.append(box)
        return committed

    link = make_link(air, last_committed=last_committed)
    link.start()
    try:
        await until(lambda: len(air.radio.log) == 3)
        # Subscribed before REPLAY, or the first replayed readings would be lost.
        assert air.radio.log == [
            ("notify", b""),
            ("read", b""),
            ("write", ble.encode_replay(from_seq)),
        ]
        assert asked == [BOX] and link.box_status == air.radio.status
    finally:
        await link.stop()


async def test_acks_follow_commits_and_are_coalesced() -> None:
    air = FakeAir()
    commits: dict[int, asyncio.Future[bytes | None]] = {}
    calls: list[tuple[bytes, str]] = []

    async def on_reading(data: bytes, address: str) -> bytes | None:
        calls.append((data, address))
        commits[reading.seq_of(data)] = asyncio.get_running_loop().create_future()
        return await commits[reading.seq_of(data)]

    link = make_link(air, on_reading, ack_interval=0.3)
    link.start()
    try:
        await until(
            lambda: link.state is LinkState.CONNECTED and air.radio.link.callback is not None
        )
        for seq in range(1, 6):
            air.radio.link.notify(wire(seq))
        await until(lambda: len(commits) == 5)
        assert calls == [(wire(seq), ADDR) for seq in range(1, 6)]  # in arrival order
        await asyncio.sleep(0.05)
        assert air.radio.acks() == []  # nothing is acknowledged before its commit
        for seq in (1, 2, 3):
            commits[seq].set_result(ack_upto(seq))
        await until(lambda: air.radio.acks() == [3])  # one write for three commits
        commits[4].set_result(ack_upto(4))
        commits[5].set_result(ack_upto(5))
        await until(lambda: len(air.radio.acks()) == 2)
        first, second = air.radio.write_times[-2:]
        assert second - first >= 0.29  # waited out the ack interval (0.3 s)
        assert air.radio.acks() == [3, 5]
        air.radio.link.notify(wire(4))  # a duplicate: the core answers with its current
        await until(lambda: len(calls) == 6)  # state, the payload already written: not again
        commits[4].set_result(ack_upto(5))
        # A box on firmware 0.1 gets version-1 acks: passed through as they come.
        v1 = ack.encode_v1(6, bytes(32), bytes(31) + b"\x01")
        air.radio.link.notify(wire(6))
        await until(lambda: len(calls) == 7)
        commits[6].set_result(v1)
        await until(lambda: air.radio.log[-1] == ("write", bytes([ble.OP_ACK]) + v1))
        assert link.stats.acks == 3 and link.stats.readings == 7
    finally:
        await link.stop()


async def test_a_link_dropped_mid_stream_reconnects_and_sends_the_pending_ack() -> None:
    air, committed = FakeAir(), {BOX: -1}
    commit = asyncio.Event()

    async def on_reading(data: bytes, address: str) -> bytes | None:
        await commit.wait()
        committed[BOX] = reading.seq_of(data)
        return ack_upto(committed[BOX])

    link = make_link(air, on_reading, last_committed=committed.__getitem__)
    link.start()
    try:
        await until(
            lambda: link.state is LinkState.CONNECTED and air.radio.link.callback is not None
        )
        air.radio.link.notify(wire(1))
        first = air.radio.link
        first.drop()  # while reading 1 is still being committed
        await until(lambda: link.stats.connects == 2 and len(air.radio.link.log) == 3)
        assert air.radio.writes(air.radio.link) == [(ble.OP_REPLAY, 0)]  # 1 not committed yet
        commit.set()  # the commit lands while connected again: acked on this connection
        await until(lambda: air.radio.acks() == [1])
        assert air.radio.writes(first) == [(ble.OP_REPLAY, 0)]
        air.radio.link.drop()
        await until(lambda: link.stats.connects == 3 and len(air.radio.link.log) == 4)
        # A new connection asks from 2 and repeats the best ack, in case the last was lost.
        assert air.radio.writes(air.radio.link) == [(ble.OP_REPLAY, 2), (ble.OP_ACK, ack_upto(1))]
        assert link.stats.disconnects == 2
    finally:
        await link.stop()


async def test_core_failures_and_malformed_notifications_never_kill_the_link() -> None:
    air, calls = FakeAir(), []

    async def on_reading(data: bytes, address: str) -> bytes | None:
        calls.append(data)
        if data == b"boom":
            raise RuntimeError("spool: disk I/O error")
        if data == b"bad ack":
            return b"\x00\x01"
        if len(data) != reading.SIZE:
            return None  # the core rejects and counts it
        return ack_upto(reading.seq_of(data))

    link = make_link(air, on_reading)
    link.start()
    try:
        await until(
            lambda: link.state is LinkState.CONNECTED and air.radio.link.callback is not None
        )
        air.radio.link.notify(b"\x01\x02")  # wrong length: still the core's to judge
        air.radio.link.notify(wire(7)[:-1])
        await until(lambda: len(calls) == 2)
        assert calls == [b"\x01\x02", wire(7)[:-1]]
        await asyncio.sleep(0.1)
        assert link.state is LinkState.CONNECTED and link.stats.connects == 1
        air.radio.link.notify(b"boom")  # the session ends; REPLAY will ask again
        await until(lambda: link.stats.connects == 2 and link.state is LinkState.CONNECTED)
        assert link.stats.last_error == "RuntimeError: spool: disk I/O error"
        await until(lambda: air.radio.link.callback is not None)
        air.radio.link.notify(b"bad ack")
        await until(lambda: link.stats.connects == 3 and link.state is LinkState.CONNECTED)
        assert link.stats.last_error == (
            "ValueError: ack payload: got 2 bytes, want 82..242 (version 2) or 4/68 (version 1)"
        )
        await until(lambda: air.radio.link.callback is not None)
        air.radio.link.notify(wire(9))
        await until(lambda: air.radio.acks() == [9])
        assert [op for op, _ in air.radio.writes()] == [ble.OP_REPLAY] * 3 + [ble.OP_ACK]
    finally:
        await link.stop()


async def test_a_failed_ack_write_ends_the_session_and_the_ack_is_written_again() -> None:
    air = FakeAir()
    link = make_link(air)
    link.start()
    try:
        await until(
            lambda: link.state is LinkState.CONNECTED and air.radio.link.callback is not None
        )
        air.radio.write_error = BleakError("[org.bluez.Error.Failed] Not connected")
        air.radio.link.notify(wire(3))
        await until(lambda: air.radio.acks() == [3])  # on the next connection
        assert link.stats.connects == 2 and "Not connected" in (link.stats.last_error or "")
    finally:
        await link.stop()


async def test_a_disconnect_nobody_reported_is_noticed() -> None:
    air = FakeAir()
    link = make_link(air, liveness=0.05)
    link.start()
    try:
        await until(lambda: link.state is LinkState.CONNECTED)
        air.radio.link._up = False  # no disconnected event: BlueZ's signal got lost
        await until(lambda: link.stats.connects == 2)
        assert link.stats.disconnects == 1
    finally:
        await link.stop()


@pytest.mark.parametrize(
    "state", [LinkState.CONNECTING, LinkState.CONNECTED, LinkState.BACKING_OFF]
)
async def test_stop_is_clean_in_every_state(state: LinkState) -> None:
    air, pending = FakeAir(), asyncio.Event()

    async def on_reading(data: bytes, address: str) -> bytes | None:
        await pending.wait()  # a commit that never comes
        return None

    scripts: dict[LinkState, list[BaseException | str]] = {
        LinkState.CONNECTING: [HANG],
        LinkState.CONNECTED: [],
        LinkState.BACKING_OFF: [BleakError("refused")],
    }
    air.radio.fail = scripts[state]
    link = make_link(air, on_reading, connect_timeout=30, backoff_min=30, backoff_max=30)
    task = link.start()
    await until(lambda: link.state is state)
    if state is LinkState.CONNECTED:
        await until(lambda: air.radio.link.callback is not None)
        air.radio.link.notify(wire(1))
        await until(lambda: len(link._in_flight) == 1)
    await link.stop()
    assert task.done() and task.cancelled()
    assert link.state is LinkState.STOPPED and not link._in_flight
    assert air.radio.log[-1] == ("disconnect", b"")  # every attempt ends disconnected
    await link.stop()  # idempotent


async def test_ingest_runs_a_link_per_box_and_reports_status() -> None:
    other = "C0:FF:EE:00:00:02"
    air = FakeAir(ADDR, other)
    air.radios[other].fail = [BleakError("refused")] * 1000
    ingest = BleIngest(
        {ADDR: BOX, other: "box-2"},
        air,
        acked,
        lambda box: -1,
        timing=LinkTiming(**FAST),
    )
    ingest.start()
    try:
        await until(lambda: ingest.links[ADDR].state is LinkState.CONNECTED)
        await until(lambda: air.radio.link.callback is not None)
        air.radio.link.notify(wire(1))
        await until(lambda: air.radio.acks() == [1])
        await until(lambda: len(air.radios[other].transports) >= 3)
        ok, failing = ingest.status()
        assert set(ok) >= {"address", "state", "connects", "disconnects", "last_error"}
        assert set(ok) >= {"readings", "last_seen"}
        assert ok["address"] == ADDR and ok["box"] == BOX and ok["state"] == "connected"
        assert (ok["connects"], ok["disconnects"], ok["readings"], ok["acks"]) == (1, 0, 1, 1)
        assert ok["last_error"] is None
        assert ok["last_seen"] is not None and abs(ok["last_seen"] - time.time()) < 5
        assert failing["address"] == other and failing["connects"] == 0
        assert failing["state"] in ("connecting", "backing_off")
        assert failing["last_error"] == "BleakError: refused" and failing["last_seen"] is None
    finally:
        await ingest.stop()
    assert [s["state"] for s in ingest.status()] == ["stopped", "stopped"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backoff_min": 2, "backoff_max": 1}, "backoff_max: got 1, want >= 2"),
        ({"jitter": 1.0}, "jitter: got 1.0, want 0 <= jitter < 1"),
        ({"ack_interval": 0}, "ack_interval: got 0, want > 0"),
    ],
)
def test_link_timing_rejects_nonsense(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LinkTiming(**options)


# -- part 2: bleak against BlueZ mocked on a private D-Bus ---------------------------------

TEMPLATE = Path(__file__).with_name("bluez_mock.py")
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""
SECRET = bytes(31) + b"\x05"
T0 = 1793620800


def python_with_dbusmock() -> str | None:
    """A Python that can run dbusmock (with dbus-python): this one, or Debian's."""
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3", shutil.which("python3")]):
        if python and os.path.exists(python):
            probe = subprocess.run([python, "-c", "import dbusmock, dbus, gi"], capture_output=True)
            if probe.returncode == 0:
                return python
    return None


class MockBlueZ:
    """The test's handle on bluez_mock.py (its org.bluez.Mock methods on "/")."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def call(self, member: str, signature: str = "", *body: Any) -> list[Any]:
        reply = await self.bus.call(
            Message(
                destination="org.bluez",
                path="/",
                interface="org.bluez.Mock",
                member=member,
                signature=signature,
                body=list(body),
            )
        )
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            pytest.fail(f"mock BlueZ {member}: {reply.error_name}: {reply.body}")
        return reply.body

    async def add_box(self, address: str, status: bytes = b'{"id":"mock"}') -> str:
        (path,) = await self.call("AddBox", "sssay", "hci0", address, "PS-0000ffee", status)
        return str(path)

    async def store(self, path: str, data: bytes) -> None:
        await self.call("StoreReading", "oay", path, data)

    async def backlog(self, path: str) -> list[bytes]:
        return [bytes(w) for w in (await self.call("Backlog", "o", path))[0]]

    async def commands(self, path: str) -> list[tuple[int, Any]]:
        writes = (await self.call("ControlWrites", "o", path))[0]
        return [ble.decode_command(bytes(w)) for w in writes]

    async def counts(self, path: str) -> dict[str, int]:
        return dict((await self.call("Counts", "o", path))[0])


@pytest.fixture
async def bluez(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MockBlueZ]:
    """BlueZ mocked by python-dbusmock on a private system bus, which bleak is pointed at."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        need_or_skip("dbus-daemon not installed (Debian: apt-get install dbus-daemon)")
    python = python_with_dbusmock()
    if python is None:
        need_or_skip("python-dbusmock not found (Debian: apt-get install python3-dbusmock)")
    assert daemon is not None and python is not None  # need_or_skip() raised otherwise
    (tmp_path / "bus.conf").write_text(BUS_CONFIG)
    log = (tmp_path / "bluez-mock.log").open("w")
    bus_daemon = subprocess.Popen(
        [daemon, f"--config-file={tmp_path / 'bus.conf'}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert bus_daemon.stdout is not None
    address = bus_daemon.stdout.readline().decode().strip()
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address, PYTHONPATH=str(REPO))
    mock = subprocess.Popen(
        [python, "-m", "dbusmock", "--system", "--template", str(TEMPLATE)],
        env=env,
        stdout=log,
        stderr=log,
    )
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
    bus: MessageBus | None = None
    try:
        assert address.startswith("unix:"), f"dbus-daemon printed {address!r}"
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()

        async def mock_is_up() -> bool:
            assert mock.poll() is None, (tmp_path / "bluez-mock.log").read_text()
            assert bus is not None
            reply = await bus.call(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="NameHasOwner",
                    signature="s",
                    body=["org.bluez"],
                )
            )
            return reply is not None and reply.body == [True]

        await until(mock_is_up, timeout=15)
        yield MockBlueZ(bus)
    finally:
        if bus is not None:
            bus.disconnect()
        for process in (mock, bus_daemon):
            process.terminate()
            process.wait(timeout=10)
        bus_daemon.stdout.close()
        log.close()


def bluez_timing(**changes: float) -> LinkTiming:
    return LinkTiming(
        **(
            {
                "connect_timeout": 5,
                "op_timeout": 5,
                "backoff_min": 0.05,
                "backoff_max": 0.2,
                "ack_interval": 0.05,
                "liveness": 0.5,
            }
            | changes
        )
    )


class Core:
    """A stand-in gateway core: commits everything it is handed, at once."""

    def __init__(self, committed: int = -1) -> None:
        self.committed = committed
        self.got: list[bytes] = []

    async def on_reading(self, data: bytes, address: str) -> bytes | None:
        self.got.append(data)
        self.committed = max(self.committed, reading.seq_of(data))
        return ack_upto(self.committed)

    def last_committed(self, box: str) -> int:
        return self.committed


async def test_bleak_collects_the_backlog_and_acks_through_bluez(bluez: MockBlueZ) -> None:
    path = await bluez.add_box(ADDR, b'{"id":"mock","seq":7}')
    signed = [reading.sign(SECRET, seq, T0 + seq, 450, 5000, aux=bytes(32)) for seq in (5, 6, 7)]
    for data in signed:
        await bluez.store(path, data)
    core, transports = Core(committed=5), []

    def transport() -> BleakTransport:
        transports.append(BleakTransport())
        return transports[-1]

    certificate = cert.encode(bytes(31) + b"\x45", bytes(32), "site-1", 0, 2**32 - 1)
    statuses: list[tuple[str, bytes]] = []
    ingest = BleIngest(
        {ADDR: BOX},
        transport,
        core.on_reading,
        core.last_committed,
        timing=bluez_timing(),
        certificate=certificate,
        on_status=lambda box, status: statuses.append((box, status)),
    )
    link = ingest.links[ADDR]
    ingest.start()
    try:
        await until(lambda: core.got == signed[1:], timeout=15)  # replayed from 6, in order
        assert link.box_status == b'{"id":"mock","seq":7}'
        assert transports[0].mtu == 247
        assert statuses == [(BOX, b'{"id":"mock","seq":7}')]  # the core learns the firmware
        await until(lambda: link.stats.acks >= 1 and link._written == ack_upto(7))
        await until(lambda: _empty(bluez.backlog(path)))  # the box forgot what was acked
        live = reading.sign(SECRET, 8, T0 + 8, 455, 5000, aux=bytes(32))
        await bluez.store(path, live)  # stored while connected: notified at once
        await until(lambda: core.got[-1:] == [live])
        await until(lambda: _empty(bluez.backlog(path)))
        commands = await bluez.commands(path)
        assert commands[0] == (ble.OP_REPLAY, 6)
        assert commands[1] == (ble.OP_CERT, certificate)  # once, before the first ACK
        acked_seqs = [ack.parse(arg)[1][-1][1] for op, arg in commands[2:] if op == ble.OP_ACK]
        assert len(acked_seqs) == len(commands) - 2 and acked_seqs == sorted(acked_seqs)
        assert acked_seqs[-1] == 8
        assert link.state is LinkState.CONNECTED and link.stats.readings == 3
    finally:
        await ingest.stop()
    assert await bluez.counts(path) == {
        "connects": 1,
        "disconnects": 1,  # stop() disconnected through BlueZ
        "drops": 0,
        "notify_starts": 1,
    }


async def _empty(backlog: Awaitable[list[bytes]]) -> bool:
    return await backlog == []


async def test_bleak_link_recovers_from_a_drop_and_refused_connects(bluez: MockBlueZ) -> None:
    path = await bluez.add_box(ADDR)
    core = Core()
    ingest = BleIngest(
        {ADDR: BOX}, BleakTransport, core.on_reading, core.last_committed, timing=bluez_timing()
    )
    link = ingest.links[ADDR]
    ingest.start()
    try:
        await until(lambda: link.state is LinkState.CONNECTED, timeout=15)
        await bluez.call(
            "FailConnects",
            "ouss",
            path,
            2,
            "org.bluez.Error.Failed",
            "Software caused connection abort",
        )
        await bluez.call("DropLink", "o", path)
        await until(lambda: link.stats.disconnects == 1)
        missed = reading.sign(SECRET, 3, T0, 400, 5000, aux=bytes(32))
        await bluez.store(path, missed)  # while the link is down: not notified
        await until(lambda: core.got == [missed], timeout=15)  # replayed after reconnecting
        assert link.stats.connects == 2 and link.state is LinkState.CONNECTED
        assert "org.bluez.Error.Failed" in (link.stats.last_error or "")
        counts = await bluez.counts(path)
        assert counts["connects"] == 2 and counts["drops"] == 1
        await until(lambda: _empty(bluez.backlog(path)))
    finally:
        await ingest.stop()


async def test_a_box_out_of_range_is_retried_until_it_appears(bluez: MockBlueZ) -> None:
    near, far = "C0:FF:EE:00:00:0A", "C0:FF:EE:00:00:0B"
    near_path = await bluez.add_box(near)
    core = Core()
    ingest = BleIngest(
        {near: "near", far: "far"},
        BleakTransport,
        core.on_reading,
        core.last_committed,
        timing=bluez_timing(connect_timeout=0.3),
    )
    ingest.start()
    try:
        await until(lambda: ingest.links[near].state is LinkState.CONNECTED, timeout=15)
        await until(lambda: ingest.links[far].stats.last_error is not None, timeout=15)
        assert "not advertising" in (ingest.links[far].stats.last_error or "")
        assert ingest.links[far].stats.connects == 0
        far_path = await bluez.add_box(far)  # the box comes into range
        await until(lambda: ingest.links[far].state is LinkState.CONNECTED, timeout=15)
        replay = [(ble.OP_REPLAY, 0)]
        for path in (near_path, far_path):
            # CONNECTED comes before the link subscribes and writes REPLAY: wait for the write.
            await until(lambda p=path: _commands_start(bluez.commands(p), replay), timeout=15)
    finally:
        await ingest.stop()


async def test_a_box_bluez_still_holds_connected_is_taken_over(bluez: MockBlueZ) -> None:
    path = await bluez.add_box(ADDR)
    await bluez.call("HoldConnected", "o", path)  # left by a gateway process that died
    core = Core()
    ingest = BleIngest(
        {ADDR: BOX},
        BleakTransport,
        core.on_reading,
        core.last_committed,
        timing=bluez_timing(connect_timeout=0.5),
    )
    link = ingest.links[ADDR]
    ingest.start()
    try:
        # A connected box does not advertise: only the takeover reaches it, at once.
        await until(lambda: link.state is LinkState.CONNECTED, timeout=15)
        assert link.stats.connects == 1 and link.stats.last_error is None
        await until(lambda: _commands_start(bluez.commands(path), [(ble.OP_REPLAY, 0)]))
        data = reading.sign(SECRET, 0, T0, 400, 5000, aux=bytes(32))
        await bluez.store(path, data)
        await until(lambda: core.got == [data])
    finally:
        await ingest.stop()
    counts = await bluez.counts(path)
    assert counts["connects"] == 1 and counts["notify_starts"] == 1  # no second Connect


async def _commands_start(commands: Awaitable[list[tuple[int, Any]]], head: list[Any]) -> bool:
    return (await commands)[: len(head)] == head
