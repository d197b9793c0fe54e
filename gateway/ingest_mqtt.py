"""MQTT ingest: the site's boxes publish readings to the broker; the gateway subscribes
with a persistent session (QoS 1, clean session off, so the broker queues readings while
the gateway restarts) and publishes each box's end-to-end acknowledgement after commit.
Uses aiomqtt (asyncio-mqtt, its predecessor, breaks with paho-mqtt 2).

The gateway PUBACKs a reading to the broker only once it is committed (or rejected), in
arrival order as MQTT 3.1.1 §4.6 requires: a gateway killed mid-stream leaves what it had
not committed with the broker, which redelivers it to the resumed session. (paho
acknowledges on receipt by default; aiomqtt has no manual-ack API, so paho's is used.)
The broker must allow many unacknowledged messages in flight to the gateway
(Mosquitto: max_inflight_messages 5000, hardware/mosquitto-site.conf) or commits
pace the stream. Messages are handled in paho's read callback, PUBACKs go out a block at a
time, and reads are buffered (gateway/mqtt_io.py): per message, no task and no syscall.

The gateway also reads the boxes' retained status (which ack version each box's firmware
speaks: Gateway.box_status) and, once per session, publishes its certificate from the
owner (device/cert.py) retained on pharmasync/v1/<site>/gateway/cert, so every box that
connects gets it once, before its retained ack.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable
from contextlib import suppress
from functools import partial
from typing import TypeVar

import aiomqtt
import paho.mqtt.client as paho

from device import topics
from gateway import mqtt_io
from gateway.service import Gateway

log = logging.getLogger("pharmasync.gateway.mqtt")
T = TypeVar("T")
ACK_INTERVAL_S = 0.05  # coalesce a box's acknowledgements: one publish per box per interval
ACK_PUBLISH_TIMEOUT_S = 120.0  # a publish not confirmed in this long is published again
ACKS_UNCONFIRMED_MAX = 20_000  # ack publishes waiting for their PUBACK (_publish_acks)
# ...and a box's ack at most this often (each is signed and retained). A box waits its
# ack_timeout_s (30 s) before resending; 1,000 boxes draining at once got 2,000 signed acks
# a second at 0.5 s, a fifth of a core beside the readings (bench/RESULTS.md, issue 13).
ACK_BOX_GAP_S = 2.0
# Messages received and not yet PUBACKed (committed) that the gateway holds at most: at that
# many it stops reading the socket (mqtt_io.ReadGate) until commits bring them down to three
# quarters of it (the pipeline kept fed: 8,192 resuming at half cost ~20 % of the drain's
# rate). Each costs ~1.3 KB until its commit; the broker's window (Mosquitto's
# max_inflight_messages 5000, hardware/mosquitto-site.conf) did not bound them in a storm:
# 100 boxes x 4,096 connecting within 5 s left 108,000 in the gateway, 237 MB RSS that
# stayed after the storm (bench/RESULTS.md, issue 13 part 3).
IN_FLIGHT_MAX = 16_384


async def cancellable(call: Awaitable[T]) -> T:
    """Await `call` (an aiomqtt call that waits for the broker's answer) and re-raise a
    cancellation it swallowed: under Python 3.11 aiomqtt's asyncio.wait_for returns the
    answer that arrives as the task is being cancelled and drops the cancellation (CPython
    gh-86296, fixed in 3.12), so a gateway stopped at that moment would wait forever for
    its acknowledgement loop. A cancellation requested and not yet delivered shows in
    Task.cancelling()."""
    result = await call
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return result


class LinkState(enum.Enum):
    DISCONNECTED = "disconnected"  # not connected; waiting out the backoff
    CONNECTING = "connecting"  # TCP + CONNECT sent, waiting for CONNACK and SUBACK
    CONNECTED = "connected"  # subscribed; readings flow in, acknowledgements flow out


class _PubackQueue:
    """Messages waiting for their PUBACK, in arrival order: (packet id, settled when the
    reading is committed or rejected). Those delivered at QoS 2 (which the subscription
    does not ask for, but paho hands over after PUBREL) end with PUBCOMP instead."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[int, asyncio.Future[bytes | None]]] = deque()
        self.exactly_once: set[int] = set()  # packet ids of QoS 2 deliveries waiting
        self.wake = asyncio.Event()

    def put(self, mid: int, done: asyncio.Future[bytes | None], qos: int = 1) -> None:
        self.waiting.append((mid, done))
        if qos == 2:
            self.exactly_once.add(mid)
        self.wake.set()


class MqttIngest:
    """Subscribes to the site's readings and publishes acknowledgements, reconnecting with
    capped exponential backoff and jitter for as long as it runs."""

    def __init__(self, gateway: Gateway, max_backoff_s: float = 30.0) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.max_backoff_s = max_backoff_s
        self.state = LinkState.DISCONNECTED
        self.connects = 0
        self.last_error = ""
        self._acks_due: dict[bytes, int | None] = {}  # box -> oldest seq its ack must cover
        self._ack_sent: dict[bytes, float] = {}  # box -> when its ack was last published
        self.in_flight = 0  # readings received, not yet PUBACKed to the broker
        self.max_in_flight = IN_FLIGHT_MAX  # reading pauses at this many (ReadGate)
        self.read_gate = mqtt_io.ReadGate(lambda: self.in_flight >= self.max_in_flight)
        self._acks_wake = asyncio.Event()
        self.acks_unconfirmed = 0  # ack publishes waiting for the broker's PUBACK
        self.ack_confirm_s_max = 0.0  # the longest wait for one (memtrace reads and resets it)
        gateway.ack_listeners.append(self._ack_due)
        gateway.alarm_listeners.append(self._alarms_changed)
        self._alarm_state_due = True  # publish the retained alarm state once connected
        self._prefix = f"{topics.PREFIX}/{self.settings.site}/"

    def _ack_due(self, box: bytes, near: int | None) -> None:
        self._still_due(box, near)
        self._acks_wake.set()

    def _still_due(self, box: bytes, near: int | None) -> None:
        """Make a box's ack due (covering `near`, with what was due already) without waking
        the ack loop: one whose last publish awaits its PUBACK waits for that."""
        was = self._acks_due.get(box, near)
        self._acks_due[box] = was if near is None else near if was is None else min(near, was)

    def _alarms_changed(self, events: object) -> None:
        self._alarm_state_due = True
        self._acks_wake.set()

    def alarm_state(self) -> bytes:
        """The retained message on pharmasync/v1/<site>/alarms: every active alarm."""
        active = [a.to_json() for a in self.gateway.alarms.active()]
        return json.dumps(
            {
                "site": self.settings.site,
                "active": active,
                "spool_nearly_full": self.gateway.spool_nearly_full,
                "accepting": self.gateway.accepting,
            }
        ).encode()

    async def run(self) -> None:
        backoff = 1.0
        m = self.settings.mqtt
        while True:
            self.state = LinkState.CONNECTING
            try:
                client = aiomqtt.Client(
                    m.host,
                    m.port,
                    username=m.user,
                    password=m.password,
                    identifier=self.settings.client_id,
                    clean_session=False,
                    keepalive=m.keepalive,
                    max_queued_outgoing_messages=100_000,
                )
                client._client.manual_ack_set(True)  # PUBACK after commit, see above
                # No window of paho's own for our publishes: _publish_acks keeps at most one
                # per box unconfirmed, and a window would hold acks back behind publishes
                # whose PUBACK waits behind the readings stream (paho also walks every
                # unconfirmed publish at each PUBACK while it holds some back).
                client._client.max_inflight_messages_set(0)
                client.pending_calls_threshold = ACKS_UNCONFIRMED_MAX  # (it warns above)
                # A recv per buffer, not per byte; none while max_in_flight wait for commits.
                mqtt_io.buffer_reads(client._client, self.read_gate)
                # Each message is handled in paho's read callback, on the event loop, in
                # arrival order: aiomqtt's message queue costs a task per message.
                pubacks = _PubackQueue()
                client._client.on_message = partial(self._message, pubacks)
                mqtt_io.fast_publishes(client._client, partial(self._publish, pubacks))
                async with client:
                    if self.gateway.certificate is not None:
                        await cancellable(
                            client.publish(
                                topics.cert(self.settings.site),
                                self.gateway.certificate,
                                1,
                                retain=True,
                            )
                        )
                    # Status first: the retained statuses say which ack each box speaks.
                    prefix = f"{topics.PREFIX}/{self.settings.site}"
                    await cancellable(client.subscribe(f"{prefix}/+/status", 1))
                    await cancellable(client.subscribe(f"{prefix}/+/reading", 1))
                    self.state = LinkState.CONNECTED
                    self.connects += 1
                    backoff = 1.0
                    log.info(
                        "MQTT connected to %s:%d as %s", m.host, m.port, self.settings.client_id
                    )
                    helpers = [
                        asyncio.create_task(self._publish_acks(client)),
                        asyncio.create_task(self._puback_in_order(client, pubacks)),
                    ]
                    try:
                        async for _ in client.messages:  # none come: ends at disconnection
                            pass
                    finally:
                        for task in helpers:
                            task.cancel()
                        for task in helpers:
                            with suppress(asyncio.CancelledError):
                                await task
                        self.in_flight = 0  # the broker redelivers them to the next session
                        self.read_gate.resume()  # (a closed socket is dropped)
            except aiomqtt.MqttError as e:
                self.last_error = str(e)
                log.warning("MQTT link down (%s); retrying in about %.0f s", e, backoff)
            self.state = LinkState.DISCONNECTED
            await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(self.max_backoff_s, backoff * 2)

    def _message(
        self, pubacks: _PubackQueue, _client: object, _userdata: object, message: paho.MQTTMessage
    ) -> None:
        """Hand a received message to the gateway and queue its PUBACK (paho's on_message:
        what mqtt_io.fast_publishes leaves to paho). The topic is escaped as the fast path's:
        paho's message.topic raises for one that is not UTF-8."""
        topic = message._topic.decode("utf-8", "surrogateescape")
        self._publish(pubacks, topic, message.payload, message.qos, message.mid)

    def _publish(
        self, pubacks: _PubackQueue, topic: str, payload: bytes | bytearray, qos: int, mid: int
    ) -> None:
        """Hand a received message to the gateway and queue its PUBACK. A topic MQTT
        forbids (mqtt_io.topic_fault) is refused here, counted under its fault, and
        acknowledged like any refused reading: closing the connection (MQTT-1.5.3-1) would
        have the broker redeliver it to every new session."""
        # Cheap for the usual ASCII topic: only a non-ASCII one or a NUL is looked into.
        fault = None if topic.isascii() and "\x00" not in topic else mqtt_io.topic_fault(topic)
        # pharmasync/v1/<site>/<device-id>/reading (or /status)
        dev_id, _, kind = (
            topic[len(self._prefix) :].partition("/")
            if topic.startswith(self._prefix)
            else ("", "", "")
        )
        if fault is not None or kind == "status":
            if fault is not None:
                self.gateway.counts[fault] += 1
                self.gateway.reject_log("mqtt:" + ascii(topic), fault, f"packet id {mid}")
            else:
                self.gateway.box_status(dev_id, bytes(payload))
            done: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
        else:
            # Acks are published per box from ack_listeners: no payload per reading.
            done = self.gateway.submit(bytes(payload), "mqtt:" + topic, dev_id, False)
        if qos > 0:
            self.in_flight += 1
            pubacks.put(mid, done, qos)

    async def _puback_in_order(self, client: aiomqtt.Client, pubacks: _PubackQueue) -> None:
        """PUBACK each message once its reading is committed (or rejected), in order: every
        message whose reading is settled, up to the first that is not, in one write."""
        waiting = pubacks.waiting
        while True:
            if not waiting:
                pubacks.wake.clear()
                await pubacks.wake.wait()
                continue
            await waiting[0][1]
            mids = []
            while waiting and waiting[0][1].done():
                mids.append(waiting.popleft()[0])
            self.in_flight -= len(mids)
            if self.read_gate.paused and self.in_flight <= self.max_in_flight * 3 // 4:
                self.read_gate.resume()
            if pubacks.exactly_once:
                comps = [mid for mid in mids if mid in pubacks.exactly_once]
                pubacks.exactly_once.difference_update(comps)
                mids = [mid for mid in mids if mid not in comps]
                mqtt_io.queue_pubacks(client._client, comps, mqtt_io.PUBCOMP)
            mqtt_io.queue_pubacks(client._client, mids)

    async def _publish_acks(self, client: aiomqtt.Client) -> None:
        """Publish due acknowledgements, at most one per box per ACK_BOX_GAP_S; retained,
        so a box that reconnects learns its acknowledgement at once. Also publishes the
        site's retained alarm state when it changes.

        Nothing here waits for the broker's PUBACK: Mosquitto queues it behind every
        message already on its way to us, which in a drain's storm is tens of seconds of
        our own reading, and a loop that waited for it (and ended when aiomqtt's timeout
        raised) left boxes without acks past their 30 s timeout, so they resent whole
        backlogs (bench/RESULTS.md, issue 13 part 3). A publish the broker does not confirm
        within ACK_PUBLISH_TIMEOUT_S, or cut by the session's end, makes its box due again.

        At most one publish per box waits for its PUBACK: a newer ack stays due until the
        broker confirms the one before, then the newest is published. Each ack is retained
        and supersedes the last, so nothing is lost; every further one in the air cost a
        task and a paho message until its late PUBACK, and behind paho's window they queued
        for tens of seconds: 300 boxes draining held up to 20,000 unconfirmed (confirmed
        after up to 115 s), the gateway's RSS rose with them, and boxes resent whole
        backlogs (bench/RESULTS.md, issue 13 part 3, "What rose in the storm").
        ACKS_UNCONFIRMED_MAX bounds them for a site of that many boxes. The alarm state is
        published at once whenever it changes (an alarm must not wait for an earlier
        state's PUBACK)."""
        self._acks_wake.set()  # the alarm state is due at every (re)connection
        self._alarm_state_due = True
        # box -> its ack's publish waiting for the broker's PUBACK (an alarm state's: itself)
        unconfirmed: dict[object, asyncio.Future[None]] = {}
        try:
            while True:
                await self._acks_wake.wait()
                self._acks_wake.clear()
                if self._alarm_state_due:
                    self._alarm_state_due = False
                    self._send_ack(client, unconfirmed, None, None)
                due, self._acks_due = self._acks_due, {}
                now = time.monotonic()
                for box, near in due.items():
                    if box in unconfirmed:  # due when its last publish is confirmed
                        self._still_due(box, near)
                        continue
                    recent = now - self._ack_sent.get(box, -ACK_BOX_GAP_S) < ACK_BOX_GAP_S
                    if recent or len(unconfirmed) >= ACKS_UNCONFIRMED_MAX:
                        self._ack_due(box, near)  # a later round
                    else:
                        self._ack_sent[box] = now
                        self._send_ack(client, unconfirmed, box, near)
                await asyncio.sleep(ACK_INTERVAL_S)
        finally:
            for task in unconfirmed.values():
                task.cancel()

    def _send_ack(
        self,
        client: aiomqtt.Client,
        unconfirmed: dict[object, asyncio.Future[None]],
        box: bytes | None,
        near: int | None,
    ) -> None:
        """Publish a box's ack (signed now: once per box per interval, not at every commit),
        or with box None the site's alarm state, without waiting for the PUBACK; once the
        broker confirms it, what became due meanwhile is published; if it fails, it is due
        again."""
        if box is None:
            topic, payload = topics.alarms(self.settings.site), self.alarm_state()
        else:
            topic = topics.ack(self.settings.site, topics.device_id(box))
            payload = self.gateway.ack_payload(box, near)
        task = asyncio.ensure_future(
            client.publish(topic, payload, 1, retain=True, timeout=ACK_PUBLISH_TIMEOUT_S)
        )
        key: object = task if box is None else box
        unconfirmed[key] = task
        self.acks_unconfirmed = len(unconfirmed)
        sent = time.monotonic()

        def settled(task: asyncio.Future[None]) -> None:
            if unconfirmed.get(key) is task:
                del unconfirmed[key]
            self.acks_unconfirmed = len(unconfirmed)
            if not task.cancelled() and task.exception() is None:
                self.ack_confirm_s_max = max(self.ack_confirm_s_max, time.monotonic() - sent)
                if box is not None and box in self._acks_due:
                    self._acks_wake.set()  # its newer ack waited for this confirmation
                return
            if not task.cancelled():
                log.warning("MQTT: %s not confirmed (%s); due again", topic, task.exception())
            if box is None:
                self._alarms_changed(None)
            else:
                self._ack_due(box, near)

        task.add_done_callback(settled)
