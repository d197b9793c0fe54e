"""device.mqtt on CPython against a scripted fake broker: exact bytes both ways.

Expected packets are written out by hand from MQTT 3.1.1 (OASIS, 2014; § are its sections),
each with a comment saying how its bytes were derived; the fake broker splits what it
receives into packets with its own remaining-length decoder, not device.mqtt's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from device.mqtt import MQTTClient, MQTTError, encode_length

CONNACK = b"\x20\x02\x00\x00"  # §3.2: session present 0, return code 0 (accepted)
PINGREQ = b"\xc0\x00"  # §3.12: type 12, no flags, remaining length 0
PINGRESP = b"\xd0\x00"  # §3.13
DISCONNECT = b"\xe0\x00"  # §3.14


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """Read one whole MQTT packet, fixed header included (§2.2.3 decoding, written apart)."""
    raw = await reader.readexactly(1)
    length, multiplier = 0, 1
    while True:
        byte = await reader.readexactly(1)
        raw += byte
        length += (byte[0] & 0x7F) * multiplier
        multiplier *= 128
        if byte[0] < 0x80:
            return raw + await reader.readexactly(length)


class FakeBroker:
    """An asyncio server on 127.0.0.1 that records the packets it receives, answers CONNECT
    with `connack` (None: never) and otherwise sends only what the test tells it to."""

    def __init__(self, connack: bytes | None = CONNACK) -> None:
        self.connack = connack
        self.packets: asyncio.Queue[bytes] = asyncio.Queue()
        self.eof = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.eof.clear()
        try:
            while True:
                packet = await read_packet(reader)
                if packet[0] == 0x10 and self.connack is not None:
                    writer.write(self.connack)
                await self.packets.put(packet)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eof.set()

    async def next(self, timeout: float = 2) -> bytes:
        """Return the next packet received; fails the test after timeout seconds."""
        return await asyncio.wait_for(self.packets.get(), timeout)

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)


@pytest.fixture
async def broker() -> AsyncIterator[FakeBroker]:
    fake = FakeBroker()
    await fake.start()
    yield fake
    await fake.stop()


Connect = Callable[..., Awaitable[MQTTClient]]


@pytest.fixture
async def connect(broker: FakeBroker) -> AsyncIterator[Connect]:
    """Return connect(**kwargs): a client of the fake broker, connected, its CONNECT read."""
    clients: list[MQTTClient] = []

    async def open_client(**kwargs: object) -> MQTTClient:
        client = MQTTClient(kwargs.pop("client_id", "box-1"), "127.0.0.1", broker.port, **kwargs)
        clients.append(client)
        await client.connect(timeout=2)
        assert (await broker.next())[0] == 0x10
        return client

    yield open_client
    for client in clients:
        client.close()
        await client.wait_closed()


async def failed_within(awaitable: Awaitable[object], seconds: float) -> BaseException:
    """Await what must fail; return its exception after checking it came within `seconds`."""
    start = time.monotonic()
    with pytest.raises(BaseException) as info:
        await awaitable
    assert time.monotonic() - start < seconds
    return info.value


# CONNECT, §3.1


async def test_connect_bytes_with_will_user_password_and_clean_session(broker) -> None:
    client = MQTTClient(
        "box-1",
        "127.0.0.1",
        broker.port,
        user="u1",
        password=b"pw",
        keepalive=30,
        clean_session=True,
        will=("ps/box-1/status", b"offline", 1, True),
    )
    assert await client.connect(timeout=2) is False
    # Variable header §3.1.2: protocol name 00 04 "MQTT", level 04, then the connect flags:
    # user 0x80 | password 0x40 | will retain 0x20 | will QoS 1 << 3 = 0x08 | will 0x04
    # | clean session 0x02 = 0xEE; keepalive 30 = 00 1E. That is 10 bytes.
    # Payload §3.1.3, in this order, each a 2-byte length then the bytes: client id
    # 00 05 "box-1" (7), will topic 00 0F "ps/box-1/status" (17), will message 00 07
    # "offline" (9), user 00 02 "u1" (4), password 00 02 "pw" (4): 41 bytes.
    # Fixed header §3.1.1: 0x10, remaining length 10 + 41 = 51 = 0x33 (one byte, < 128).
    assert await broker.next() == (
        b"\x10\x33"
        + b"\x00\x04MQTT\x04\xee\x00\x1e"
        + b"\x00\x05box-1"
        + b"\x00\x0fps/box-1/status"
        + b"\x00\x07offline"
        + b"\x00\x02u1"
        + b"\x00\x02pw"
    )
    assert client.connected
    client.close()
    await client.wait_closed()


async def test_connect_bytes_minimal_and_with_user_and_unretained_will(broker) -> None:
    # No flags set (persistent session, no will, no user); keepalive 60 = 00 3C;
    # payload 00 05 "box-1"; remaining length 10 + 7 = 17 = 0x11.
    want_minimal = b"\x10\x11\x00\x04MQTT\x04\x00\x00\x3c\x00\x05box-1"
    # user 0x80 | will 0x04 (QoS 0, not retained) = 0x84; keepalive 0 = 00 00; payload
    # 00 05 "box-1", 00 01 "w", 00 00 (empty will message), 00 01 "u": 7 + 3 + 2 + 3 = 15;
    # remaining length 10 + 15 = 25 = 0x19.
    want_will = b"\x10\x19\x00\x04MQTT\x04\x84\x00\x00\x00\x05box-1\x00\x01w\x00\x00\x00\x01u"
    kwargs = {"user": "u", "keepalive": 0, "will": ("w", b"", 0, False)}
    for want, extra in ((want_minimal, {}), (want_will, kwargs)):
        client = MQTTClient("box-1", "127.0.0.1", broker.port, **extra)
        await client.connect(timeout=2)
        assert await broker.next() == want
        await client.disconnect()
        assert await broker.next() == DISCONNECT


async def test_connack_session_present_and_refusal_codes() -> None:
    fake = FakeBroker(connack=b"\x20\x02\x01\x00")  # session present (§3.2.2.2)
    await fake.start()
    client = MQTTClient("box-1", "127.0.0.1", fake.port)
    assert await client.connect(timeout=2) is True
    client.close()
    fake.connack = b"\x20\x02\x00\x05"  # return code 5: not authorized (§3.2.2.3)
    with pytest.raises(MQTTError) as info:
        await client.connect(timeout=2)
    assert info.value.code == 5
    assert str(info.value) == "connect refused: 5 not authorized (§3.2.2.3)"
    assert not client.connected
    fake.connack = b"\x30\x02\x00\x00"  # a PUBLISH where CONNACK must come
    with pytest.raises(MQTTError, match="CONNACK: got packet 0x30 of 2 bytes, want 0x20 of 2"):
        await client.connect(timeout=2)
    fake.connack = None  # never answers
    with pytest.raises(asyncio.TimeoutError):
        await client.connect(timeout=0.2)
    assert not client.connected
    await fake.stop()


async def test_close_while_connecting_fails_connect() -> None:
    fake = FakeBroker(connack=None)  # never answers CONNECT
    await fake.start()
    client = MQTTClient("box-1", "127.0.0.1", fake.port)
    task = asyncio.create_task(client.connect(timeout=5))
    await fake.next()
    client.close()
    assert isinstance(await failed_within(task, 0.5), OSError)
    assert not client.connected
    await fake.stop()


async def test_connect_to_closed_port_raises_oserror() -> None:
    fake = FakeBroker()
    await fake.start()
    await fake.stop()
    with pytest.raises(OSError):
        await MQTTClient("box-1", "127.0.0.1", fake.port).connect(timeout=2)


# PUBLISH, SUBSCRIBE, PINGREQ, DISCONNECT


async def test_publish_bytes_qos0_and_qos1_with_retain(broker, connect) -> None:
    client = await connect()
    # §3.3.1: 0x30 | QoS << 1 | retain. QoS 0 retained: 0x31; remaining length = topic
    # 00 04 "ps/t" (6) + payload "hi" (2) = 8.
    await client.publish("ps/t", b"hi", 0, True)
    assert await broker.next() == b"\x31\x08\x00\x04ps/thi"
    # QoS 1 not retained: 0x32; packet id 00 01 after the topic (§3.3.2.2): 6 + 2 + 2 = 10.
    task = asyncio.create_task(client.publish("ps/t", b"hi", 1))
    assert await broker.next() == b"\x32\x0a\x00\x04ps/t\x00\x01hi"
    assert not task.done()
    broker.send(b"\x40\x02\x00\x01")  # PUBACK for packet id 1 (§3.4)
    await asyncio.wait_for(task, 1)
    # QoS 1 retained: 0x33, next packet id 2, bytearray payload.
    task = asyncio.create_task(client.publish("ps/t", bytearray(b"hi"), 1, True))
    assert await broker.next() == b"\x33\x0a\x00\x04ps/t\x00\x02hi"
    broker.send(b"\x40\x02\x00\x02")
    await asyncio.wait_for(task, 1)


async def test_subscribe_bytes_and_suback(broker, connect) -> None:
    client = await connect()
    # §3.8: 0x82 (flags 0010 required); packet id 00 01, filter 00 08 "ps/+/ack", QoS 01:
    # 2 + 10 + 1 = 13 = 0x0D.
    task = asyncio.create_task(client.subscribe("ps/+/ack", 1))
    assert await broker.next() == b"\x82\x0d\x00\x01\x00\x08ps/+/ack\x01"
    broker.send(b"\x90\x03\x00\x01\x01")  # SUBACK §3.9: packet id 1, granted QoS 1
    assert await asyncio.wait_for(task, 1) == 1
    task = asyncio.create_task(client.subscribe("#", 0))
    assert await broker.next() == b"\x82\x06\x00\x02\x00\x01#\x00"
    broker.send(b"\x90\x03\x00\x02\x80")  # return code 0x80: failure
    with pytest.raises(MQTTError, match=r"subscribe refused: '#' \(SUBACK 0x80\)") as info:
        await asyncio.wait_for(task, 1)
    assert info.value.code == 0x80
    assert client.connected


async def test_keepalive_sends_pingreq_when_idle(broker, connect) -> None:
    client = await connect(keepalive=1)
    start = time.monotonic()
    assert await broker.next() == PINGREQ
    assert 0.8 < time.monotonic() - start < 2
    broker.send(PINGRESP)  # remaining length 0: the smallest packet there is
    assert await broker.next() == PINGREQ
    broker.send(PINGRESP)
    assert client.connected


async def test_keepalive_without_pingresp_loses_the_connection(broker, connect) -> None:
    client = await connect(keepalive=1)
    assert await broker.next() == PINGREQ
    pending = asyncio.create_task(client.publish("ps/t", b"x", 1))
    assert (await broker.next())[0] == 0x32
    error = await failed_within(pending, 2.5)  # ~1 s after the PINGREQ, not the 10 s timeout
    assert isinstance(error, OSError)
    assert str(error) == "MQTT connection lost: no PINGRESP within keepalive 1 s"
    assert str(await client.wait_closed()) == "no PINGRESP within keepalive 1 s"
    assert not client.connected
    await asyncio.wait_for(broker.eof.wait(), 1)


async def test_disconnect_sends_disconnect_and_fails_pending_calls(broker, connect) -> None:
    client = await connect()
    pending = asyncio.create_task(client.publish("ps/t", b"x", 1))
    assert (await broker.next())[0] == 0x32
    await client.disconnect()
    assert await broker.next() == DISCONNECT
    await asyncio.wait_for(broker.eof.wait(), 1)
    error = await failed_within(pending, 0.5)
    assert isinstance(error, OSError)
    assert str(error) == "MQTT disconnected by the caller"
    assert await client.wait_closed() is None
    with pytest.raises(OSError, match="MQTT disconnected by the caller"):
        await client.publish("ps/t", b"x")


async def test_close_drops_the_connection_without_disconnect(broker, connect) -> None:
    client = await connect()
    pending = asyncio.create_task(client.subscribe("ps/#"))
    assert (await broker.next())[0] == 0x82
    client.close()
    assert not client.connected
    error = await failed_within(pending, 0.5)
    assert str(error) == "MQTT connection lost: closed by the caller"
    await asyncio.wait_for(broker.eof.wait(), 1)
    assert broker.packets.empty()  # no DISCONNECT: the broker publishes the will


# Remaining length, §2.2.3

BOUNDARIES = [
    # The table in §2.2.3: first and last value of each encoded size.
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("value", "encoded"), BOUNDARIES)
def test_remaining_length_encoding_at_boundaries(value: int, encoded: bytes) -> None:
    assert encode_length(value) == encoded


@pytest.mark.parametrize("value", [-1, 268435456])
def test_remaining_length_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match=f"remaining length: got {value}, want 0..268435455"):
        encode_length(value)


@pytest.mark.parametrize(("value", "encoded"), BOUNDARIES[1:-1])
async def test_publish_remaining_length_on_the_wire(broker, connect, value, encoded) -> None:
    client = await connect()
    payload = bytes(value - 3)  # topic 00 01 "t" takes 3 of the remaining length
    await client.publish("t", payload)
    assert await broker.next(timeout=5) == b"\x30" + encoded + b"\x00\x01t" + payload


@pytest.mark.parametrize(("value", "encoded"), BOUNDARIES[1:-1])
async def test_incoming_remaining_length_decoded(broker, connect, value, encoded) -> None:
    client = await connect()
    client.max_incoming = 3_000_000
    got: list[tuple[str, int, bool]] = []
    client.on_message = lambda topic, payload, retained: got.append((topic, len(payload), retained))
    broker.send(b"\x31" + encoded + b"\x00\x01t" + bytes(value - 3))
    broker.send(PINGRESP)  # the next packet is still read in step
    task = asyncio.create_task(client.publish("t", b"", 1))
    await broker.next(timeout=5)
    broker.send(b"\x40\x02\x00\x01")
    await asyncio.wait_for(task, 5)
    assert got == [("t", value - 3, True)]


# Malformed input from the broker closes the connection with an error.

MALFORMED = [
    (b"\x30\xff\xff\xff\xff\x7f", "remaining length: more than 4 bytes (§2.2.3)"),
    (
        b"\xf0\x00",
        "packet: got first byte 0xf0 from the broker, want PUBLISH, PUBACK, SUBACK or "
        "PINGRESP (§2.2)",
    ),
    (
        b"\x20\x02\x00\x00",  # a second CONNACK
        "packet: got first byte 0x20 from the broker, want PUBLISH, PUBACK, SUBACK or "
        "PINGRESP (§2.2)",
    ),
    (b"\x40\x03\x00\x01\x00", "packet 0x40: got remaining length 3, want 2"),
    (b"\x90\x03\x00\x01\x00", "packet 0x90: got packet id 1, in flight for 0x40"),
    (b"\x34\x05\x00\x01t\x00\x01", "PUBLISH: got QoS 2 from the broker, want 0 or 1"),
    (b"\x30\x01\x00", "PUBLISH: got remaining length 1, want >= 2"),
    (b"\x30\x03\x00\x05t", "PUBLISH: topic length 5 overruns remaining length 3"),
    (
        b"\x30\xff\xff\xff\x7f",
        "PUBLISH: got remaining length 268435455, want <= max_incoming 65536",
    ),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
async def test_malformed_input_closes_and_fails_pending_promptly(
    broker, connect, data, message
) -> None:
    client = await connect()
    pending = asyncio.create_task(client.publish("ps/t", b"x", 1, timeout=10))
    assert await broker.next() == b"\x32\x09\x00\x04ps/t\x00\x01x"  # 6 + 2 + 1 = 9
    broker.send(data)
    error = await failed_within(pending, 0.5)
    assert isinstance(error, OSError)
    assert str(error) == "MQTT connection lost: " + message
    closed_by = await asyncio.wait_for(client.wait_closed(), 1)
    assert isinstance(closed_by, MQTTError)
    assert str(closed_by) == message
    assert not client.connected
    await asyncio.wait_for(broker.eof.wait(), 1)


async def test_broker_closing_fails_pending_calls_and_reconnect_works(broker, connect) -> None:
    client = await connect()
    pending = [
        asyncio.create_task(client.publish("ps/t", b"x", 1)),
        asyncio.create_task(client.subscribe("ps/a")),
    ]
    await broker.next()
    await broker.next()
    broker.writer.close()
    for task in pending:
        error = await failed_within(task, 0.5)
        assert str(error) == "MQTT connection lost: broker closed the connection"
    assert str(await client.wait_closed()) == "broker closed the connection"
    assert not client.connected
    # The caller's reconnect: the same client connects again, packet ids start anew.
    await client.connect(timeout=2)
    assert (await broker.next())[0] == 0x10
    task = asyncio.create_task(client.publish("ps/t", b"y", 1))
    assert await broker.next() == b"\x32\x09\x00\x04ps/t\x00\x03y"
    broker.send(b"\x40\x02\x00\x03")
    await asyncio.wait_for(task, 1)


# Messages from the broker


async def test_incoming_qos1_is_acked_after_on_message_returns(broker, connect) -> None:
    client = await connect()
    release = asyncio.Event()
    got: list[tuple[str, bytes, bool]] = []

    async def on_message(topic: str, payload: bytes, retained: bool) -> None:
        got.append((topic, payload, retained))
        await release.wait()

    client.on_message = on_message
    # §3.3: QoS 1 (0x32), topic 00 04 "ps/a", packet id 00 07, payload "x": 6 + 2 + 1 = 9.
    broker.send(b"\x32\x09\x00\x04ps/a\x00\x07x")
    # QoS 0 retained (0x31) UTF-8 topic "é" (C3 A9): 2 + 2 + 2 = 6, payload "yz".
    broker.send(b"\x31\x06\x00\x02\xc3\xa9yz")
    with pytest.raises(asyncio.TimeoutError):
        await broker.next(timeout=0.3)  # no PUBACK while on_message still runs
    assert got == [("ps/a", b"x", False)]
    release.set()
    assert await broker.next() == b"\x40\x02\x00\x07"  # §3.4: PUBACK with its packet id
    await asyncio.sleep(0.05)
    assert got == [("ps/a", b"x", False), ("é", b"yz", True)]
    assert client.connected


async def test_on_message_error_closes_without_puback(broker, connect) -> None:
    client = await connect()

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        raise ValueError("bad ack")

    client.on_message = on_message
    broker.send(b"\x32\x09\x00\x04ps/a\x00\x07x")
    error = await asyncio.wait_for(client.wait_closed(), 1)
    assert isinstance(error, ValueError)
    await asyncio.wait_for(broker.eof.wait(), 1)
    assert broker.packets.empty()  # not acknowledged: the broker redelivers it


# The window of concurrent QoS 1 publishes


async def test_window_each_publish_waits_for_its_own_puback(broker, connect) -> None:
    client = await connect()
    tasks = [asyncio.create_task(client.publish("t", b"%d" % i, 1)) for i in range(3)]
    for pid in (1, 2, 3):
        assert await broker.next() == b"\x32\x06\x00\x01t\x00" + bytes((pid,)) + b"%d" % (pid - 1)
    broker.send(b"\x40\x02\x00\x03")
    await asyncio.wait_for(tasks[2], 1)
    assert not tasks[0].done() and not tasks[1].done()
    broker.send(b"\x40\x02\x00\x01\x40\x02\x00\x02")
    await asyncio.wait_for(asyncio.gather(*tasks), 1)


async def test_packet_ids_wrap_and_skip_ids_in_flight(broker, connect) -> None:
    client = await connect()
    client._pid = 65533  # private: where the counter stands after 65533 requests
    first = asyncio.create_task(client.publish("t", b"", 1))  # id 65534, left in flight
    assert (await broker.next())[-2:] == b"\xff\xfe"
    client._pid = 65533  # as if the counter had come round again while 65534 is in flight
    ids = []
    for _ in range(3):
        task = asyncio.create_task(client.publish("t", b"", 1))
        ids.append(int.from_bytes((await broker.next())[-2:], "big"))
        broker.send(b"\x40\x02" + ids[-1].to_bytes(2, "big"))
        await asyncio.wait_for(task, 1)
    assert ids == [65535, 1, 2]  # 65534 skipped, then 1..65535 wraps to 1 (never 0)
    broker.send(b"\x40\x02\xff\xfe")
    await asyncio.wait_for(first, 1)


async def test_timeout_without_puback_keeps_the_connection(broker, connect) -> None:
    client = await connect()
    with pytest.raises(asyncio.TimeoutError):
        await client.publish("t", b"", 1, timeout=0.2)
    await broker.next()
    broker.send(b"\x40\x02\x00\x01")  # late PUBACK for a publish that gave up: ignored
    task = asyncio.create_task(client.publish("t", b"", 1))
    assert (await broker.next())[-2:] == b"\x00\x02"
    broker.send(b"\x40\x02\x00\x02")
    await asyncio.wait_for(task, 1)
    assert client.connected


# Argument checks


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("t", b"", 2), ValueError, "qos: got 2, want 0 or 1"),
        (("", b""), ValueError, "topic: empty"),
        (("a/+", b""), ValueError, "topic: got wildcard in 'a/+', allowed only in subscribe"),
        (("a\x00", b""), ValueError, "topic: got U+0000 in 'a\\x00', not allowed"),
        ((b"t", b""), TypeError, "topic: got bytes, want str"),
        (("t", "text"), TypeError, "payload: got str, want bytes"),
        (("t" * 65536, b""), ValueError, "topic: got 65536 bytes, want <= 65535"),
    ],
)
async def test_publish_argument_errors(broker, connect, args, error, message) -> None:
    client = await connect()
    with pytest.raises(error) as info:
        await client.publish(*args)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("topic", "qos", "message"),
    [
        ("a/#/b", 1, "topic: got 'a/#/b', want '+' or '#' as whole levels (§4.7.1)"),
        ("a/b+", 1, "topic: got 'a/b+', want '+' or '#' as whole levels (§4.7.1)"),
        ("a/#", 2, "qos: got 2, want 0 or 1"),
    ],
)
async def test_subscribe_argument_errors(broker, connect, topic, qos, message) -> None:
    client = await connect()
    with pytest.raises(ValueError) as info:
        await client.subscribe(topic, qos)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client_id": ""}, "client_id: empty, allowed only with clean_session=True"),
        ({"keepalive": 65536}, "keepalive: got 65536, want 0..65535"),
        ({"password": "p"}, "password: given without user (§3.1.2.9)"),
        ({"will": ("s", b"", 3, False)}, "will qos: got 3, want 0, 1 or 2"),
        ({"will": ("s/#", b"", 0, False)}, "topic: got wildcard in 's/#'"),
        ({"will": ("s", bytes(65536), 0, False)}, "will payload: got 65536 bytes, want <= 65535"),
    ],
)
def test_constructor_argument_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        MQTTClient(kwargs.pop("client_id", "box-1"), "127.0.0.1", **kwargs)
    assert str(info.value).startswith(message)


async def test_calls_before_connect_raise_oserror() -> None:
    client = MQTTClient("box-1", "127.0.0.1")
    assert not client.connected
    with pytest.raises(OSError, match="MQTT not connected"):
        await client.publish("t", b"")
    with pytest.raises(OSError, match="MQTT not connected"):
        await client.subscribe("t")
    assert await client.wait_closed() is None
    await client.disconnect()
    client.close()
