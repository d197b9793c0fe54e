"""The gateway's side of the box contract (docs/protocol.md), reduced to what the device
tests need: present a certificate from the test owner (retained, as the gateway does),
subscribe, verify every reading with coincurve, keep it, and acknowledge (version 2) the
ranges of seqs kept per box. It stands in for the gateway in the firmware tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from device import ack, cert, reading, schnorr, topics
from gateway import seqranges

OWNER_SECRET = bytes(31) + b"\x31"
OWNER = schnorr.pubkey(OWNER_SECRET).hex()  # the boxes' owner_key in the device tests
GATEWAY_SECRET = bytes(31) + b"\x32"


def certificate(site: str, secret: bytes = GATEWAY_SECRET, days: int = 1) -> bytes:
    """The test owner's certificate of a gateway key, valid from an hour ago."""
    now = int(time.time())
    return cert.encode(OWNER_SECRET, schnorr.pubkey(secret), site, now - 3600, now + days * 86400)


def ack_of(seqs: list[int], box: bytes, secret: bytes = GATEWAY_SECRET) -> bytes:
    """A version-2 ack of the newest ack.MAX_RANGES ranges of `seqs` for `box`."""
    ranges = seqranges.runs(seqs)[-ack.MAX_RANGES :]
    return ack.encode(ranges, box, secret)


@dataclass
class Receiver:
    port: int
    site: str
    acking: bool = True
    drop: set[int] = field(default_factory=set)  # seqs to act as if they never arrived
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
                    await client.publish(
                        topics.cert(self.site), certificate(self.site), 1, retain=True
                    )
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
        if decoded.seq in self.drop:
            self.drop.discard(decoded.seq)
            return
        self.arrivals.append(payload)
        self.kept.setdefault((decoded.key, decoded.seq), payload)
        if self.acking:
            dev = topics.device_id(decoded.key)
            payload = ack_of(self.seqs(decoded.key), decoded.key)
            await client.publish(topics.ack(self.site, dev), payload, 1)

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


def certify_gateway(data_dir: Path, site: str) -> Path:
    """Give the gateway whose data folder is `data_dir` (its key made now if need be) a
    certificate from the test owner, written to data_dir/gateway.cert as `pharmasync
    gateway certify` writes it; return its path for [gateway] certificate."""
    from gateway.app import load_or_create_key

    data_dir.mkdir(parents=True, exist_ok=True)
    secret = load_or_create_key(data_dir / "gateway.key")
    path = data_dir / "gateway.cert"
    path.write_text(certificate(site, secret, days=30).hex() + "\n")
    return path
