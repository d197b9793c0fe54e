"""The MQTT ingest's handling of each PUBLISH (gateway/ingest_mqtt.py): what it hands the
gateway, what it refuses itself, and which packet ids it acknowledges. Real gateway and
spool; the PUBLISHes are what the decoder (gateway/mqtt_io.py) hands over."""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import aiomqtt
import paho.mqtt.client as paho
import pytest

from device import ack, topics
from gateway import ingest_mqtt, mqtt_io
from gateway.ingest_mqtt import LinkState, MqttIngest, _PubackQueue
from tests.conftest import Mosquitto
from tests.gateway.test_mqtt_io import publish_packet
from tests.gateway.test_service import BOX, DEV, deliver_all, make_gateway, signed


async def test_a_topic_mqtt_forbids_is_refused_counted_and_acknowledged(tmp_path: Path) -> None:
    """Ill-formed UTF-8 (as the decoder escapes it) or U+0000 in a topic: refused with its
    reason, counted, its packet id acknowledged (a broker redelivering it forever would
    stall the session otherwise), and the reading after it accepted."""
    gw = make_gateway(tmp_path)
    ingest = MqttIngest(gw)
    pubacks = _PubackQueue()
    good = topics.reading("t", DEV)
    ingest._publish(pubacks, good + "\udcff", signed(0), 1, 5)
    ingest._publish(pubacks, good.replace(DEV, DEV + "\x00"), signed(0), 1, 6)
    ingest._publish(pubacks, good, signed(0), 1, 7)
    assert [mid for mid, _ in pubacks.waiting] == [5, 6, 7]
    await gw.verify_pool.judged()
    await gw.flush()
    assert [await asyncio.wait_for(done, 5) for _, done in pubacks.waiting][:2] == [None, None]
    assert gw.counts["topic is not UTF-8"] == 1 and gw.counts["topic holds U+0000"] == 1
    assert gw.counts["accepted"] == 1
    assert ingest.in_flight == 3
    await gw.stop()


async def test_a_qos_2_reading_is_completed_with_pubcomp_not_puback(tmp_path: Path) -> None:
    """The gateway subscribes at QoS 1, but a broker that sends QoS 2 anyway gets PUBREC
    from paho and, once the reading is committed, PUBCOMP for it (MQTT 3.1.1 §4.3.3): a
    PUBACK there is a protocol error that ends the session, every time the broker
    resends its PUBREL. Real paho over a socket pair, the broker's bytes written raw."""
    gw = make_gateway(tmp_path)
    ingest = MqttIngest(gw)
    pubacks = _PubackQueue()
    a, b = socket.socketpair()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="raw")
    client.manual_ack_set(True)
    client.on_message = partial(ingest._message, pubacks)
    mqtt_io.fast_publishes(client, partial(ingest._publish, pubacks))
    b.setblocking(False)
    client._sock = b
    sender = asyncio.create_task(ingest._puback_in_order(SimpleNamespace(_client=client), pubacks))  # type: ignore[arg-type]
    with a, b:
        topic = topics.reading("t", DEV).encode()
        a.sendall(publish_packet(topic, signed(0), qos=2, mid=9))  # PUBLISH, QoS 2, packet id 9
        client.loop_read()
        client.loop_write()
        assert a.recv(100) == b"\x50\x02\x00\x09"  # PUBREC
        a.sendall(b"\x62\x02\x00\x09")  # PUBREL: paho hands the message over now
        client.loop_read()
        await gw.verify_pool.judged()
        await gw.flush()
        for _ in range(100):
            await asyncio.sleep(0.01)
            client.loop_write()
            if ingest.in_flight == 0:
                break
        assert a.recv(100) == b"\x70\x02\x00\x09"  # PUBCOMP
    sender.cancel()
    assert gw.counts["accepted"] == 1
    await gw.stop()


async def test_what_the_ingest_holds_stays_bounded_however_much_the_broker_sends(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Issue 13: in a drain the gateway held 108,000 received, uncommitted messages (the
    broker's window did not bind), ~1.3 KB each, and its memory never came back. The ingest
    stops reading at max_in_flight (mqtt_io.ReadGate) until commits bring that down: here
    the broker may send 1,000 at once (tests/conftest.py), the ingest holds at most 40 plus
    the one socket buffer already read, and every reading is still accepted exactly once
    and acknowledged."""
    total = 2000
    gw = make_gateway(tmp_path, mosquitto.port)
    await gw.start()
    ingest = MqttIngest(gw)
    ingest.max_in_flight = 40
    task = asyncio.create_task(ingest.run())
    held: list[int] = []
    ticking = True

    def tick() -> None:  # what the ingest holds, at every turn of the event loop
        held.append(ingest.in_flight)
        if ticking:
            asyncio.get_running_loop().call_soon(tick)

    try:
        for _ in range(200):
            if ingest.state is LinkState.CONNECTED:
                break
            await asyncio.sleep(0.05)
        tick()
        wires = [signed(seq) for seq in range(total)]
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="storm")
        pub.max_inflight_messages_set(0)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        infos = [pub.publish(topics.reading("t", DEV), w, 1) for w in wires]
        for info in infos:
            info.wait_for_publish(20)
        pub.loop_stop()
        pub.disconnect()
        for _ in range(400):
            if gw.counts["accepted"] == total and ingest.in_flight == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        ticking = False
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await gw.stop()
    assert gw.counts["accepted"] == total and gw.counts["duplicate"] == 0
    assert gw.ranges[BOX] == ((0, total - 1),)
    per_buffer = mqtt_io.READ_SIZE // (len(wires[0]) + len(topics.reading("t", DEV)) + 6)
    assert max(held) <= ingest.max_in_flight + per_buffer + 2, max(held)
    assert ingest.read_gate.pauses >= 1 and not ingest.read_gate.paused


class SlowBroker:
    """An aiomqtt client whose publishes the broker confirms only when the test says (in a
    drain its PUBACKs wait behind every reading on its way to the gateway)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, asyncio.Future[None]]] = []

    async def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **_: object
    ) -> None:
        confirmed = asyncio.get_running_loop().create_future()
        self.published.append((topic, payload, confirmed))
        await confirmed


async def test_a_box_has_one_ack_awaiting_its_puback_and_then_gets_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: with the broker's PUBACKs 10-19 s behind the readings stream, a box's ack
    published every 0.5 s left ~4,000 publishes in the air at 300 boxes (a task and a paho
    message each, queued behind paho's window), and the gateway's memory rose with them.
    Now a box's newer ack waits until the broker confirms the one before; then the newest
    goes (it covers everything committed meanwhile); a failed one is published again."""
    monkeypatch.setattr(ingest_mqtt, "ACK_BOX_GAP_S", 0.0)
    gw = make_gateway(tmp_path)
    ingest = MqttIngest(gw)
    broker = SlowBroker()
    publishing = asyncio.create_task(ingest._publish_acks(broker))  # type: ignore[arg-type]

    def box_acks() -> list[tuple[bytes, asyncio.Future[None]]]:
        return [(p, c) for t, p, c in broker.published if t == topics.ack("t", DEV)]

    async def settle() -> None:
        for _ in range(10):
            await asyncio.sleep(ingest_mqtt.ACK_INTERVAL_S)

    try:
        for seq in range(5):  # five commits, each announcing the box's ack
            await deliver_all(gw, [seq])
            await settle()
        assert len(box_acks()) == 1  # the first, still waiting for its PUBACK
        assert ack.decode(box_acks()[0][0], BOX, None) == [(0, 0)]
        assert ingest.acks_unconfirmed == 2  # it and the alarm state
        box_acks()[0][1].set_result(None)  # the broker confirms it
        await settle()
        assert len(box_acks()) == 2
        assert ack.decode(box_acks()[1][0], BOX, None) == [(0, 4)]  # the newest
        box_acks()[1][1].set_exception(aiomqtt.MqttError("session cut"))
        await settle()
        assert len(box_acks()) == 3  # due again: published again
        assert ack.decode(box_acks()[2][0], BOX, None) == [(0, 4)]
    finally:
        publishing.cancel()
        with suppress(asyncio.CancelledError):
            await publishing
        await gw.stop()
