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
