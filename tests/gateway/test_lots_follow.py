"""The gateway follows the lots its boxes are on (gateway/lots_follow.py) against the real
cloud app (SQLite and PostgreSQL) and a real gateway service: refused while unregistered,
then a box on a lot whose profile is stricter than its zone's alarms at a temperature the
zone alone accepts, the event naming the lot profile; restarted with the cloud down, it
alarms on the last answer kept on disk, and says once that the cloud is away.

The contract State's `boxes` is not fed from the registry on main yet, so the attach is
applied with the cloud's engine to its State directly (tests/cloud/api/test_gateway_lots.py
says why); everything else goes through HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cloud.api.app import make_app
from cloud.api.state import CONTRACTS
from cloud.contracts import tx
from device import reading, schnorr, topics
from gateway import app, gateway_auth, status
from gateway import registry_change as registry
from gateway import settings as gw_settings
from gateway.alarms import AlarmEvent, LotProfile
from gateway.lot_profiles import LotOn, to_answer
from gateway.lots_follow import STATE_FILE, LotsError, LotsFollower, LotsState
from gateway.registry import Box, Registry
from gateway.service import Gateway
from gateway.spool import Spool
from tests.cloud import conftest as cloud_fixtures
from tests.cloud.api.test_app import OWNER
from tests.cloud.api.test_app import settings as cloud_settings
from tests.cloud.api.test_tx import M, admit, signed
from tests.cloud.contracts.world import GTIN, PROFILE, REGULATOR
from tests.conftest import Mosquitto, free_port

database = cloud_fixtures.database
postgres_database = cloud_fixtures.postgres_database
SITE = "t"
GW_SECRET = bytes(31) + b"\x91"
BOX_SECRET = bytes(31) + b"\x92"
BOX = schnorr.pubkey(BOX_SECRET)
DEV = topics.device_id(BOX)
# The lot's storage profile: 2..5 °C, an excursion raised after 5 minutes.
STRICT = PROFILE | {"high_cc": 500, "hysteresis_cc": 20, "delay_consecutive_s": 300}
LOT = f"{GTIN}/L1"


async def post(url: str, path: str, body: Any) -> int:
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body) as r:
        return r.status


async def post_tx(url: str, signed_tx: tx.SignedTx) -> None:
    async with aiohttp.ClientSession() as s:
        data = signed_tx.to_wire()
        headers = {"Content-Type": "application/json"}
        async with s.post(url + "/v1/tx", data=data, headers=headers) as r:
            assert r.status == 201, await r.text()


def make_gateway(data: Path, url: str) -> Gateway:
    """A gateway as `gateway run` builds it, with the box registered locally."""
    settings = gw_settings.from_dict(
        {
            "gateway": {"site": SITE, "data_dir": str(data)},
            "uplink": {"url": url, "timeout_s": 2},
            "spool": {"commit_interval_s": 0.0},
            "lots": {"interval_s": 0.05, "max_backoff_s": 0.1},
        }
    )
    data.mkdir(parents=True, exist_ok=True)
    reg = Registry(data / "registry.json")
    reg.put(Box(BOX, "fridge", SITE))
    return Gateway(settings, reg, Spool(data / "spool.sqlite"), GW_SECRET)


async def feed(gw: Gateway, seqs: range, start: int, celsius: float) -> list[AlarmEvent]:
    """Deliver readings a minute apart from `start` and return the alarm events."""
    events: list[AlarmEvent] = []
    gw.alarm_listeners.append(events.extend)
    for i in seqs:
        wire = reading.sign(BOX_SECRET, i, start + 60 * i, round(celsius * 100), 5000)
        done = await gw.receive(wire, "test", DEV)
        await gw.flush()
        assert await done is not None
    gw.alarm_listeners.remove(events.extend)
    return events


async def stop(gw: Gateway) -> None:
    await gw.stop()
    gw.spool.close()
    gw.registry.close()


async def test_a_box_on_a_stricter_lot_alarms_where_its_zone_would_not(
    tmp_path: Path, database: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = cloud_settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    cloud = TestServer(make_app(config), host="127.0.0.1", port=port)
    await cloud.start_server()
    data = tmp_path / "gw"
    gw = make_gateway(data, url)
    follower = LotsFollower(gw)
    assert follower.state is LotsState.NEVER
    start = int(time.time()) - 3600
    try:
        async with aiohttp.ClientSession() as session:
            # Not registered yet: the cloud refuses, saying why.
            with pytest.raises(LotsError, match=r"HTTP 403: .*not a registered gateway"):
                await follower.poll(session)
            now = int(time.time())
            change = registry.GatewayRegistration(gw.key, now, site=SITE)
            assert await post(url, "/v1/registry", registry.sign_request(OWNER, change)) == 201
            change = registry.BoxRegistration(BOX, now, site=SITE, label="fridge")
            assert await post(url, "/v1/registry", registry.sign_request(OWNER, change)) == 201
            await post_tx(url, admit("M"))
            args = {"gtin": GTIN, "lot": "L1", "expiry": "271200", "quantity": 5, "unit": "pk"}
            await post_tx(url, signed(M, "lots", "commission", {**args, "profile": STRICT}))
            await follower.poll(session)
            assert follower.state is LotsState.CURRENT and follower.lots == {}
            # 6 °C for 20 minutes: within the zone's 2..8 °C, nothing is raised.
            assert await feed(gw, range(0, 20), start, 6.0) == []
            # The box goes on lot L1 (2..5 °C).
            service = cloud.app[CONTRACTS]
            service.state.boxes[BOX] = M.xonly
            ms = int(time.time() * 1000)
            attach = {"box": BOX.hex(), "gtin": GTIN, "lot": "L1", "start": ms, "end": None}
            service.engine.apply(
                service.state, tx.make("lots", "attach", attach, M.secret, time_ms=ms), bytes(32)
            )
            await follower.poll(session)
        assert list(gw.lots_applied[DEV].lots) == [LOT]
        assert gw.alarms.profile(DEV) is not None and gw.alarms.profile(DEV).high_c == 5.0
        events = await feed(gw, range(20, 30), start, 6.0)
        assert [(e.kind, e.state, e.time_s) for e in events] == [
            ("high", "raised", start + 60 * 25)  # 5 minutes after the first judged by 5 °C
        ]
        assert events[0].detail.endswith(f"; lot profile {LOT}")
        assert (data / STATE_FILE).exists()
        # The status page and status.json show which lots each box is on.
        shown = await status.snapshot(status.Runtime(gw, lots_follow=follower))
        assert [b["lots"] for b in shown["boxes"]] == [[LOT]]
        assert shown["lots_follow"]["state"] == "current"
        assert shown["lots_follow"]["boxes"] == {BOX.hex(): [LOT]}
        assert LOT in status.render(shown)
        metrics = status.metrics_text(shown).decode()
        assert f'pharmasync_gateway_box_lots{{box="{DEV}"}} 1.0' in metrics
        assert "pharmasync_gateway_lots_current 1.0" in metrics
    finally:
        await cloud.close()
        await stop(gw)

    # A restart with the cloud down: the answer on disk applies from the start.
    gw = make_gateway(data, url)
    try:
        again = LotsFollower(gw)
        assert again.state is LotsState.STALE and again.lots == follower.lots
        with caplog.at_level(logging.WARNING, "pharmasync.gateway.lots_follow"):
            task = asyncio.create_task(again.run())
            await asyncio.sleep(0.5)  # several asks
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        down = [r for r in caplog.records if "cannot get this gateway's lots" in r.getMessage()]
        assert len(down) == 1, "an outage is logged once, not once per ask"
        assert "alarming on the last answer" in down[0].getMessage()
        assert list(gw.lots_applied[DEV].lots) == [LOT]
        assert gw.alarms.profile(DEV) is not None and gw.alarms.profile(DEV).high_c == 5.0
        assert again.snapshot()["state"] == "stale" and again.snapshot()["last_error"]
    finally:
        await stop(gw)


def test_the_wait_doubles_from_the_interval_up_to_the_longest(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, "http://127.0.0.1:9")
    try:
        f = LotsFollower(gw)
        assert [f.wait_s(n) for n in (0, 1, 2, 3, 50)] == [0.05, 0.1, 0.1, 0.1, 0.1]
    finally:
        asyncio.run(stop(gw))


async def test_an_answer_that_does_not_check_is_refused_and_the_last_one_kept(
    tmp_path: Path,
) -> None:
    gw = make_gateway(tmp_path / "gw", "")
    good = to_answer(
        gw.key, SITE, 1, {BOX: [LotOn(GTIN, "L1", 0, None, LotProfile.from_signed(STRICT))]}
    )
    answers: list[Any] = [good, good | {"gateway": "00" * 32}, {"boxes": "no"}]
    signed_by: list[bool] = []

    async def challenge(request: web.Request) -> web.Response:
        return web.json_response({"challenge": "11" * 32, "expires": 0}, status=201)

    async def lots(request: web.Request) -> web.Response:
        sig = bytes.fromhex(request.headers["PharmaSync-Signature"])
        digest = gateway_auth.digest(bytes([0x11] * 32), gw.key, "GET", request.path)
        signed_by.append(schnorr.verify(gw.key, digest, sig))
        return web.json_response(answers.pop(0))

    lying = web.Application()
    lying.router.add_post("/v1/auth/challenge", challenge)
    lying.router.add_get("/v1/gateways/{key}/lots", lots)
    server = TestServer(lying, host="127.0.0.1")
    await server.start_server()
    try:
        follower = LotsFollower(gw)
        follower.base = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            await follower.poll(session)
            kept = (data := (tmp_path / "gw" / STATE_FILE)).read_bytes()
            for error in (r"refused the answer: gateway: got '0000", r"refused the answer: want"):
                with pytest.raises(LotsError, match=error):
                    await follower.poll(session)
                assert list(gw.lots_applied[DEV].lots) == [LOT]
                assert data.read_bytes() == kept
        assert signed_by == [True, True, True]
    finally:
        await server.close()
        await stop(gw)


async def test_gateway_run_follows_the_lots_and_shows_them(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """`gateway run` (gateway/app.py) starts the follower with an [uplink] url: the box's
    lot appears in status.json within a few intervals."""
    port, status_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    config = cloud_settings(tmp_path / "cloud", None, regulators=(REGULATOR.xonly,))
    cloud = TestServer(make_app(config), host="127.0.0.1", port=port)
    await cloud.start_server()
    data = tmp_path / "gw"
    data.mkdir()
    gw_key = schnorr.pubkey(app.load_or_create_key(data / "gateway.key"))
    Registry(data / "registry.json").put(Box(BOX, "fridge", SITE))
    settings = gw_settings.from_dict(
        {
            "gateway": {"site": SITE, "data_dir": str(data)},
            "mqtt": {"port": mosquitto.port},
            "uplink": {"url": url, "timeout_s": 2},
            "status": {"port": status_port},
            "lots": {"interval_s": 0.1},
        }
    )
    stop = asyncio.Event()
    running = asyncio.create_task(app.serve(settings, stop))
    try:
        now = int(time.time())
        for change in (
            registry.GatewayRegistration(gw_key, now, site=SITE),
            registry.BoxRegistration(BOX, now, site=SITE, label="fridge"),
        ):
            assert await post(url, "/v1/registry", registry.sign_request(OWNER, change)) == 201
        await post_tx(url, admit("M"))
        args = {"gtin": GTIN, "lot": "L1", "expiry": "271200", "quantity": 5, "unit": "pk"}
        await post_tx(url, signed(M, "lots", "commission", {**args, "profile": STRICT}))
        service = cloud.app[CONTRACTS]
        service.state.boxes[BOX] = M.xonly
        ms = int(time.time() * 1000)
        attach = {"box": BOX.hex(), "gtin": GTIN, "lot": "L1", "start": ms, "end": None}
        signed_attach = tx.make("lots", "attach", attach, M.secret, time_ms=ms)
        service.engine.apply(service.state, signed_attach, bytes(32))
        shown: dict[str, Any] = {}
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                async with session.get(f"http://127.0.0.1:{status_port}/status.json") as r:
                    shown = await r.json()
                if shown["boxes"][0]["lots"]:
                    break
                await asyncio.sleep(0.1)
        assert shown["boxes"][0]["lots"] == [LOT]
        assert shown["lots_follow"]["state"] == "current"
    finally:
        stop.set()
        await running
        await cloud.close()


async def test_a_box_off_its_lot_alarms_on_its_own_profile_again(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path / "gw", "")
    try:
        await feed(gw, range(0, 1), int(time.time()) - 60, 4.0)  # the zone exists
        now = time.time()
        ends = int(now * 1000) + 1000
        on_lot = LotOn(GTIN, "L1", 0, ends, LotProfile.from_signed(STRICT))
        assert list(gw.set_lots({BOX: (on_lot,)}, now)) == [DEV]  # changed: logged
        assert gw.set_lots({BOX: (on_lot,)}, now) == {}  # unchanged: nothing to log
        assert gw.alarms.profile(DEV) == gw.lots_applied[DEV].profile
        assert gw.lots_applied[DEV].profile.high_c == 5.0
        assert list(gw.set_lots({BOX: (on_lot,)}, now + 2)) == [DEV]  # its window ended
        assert gw.alarms.profile(DEV) == gw.settings.alarms["default"]
    finally:
        await stop(gw)


def test_a_damaged_answer_on_disk_is_logged_and_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw = make_gateway(tmp_path / "gw", "")
    try:
        (tmp_path / "gw" / STATE_FILE).write_text('{"fetched": 1, "answer": {"boxes": 7}}')
        with caplog.at_level(logging.ERROR, "pharmasync.gateway.lots_follow"):
            follower = LotsFollower(gw)
        assert follower.state is LotsState.NEVER and follower.lots == {}
        assert "unreadable" in caplog.text and "no lots until the cloud answers" in caplog.text
    finally:
        asyncio.run(stop(gw))
