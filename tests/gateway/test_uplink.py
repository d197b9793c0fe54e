"""The uplink with the real cloud app (served on a real port, SQLite and PostgreSQL): the
gateway's signed alarm and status events reach the cloud's log, exactly once, through a
cloud outage and a gateway restart that lost the cloud's answers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from cloud.api.app import make_app
from cloud.log import tlog
from device import reading, schnorr
from gateway import event
from gateway import registry_change as registry
from gateway import settings as gw_settings
from gateway.registry import Box, Registry
from gateway.service import Gateway
from gateway.spool import Spool
from gateway.uplink import Uplink
from tests.cloud import conftest as cloud_fixtures
from tests.cloud.api.test_app import OWNER
from tests.cloud.api.test_app import settings as cloud_settings
from tests.conftest import free_port

BOX_SECRET = bytes(31) + b"\x41"
BOX_KEY = schnorr.pubkey(BOX_SECRET)
GW_SECRET = bytes(31) + b"\x42"
GW_KEY = schnorr.pubkey(GW_SECRET)
# The cloud tests' fixtures: `database` runs each test on SQLite and on PostgreSQL.
database = cloud_fixtures.database
postgres_database = cloud_fixtures.postgres_database


def make_gateway(data: Path, port: int, **more: dict[str, Any]) -> Gateway:
    uplink = {"url": f"http://127.0.0.1:{port}", "max_backoff_s": 1, "timeout_s": 5}
    s = gw_settings.from_dict(
        {
            "gateway": {"site": "t", "data_dir": str(data)},
            "status": {"port": 0},
            "spool": {"commit_interval_s": 0.0},
            "events": {"page_size": 3},  # several pages for a handful of events
            "alarms": {"fast": {"delay_consecutive_s": 120, "delay_cumulative_s": 3600}},
            **more,
            "uplink": uplink | more.get("uplink", {}),
        }
    )
    data.mkdir(parents=True, exist_ok=True)
    reg = Registry(data / "registry.json")
    reg.put(Box(BOX_KEY, "Cold room C", "t", zone="C", lot="LOT-7", profile="fast"))
    return Gateway(s, reg, Spool(data / "spool.sqlite"), GW_SECRET)


async def feed(gw: Gateway, start_seq: int, temps: list[float], t0: int) -> None:
    for i, c in enumerate(temps):
        wire = reading.sign(BOX_SECRET, start_seq + i, t0 + 60 * i, round(c * 100), 5000)
        await gw.receive(wire, "test")
    await gw.flush()


class CloudServer:
    """The real cloud app on a fixed port, started and stopped at will (its data stays)."""

    def __init__(self, data: Path, database: str | None, port: int) -> None:
        self.config = cloud_settings(data, database)
        self.port = port
        self.server: TestServer | None = None
        self.url = f"http://127.0.0.1:{port}"

    async def start(self, *middlewares: Any) -> None:
        app = make_app(self.config)
        app.middlewares.extend(middlewares)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.close()

    async def get(self, path: str, **params: Any) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.url + path, params=params) as r:
            assert r.status == 200, await r.text()
            return await r.json() if r.content_type.endswith("json") else await r.text()

    async def register_gateway(self) -> None:
        await self.register(registry.GatewayRegistration(GW_KEY, int(time.time()), site="t"))

    async def register(self, change: registry.Change) -> None:
        """POST a registry change signed by the owner; require 201."""
        request = registry.sign_request(OWNER, change)
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                self.url + "/v1/registry",
                data=json.dumps(request),
                headers={"Content-Type": "application/json"},
            ) as r,
        ):
            assert r.status == 201, await r.text()

    async def events(self) -> list[dict[str, Any]]:
        return (await self.get(f"/v1/gateways/{GW_KEY.hex()}/events", limit=1000))["events"]

    async def event_entries(self) -> list[bytes]:
        note = await self.get("/v1/checkpoint")
        size = int(note.split("\n")[1])
        listed = await self.get("/v1/log/entries", start=0, end=size)
        return [bytes.fromhex(e) for e in listed["entries"] if e.startswith("05")]


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def shut_down(uplink: asyncio.Task[None], gw: Gateway) -> None:
    """Stop the uplink, then the gateway, and close its files."""
    uplink.cancel()
    with suppress(asyncio.CancelledError):
        await uplink
    await gw.stop()
    gw.spool.close()
    gw.registry.close()


def spool_records(data: Path) -> list[tuple[int, bytes, float | None]]:
    db = sqlite3.connect(data / "spool.sqlite")
    try:
        return list(db.execute("SELECT seq, record, sent_at FROM gateway_events ORDER BY seq"))
    finally:
        db.close()


async def test_events_reach_the_log_exactly_once_through_an_outage_and_a_restart(
    tmp_path: Path, database: str | None
) -> None:
    port = free_port()
    cloud = CloudServer(tmp_path / "cloud", database, port)
    gw_data = tmp_path / "gateway"
    gw = make_gateway(gw_data, port)
    uplink = Uplink(gw)
    task = asyncio.create_task(uplink.run())
    t0 = int(time.time()) - 3600
    try:
        # The cloud is down: a room warms up, the alarm is raised and queued.
        await feed(gw, 0, [5.0, 9.0, 10.0, 11.0, 12.0], t0)
        await gw.spool_call(gw.spool.add_events, gw.secret, gw.status_reporter.drafts(time.time()))
        await until(lambda: _failed(uplink))
        queued = await gw.spool_call(gw.spool.events_unsent)
        assert queued == 2  # alarm-raised, box-status
        # The cloud comes up; the gateway is registered; everything arrives.
        await cloud.start()
        await cloud.register_gateway()
        await until(lambda: _zero(gw))
        # More events than a page while it is up: they go in several pages.
        await feed(gw, 5, [7.0, 6.0], t0 + 300)  # cleared
        for _ in range(3):
            await gw.spool_call(
                gw.spool.add_events, gw.secret, gw.status_reporter.drafts(time.time())
            )
        await until(lambda: _zero(gw))
        # An outage again: a kill of the cloud between events.
        await cloud.stop()
        await gw.spool_call(gw.spool.add_events, gw.secret, gw.status_reporter.drafts(time.time()))
        await asyncio.sleep(0.5)
        assert await gw.spool_call(gw.spool.events_unsent) == 1
        await cloud.start()
        await until(lambda: _zero(gw))
    finally:
        await shut_down(task, gw)
    records = spool_records(gw_data)
    assert [seq for seq, _, _ in records] == list(range(7))
    assert all(sent is not None for _, _, sent in records)
    signed = [event.decode(r) for _, r, _ in records]
    assert [e.kind for e in signed] == [
        event.ALARM_RAISED,
        event.BOX_STATUS,
        event.ALARM_CLEARED,
        *[event.BOX_STATUS] * 4,
    ]
    status = signed[1].body
    assert status["box"] == BOX_KEY.hex() and status["zone"] == "C" and status["last_seq"] == 4
    assert "lot" not in json.dumps([e.to_json() for e in signed])  # never a lot, anywhere
    assert signed[0].body["value_cc"] == 1100 and signed[0].body["alarm"] == "high"

    # A restart that lost the cloud's answers: every event looks unsent, and is resent.
    db = sqlite3.connect(gw_data / "spool.sqlite")
    db.execute("UPDATE gateway_events SET sent_at = NULL, log_index = NULL")
    db.commit()
    db.close()
    before = await cloud.event_entries()
    gw = make_gateway(gw_data, port)
    uplink = Uplink(gw)
    task = asyncio.create_task(uplink.run())
    try:
        await until(lambda: _zero(gw))
        await gw.spool_call(gw.spool.add_events, gw.secret, gw.status_reporter.drafts(time.time()))
        await until(lambda: _zero(gw))
    finally:
        await shut_down(task, gw)
    try:
        after = await cloud.event_entries()
        listed = await cloud.events()
    finally:
        await cloud.stop()
    assert after[: len(before)] == before and len(after) == len(before) + 1 == 8
    assert [e["seq"] for e in listed] == list(range(8))  # exactly once, in order
    records = spool_records(gw_data)
    assert after == [tlog.event_entry(r) for _, r, _ in records]
    assert [e["log_index"] for e in listed] == [
        i
        for (i,) in sqlite3.connect(gw_data / "spool.sqlite").execute(
            "SELECT log_index FROM gateway_events ORDER BY seq"
        )
    ]


async def _zero(gw: Gateway) -> bool:
    return await gw.spool_call(gw.spool.events_unsent) == 0


async def _failed(uplink: Uplink) -> bool:
    return uplink.last_error != ""


async def test_batches_go_several_at_once_and_their_receipts_are_kept_in_order(
    tmp_path: Path, database: str | None
) -> None:
    """[uplink] in_flight batches travel at once (after an outage thousands wait); the
    cloud stores them in chain order, each once, and the gateway records the receipts in
    order."""
    flying, most = 0, 0

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        nonlocal flying, most
        if request.path != "/v1/batches":
            return await handler(request)
        flying += 1
        most = max(most, flying)
        try:
            await asyncio.sleep(0.05)  # a cloud busy verifying: the next ones arrive meanwhile
            return await handler(request)
        finally:
            flying -= 1

    port = free_port()
    cloud = CloudServer(tmp_path / "cloud", database, port)
    await cloud.start(count)
    await cloud.register_gateway()
    await cloud.register(
        registry.BoxRegistration(BOX_KEY, int(time.time()), site="t", label="Cold room C")
    )
    gw_data = tmp_path / "gateway"
    gw = make_gateway(gw_data, port, batch={"max_readings": 2}, uplink={"in_flight": 3})
    await feed(gw, 0, [5.0] * 24, int(time.time()) - 3600)
    assert await gw.seal_due() == 12
    task = asyncio.create_task(Uplink(gw).run())
    try:
        await until(lambda: _all_sent(gw))
    finally:
        await shut_down(task, gw)
    try:
        note = await cloud.get("/v1/checkpoint")
        listed = await cloud.get("/v1/log/entries", start=0, end=int(note.split("\n")[1]))
    finally:
        await cloud.stop()
    assert most == 3
    entries = [bytes.fromhex(e) for e in listed["entries"] if e.startswith("01")]
    with sqlite3.connect(gw_data / "spool.sqlite") as db:
        kept = db.execute("SELECT seq, header, receipt FROM batches ORDER BY seq").fetchall()
    assert [seq for seq, _, _ in kept] == list(range(12))
    assert entries == [tlog.batch_entry(header) for _, header, _ in kept]  # once, in order
    indexes = [json.loads(receipt)["log_index"] for _, _, receipt in kept]
    assert indexes == sorted(indexes) and len(set(indexes)) == 12


async def _all_sent(gw: Gateway) -> bool:
    return (await gw.spool_call(gw.spool.unsent))[0] == 0
