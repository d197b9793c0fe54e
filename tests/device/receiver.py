"""The gateway's side of the box contract (docs/protocol.md), reduced to what the device
tests need: subscribe, verify every reading with coincurve, keep it, acknowledge the
highest seq kept per box. It stands in for the gateway, whose issue comes after the box's.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from dataclasses import dataclass, field

import aiomqtt

from device import ack, reading, schnorr, topics


@dataclass
class Receiver:
    port: int
    site: str
    acking: bool = True
    arrivals: list[bytes] = field(default_factory=list)  # every reading as it arrived
    kept: dict[tuple[bytes, int], bytes] = field(default_factory=dict)  # (key, seq) -> bytes
    statuses: list[dict] = field(default_factory=list)
    bad_signatures: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Receive until cancelled, reconnecting (the tests restart the broker)."""
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="test-receiver", clean_session=False
                ) as client:
                    await client.subscribe(f"{topics.PREFIX}/{self.site}/+/reading", 1)
                    await client.subscribe(f"{topics.PREFIX}/{self.site}/+/status", 1)
                    self.connected.set()
                    async for message in client.messages:
                        await self._handle(client, message)
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.2)

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = bytes(message.payload)  # type: ignore[arg-type]
        if str(message.topic).endswith("/status"):
            self.statuses.append(json.loads(payload))
            return
        decoded = reading.decode(payload)
        # coincurve explicitly, independent of whichever backend the box used
        if not schnorr.coincurve_verify(decoded.key, reading.message(payload), decoded.signature):
            self.bad_signatures += 1
            return
        self.arrivals.append(payload)
        self.kept.setdefault((decoded.key, decoded.seq), payload)
        if self.acking:
            newest = max(seq for key, seq in self.kept if key == decoded.key)
            dev = topics.device_id(decoded.key)
            await client.publish(topics.ack(self.site, dev), ack.encode(newest), 1)

    def seqs(self, key: bytes) -> list[int]:
        return sorted(seq for k, seq in self.kept if k == key)


async def running(receiver: Receiver) -> asyncio.Task[None]:
    """Start `receiver` and return its task once it is subscribed."""
    task = asyncio.create_task(receiver.run())
    await asyncio.wait_for(receiver.connected.wait(), 10)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
