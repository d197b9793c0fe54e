"""Bulk socket I/O for paho-mqtt under aiomqtt, so a stream of readings costs a system call
per socket buffer rather than several per message.

paho reads a packet with one recv() for its first byte, one per byte of its length and one
for the rest, and aiomqtt runs one packet per readiness event of the socket: at thousands
of readings a second that is most of the gateway's time. `buffer_reads` wraps paho's
socket so that recv() is served from one large read; the wrapper reports what it holds
through pending() (as an SSL socket does), which aiomqtt's reader already honours by
reading on until nothing is pending, so every buffered message is handled in the same
event-loop iteration. That loop ends only when the socket runs dry, which in a storm it
never does (issue 13: the drain held the loop 10-40 s in one callback, while nothing was
committed, acknowledged or sealed), so each turn of the event loop may read the socket at
most READS_PER_TURN times: then recv() answers as an empty non-blocking socket would, paho
keeps its partial packet, and the loop serves everything else before the socket's next
readiness event. A `ReadGate` stops reading altogether while the gateway holds as many
received and not yet PUBACKed messages as it allows (the socket leaves the event loop until
commits bring that down): TCP's flow control then keeps the rest with the broker, which
Mosquitto's own window (max_inflight_messages) was meant to do and did not (issue 13: the
gateway held over 100,000 messages in a storm, ~1.3 KB of Python objects each, and Python's
allocator kept the arenas after the storm). `queue_pubacks` hands paho many PUBACKs as one
write, where paho's ack() costs a write registration and a send per message.
`fast_publishes` hands each QoS 0/1 PUBLISH of MQTT 3.1.1 straight to a handler (topic,
payload, qos, packet id), without the MQTTMessage paho builds per message (with a
threading.Condition in its MQTTMessageInfo), its debug log line and its subscription
matcher: ~5 us of the event loop per reading.

All use paho internals (Client._create_socket, Client._packet_queue, Client._in_packet,
Client._handle_publish) of paho-mqtt 2.x, and ReadGate asyncio's selector loop's reader
handles (loop._selector; Handle._callback, _args);
tests/gateway/test_mqtt_io.py fails if those change.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import paho.mqtt.client as paho

READ_SIZE = 1 << 16
# Socket reads per event-loop turn: ~2 x 64 KiB, a few hundred readings, milliseconds of work.
READS_PER_TURN = 2
PUBACK = 0x40
PUBCOMP = 0x70  # what ends a QoS 2 delivery to us (§3.7), where QoS 1 ends with PUBACK


class ReadGate:
    """Takes a socket off its event loop while `hold()` is true, as its reads are asked for
    (BufferedSocket.recv), and puts it back at `resume()`: the reader callback that the loop
    held for it (aiomqtt's) is kept and added again as it was. Reading resumes only through
    resume(), so its caller must call it once what `hold` counts has come down."""

    def __init__(self, hold: Callable[[], bool]) -> None:
        self.hold = hold
        self.pauses = 0  # times reading was paused (for tests and the status page)
        # (loop, socket, the reader's callback and its args): a cancelled Handle drops them
        self._paused: list[tuple[asyncio.AbstractEventLoop, socket.socket, Any, tuple[Any, ...]]]
        self._paused = []

    @property
    def paused(self) -> bool:
        return bool(self._paused)

    def pause(self, sock: socket.socket) -> bool:
        """Take `sock` off the running loop's readers. False (read on) if there is no running
        loop or it has no reader for the socket (paho's own network loop, or a test)."""
        try:
            loop = asyncio.get_running_loop()
            fd = sock.fileno()
            # asyncio's selector loops keep (reader handle, writer handle) per file descriptor.
            reader = loop._selector.get_key(fd).data[0]  # type: ignore[attr-defined]
        except (RuntimeError, AttributeError, KeyError, ValueError, OSError):
            return False
        if reader is None or reader.cancelled():
            return False
        self._paused.append((loop, sock, reader._callback, reader._args))
        loop.remove_reader(fd)
        self.pauses += 1
        return True

    def resume(self) -> None:
        """Give every paused socket its reader again (a closed one is dropped), and call the
        reader once now: a TLS socket may hold decrypted bytes the selector cannot see."""
        paused, self._paused = self._paused, []
        for loop, sock, callback, args in paused:
            if sock.fileno() >= 0 and not loop.is_closed():
                with suppress(OSError, ValueError):  # closed meanwhile: its session ends
                    loop.add_reader(sock.fileno(), callback, *args)
                    loop.call_soon(callback, *args)


class BufferedSocket:
    """A socket whose recv() is served from one large read (see the module docstring);
    everything else goes to the socket itself. With a `gate`, no read is made while the
    gate holds: the socket is taken off the event loop instead (ReadGate)."""

    def __init__(
        self, sock: Any, reads_per_turn: int = READS_PER_TURN, gate: ReadGate | None = None
    ) -> None:
        self._sock = sock
        self._gate = gate
        self._buffer = b""
        self._at = 0
        # A TLS socket holds decrypted bytes the selector cannot see: never leave them waiting.
        if hasattr(sock, "pending"):
            reads_per_turn = -1
        self._reads_per_turn = reads_per_turn
        self._reads_left = reads_per_turn

    def recv(self, size: int) -> bytes:
        if self._at >= len(self._buffer):
            if self._reads_left == 0:
                raise BlockingIOError("this event-loop turn's socket reads are spent")
            if self._gate is not None and self._gate.hold() and self._gate.pause(self._sock):
                raise BlockingIOError("holding as many messages as allowed: reading paused")
            data = self._sock.recv(max(size, READ_SIZE))  # BlockingIOError passes through
            self._spend_read()
            if len(data) <= size:
                return bytes(data)
            self._buffer, self._at = data, 0
        chunk = self._buffer[self._at : self._at + size]
        self._at += len(chunk)
        return chunk

    def _spend_read(self) -> None:
        """Count a socket read against this turn; the first of a turn schedules the next
        turn's budget (call_soon runs after the current callback returns). Off an event loop
        (paho's own network loop) reads are not limited, nor are a TLS socket's (-1)."""
        if self._reads_per_turn < 0:
            return
        if self._reads_left == self._reads_per_turn:
            try:
                asyncio.get_running_loop().call_soon(self._new_turn)
            except RuntimeError:
                return
        self._reads_left -= 1

    def _new_turn(self) -> None:
        self._reads_left = self._reads_per_turn

    def pending(self) -> int:
        """Bytes read from the socket and not yet handed to paho."""
        inner = getattr(self._sock, "pending", None)
        return len(self._buffer) - self._at + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def buffer_reads(client: paho.Client, gate: ReadGate | None = None) -> None:
    """Make every socket `client` opens from now on a BufferedSocket (reading while `gate`
    lets it, if given)."""
    create = client._create_socket

    def create_buffered() -> Any:
        return BufferedSocket(create(), gate=gate)

    client._create_socket = create_buffered  # type: ignore[method-assign]


def queue_pubacks(client: paho.Client, mids: list[int], command: int = PUBACK) -> None:
    """Queue PUBACKs (or, `command` PUBCOMP, PUBCOMPs) for `mids`, in order, as one write
    (what paho's ack(mid, 1), ack(mid, 2) send for each, MQTT 3.1.1 §3.4, §3.7: the command,
    0x02 and the packet id)."""
    if mids:
        block = b"".join(struct.pack("!BBH", command, 2, mid) for mid in mids)
        client._packet_queue(command, block, 0, 0)


def topic_fault(topic: str) -> str | None:
    """Why `topic` (decoded with errors="surrogateescape") is not a topic MQTT 3.1.1 §1.5.3
    allows: ill-formed UTF-8 (Python's strict decoder also refuses UTF-16 surrogates and
    overlong forms, which then show as escapes) or U+0000. None if it is allowed."""
    if "\x00" in topic:
        return "topic holds U+0000"
    try:
        topic.encode()
    except UnicodeEncodeError:
        return "topic is not UTF-8"
    return None


# (topic, payload, qos, packet id): what the ingest needs of a PUBLISH.
OnPublish = Callable[[str, bytes | bytearray, int, int], None]


def fast_publishes(client: paho.Client, on_publish: OnPublish) -> None:
    """Decode each QoS 0 or 1 PUBLISH (MQTT 3.1.1 §3.3) of `client` and call `on_publish`
    with it instead of paho's on_message (see the module docstring). Only with manual acks
    (paho then sends nothing itself for a QoS 1 message: the handler's caller PUBACKs, as
    queue_pubacks). A topic that is not UTF-8 is handed over surrogate-escaped, for the handler
    to refuse (topic_fault): paho's path raised out of its read loop with the packet kept, so
    it raised again at every read and nothing behind it was handled. Anything else, QoS 2,
    MQTT 5, an empty topic or a packet too short for its fields, takes paho's own path
    (on_message, or MQTT_ERR_PROTOCOL and a new connection)."""
    slow = client._handle_publish

    def handle_publish() -> paho.MQTTErrorCode:
        packet = client._in_packet
        header, data = packet["command"], packet["packet"]
        qos = (header & 0x06) >> 1
        if qos > 1 or client._protocol == paho.MQTTv5 or not client._manual_ack:
            return slow()
        size = len(data)
        if size < 2:
            return slow()
        at = 2 + ((data[0] << 8) | data[1])  # the topic's length prefix, then the topic
        end = at + 2 if qos else at
        if at == 2 or end > size:
            return slow()
        try:
            topic = data[2:at].decode()
        except UnicodeDecodeError:
            topic = data[2:at].decode("utf-8", "surrogateescape")
        mid = (data[at] << 8) | data[at + 1] if qos else 0
        on_publish(topic, data[end:], qos, mid)
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    client._handle_publish = handle_publish  # type: ignore[method-assign]
