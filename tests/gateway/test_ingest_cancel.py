"""A gateway stopped while its MQTT link waits for the broker's PUBACK stops: the
cancellation that Python 3.11's asyncio.wait_for (inside aiomqtt) drops when the answer
arrives as the task is cancelled is raised again (gateway/ingest_mqtt.cancellable).

The race is made exact with a real broker and a real aiomqtt client: the task is cancelled
in the loop iteration after the PUBACK sets aiomqtt's confirmation, when wait_for's inner
wait has finished but its own waiter not yet (the moment a Ctrl-C hit in the demo)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import aiomqtt

from gateway.ingest_mqtt import cancellable
from tests.conftest import Mosquitto


async def publish_cancelled_on_puback(
    port: int, publish: Callable[[aiomqtt.Client], Coroutine[Any, Any, None]]
) -> asyncio.Task[None]:
    """Run `publish` in a task cancelled just after the broker's PUBACK reaches aiomqtt;
    return the finished task."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        task = asyncio.create_task(publish(client))
        answered = client._client.on_publish  # aiomqtt's: sets the call's confirmation
        assert answered is not None

        def cancel_as_answered(*args: Any) -> None:
            answered(*args)
            asyncio.get_running_loop().call_soon(task.cancel)

        client._client.on_publish = cancel_as_answered
        await asyncio.wait({task}, timeout=10)
        assert task.done(), "the publish neither finished nor was cancelled"
        return task


async def test_a_cancellation_as_the_puback_arrives_is_not_lost(mosquitto: Mosquitto) -> None:
    async def guarded(client: aiomqtt.Client) -> None:
        await cancellable(client.publish("pharmasync/test", b"x", 1))
        await asyncio.sleep(3600)  # where a lost cancellation would leave the task

    task = await publish_cancelled_on_puback(mosquitto.port, guarded)
    assert task.cancelled()


async def test_the_race_is_real_without_the_guard(mosquitto: Mosquitto) -> None:
    """The same moment without cancellable(): under 3.11 the publish returns as if never
    cancelled (so the test above exercises the race), under 3.12+ it is cancelled."""

    async def plain(client: aiomqtt.Client) -> None:
        await client.publish("pharmasync/test", b"x", 1)

    task = await publish_cancelled_on_puback(mosquitto.port, plain)
    if sys.version_info < (3, 12):
        assert not task.cancelled() and task.exception() is None  # the cancellation lost
    else:
        assert task.cancelled()
