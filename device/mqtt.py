"""A small MQTT 3.1.1 client for the sensor box, on asyncio streams (MicroPython and CPython).

Sections (§) cited are those of MQTT Version 3.1.1, OASIS Standard, 29 October 2014
(https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html).

Supports QoS 0 and 1 in both directions, a will, user name and password, keepalive, and a
window of concurrent QoS 1 publishes. Not supported: QoS 2, UNSUBSCRIBE, TLS, MQTT 5.

The client never reconnects by itself. When the connection is lost, every pending publish()
and subscribe() raises OSError at once, `connected` turns False and wait_closed() returns; the
caller calls connect() again and resends what was not acknowledged. With clean_session=False
the broker keeps the subscriptions and queues QoS 1 messages meanwhile (§3.1.2.4).

on_message runs in the reader task, so it must not await a QoS 1 publish() or subscribe():
their acknowledgement could only be read after it returns (start a task for them instead).
"""

import asyncio
import struct

from device import aio

try:
    from micropython import const
except ImportError:  # CPython: const() only marks compile-time constants on MicroPython.

    def const(x):
        return x


try:
    from time import ticks_diff, ticks_ms  # type: ignore[attr-defined]
except ImportError:  # CPython
    from time import monotonic

    def ticks_ms():
        return int(monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


# Fixed-header first bytes, §2.2.1-2.2.2: packet type in the high nibble, flags in the low one.
_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)  # flags: DUP 0x08, QoS 0x06, RETAIN 0x01 (§3.3.1)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)  # flags 0010 are required (§3.8.1)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_TYPE_MASK = const(0xF0)
_QOS_MASK = const(0x06)
_RETAIN = const(0x01)

# CONNECT flags, §3.1.2.3; bit 0 is reserved and zero.
_F_USER = const(0x80)
_F_PASSWORD = const(0x40)
_F_WILL_RETAIN = const(0x20)
_F_WILL_QOS_SHIFT = const(3)
_F_WILL = const(0x04)
_F_CLEAN = const(0x02)

_MAX_LENGTH = const(268435455)  # §2.2.3: four bytes of 7 bits
_MAX_FIELD = const(65535)  # §1.5.3: strings and binary fields have a 2-byte length
_MAX_PID = const(65535)  # §2.3.1: packet ids are 1..65535
_COPY_MAX = const(1024)  # payloads up to this size are copied into their PUBLISH packet
_SUBACK_FAILURE = const(0x80)  # §3.9.3

# §3.1.2.1-2: protocol name "MQTT" (2-byte length first), protocol level 4 = 3.1.1.
_PROTOCOL = b"\x00\x04MQTT\x04"
_PINGREQ_PACKET = bytes((_PINGREQ, 0))  # §3.12: no variable header, no payload
_DISCONNECT_PACKET = bytes((_DISCONNECT, 0))  # §3.14
# Remaining length of the packets that have a fixed one; any other first byte is refused.
_FIXED_LENGTH = {_PUBACK: 2, _SUBACK: 3, _PINGRESP: 0}
# CONNACK return codes 1-5, §3.2.2.3.
_REFUSED = (
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)

# Connection lifecycle.
_CLOSED = const(0)  # never connected, or lost, closed or disconnected: connect() may be called
_CONNECTING = const(1)  # TCP opening or CONNECT sent; CONNACK not read yet
_CONNECTED = const(2)  # CONNACK accepted; the reader (and ping) tasks run


class MQTTError(Exception):
    """The broker refused (code: its CONNACK or SUBACK return code) or broke the protocol."""

    def __init__(self, msg, code=None):
        super().__init__(msg)
        self.code = code


def _length_size(n):
    """Return how many bytes the remaining-length varint of n takes (§2.2.3)."""
    return 1 if n < 0x80 else 2 if n < 0x4000 else 3 if n < 0x200000 else 4


def _put_length(buf, off, n):
    """Write n as a remaining-length varint (§2.2.3) into buf at off; return the end offset.

    Raises ValueError unless 0 <= n <= 268435455.
    """
    if n < 0 or n > _MAX_LENGTH:
        raise ValueError("remaining length: got %d, want 0..%d" % (n, _MAX_LENGTH))
    while n > 0x7F:
        buf[off] = (n & 0x7F) | 0x80  # low 7 bits first, high bit: "more bytes follow"
        n >>= 7
        off += 1
    buf[off] = n
    return off + 1


def encode_length(n):
    """Return the remaining-length varint of n. Raises ValueError unless 0 <= n <= 268435455."""
    buf = bytearray(4)
    return bytes(buf[: _put_length(buf, 0, n)])


def _field(what, b):
    """Return b with its 2-byte big-endian length (§1.5.3). Raises ValueError if too long."""
    if len(b) > _MAX_FIELD:
        raise ValueError("%s: got %d bytes, want <= %d" % (what, len(b), _MAX_FIELD))
    return len(b).to_bytes(2, "big") + b


def _topic(topic, is_filter):
    """Return topic (a name, or a filter if is_filter) as UTF-8. Raises ValueError/TypeError."""
    if not isinstance(topic, str):
        raise TypeError("topic: got %s, want str" % type(topic).__name__)
    if not topic:
        raise ValueError("topic: empty")
    if "\x00" in topic:
        raise ValueError("topic: got U+0000 in %r, not allowed (§4.7.3)" % topic)
    if is_filter:
        # §4.7.1: '#' only as the whole last level, '+' only as a whole level.
        levels = topic.split("/")
        for i in range(len(levels)):
            lv = levels[i]
            if ("#" in lv and (lv != "#" or i != len(levels) - 1)) or ("+" in lv and lv != "+"):
                raise ValueError("topic: got %r, want '+' or '#' as whole levels (§4.7.1)" % topic)
    elif "+" in topic or "#" in topic:
        raise ValueError("topic: got wildcard in %r, allowed only in subscribe (§4.7.1)" % topic)
    b = topic.encode()
    if len(b) > _MAX_FIELD:
        raise ValueError("topic: got %d bytes, want <= %d" % (len(b), _MAX_FIELD))
    return b


def _check_qos(qos, what):
    if qos != 0 and qos != 1:
        raise ValueError("%s: got %r, want 0 or 1" % (what, qos))


async def _close_stream(w):
    """Close w and wait for it; on MicroPython only wait_closed() closes the socket."""
    try:
        w.close()
        await w.wait_closed()
    except OSError:
        pass  # already reset: closed either way


class MQTTClient:
    """An MQTT 3.1.1 client; see the module docstring for what the caller must do."""

    on_message = None  # callable(topic: str, payload: bytes, retained: bool), may be async
    # A PUBLISH from the broker with a longer remaining length closes the connection with
    # MQTTError rather than exhausting a small heap; the box only receives short messages.
    max_incoming = 65536

    def __init__(
        self,
        client_id,
        host,
        port=1883,
        *,
        user=None,
        password=None,
        keepalive=60,
        clean_session=False,
        will=None,
    ):
        """Requires keepalive in 0..65535 (0: no pings) and a non-empty client_id unless
        clean_session (§3.1.3.1); will is (topic, payload bytes, qos 0-2, retain) or None.
        Raises ValueError or TypeError for bad arguments."""
        if not client_id and not clean_session:
            raise ValueError("client_id: empty, allowed only with clean_session=True")
        if not 0 <= keepalive <= 65535:
            raise ValueError("keepalive: got %r, want 0..65535" % (keepalive,))
        if password is not None and user is None:
            raise ValueError("password: given without user (§3.1.2.9)")
        self._host = host
        self._port = port
        self._keepalive = keepalive
        # Built once, immutable: the box reconnects with the same identity many times.
        flags = _F_CLEAN if clean_session else 0
        payload = _field("client_id", client_id.encode())
        if will is not None:
            topic, message, qos, retain = will
            if qos not in (0, 1, 2):
                raise ValueError("will qos: got %r, want 0, 1 or 2" % (qos,))
            payload += _field("will topic", _topic(topic, False))
            payload += _field("will payload", bytes(message))
            flags |= _F_WILL | qos << _F_WILL_QOS_SHIFT | (_F_WILL_RETAIN if retain else 0)
        if user is not None:
            flags |= _F_USER
            payload += _field("user", user.encode())
        if password is not None:
            flags |= _F_PASSWORD
            if isinstance(password, str):
                password = password.encode()
            payload += _field("password", password)
        head = bytes((_CONNECT,)) + encode_length(len(_PROTOCOL) + 3 + len(payload)) + _PROTOCOL
        self._connect_packet = head + bytes((flags,)) + keepalive.to_bytes(2, "big") + payload
        self._state = _CLOSED
        self._reader = self._writer = None
        self._read_task = self._ping_task = None
        self._wlock = self._closed = self._error = None
        self._why = "MQTT not connected"
        # packet id -> [Event, result, ack type]; result stays None until the PUBACK/SUBACK
        # (0 or its return code) or the loss of the connection (a str saying why).
        self._pending = {}
        self._pid = 0
        self._last_tx = 0
        self._rx_count = 0
        self._topic_str = self._topic_b = None

    @property
    def connected(self):
        return self._state == _CONNECTED

    async def connect(self, timeout=10):
        """Open TCP, send CONNECT, read CONNACK; return the session-present flag (§3.2.2.2).

        Requires the client not to be connected. Raises MQTTError (.code = CONNACK return code)
        if refused, OSError if the network fails, asyncio.TimeoutError after timeout seconds.
        """
        if self._state == _CONNECTING or self._state == _CONNECTED:
            raise MQTTError("connect: already connected")
        await self._join()  # the previous connection's reader has closed its socket
        self._state = _CONNECTING
        self._reader = self._writer = self._error = None
        self._pending = {}
        self._wlock = asyncio.Lock()
        self._closed = asyncio.Event()
        try:
            present = await aio.wait_for(self._handshake(), timeout)
        except BaseException as e:  # also TimeoutError and CancelledError: never leak a socket
            self._lost(e)
            if self._writer is not None:
                await _close_stream(self._writer)
            raise
        if self._state != _CONNECTING:  # close() was called meanwhile
            await _close_stream(self._writer)
            raise OSError(self._why)
        self._state = _CONNECTED
        self._last_tx = ticks_ms()
        self._read_task = asyncio.create_task(self._read_loop())
        if self._keepalive:
            self._ping_task = asyncio.create_task(self._ping_loop())
        await asyncio.sleep(0)  # let the reader enter its try/finally, which closes the socket
        return present

    async def _handshake(self):
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._writer.write(self._connect_packet)
        await self._writer.drain()
        first, n = await self._read_header()
        if first != _CONNACK or n != 2:
            raise MQTTError("CONNACK: got packet 0x%02x of %d bytes, want 0x20 of 2" % (first, n))
        body = await self._read(2)
        rc = body[1]
        if rc:
            why = _REFUSED[rc - 1] if rc <= len(_REFUSED) else "unknown return code"
            raise MQTTError("connect refused: %d %s (§3.2.2.3)" % (rc, why), rc)
        return bool(body[0] & 1)

    async def publish(self, topic, payload, qos=0, retain=False, timeout=10):
        """Publish payload (bytes) to topic (str, no wildcards) at QoS 0 or 1.

        QoS 1 returns when the PUBACK arrives. Raises ValueError or TypeError for bad
        arguments, OSError when not connected or the connection is lost, and
        asyncio.TimeoutError after timeout seconds (the connection stays up unless the
        timeout cut a write short).
        """
        tb = self._topic_bytes(topic)
        _check_qos(qos, "qos")
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError("payload: got %s, want bytes" % type(payload).__name__)
        n = 2 + len(tb) + 2 * qos + len(payload)
        if n > _MAX_LENGTH:
            raise ValueError("payload: got %d bytes, want <= %d" % (len(payload), _MAX_LENGTH))
        self._check()
        # One fresh buffer per packet. One: a separate payload write meets Nagle's algorithm and
        # the broker's delayed ACK, 40 ms a packet on MicroPython (whose asyncio, unlike CPython's,
        # leaves TCP_NODELAY off); only a big payload goes apart, to save copying it. Fresh:
        # CPython >= 3.12 transports keep a view of what write() could not send at once.
        apart = payload if len(payload) > _COPY_MAX else None
        pkt = bytearray(1 + _length_size(n) + n - (len(payload) if apart else 0))
        pkt[0] = _PUBLISH | qos << 1 | (_RETAIN if retain else 0)
        off = _put_length(pkt, 1, n)
        struct.pack_into("!H", pkt, off, len(tb))
        off += 2 + len(tb)
        pkt[off - len(tb) : off] = tb
        if apart is None:
            pkt[off + 2 * qos :] = payload
        if qos == 0:
            await aio.wait_for(self._send(pkt, apart), timeout)
            return
        pid, entry = self._reserve(_PUBACK)
        struct.pack_into("!H", pkt, off, pid)
        try:
            await aio.wait_for(self._exchange(entry, pkt, apart), timeout)
        finally:
            self._release(pid, entry)
        self._result(entry)

    async def subscribe(self, topic, qos=1, timeout=10):
        """Subscribe to a topic filter at QoS 0 or 1; return the QoS the broker granted.

        Raises MQTTError (.code = 0x80) if the broker refuses, otherwise as publish().
        """
        tb = _topic(topic, True)
        _check_qos(qos, "qos")
        self._check()
        pid, entry = self._reserve(_SUBACK)
        n = 5 + len(tb)  # §3.8.2-3.8.3: packet id, filter with its length, requested QoS
        pkt = bytearray(1 + _length_size(n) + n)
        pkt[0] = _SUBSCRIBE
        off = _put_length(pkt, 1, n)
        struct.pack_into("!HH", pkt, off, pid, len(tb))
        pkt[off + 4 : off + 4 + len(tb)] = tb
        pkt[-1] = qos
        try:
            await aio.wait_for(self._exchange(entry, pkt, None), timeout)
        finally:
            self._release(pid, entry)
        rc = self._result(entry)
        if rc == _SUBACK_FAILURE:
            raise MQTTError("subscribe refused: %r (SUBACK 0x80)" % topic, rc)
        if rc > 2:
            raise MQTTError("SUBACK: got return code 0x%02x, want 0-2 or 0x80 (§3.9.3)" % rc, rc)
        return rc

    async def disconnect(self):
        """Send DISCONNECT, so the broker discards the will (§3.14), and close.

        Pending calls raise OSError. Does nothing more if already closed.
        """
        if self._state == _CONNECTED:
            try:
                await self._send(_DISCONNECT_PACKET)
            except OSError:
                pass  # lost meanwhile: the broker publishes the will, nothing to do about it
            self._lost(None)
        await self._join()

    def close(self):
        """Drop the connection without DISCONNECT, so the broker publishes the will (§3.1.2.5).

        Pending calls raise OSError; the socket closes on the next turn of the event loop.
        """
        self._lost(OSError("closed by the caller"))

    async def wait_closed(self):
        """Return when the connection ends: the exception that ended it, None after
        disconnect() or if never connected."""
        if self._closed is not None:
            await self._closed.wait()
        await self._join()
        return self._error

    # Internals.

    def _topic_bytes(self, topic):
        # Fast path: a box publishes thousands of readings to one topic; reusing the last
        # checked encoding saves four scans of the topic and an allocation per publish.
        if topic == self._topic_str:
            return self._topic_b
        tb = _topic(topic, False)
        self._topic_str, self._topic_b = topic, tb
        return tb

    def _check(self):
        if self._state != _CONNECTED:
            raise OSError(self._why)

    def _reserve(self, ack):
        """Return (packet id, pending entry) for a request; ids wrap 1..65535 and skip ids
        still in flight (§2.3.1). Raises OSError if all are in flight."""
        if len(self._pending) >= _MAX_PID:
            raise OSError("packet ids: all %d in flight" % _MAX_PID)
        pid = self._pid
        while True:
            pid = pid % _MAX_PID + 1
            if pid not in self._pending:
                break
        self._pid = pid
        entry = [asyncio.Event(), None, ack]
        self._pending[pid] = entry
        return pid, entry

    def _release(self, pid, entry):
        if self._pending.get(pid) is entry:
            del self._pending[pid]

    def _result(self, entry):
        if isinstance(entry[1], str):
            raise OSError(entry[1])
        return entry[1]

    async def _exchange(self, entry, packet, payload):
        await self._send(packet, payload)
        await entry[0].wait()

    async def _send(self, packet, payload=None):
        """Write one packet (packet, then payload) and drain. Raises OSError if not connected."""
        self._check()
        w = self._writer
        # One writer at a time, from write() to the end of drain(): MicroPython lets one task
        # wait per socket, and its drain() drops bytes written by another task meanwhile.
        async with self._wlock:
            self._check()  # lost while we waited for the lock
            try:
                w.write(packet)
                if payload:
                    w.write(payload)
                await w.drain()
            except BaseException as e:
                # An error or a caller's timeout may have cut the packet short (MicroPython's
                # drain() would even resend its start): the stream cannot be resynchronised.
                self._lost(e if isinstance(e, Exception) else OSError("write cancelled"))
                raise
        self._last_tx = ticks_ms()

    async def _read(self, n):
        try:
            return await self._reader.readexactly(n)
        except EOFError:  # also CPython's IncompleteReadError
            raise OSError("broker closed the connection") from None

    async def _read_header(self):
        """Read a fixed header (§2.2); return (first byte, remaining length)."""
        b = await self._read(2)
        first, x = b[0], b[1]
        n, shift = x & 0x7F, 7
        while x & 0x80:
            if shift == 28:
                raise MQTTError("remaining length: more than 4 bytes (§2.2.3)")
            x = (await self._read(1))[0]
            n |= (x & 0x7F) << shift
            shift += 7
        return first, n

    async def _read_loop(self):
        w = self._writer
        try:
            while True:
                first, n = await self._read_header()
                self._rx_count += 1
                if first & _TYPE_MASK == _PUBLISH:
                    await self._on_publish(first, n)
                    continue
                want = _FIXED_LENGTH.get(first)
                if want is None:
                    raise MQTTError(
                        "packet: got first byte 0x%02x from the broker, want PUBLISH, PUBACK, "
                        "SUBACK or PINGRESP (§2.2)" % first
                    )
                if n != want:
                    raise MQTTError(
                        "packet 0x%02x: got remaining length %d, want %d" % (first, n, want)
                    )
                if n:
                    self._on_ack(first, await self._read(n))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # includes MemoryError and exceptions from on_message
            self._lost(e)
        finally:
            await _close_stream(w)

    def _on_ack(self, first, body):
        pid = (body[0] << 8) | body[1]
        entry = self._pending.get(pid)
        if entry is None:
            return  # its publish() timed out and gave up waiting
        if entry[2] != first:
            raise MQTTError(
                "packet 0x%02x: got packet id %d, in flight for 0x%02x" % (first, pid, entry[2])
            )
        del self._pending[pid]
        entry[1] = body[2] if first == _SUBACK else 0
        entry[0].set()

    async def _on_publish(self, first, n):
        qos = (first & _QOS_MASK) >> 1
        if qos > 1:
            raise MQTTError("PUBLISH: got QoS %d from the broker, want 0 or 1" % qos)
        if n > self.max_incoming:
            raise MQTTError(
                "PUBLISH: got remaining length %d, want <= max_incoming %d" % (n, self.max_incoming)
            )
        if n < 2 + 2 * qos:
            raise MQTTError("PUBLISH: got remaining length %d, want >= %d" % (n, 2 + 2 * qos))
        b = await self._read(2)
        tl = (b[0] << 8) | b[1]
        size = n - 2 - tl - 2 * qos
        if size < 0:
            raise MQTTError("PUBLISH: topic length %d overruns remaining length %d" % (tl, n))
        topic = str(await self._read(tl), "utf-8")
        if qos:
            b = await self._read(2)
        payload = await self._read(size) if size else b""
        cb = self.on_message
        if cb is not None:
            r = cb(topic, payload, bool(first & _RETAIN))
            if r is not None and hasattr(r, "send"):  # a coroutine (on MicroPython a generator)
                await r
        if qos:
            # §4.3.2: acknowledge only once the message is handled, so a crash redelivers it.
            await self._send(bytes((_PUBACK, 2, b[0], b[1])))

    async def _ping_loop(self):
        ka = self._keepalive * 1000
        sent = None  # ticks when the PINGREQ not yet answered by any packet went out
        seen = 0
        try:
            while True:
                now = ticks_ms()
                if sent is not None and self._rx_count != seen:
                    sent = None  # anything read proves the broker alive (§3.1.2.10)
                if sent is not None:
                    wait = ka - ticks_diff(now, sent)
                    if wait <= 0:
                        raise OSError("no PINGRESP within keepalive %d s" % self._keepalive)
                else:
                    wait = ka - ticks_diff(now, self._last_tx)
                    if wait <= 0:
                        sent, seen = now, self._rx_count
                        await aio.wait_for(self._send(_PINGREQ_PACKET), self._keepalive)
                        wait = ka
                await asyncio.sleep(wait / 1000)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._lost(e)

    def _lost(self, exc):
        """End the connection once: fail pending calls, stop the tasks, close the socket."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._error = exc
        if exc is None:
            self._why = "MQTT disconnected by the caller"
        else:
            self._why = "MQTT connection lost: " + (str(exc) or type(exc).__name__)
        for entry in self._pending.values():
            entry[1] = self._why
            entry[0].set()
        self._pending = {}
        w = self._writer
        if w is not None:
            # CPython: abort() drops unsent bytes at once, close() would wait to flush them.
            t = getattr(w, "transport", None)
            if exc is not None and t is not None:
                t.abort()
            else:
                w.close()
        cur = asyncio.current_task()
        for t in (self._read_task, self._ping_task):
            if t is not None and t is not cur:
                t.cancel()
        self._closed.set()

    async def _join(self):
        """Await the reader and ping tasks of the last connection (they close its socket)."""
        cur = asyncio.current_task()
        for t in (self._read_task, self._ping_task):
            if t is not None and t is not cur:
                try:
                    await t
                except asyncio.CancelledError:
                    pass
        self._read_task = self._ping_task = None


def box_client(client_id, host, port, user, password, keepalive, will):
    """Return the client a box uses: a persistent session (clean session off) with a will,
    as board.mqtt_client(...) in device/firmware.py describes."""
    return MQTTClient(
        client_id,
        host,
        port,
        user=user,
        password=password,
        keepalive=keepalive,
        clean_session=False,
        will=will,
    )
