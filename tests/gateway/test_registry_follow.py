"""The gateway follows the cloud's registry (gateway/registry_follow.py): against the real
cloud app (SQLite and PostgreSQL), boxes registered to its site appear in its registry with
their local fields kept, boxes moved away leave it, and a restart with the cloud down keeps
the last verified registry; against a lying server, entries without authority are counted,
logged once and never applied."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cloud.api.app import make_app
from device import schnorr
from gateway import app, config_entry
from gateway import registry_change as registry
from gateway import settings as gw_settings
from gateway.registry import Box, Registry
from gateway.registry_follow import STATE_FILE, FollowError, RegistryFollower, load_state
from tests.cloud import conftest as cloud_fixtures
from tests.cloud.api.test_app import OWNER
from tests.cloud.api.test_app import settings as cloud_settings
from tests.cloud.log_stub import T0, Ledger
from tests.conftest import Mosquitto, free_port

database = cloud_fixtures.database
postgres_database = cloud_fixtures.postgres_database
STRANGER = bytes(31) + b"\x53"
SITE = "t"


def key(n: int) -> bytes:
    return schnorr.pubkey(bytes(31) + bytes([0x20 + n]))


def follower(data: Path, url: str, owners: list[bytes]) -> RegistryFollower:
    """A gateway's follower as `gateway run` starts it, over the registry in `data`."""
    s = gw_settings.from_dict(
        {
            "gateway": {"site": SITE, "data_dir": str(data)},
            "uplink": {"url": url, "timeout_s": 2},
            "registry": {"follow": True, "interval_s": 0.05, "owners": [k.hex() for k in owners]},
        }
    )
    data.mkdir(parents=True, exist_ok=True)
    return RegistryFollower(s, Registry(data / "registry.json"))


async def register(url: str, change: registry.Change, secret: bytes = OWNER) -> int:
    """Send a signed registry change; return the cloud's status (201 when applied)."""
    request = registry.sign_request(secret, change)
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/registry", json=request) as r:
        return r.status


def box(n: int, site: str, label: str = "") -> registry.Change:
    return registry.BoxRegistration(key(n), int(time.time()), site=site, label=label)


async def test_the_gateway_picks_up_its_boxes_and_keeps_them_with_the_cloud_down(
    tmp_path: Path, database: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = cloud_settings(tmp_path / "cloud", database)
    cloud = TestServer(make_app(config), host="127.0.0.1", port=port)
    await cloud.start_server()
    data = tmp_path / "gw"
    f = follower(data, url, [schnorr.pubkey(OWNER)])
    # Added locally for bootstrap, with fields only the site knows.
    f.registry.put(Box(key(1), "old label", SITE, zone="A", ble_address="AA:BB", profile="cold"))
    try:
        assert await register(url, box(1, SITE, "Cold room A")) == 201
        assert await register(url, box(2, "elsewhere", "not ours")) == 201
        assert await register(url, box(3, SITE, "Cold room C")) == 201
        gateway = registry.GatewayRegistration(key(9), int(time.time()), site=SITE)
        assert await register(url, gateway) == 201  # not a box: nothing to apply
        async with aiohttp.ClientSession() as session:
            assert await f.poll(session) == 2  # box 1 relabelled, box 3 added
            assert await f.poll(session) == 0  # nothing new
            assert f.registry.get(key(1)) == Box(
                key(1), "Cold room A", SITE, zone="A", ble_address="AA:BB", profile="cold"
            )
            assert f.registry.get(key(3)) == Box(key(3), "Cold room C", SITE)
            assert f.registry.get(key(2)) is None
            moved = box(3, "elsewhere", "Cold room C")  # the box travelled on
            assert await register(url, moved) == 201
            assert await f.poll(session) == 1
            assert f.registry.get(key(3)) is None
        assert f.state.refused == {} and f.state.owners == {schnorr.pubkey(OWNER)}
    finally:
        await cloud.close()
    f.registry.close()

    # A restart with the cloud down: the last verified registry is there, and stays.
    again = follower(data, url, [schnorr.pubkey(OWNER)])
    assert again.state.after == f.state.after and again.state.owners == f.state.owners
    assert [b.key for b in again.registry.all()] == [key(1)]
    with caplog.at_level(logging.WARNING, "pharmasync.gateway.registry_follow"):
        task = asyncio.create_task(again.run())
        await asyncio.sleep(0.3)  # several intervals
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    down = [r for r in caplog.records if "cannot follow the cloud" in r.getMessage()]
    assert len(down) == 1, "an outage is logged once, not once per poll"
    assert [b.key for b in again.registry.all()] == [key(1)]

    # The cloud is back: the follower resumes after the last entry it verified.
    cloud = TestServer(make_app(config), host="127.0.0.1", port=port)
    await cloud.start_server()
    try:
        assert await register(url, box(4, SITE, "Cold room D")) == 201
        async with aiohttp.ClientSession() as session:
            assert await again.poll(session) == 1
        assert {b.key for b in again.registry.all()} == {key(1), key(4)}
        assert load_state(data / STATE_FILE).after == again.state.after
    finally:
        await cloud.close()
        again.registry.close()


async def serve_entries(ledger: Ledger) -> TestServer:
    """A lying cloud: it serves `ledger`'s entries as GET /v1/registry/entries, unchecked."""

    async def entries(request: web.Request) -> web.Response:
        after = int(request.query.get("after", -1))
        page = [{"index": i, "entry": e.hex()} for i, e in enumerate(ledger.entries) if i > after][
            :2
        ]
        return web.json_response({"entries": page})

    app = web.Application()
    app.router.add_get("/v1/registry/entries", entries)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def stub_box(n: int, site: str = SITE) -> registry.Change:
    return registry.BoxRegistration(key(n), T0, site=site, label=f"box {n}")


async def test_entries_without_authority_are_counted_logged_once_and_never_applied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger()
    ledger.bootstrap((OWNER,))
    ledger.register(stub_box(1), OWNER)
    ledger.register(stub_box(2), STRANGER)  # not an owner
    forged = ledger.register(stub_box(3), OWNER)
    entry = ledger.entries[forged]
    ledger.entries[forged] = entry[:40] + bytes([entry[40] ^ 1]) + entry[41:]
    ledger.change_owner(config_entry.ADD, schnorr.pubkey(STRANGER), STRANGER)  # self-appointed
    ledger.register(stub_box(4), STRANGER)  # still not an owner
    server = await serve_entries(ledger)
    url = str(server.make_url("")).rstrip("/")
    f = follower(tmp_path / "gw", url, [schnorr.pubkey(OWNER)])
    try:
        with caplog.at_level(logging.WARNING, "pharmasync.gateway.registry_follow"):
            async with aiohttp.ClientSession() as session:
                assert await f.poll(session) == 1  # box 1 only
                assert await f.poll(session) == 0
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 4, refused  # each once, however often the gateway polls
        assert "refused log entry 2: unknown owner" in refused[0]
        assert "refused log entry 3: signature" in refused[1]
        assert [b.key for b in f.registry.all()] == [key(1)]
        assert f.state.refused == {"unknown owner": 3, "signature": 1}
        assert load_state(tmp_path / "gw" / STATE_FILE).refused == f.state.refused
    finally:
        await server.close()
        f.registry.close()


async def test_a_bootstrap_naming_other_owners_than_pinned_applies_nothing(
    tmp_path: Path,
) -> None:
    ledger = Ledger()
    ledger.bootstrap((STRANGER,))
    ledger.register(stub_box(1), STRANGER)
    server = await serve_entries(ledger)
    url = str(server.make_url("")).rstrip("/")
    f = follower(tmp_path / "gw", url, [schnorr.pubkey(OWNER)])
    try:
        async with aiohttp.ClientSession() as session:
            assert await f.poll(session) == 0
        assert f.registry.all() == [] and f.state.owners == frozenset()
        assert f.state.refused == {"bootstrap": 2}
    finally:
        await server.close()
        f.registry.close()


async def test_an_answer_that_is_no_page_of_entries_is_refused(tmp_path: Path) -> None:
    async def lying(request: web.Request) -> web.Response:
        return web.json_response(
            {"entries": [{"index": 5, "entry": "02"}, {"index": 5, "entry": "02"}]}
        )

    app = web.Application()
    app.router.add_get("/v1/registry/entries", lying)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    f = follower(tmp_path / "gw", str(server.make_url("")).rstrip("/"), [schnorr.pubkey(OWNER)])
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(FollowError, match="got index 5 after 5"):
                await f.poll(session)
        assert f.state.after == -1
    finally:
        await server.close()
        f.registry.close()


def test_following_needs_an_uplink_and_pinned_owners() -> None:
    base = {"gateway": {"site": SITE, "data_dir": "d"}}
    for extra, message in [
        ({"registry": {"follow": True, "owners": ["11" * 32]}}, "needs \\[uplink\\] url"),
        ({"uplink": {"url": "http://x"}, "registry": {"follow": True}}, "needs owners"),
        ({"registry": {"owners": ["zz"]}}, "want 64 hex characters"),
    ]:
        with pytest.raises(gw_settings.SettingsError, match=message):
            gw_settings.from_dict({**base, **extra})


def test_a_damaged_state_file_means_reading_the_registry_again(tmp_path: Path) -> None:
    data = tmp_path / "gw"
    data.mkdir()
    (data / STATE_FILE).write_text('{"after": "seven"')
    f = follower(data, "http://127.0.0.1:9", [schnorr.pubkey(OWNER)])
    assert f.state.after == -1 and f.state.owners == frozenset()
    f.registry.close()


async def test_a_running_gateway_follows_and_shows_it(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cloud_port, status_port = free_port(), free_port()
    url = f"http://127.0.0.1:{cloud_port}"
    cloud = TestServer(
        make_app(cloud_settings(tmp_path / "cloud")), host="127.0.0.1", port=cloud_port
    )
    await cloud.start_server()
    s = gw_settings.from_dict(
        {
            "gateway": {"site": SITE, "data_dir": str(tmp_path / "gw")},
            "mqtt": {"port": mosquitto.port},
            "status": {"port": status_port},
            "uplink": {"url": url, "timeout_s": 2},
            "registry": {
                "follow": True,
                "interval_s": 0.1,
                "owners": [schnorr.pubkey(OWNER).hex()],
            },
        }
    )
    stop = asyncio.Event()
    gw = asyncio.create_task(app.serve(s, stop))
    try:
        assert await register(url, box(5, SITE, "Cold room E")) == 201
        assert await register(url, box(6, SITE, "Cold room F"), STRANGER) == 403
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                await asyncio.sleep(0.1)
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{status_port}/status.json") as r:
                        snap = await r.json()
                    if [b["label"] for b in snap["boxes"]] == ["Cold room E"]:
                        break
            else:
                pytest.fail(f"the gateway did not pick up the cloud's box: {snap}")
            async with http.get(f"http://127.0.0.1:{status_port}/metrics") as r:
                metrics = await r.text()
    finally:
        stop.set()
        await gw
        await cloud.close()
    assert snap["registry_follow"]["applied"] == 1 and snap["registry_follow"]["refused"] == {}
    assert snap["registry_follow"]["owners"] == [schnorr.pubkey(OWNER).hex()]
    assert "pharmasync_gateway_registry_refused" in metrics
    # With the follower runs the relay of alarm acks (tests/gateway/test_ack_relay.py).
    assert snap["ack_relay"] == {"after": 0, "applied": 0, "refused": {}}
    assert 'pharmasync_gateway_relayed_acks_total{result="acknowledged"} 0.0' in metrics
