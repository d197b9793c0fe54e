"""The MQTT ingest's handling of each PUBLISH (gateway/ingest_mqtt.py): what it hands the
gateway, what it refuses itself, and which packet ids it acknowledges. Real gateway and
spool; the PUBLISHes are what the decoder (gateway/mqtt_io.py) hands over."""

from __future__ import annotations

import asyncio
from pathlib import Path

from device import topics
from gateway.ingest_mqtt import MqttIngest, _PubackQueue
from tests.gateway.test_service import DEV, make_gateway, signed


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
