"""Alarm acknowledgements through the cloud (gateway/ack_relay.py): an owner authorises a
key for the site on the log, a signed ack by it posted to the real cloud app (SQLite and
PostgreSQL) reaches a running gateway (the real service with escalation, a real SMTP server
and webhook receiver, tests/gateway/test_escalation.py) which checks it against the log
itself and applies it: escalation stops, "acknowledged" is sent, the signed alarm event is
queued. Acks the cloud took but the gateway must not apply (a key withdrawn since, an
unknown alarm, a replay) and, from a lying cloud, forged, malformed, another site's and
another gateway's acks are refused by reason, counted, never applied. The cloud down when
the relay starts loses nothing: it fetches everything once the cloud is back."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from cloud.api.app import make_app
from device import schnorr
from gateway import alarm_ack, config_entry
from gateway import registry_change as registry
from gateway.ack_relay import STATE_FILE, AckRelay
from gateway.registry_follow import RegistryFollower
from gateway.spool import Spool
from tests.cloud import conftest as cloud_fixtures
from tests.cloud.api.test_app import OWNER
from tests.cloud.api.test_app import settings as cloud_settings
from tests.conftest import free_port
from tests.gateway.notify_servers import wait_for
from tests.gateway.test_escalation import GATEWAY_SECRET, Site, _events, running_site

database = cloud_fixtures.database
postgres_database = cloud_fixtures.postgres_database
GATEWAY = schnorr.pubkey(GATEWAY_SECRET)
OTHER_GATEWAY = schnorr.pubkey(bytes(31) + b"\x91")  # at site w2
REMOTE = bytes(31) + b"\x92"  # a key the owner authorises for w1, not in [notify] ack_keys
WITHDRAWN = bytes(31) + b"\x93"  # authorised for w1, then withdrawn
W2_ONLY = bytes(31) + b"\x94"  # authorised for site w2 only


def sign(secret: bytes, alarm: str, by: str = "R. Emote", gateway: bytes = GATEWAY) -> bytes:
    return alarm_ack.sign(secret, alarm_ack.AlarmAck(gateway, alarm, by, int(time.time())))


class CloudClient:
    """Owner and acknowledger requests to a real cloud."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url, self.http = url, http

    async def post(self, path: str, body: Any = None, data: bytes | None = None) -> Any:
        async with self.http.post(self.url + path, json=body, data=data) as r:
            return r.status, await r.json(content_type=None)

    async def register(self, key: bytes, site: str) -> None:
        change = registry.GatewayRegistration(key, int(time.time()), site=site)
        status, _ = await self.post("/v1/registry", registry.sign_request(OWNER, change))
        assert status == 201

    async def ack_key(self, op: str, secret: bytes, site: str) -> None:
        key = schnorr.pubkey(secret)
        change = config_entry.ConfigChange(op, int(time.time()), key=key, site=site)
        status, _ = await self.post("/v1/config", config_entry.sign_request(OWNER, change))
        assert status == 201

    async def relay(self, wire: bytes) -> tuple[int, Any]:
        status, answer = await self.post("/v1/alarm-acks", data=wire)
        return status, answer


def sections(url: str) -> dict[str, Any]:
    """gateway.toml's [uplink] and [registry]: follow the cloud at `url`."""
    return {
        "uplink": {"url": url, "timeout_s": 2},
        "registry": {"follow": True, "interval_s": 0.1, "owners": [schnorr.pubkey(OWNER).hex()]},
    }


@asynccontextmanager
async def relaying(site: Site) -> AsyncIterator[AckRelay]:
    """The relay (and registry follower) as `gateway run` starts them, running."""
    follower = RegistryFollower(site.gw.settings, site.gw.registry)
    relay = AckRelay(site.gw.settings, site.gw.key, site.esc, follower)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def test_a_signed_ack_through_the_cloud_stops_escalation_and_the_rest_is_refused(
    tmp_path: Path, database: str | None
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def cloud_server() -> TestServer:  # the same cloud, data and port, started again
        config = cloud_settings(tmp_path / "cloud", database)
        return TestServer(make_app(config), host="127.0.0.1", port=port)

    cloud = cloud_server()
    await cloud.start_server()
    async with (
        running_site(tmp_path / "gw", sections(url)) as site,
        aiohttp.ClientSession() as http,
    ):
        await site.feed(5.0, 13.0)
        await wait_for(lambda: site.got("alice", "raised") == 1, what="the alarm raised")
        alarm = site.alarm_id()
        try:
            c = CloudClient(url, http)
            await c.register(GATEWAY, "w1")
            await c.register(OTHER_GATEWAY, "w2")
            for secret, site_name in ((REMOTE, "w1"), (WITHDRAWN, "w1"), (W2_ONLY, "w2")):
                await c.ack_key(config_entry.ACK_KEY_ADD, secret, site_name)
            # Refused by the cloud: never relayed.
            for wire, reason in [
                (sign(W2_ONLY, alarm), "unauthorised key"),  # another site's key
                (sign(bytes(31) + b"\x95", alarm), "unauthorised key"),
                (sign(REMOTE, alarm).replace(b"R. Emote", b"F. Orged"), "bad signature"),
                (b'{"ack": {}, "key": "", "signature": ""}', "malformed"),
            ]:
                status, problem = await c.relay(wire)
                assert status in (400, 403) and problem["reason"] == reason, problem
            # Taken by the cloud, refused by the gateway: a key withdrawn since, an alarm it
            # never raised.
            assert (await c.relay(sign(WITHDRAWN, alarm, by="W. Ithdrawn")))[0] == 201
            await c.ack_key(config_entry.ACK_KEY_REMOVE, WITHDRAWN, "w1")
            assert (await c.relay(sign(REMOTE, "00000000")))[0] == 201
            good = sign(REMOTE, alarm)
            status, first = await c.relay(good)
            assert status == 201
            assert await c.relay(good) == (200, first)  # a replay: stored once
        finally:
            await cloud.close()
        async with relaying(site) as relay:
            await asyncio.sleep(0.3)  # the relay tries a cloud that is down: nothing is lost
            assert relay.state.after == 0 and site.esc.store.alarm(alarm)["acked_at"] is None
            cloud = cloud_server()
            await cloud.start_server()
            try:
                await check_relayed(site, relay, alarm, first["id"])
            finally:
                await cloud.close()
    # The gateway's own signed event records the acknowledgement for the log.
    spool = Spool(tmp_path / "gw" / "spool.sqlite")
    events = _events(spool)
    spool.close()
    assert [state for _, state, _ in events] == ["raised", "acknowledged"]
    assert events[1][2]["by"] == "R. Emote"


async def check_relayed(site: Site, relay: AckRelay, alarm: str, last: int) -> None:
    """The relayed acks fetched up to id `last`: the good one applied, the others refused,
    escalation stopped; fetched all again, nothing applies twice."""
    await wait_for(lambda: site.got("alice", "acknowledged") == 1, what="the ack notice")
    await wait_for(lambda: relay.state.after == last, what="every ack fetched")
    assert relay.state.applied == 1
    assert relay.state.refused == {"unauthorised key": 1, "unknown alarm": 1}
    row = site.esc.store.alarm(alarm)
    assert row["acked_by"] == "R. Emote"
    assert row["acked_via"] == "signed by " + schnorr.pubkey(REMOTE).hex()[:16]
    await asyncio.sleep(0.3)  # deliveries under way when it was applied land
    told = Counter(site.messages())
    await asyncio.sleep(1.2)  # later levels and repeats would have been due
    later = Counter(site.messages()) - told
    assert not [m for m in later if m[1] in ("raised", "repeat")], later

    # The state lost: everything is fetched again, and applies nothing twice.
    relay.state.after = 0
    (site.gw.settings.data_dir / STATE_FILE).unlink(missing_ok=True)
    await wait_for(lambda: relay.state.refused.get("replayed") == 1, what="a refetch")
    assert site.esc.store.alarm(alarm)["acked_by"] == "R. Emote"
    assert site.got("alice", "acknowledged") == 1


async def test_a_lying_cloud_cannot_get_an_ack_applied(tmp_path: Path) -> None:
    """The cloud's log gives the keys (REMOTE for w1, W2_ONLY for w2); a lying relay serves
    acks the real cloud would have refused: each is refused by the gateway, by reason."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cloud = TestServer(make_app(cloud_settings(tmp_path / "cloud")), host="127.0.0.1", port=port)
    await cloud.start_server()
    lies: list[Any] = []

    async def lying_acks(request: web.Request) -> web.Response:
        after = int(request.query["after"])
        page = [{"id": i + 1, "signed_ack": ack} for i, ack in enumerate(lies) if i + 1 > after]
        return web.json_response({"gateway": GATEWAY.hex(), "acks": page})

    liar = web.Application()
    liar.router.add_get("/v1/gateways/{gateway}/alarm-acks", lying_acks)
    lying = TestServer(liar, host="127.0.0.1")
    await lying.start_server()
    try:
        async with (
            running_site(tmp_path / "gw", sections(url)) as site,
            aiohttp.ClientSession() as http,
        ):
            c = CloudClient(url, http)
            await c.register(GATEWAY, "w1")
            await c.ack_key(config_entry.ACK_KEY_ADD, REMOTE, "w1")
            await c.ack_key(config_entry.ACK_KEY_ADD, W2_ONLY, "w2")
            await site.feed(5.0, 13.0)
            await wait_for(lambda: site.got("alice", "raised") == 1, what="the alarm raised")
            alarm = site.alarm_id()
            body = json.loads
            good = sign(REMOTE, alarm)
            lies[:] = [
                body(sign(W2_ONLY, alarm)),  # a key of another site
                body(good.replace(b"R. Emote", b"F. Orged")),  # forged
                body(sign(REMOTE, alarm, gateway=OTHER_GATEWAY)),  # another gateway's
                {"ack": {"alarm": alarm}, "key": 7},  # malformed
            ]
            follower = RegistryFollower(site.gw.settings, site.gw.registry)
            relay = AckRelay(site.gw.settings, site.gw.key, site.esc, follower)
            relay.url = str(lying.make_url(f"/v1/gateways/{GATEWAY.hex()}/alarm-acks"))
            await follower.poll(http)  # the keys, from the real cloud's log
            assert follower.ack_keys() == {schnorr.pubkey(REMOTE)}
            assert await relay.poll(http) == 0
            assert relay.state.refused == {
                "unauthorised key": 1,
                "bad signature": 1,
                "wrong gateway": 1,
                "malformed": 1,
            }
            assert site.esc.store.alarm(alarm)["acked_at"] is None
            lies.append(body(good))  # the one honest ack applies
            assert await relay.poll(http) == 1
            assert relay.state.after == 5
    finally:
        await lying.close()
        await cloud.close()
