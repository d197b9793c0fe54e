"""The gateway's Bluetooth LE ingest: one BoxLink per registered box collects its signed
readings over GATT (device/ble.py is the box's side and the shared command codec) and
acknowledges them once the gateway core has committed them.

    connect -> subscribe(reading) -> read(status) -> write(REPLAY from last committed + 1)
      -> write(CERT: the owner's certificate of our key, once per connection)
      -> each notification -> on_reading() -> ack payload -> write(ACK), at most one per 0.5 s
      -> link lost or any error -> BACKING_OFF (1 s doubling to 60 s, jittered) -> connect

A link must recover by itself: BLE links drop whenever a box moves or a door closes, and
BlueZ leaves stale state behind a failed attempt. So every attempt gets a fresh transport
(a new BleakClient), every GATT step has a timeout, every session ends with a disconnect,
and every failure of a session ends in BACKING_OFF, then CONNECTING again; only stop()
ends a link. The radio sits behind BleTransport, a thin protocol that BleakTransport
implements with bleak (BlueZ over D-Bus on the Raspberry Pi) and tests replace.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from bleak import BleakAdapter, BleakClient, BleakScanner
from bleak.args.bluez import BlueZAdapterArgs, BlueZClientArgs, BlueZScannerArgs
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError

from device import ack, ble, reading

log = logging.getLogger("pharmasync.gateway.ble")

OnReading = Callable[[bytes, str], Awaitable[bytes | None]]  # (wire, address) -> ack payload
LastCommitted = Callable[[str], int]  # box -> highest committed seq, -1 if none
OnStatus = Callable[[str, bytes], None]  # (box, status JSON read at connection)
MIN_MTU = reading.SIZE + 3  # a whole reading in one notification (3 bytes of ATT header)


class BleTransport(Protocol):
    """One connection attempt to one box: the thinnest boundary around the radio."""

    disconnected: asyncio.Event  # set when the link drops, whoever dropped it

    @property
    def is_connected(self) -> bool: ...
    async def connect(self, address: str, timeout: float) -> None: ...
    async def start_notify(self, uuid: str, callback: Callable[[bytes], None]) -> None: ...
    async def write(self, uuid: str, data: bytes) -> None: ...
    async def read(self, uuid: str) -> bytes: ...
    async def disconnect(self) -> None: ...


_scan_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _scan_lock() -> asyncio.Lock:
    # BlueZ runs one discovery per D-Bus client and answers a second StartDiscovery with
    # org.bluez.Error.InProgress; bleak shares one client per event loop, so links scan in turn.
    return _scan_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


class BleakTransport:
    """BleTransport over bleak.BleakClient. Use a new one for each connection attempt.

    ATT MTU: bleak offers no way to ask for one on BlueZ, WinRT or CoreBluetooth: BlueZ
    exchanges it when it connects (it offers up to 517; the box's aioble asks for 247) and
    bleak's Android backends request 517 themselves. `mtu` is what BlueZ >= 5.62 reports
    (older BlueZ reports nothing, which reads as 23); below MIN_MTU a reading cannot arrive
    whole, so connect() logs a warning.
    """

    def __init__(self, adapter: str | None = None) -> None:
        self.adapter = adapter  # e.g. "hci0"; None: BlueZ's default adapter
        self.disconnected = asyncio.Event()
        self.mtu: int | None = None
        self._client: BleakClient | None = None

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def connect(self, address: str, timeout: float) -> None:
        """Find `address` (scanning for up to `timeout` s), connect, discover the service.

        Raises BleakDeviceNotFoundError if it is not advertising, BleakError (BleakDBusError
        from BlueZ) or TimeoutError if connecting fails.
        """
        found = await self._find(address, timeout)
        if found is None:
            raise BleakDeviceNotFoundError(address, f"{address}: not advertising ({timeout:g} s)")
        adapter: BlueZClientArgs = {"adapter": self.adapter} if self.adapter else {}
        self._client = BleakClient(
            found,
            lambda _: self.disconnected.set(),
            [ble.SERVICE_UUID],
            timeout=timeout,
            bluez=adapter,
        )
        await self._client.connect()
        char = self._client.services.get_characteristic(ble.READING_UUID)
        if char is None:
            raise BleakError(f"{address}: no reading characteristic {ble.READING_UUID}")
        self.mtu = char.max_write_without_response_size + 3
        if self.mtu < MIN_MTU:
            log.warning("BLE %s: ATT MTU %d, want >= %d", address, self.mtu, MIN_MTU)

    async def _find(self, address: str, timeout: float) -> BLEDevice | None:
        # A box that BlueZ still holds connected (say our previous process died) does not
        # advertise, so no scan would ever find it again: take that connection over first.
        held: BlueZAdapterArgs = {"adapter": self.adapter} if self.adapter else {}
        with suppress(NotImplementedError):  # on platforms that cannot list them
            adapter = await BleakAdapter.get(bluez=held)
            for device in await adapter.get_connected_devices([ble.SERVICE_UUID]):
                if device.address.upper() == address.upper():
                    return device
        scan: BlueZScannerArgs = {"adapter": self.adapter} if self.adapter else {}
        async with _scan_lock():
            return await BleakScanner.find_device_by_address(address, timeout, bluez=scan)

    def _connected(self) -> BleakClient:
        if self._client is None or not self._client.is_connected:
            raise BleakError("not connected")
        return self._client

    async def start_notify(self, uuid: str, callback: Callable[[bytes], None]) -> None:
        await self._connected().start_notify(uuid, lambda _, data: callback(bytes(data)))

    async def write(self, uuid: str, data: bytes) -> None:
        await self._connected().write_gatt_char(uuid, data, response=True)

    async def read(self, uuid: str) -> bytes:
        return bytes(await self._connected().read_gatt_char(uuid))

    async def disconnect(self) -> None:
        if self._client is not None:
            await self._client.disconnect()


class LinkState(enum.Enum):
    IDLE = "idle"  # created; run() has not started
    CONNECTING = "connecting"  # scanning for the box, connecting, discovering its service
    CONNECTED = "connected"  # connected: subscribing, asking for the backlog, then collecting
    BACKING_OFF = "backing_off"  # the last attempt or session ended; waiting to connect again
    STOPPED = "stopped"  # stop() was called or run() was cancelled: final


@dataclass(frozen=True, slots=True)
class LinkTiming:
    """How a BoxLink paces itself, in seconds."""

    connect_timeout: float = 20.0  # the scan, and again the connection with discovery
    op_timeout: float = 10.0  # each subscribe, read and write
    backoff_min: float = 1.0  # first delay after a failure; doubles with each failure
    backoff_max: float = 60.0
    jitter: float = 0.5  # a delay is drawn from [d * (1 - jitter), d]: boxes do not sync up
    stable_after: float = 30.0  # a connection that lasted this long resets the backoff
    ack_interval: float = 0.5  # at most one ACK write per interval, the newest payload
    liveness: float = 5.0  # also poll is_connected this often, should a disconnect go unseen

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "op_timeout", "backoff_min", "ack_interval", "liveness"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: got {getattr(self, name)}, want > 0")
        if self.backoff_max < self.backoff_min:
            raise ValueError(f"backoff_max: got {self.backoff_max}, want >= {self.backoff_min}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter: got {self.jitter}, want 0 <= jitter < 1")


@dataclass
class LinkStats:
    """What status() reports of a link besides its address, box and state."""

    connects: int = 0  # sessions that got connected
    disconnects: int = 0  # connected sessions that ended
    last_error: str | None = None  # why the last attempt or session ended
    readings: int = 0  # notifications received, malformed ones included
    last_seen: float | None = None  # Unix time of the last notification
    acks: int = 0  # ACK commands written
    backoff_s: float = 0.0  # the last backoff delay


class BoxLink:
    """Keeps one box's BLE link up and its readings flowing to the core (module docstring).

    on_reading(wire, address) is called once per notification, in arrival order, malformed
    ones included; calls overlap (each may await its commit), so the core must do its
    order-sensitive work before its first await, as Gateway.receive() does. It returns the
    ack payload (device/ack.py) once the reading is committed, or None if it is rejected.
    An exception from it ends the session: after the backoff, REPLAY asks the box again.
    """

    def __init__(
        self,
        address: str,
        box: str,
        transport_factory: Callable[[], BleTransport],
        on_reading: OnReading,
        last_committed: LastCommitted,
        *,
        timing: LinkTiming | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        certificate: bytes | None = None,
        on_status: OnStatus | None = None,
    ) -> None:
        self.address = address
        self.certificate = certificate  # written once per connection (device/cert.py)
        self._on_status = on_status  # tells the core which ack version the box speaks
        self.box = box  # what last_committed() is asked about: a box key or label
        self.timing = timing or LinkTiming()
        self.state = LinkState.IDLE
        self.stats = LinkStats()
        self.box_status = b""  # the status JSON the box last reported
        self._transport_factory = transport_factory
        self._on_reading = on_reading
        self._last_committed = last_committed
        self._sleep = sleep  # awaited with each backoff delay
        self._rng = rng or random.Random()
        self._failures = 0  # since the last stable connection: the backoff exponent
        self._best_ack: bytes | None = None  # the newest ack payload from the core
        self._written: bytes | None = None  # the last ACK written in this session
        self._ack_due = asyncio.Event()
        self._fault: asyncio.Future[None] | None = None  # set by a failed on_reading
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        """Run the link in a new task; stop() ends it."""
        self._task = asyncio.create_task(self.run(), name=f"ble {self.address}")
        return self._task

    async def stop(self) -> None:
        """Cancel the link and its pending on_reading calls, and wait for them; idempotent."""
        for task in [self._task, *self._in_flight]:
            if task is not None and not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self.state = LinkState.STOPPED

    async def run(self) -> None:
        """Connect, collect and reconnect until cancelled; never returns otherwise."""
        if self._task is None or self._task.done():
            self._task = asyncio.current_task()
        try:
            while True:
                self.state = LinkState.CONNECTING
                transport = self._transport_factory()
                started: float | None = None
                try:
                    started = await self._connect(transport)
                    await self._collect(transport)
                except Exception as e:  # every failure ends in backing off, never a dead task
                    self.stats.last_error = f"{type(e).__name__}: {e}"
                    log.warning("BLE %s: %s", self.address, self.stats.last_error)
                finally:
                    await self._close(transport)
                if started is not None:
                    self.stats.disconnects += 1
                    if time.monotonic() - started >= self.timing.stable_after:
                        self._failures = 0
                self.state = LinkState.BACKING_OFF
                await self._sleep(self._next_backoff())
        finally:
            self.state = LinkState.STOPPED

    def _next_backoff(self) -> float:
        t = self.timing
        ceiling = min(t.backoff_max, t.backoff_min * 2 ** min(self._failures, 32))
        self._failures += 1
        self.stats.backoff_s = ceiling * (1 - t.jitter * self._rng.random())
        return self.stats.backoff_s

    async def _connect(self, transport: BleTransport) -> float:
        t = self.timing
        # bleak spends up to the timeout scanning (once other links' scans are done), then up
        # to it again connecting; past that, whatever hangs, this attempt has failed.
        async with asyncio.timeout(2 * t.connect_timeout + t.op_timeout):
            await transport.connect(self.address, t.connect_timeout)
        self.stats.connects += 1
        self.state = LinkState.CONNECTED
        log.info("BLE %s: connected", self.address)
        return time.monotonic()

    async def _collect(self, transport: BleTransport) -> None:
        loop = asyncio.get_running_loop()
        self._fault = fault = loop.create_future()  # failed by a failing on_reading call
        self._written = None  # the box may have missed our last ACK: send the best again
        self._ack_due.set()
        tasks: list[asyncio.Task[Any]] = [loop.create_task(transport.disconnected.wait())]
        try:
            async with asyncio.timeout(self.timing.op_timeout):
                # Subscribe before REPLAY, or the first replayed readings would be missed.
                await transport.start_notify(ble.READING_UUID, self._on_notify)
                self.box_status = await transport.read(ble.STATUS_UUID)
                if self._on_status is not None:
                    self._on_status(self.box, self.box_status)
                from_seq = min(max(self._last_committed(self.box) + 1, 0), 0xFFFFFFFF)
                await transport.write(ble.CONTROL_UUID, ble.encode_replay(from_seq))
                if self.certificate is not None:  # before the first ACK, once per session
                    await transport.write(ble.CONTROL_UUID, ble.encode_cert(self.certificate))
            tasks.append(loop.create_task(self._write_acks(transport)))
            watched: set[asyncio.Future[Any]] = {*tasks, fault}
            while transport.is_connected and not transport.disconnected.is_set():
                await asyncio.wait(
                    watched, timeout=self.timing.liveness, return_when=asyncio.FIRST_COMPLETED
                )
                for done in (tasks[1], fault):
                    if done.done():
                        done.result()  # raises what ended the writer or an on_reading call
            raise ConnectionError("box disconnected")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if fault.done():
                fault.exception()  # retrieved: raised above, or moot once the session is over
            self._fault = None

    def _on_notify(self, data: bytes) -> None:
        # Called by the transport on the event loop: count, hand over, never raise. Tasks are
        # started in arrival order; none is dropped, for the core might ack a later reading.
        self.stats.readings += 1
        self.stats.last_seen = time.time()
        task = asyncio.get_running_loop().create_task(self._deliver(bytes(data)))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, wire: bytes) -> None:
        try:
            payload = await self._on_reading(wire, self.address)
            if payload is None:
                return  # rejected by the core, which counts it
            n = len(payload)
            if not (ack.MIN_SIZE <= n <= ack.MAX_SIZE or n in (ack.V1_SIZE, ack.V1_SIGNED_SIZE)):
                raise ValueError(
                    f"ack payload: got {n} bytes, want {ack.MIN_SIZE}..{ack.MAX_SIZE} "
                    f"(version 2) or {ack.V1_SIZE}/{ack.V1_SIGNED_SIZE} (version 1)"
                )
        except Exception as e:
            log.exception("BLE %s: on_reading failed", self.address)
            if self._fault is not None and not self._fault.done():
                self._fault.set_exception(e)
            return
        # Payloads resolve in commit order, each the box's whole acknowledgement state then:
        # the newest one supersedes the rest.
        if payload != self._best_ack:
            self._best_ack = payload
            self._ack_due.set()

    async def _write_acks(self, transport: BleTransport) -> None:
        # Coalesce: after each write, acks that arrive within ack_interval become one write.
        while True:
            await self._ack_due.wait()
            self._ack_due.clear()
            payload = self._best_ack
            if payload is None or payload == self._written:
                continue
            async with asyncio.timeout(self.timing.op_timeout):
                await transport.write(ble.CONTROL_UUID, ble.encode_ack(payload))
            self._written = payload
            self.stats.acks += 1
            await asyncio.sleep(self.timing.ack_interval)

    async def _close(self, transport: BleTransport) -> None:
        # Always disconnect: BlueZ keeps a half-open link otherwise and the next connect fails.
        try:
            async with asyncio.timeout(self.timing.op_timeout):
                await transport.disconnect()
        except Exception as e:
            log.debug("BLE %s: disconnect: %r", self.address, e)

    def status(self) -> dict[str, Any]:
        """Return address, box, state and the LinkStats fields."""
        return {"address": self.address, "box": self.box, "state": self.state.value} | asdict(
            self.stats
        )


class BleIngest:
    """One BoxLink per registered box: `addresses` maps a BLE address to its box (key or
    label, passed to last_committed). transport_factory() makes a fresh transport for each
    connection attempt: BleakTransport, or functools.partial(BleakTransport, "hci1")."""

    def __init__(
        self,
        addresses: Mapping[str, str],
        transport_factory: Callable[[], BleTransport],
        on_reading: OnReading,
        last_committed: LastCommitted,
        *,
        timing: LinkTiming | None = None,
        certificate: bytes | None = None,
        on_status: OnStatus | None = None,
    ) -> None:
        self.links = {
            address: BoxLink(
                address,
                box,
                transport_factory,
                on_reading,
                last_committed,
                timing=timing,
                certificate=certificate,
                on_status=on_status,
            )
            for address, box in addresses.items()
        }

    def start(self) -> None:
        """Start every link; call from a running event loop."""
        for link in self.links.values():
            link.start()

    async def stop(self) -> None:
        """Stop every link and wait until each has disconnected."""
        await asyncio.gather(*(link.stop() for link in self.links.values()))

    def status(self) -> list[dict[str, Any]]:
        """Return each link's status() (BoxLink.status)."""
        return [link.status() for link in self.links.values()]
