"""The live lane: readings a box takes while online reach the alarms at once, even while
the site drains a backlog (issue 13 part 3).

The gateway's persistent session (gateway/ingest_mqtt.py) gets every reading in the order
the boxes published them, and Mosquitto has one queue per session: after an outage, when
every box resends its backlog at once (up to 4,096 readings each), a reading taken now
waits behind millions of old ones, minutes, and its box's alarms with it (bench/drain.py
measured 24-39 s behind a 100-box drain, and the "silent" alarm flapping). MQTT has no
priorities, so the lane is a second, clean session subscribed at QoS 0 to the same
readings: it looks at one byte of each, and hands the gateway only those without
FLAG_BACKLOG (taken while the box was online: the present). Everything else it drops at
once, so its queue in the broker stays as short as the socket buffer.

Nothing is lost or doubled by it: a reading the lane hands over is judged like any other
(signature, sequence, time) and committed once; the persistent session delivers the same
message later, and that copy is acknowledged as a duplicate and PUBACKed, as before. The
lane never acknowledges anything to the broker (QoS 0), and what it drops or misses (it
reconnects after failures, with no session) the persistent session still delivers. A
reject found on the lane's copy is not counted or quarantined: the persistent session's
copy is (gateway/service.py, LIVE_SOURCE).

Cost: every reading crosses the broker twice and is parsed once more by paho, ~10-15 us
of the gateway's CPU each. That is its limit: it helps while the gateway parses faster than
the boxes publish (a drain of 1,000 boxes x 256 readings: the live alarm 0.7-2 s late, not
24-39 s), but in a full site-wide drain (1,000 x 4,096 readings offered within a minute)
it fell behind the storm, its own queue grew in the broker, and parsing its copies took
half the event loop (bench/RESULTS.md, issue 13 part 3). So it is off unless [mqtt]
live_lane = true. The real fix is upstream: boxes publishing backlog readings on a topic
of their own, which the lane would not subscribe to.
"""

from __future__ import annotations

import asyncio
import logging
import random

import aiomqtt
import paho.mqtt.client as paho

from device import reading, topics
from gateway import mqtt_io
from gateway.service import LIVE_SOURCE, Gateway

log = logging.getLogger("pharmasync.gateway.live")


class LiveLane:
    """The second MQTT session (module docstring); reconnects with capped backoff."""

    def __init__(self, gateway: Gateway, max_backoff_s: float = 30.0) -> None:
        self.gateway = gateway
        self.max_backoff_s = max_backoff_s
        self.connected = False
        self.taken = 0  # readings handed to the gateway
        self._prefix = f"{topics.PREFIX}/{gateway.settings.site}/"

    async def run(self) -> None:
        m = self.gateway.settings.mqtt
        backoff = 1.0
        while True:
            try:
                client = aiomqtt.Client(
                    m.host,
                    m.port,
                    username=m.user,
                    password=m.password,
                    identifier=self.gateway.settings.client_id + "-live",
                    clean_session=True,
                    keepalive=m.keepalive,
                )
                mqtt_io.buffer_reads(client._client)  # a recv per buffer, not per byte
                client._client.on_message = self._message  # no task per message
                async with client:
                    await client.subscribe(f"{self._prefix}+/reading", 0)
                    self.connected = True
                    backoff = 1.0
                    log.info("live lane connected")
                    async for _ in client.messages:  # none come: ends at disconnection
                        pass
            except aiomqtt.MqttError as e:
                log.warning("live lane down (%s); retrying in about %.0f s", e, backoff)
            self.connected = False
            await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(self.max_backoff_s, backoff * 2)

    def _message(self, _client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        """Hand a reading taken online to the gateway; drop everything else (paho's
        on_message, on the event loop)."""
        payload = message.payload
        if len(payload) != reading.SIZE or reading.flags_of(payload) & reading.FLAG_BACKLOG:
            return
        if not self.gateway.accepting:
            return  # counted once, on the persistent session's copy
        topic = message.topic
        if not topic.startswith(self._prefix):
            return
        dev_id = topic[len(self._prefix) :].partition("/")[0]
        self.taken += 1
        self.gateway.submit(bytes(payload), LIVE_SOURCE + topic, dev_id, False)
