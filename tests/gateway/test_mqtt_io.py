"""Bulk MQTT socket I/O (gateway/mqtt_io.py): paho served from one large read, PUBACKs
queued as one write. Against a real Mosquitto with the paho-mqtt in use, so a paho
release that changes the internals relied on fails here."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest

from gateway import mqtt_io
from tests.conftest import Mosquitto


def test_buffered_socket_serves_small_reads_from_one_large_one() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.setblocking(False)
        sock = mqtt_io.BufferedSocket(b)
        a.sendall(b"\x30\x03abc" * 100)
        assert sock.recv(1) == b"\x30"
        assert sock.pending() == 499  # everything else is already read, and said so
        assert sock.recv(1) == b"\x03" and sock.recv(3) == b"abc"
        assert sock.recv(1000) == b"\x30\x03abc" * 99 and sock.pending() == 0
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # nothing buffered, nothing on the socket
        assert sock.fileno() == b.fileno()  # everything else is the socket's


def collect(port: int, got: list[paho.MQTTMessage]) -> aiomqtt.Client:
    """A persistent session with manual acks and buffered reads, as the gateway's."""
    client = aiomqtt.Client("127.0.0.1", port, identifier="io-test", clean_session=False)
    client._client.manual_ack_set(True)
    mqtt_io.buffer_reads(client._client)
    client._client.on_message = lambda _c, _u, m: got.append(m)
    return client


async def test_buffered_reads_and_batched_pubacks_with_mosquitto(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    got: list[paho.MQTTMessage] = []
    client = collect(mosquitto.port, got)
    async with client:
        await client.subscribe("io/#", 1)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="pub") as pub:
            for i in range(200):
                await pub.publish(f"io/{i % 7}", b"m%03d" % i + bytes(100), 1)
        for _ in range(200):
            if len(got) == 200:
                break
            await asyncio.sleep(0.05)
        assert [m.payload[:4] for m in got] == [b"m%03d" % i for i in range(200)]
        mqtt_io.queue_pubacks(client._client, [m.mid for m in got[:150]])
        await asyncio.sleep(0.5)  # let the block go out before disconnecting
    # The broker redelivers exactly the 50 never acknowledged to the resumed session.
    again: list[paho.MQTTMessage] = []
    client = collect(mosquitto.port, again)
    async with client:
        for _ in range(100):
            if len(again) >= 50:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert [m.payload[:4] for m in again] == [b"m%03d" % i for i in range(150, 200)]
        mqtt_io.queue_pubacks(client._client, [m.mid for m in again])
        await asyncio.sleep(0.3)


def test_a_turns_reads_are_bounded_and_the_next_turn_reads_on() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.setblocking(False)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)  # all of it, unblocked
        a.sendall(bytes(mqtt_io.READ_SIZE * 4))

        async def turns() -> list[int]:
            sock = mqtt_io.BufferedSocket(b, reads_per_turn=2)
            got = [0]
            while True:  # what one read callback would take: everything it is given
                try:
                    got[-1] += len(sock.recv(mqtt_io.READ_SIZE))
                except BlockingIOError:
                    if sock.pending() or not got[-1]:
                        return got
                    got.append(0)
                    await asyncio.sleep(0)  # the next turn of the loop

        sizes = asyncio.run(turns())
        assert sum(sizes) == mqtt_io.READ_SIZE * 4
        assert max(sizes) <= 2 * mqtt_io.READ_SIZE and len(sizes) >= 2


async def test_a_flood_is_read_a_bounded_slice_per_event_loop_turn(
    mosquitto: Mosquitto,
) -> None:
    """The drain's stall (issue 13): with a socket the broker keeps full, one read callback
    must not handle the whole flood while the rest of the gateway waits."""
    total, size = 6000, 200
    per_turn: list[int] = [0]
    loop = asyncio.get_running_loop()
    ticking = True

    def tick() -> None:  # one entry per event-loop turn that handled messages
        if per_turn[-1]:
            per_turn.append(0)
        if ticking:
            loop.call_soon(tick)

    client = aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="flood-test")
    mqtt_io.buffer_reads(client._client)

    def count(_c: object, _u: object, _m: paho.MQTTMessage) -> None:
        per_turn[-1] += 1

    client._client.on_message = count
    async with client:
        await client.subscribe("flood/#", 0)
        await client.publish("flood/pause", b"", 0)  # subscription in place
        # Fill the socket while the subscriber's loop is blocked, as a storm does.
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="flood-pub")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        infos = [pub.publish("flood/x", bytes(size), 0) for _ in range(total)]
        for info in infos:
            info.wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        loop.call_soon(tick)
        for _ in range(200):
            if sum(per_turn) >= total:
                break
            await asyncio.sleep(0.05)
        ticking = False
    assert sum(per_turn) >= total  # nothing lost by stopping early
    packet = size + len("flood/x") + 4
    bound = mqtt_io.READS_PER_TURN * mqtt_io.READ_SIZE // packet + 2
    assert max(per_turn) <= bound, per_turn


async def test_fast_publishes_hands_qos_0_and_1_over_and_leaves_qos_2_to_paho(
    mosquitto: Mosquitto,
) -> None:
    """QoS 0 and 1 PUBLISHes reach the handler decoded as paho would (topic, payload, qos,
    packet id); acknowledged through queue_pubacks, none is redelivered. QoS 2 still goes
    through paho's on_message."""
    slow: list[paho.MQTTMessage] = []
    fast: list[tuple[str, bytes, int, int]] = []
    client = collect(mosquitto.port, slow)
    mqtt_io.fast_publishes(client._client, lambda t, p, q, m: fast.append((t, bytes(p), q, m)))
    async with client:
        await client.subscribe("fast/#", 2)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="pub") as pub:
            for i in range(30):
                await pub.publish(f"fast/é{i}", b"p%02d" % i + bytes(i), i % 3)
        for _ in range(100):
            if len(fast) + len(slow) == 30:
                break
            await asyncio.sleep(0.05)
        assert [(t, p, q) for t, p, q, _ in fast] == [
            (f"fast/é{i}", b"p%02d" % i + bytes(i), i % 3) for i in range(30) if i % 3 < 2
        ]
        assert all((m > 0) == (q == 1) for _, _, q, m in fast)
        assert [(m.topic, m.payload, m.qos) for m in slow] == [
            (f"fast/é{i}", b"p%02d" % i + bytes(i), 2) for i in range(30) if i % 3 == 2
        ]
        mqtt_io.queue_pubacks(client._client, [m for _, _, q, m in fast if q == 1])
        await asyncio.sleep(0.3)
    again: list[tuple[str, bytes, int, int]] = []
    client = collect(mosquitto.port, [])
    mqtt_io.fast_publishes(client._client, lambda t, p, q, m: again.append((t, bytes(p), q, m)))
    async with client:
        await asyncio.sleep(0.5)
    assert again == []  # every QoS 1 message was acknowledged


def publish_packet(topic: bytes, payload: bytes, qos: int = 1, mid: int = 7) -> bytes:
    """A PUBLISH of MQTT 3.1.1 §3.3 as raw bytes, whatever its topic holds."""
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"")
    body += payload
    size, length = len(body), b""
    while True:  # §2.2.3: 7 bits a byte, low first, the top bit says more follow
        size, digit = size >> 7, size & 0x7F
        length += bytes([digit | (0x80 if size else 0)])
        if not size:
            return bytes([0x30 | qos << 1]) + length + body


def raw_client(sock: socket.socket, got: list[tuple[str, bytes, int, int]]) -> paho.Client:
    """A paho client with the gateway's decoder reading `sock` (no broker: what a rogue or
    broken one would send is written to the socket's other end)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="raw")
    client.manual_ack_set(True)
    client.on_message = lambda _c, _u, m: got.append((m.topic, m.payload, m.qos, m.mid))
    mqtt_io.fast_publishes(client, lambda t, p, q, m: got.append((t, bytes(p), q, m)))
    sock.setblocking(False)
    client._sock = mqtt_io.BufferedSocket(sock, reads_per_turn=-1)
    return client


def read_all(client: paho.Client) -> None:
    """What aiomqtt's reader does on a readiness event: loop_read while bytes are pending."""
    assert client.loop_read() == paho.MQTTErrorCode.MQTT_ERR_SUCCESS
    while client._sock.pending():  # type: ignore[union-attr]
        assert client.loop_read() == paho.MQTTErrorCode.MQTT_ERR_SUCCESS


@pytest.mark.parametrize(
    "topic",
    [b"t/\xff", b"t/\xed\xa0\x80", b"t/\xc0\xaf"],
    ids=["invalid byte", "utf-16 surrogate", "overlong"],
)
def test_a_topic_that_is_not_utf8_is_handed_over_escaped_and_the_stream_goes_on(
    topic: bytes,
) -> None:
    """MQTT 3.1.1 §1.5.3 forbids ill-formed UTF-8 in a topic (Mosquitto refuses it from a
    publisher; a rogue broker need not). paho's path raised UnicodeDecodeError out of
    loop_read with the packet kept, so every later read raised again on it and no reading
    behind it was ever handled. The decoder hands it over surrogate-escaped (topic_fault
    names it), and the readings after it in the same read arrive."""
    got: list[tuple[str, bytes, int, int]] = []
    a, b = socket.socketpair()
    with a, b:
        client = raw_client(b, got)
        a.sendall(publish_packet(topic, b"bad", mid=5) + publish_packet(b"t/ok", b"good", mid=6))
        read_all(client)
    assert [(p, q, m) for _, p, q, m in got] == [(b"bad", 1, 5), (b"good", 1, 6)]
    assert got[0][0].encode("utf-8", "surrogateescape") == topic
    assert mqtt_io.topic_fault(got[0][0]) == "topic is not UTF-8"
    assert mqtt_io.topic_fault("t/ok") is None


def test_a_nul_in_a_topic_is_named_a_fault() -> None:
    """U+0000 is valid UTF-8 but forbidden in MQTT strings (§1.5.3, MQTT-1.5.3-2)."""
    got: list[tuple[str, bytes, int, int]] = []
    a, b = socket.socketpair()
    with a, b:
        client = raw_client(b, got)
        a.sendall(publish_packet(b"t/\x00x", b"nul", mid=5))
        read_all(client)
    assert got == [("t/\x00x", b"nul", 1, 5)]
    assert mqtt_io.topic_fault(got[0][0]) == "topic holds U+0000"


def test_publishes_split_at_every_byte_and_many_in_one_read_all_arrive() -> None:
    """QoS 0 and 1, a 2-byte remaining length, DUP and RETAIN set: cut at every byte
    boundary, each arrives once and whole; all in one write, all arrive in order."""
    packets = [
        publish_packet(b"t/a", b"x" * 200, qos=1, mid=1),
        publish_packet("t/é".encode(), b"", qos=0),
        bytes([0x3B]) + publish_packet(b"t/d", b"dup retain", qos=1, mid=2)[1:],
    ]
    want = [("t/a", b"x" * 200, 1, 1), ("t/é", b"", 0, 0), ("t/d", b"dup retain", 1, 2)]
    stream = b"".join(packets)
    for cut in range(1, len(stream)):
        got: list[tuple[str, bytes, int, int]] = []
        a, b = socket.socketpair()
        with a, b:
            client = raw_client(b, got)
            for part in (stream[:cut], stream[cut:]):
                a.sendall(part)
                read_all(client)
        assert got == want, cut


async def test_read_gate_stops_reading_while_held_and_loses_nothing(mosquitto: Mosquitto) -> None:
    """Issue 13: in a storm the gateway held 108,000 messages received and not yet committed
    (the broker's window did not bind them), ~1.3 KB each. With a ReadGate no socket read is
    made while it holds: what the gateway holds stays within the limit plus the one buffer
    already read, the rest waits with the broker (TCP flow control), and after resume()
    every message arrives, in order."""
    total, size, limit = 3000, 200, 100
    got: list[bytes] = []
    released = [0]  # messages the test has "committed"
    gate = mqtt_io.ReadGate(lambda: len(got) - released[0] >= limit)
    client = aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="gate-test")
    mqtt_io.buffer_reads(client._client, gate)
    client._client.on_message = lambda _c, _u, m: got.append(m.payload[:4])
    async with client:
        await client.subscribe("gate/x", 0)
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="gate-pub")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        infos = [pub.publish("gate/x", b"%04d" % i + bytes(size), 0) for i in range(total)]
        for info in infos:
            info.wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        packet = size + 4 + len("gate/x") + 4
        bound = limit + mqtt_io.READ_SIZE // packet + 2
        for _ in range(10):  # held: nothing more is read however long we wait
            await asyncio.sleep(0.1)
            assert len(got) - released[0] <= bound
        assert gate.paused and gate.pauses >= 1 and len(got) < total
        for _ in range(400):  # commit everything held, resume, repeat
            released[0] = len(got)
            gate.resume()
            await asyncio.sleep(0.02)
            assert len(got) - released[0] <= bound
            if len(got) == total:
                break
        assert got == [b"%04d" % i for i in range(total)]
        assert gate.pauses >= total // bound - 1
