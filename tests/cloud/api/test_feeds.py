"""Notification feeds through HTTP (GET /v1/feed, GET /v1/feed/stream; cloud/services/
feeds.py), on SQLite and PostgreSQL: a recall shows in the feed of each holder of a
descendant lot and in no one else's; the cursor pages; Server-Sent Events deliver a new
event live, resume after Last-Event-ID, send heartbeats and end when the app shuts down;
malformed cursors and limits are 400 naming the field, no token 401; a restart replays the
same feeds."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from cloud.api import sse
from cloud.api.state import CONTRACTS, FEEDS
from cloud.contracts import auth
from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.api.test_auth import sign_in
from tests.cloud.api.test_traces import R2, D, M, P, R, lots_tx, recalled_chain
from tests.cloud.api.test_tx import applied, ship, signed
from tests.cloud.contracts.world import PROFILE, REGULATOR, Party


async def bearer(cloud: Cloud, who: Party) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await sign_in(cloud, who))['token']}"}


async def feed(cloud: Cloud, who: Party, **params: str) -> tuple[int, Any]:
    async with cloud.session.get(
        cloud.url("/v1/feed"), params=params, headers=await bearer(cloud, who)
    ) as r:
        return r.status, await r.json(content_type=None)


async def events(cloud: Cloud, who: Party) -> list[dict[str, Any]]:
    status, page = await feed(cloud, who)
    assert status == 200, page
    return list(page["events"])


async def messages(resp: aiohttp.ClientResponse, want: int, comments: bool = False) -> list[Any]:
    """Read `want` SSE messages (or, with `comments`, raw chunks until a heartbeat)."""
    decoder, found = sse.Decoder(), []
    while len(found) < want:
        chunk = await asyncio.wait_for(resp.content.readany(), 10)
        assert chunk, "the stream ended"
        if comments and b": heartbeat" in chunk:
            return [chunk]
        found += decoder.feed(chunk)
    return found


async def another_shipment_to_d(cloud: Cloud, lot: str = "L2") -> None:
    commission = {"lot": lot, "expiry": "271200", "quantity": 10, "unit": "pack"}
    await applied(cloud, lots_tx(M, "commission", {**commission, "profile": PROFILE}))
    await applied(cloud, ship(M, lot, f"{lot}-S", D, 10))


async def test_a_recall_reaches_each_holders_feed_and_no_one_elses(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    for who in (M, D, R, P):
        recalls = [e for e in await events(regulated, who) if e["event"]["type"] == "recall"]
        assert len(recalls) == 1, who
        assert recalls[0]["event"]["lots"] == ["L1", "L1-A", "L1-B", "L1-A1", "L1-A2"]
        assert recalls[0]["event"]["class"] == "I"
    assert [e["event"]["type"] for e in await events(regulated, R2)] == ["admitted"]
    assert await events(regulated, REGULATOR) == []
    kinds = [(e["event"]["type"], e["event"].get("shipment")) for e in await events(regulated, P)]
    assert kinds == [("admitted", None), ("shipment", "S3"), ("shipment", "S4"), ("recall", None)]


async def test_the_cursor_pages_and_bad_cursors_are_refused(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    everything = await events(regulated, P)
    status, page = await feed(regulated, P, after="1", limit="1")
    assert status == 200 and page["events"] == everything[1:2], page
    assert (page["next"], page["last"]) == (2, 4)
    status, page = await feed(regulated, P, after="4")
    assert (status, page["events"], page["next"]) == (200, [], 4)
    status, problem = await feed(regulated, P, after="5")  # a cursor from the future
    assert (status, problem["reason"]) == (400, "after"), problem
    assert "want at most 4" in problem["detail"]
    for params, field in [
        ({"after": "-1"}, "after"),
        ({"after": "x"}, "after"),
        ({"after": "9" * 30}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": ""}, "limit"),
    ]:
        status, problem = await feed(regulated, P, **params)
        assert (status, problem["reason"]) == (400, field), (params, problem)
    for path in ("/v1/feed", "/v1/feed/stream"):
        async with regulated.session.get(regulated.url(path)) as r:
            assert (r.status, (await r.json())["reason"]) == (401, "token"), path
    for wrong in ("-3", "5"):
        headers = await bearer(regulated, P) | {sse.LAST_EVENT_ID: wrong}
        async with regulated.session.get(regulated.url("/v1/feed/stream"), headers=headers) as r:
            assert (r.status, (await r.json())["reason"]) == (400, "Last-Event-ID"), wrong


async def test_the_stream_delivers_live_and_resumes_after_last_event_id(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    known = await events(regulated, D)  # admitted, S1 to D, the recall
    assert len(known) == 3
    headers = await bearer(regulated, D) | {sse.LAST_EVENT_ID: "3"}
    async with regulated.session.get(regulated.url("/v1/feed/stream"), headers=headers) as live:
        assert live.status == 200 and live.content_type == sse.CONTENT_TYPE
        await asyncio.sleep(0.1)  # the stream is waiting
        await another_shipment_to_d(regulated)
        (message,) = await messages(live, 1)
        assert message.id == "4"
        event = json.loads(message.data)
        assert event["id"] == 4 and event["event"]["shipment"] == "L2-S"
    headers = await bearer(regulated, D) | {sse.LAST_EVENT_ID: "2"}
    async with regulated.session.get(regulated.url("/v1/feed/stream"), headers=headers) as resumed:
        found = await messages(resumed, 2)
        assert [m.id for m in found] == ["3", "4"]
        assert [json.loads(m.data) for m in found] == (await events(regulated, D))[2:]


async def test_heartbeats_and_a_clean_end_on_shutdown(tmp_path: Path, database: str | None) -> None:
    server, session = await start(
        settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    )
    cloud = Cloud(server, session)
    try:
        await recalled_chain(cloud)
        server.app[FEEDS].heartbeat_s = 0.2
        headers = await bearer(cloud, D) | {sse.LAST_EVENT_ID: "3"}
        async with session.get(cloud.url("/v1/feed/stream"), headers=headers) as live:
            assert await messages(live, 1, comments=True)
            started = time.monotonic()
            closing = asyncio.create_task(server.close())
            rest = await asyncio.wait_for(live.content.read(), 10)  # to the end of the stream
            await asyncio.wait_for(closing, 10)
            assert time.monotonic() - started < 5  # not the server's 60 s grace period
            assert b"data:" not in rest
    finally:
        await session.close()
        await server.close()


async def test_a_restart_replays_the_same_feeds(tmp_path: Path, database: str | None) -> None:
    config = settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    server, session = await start(config)
    try:
        await recalled_chain(Cloud(server, session))
        before = [await events(Cloud(server, session), who) for who in (M, D, R, P)]
    finally:
        await session.close()
        await server.close()
    server, session = await start(config)
    try:
        after = [await events(Cloud(server, session), who) for who in (M, D, R, P)]
        assert after == before
    finally:
        await session.close()
        await server.close()


async def test_a_stream_on_one_worker_delivers_what_another_applied(
    tmp_path: Path, postgres_dsn: str
) -> None:
    config = settings(tmp_path / "cloud", postgres_dsn, regulators=(REGULATOR.xonly,))
    started = [await start(config) for _ in range(2)]
    a, b = (Cloud(server, session) for server, session in started)
    try:
        await recalled_chain(b)
        headers = await bearer(a, D) | {sse.LAST_EVENT_ID: "3"}
        async with a.session.get(a.url("/v1/feed/stream"), headers=headers) as live:
            await another_shipment_to_d(b)  # applied by the other worker
            (message,) = await messages(live, 1)
            assert json.loads(message.data)["event"]["shipment"] == "L2-S"
        assert await events(a, D) == await events(b, D)
    finally:
        for server, session in started:
            await session.close()
            await server.close()


async def test_a_suspension_ends_the_suspended_participants_stream(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    headers = await bearer(regulated, R2) | {sse.LAST_EVENT_ID: "1"}  # after "admitted"
    async with regulated.session.get(regulated.url("/v1/feed/stream"), headers=headers) as live:
        await asyncio.sleep(0.1)
        args = {"did": R2.did, "reason": "licence lapsed"}
        await applied(regulated, signed(REGULATOR, "participants", "suspend", args))
        rest = await asyncio.wait_for(live.content.read(), 10)  # the stream ends
    (message,) = sse.Decoder().feed(rest)
    assert json.loads(message.data)["event"]["type"] == "suspended"
    async with regulated.session.get(regulated.url("/v1/feed"), headers=headers) as r:  # same token
        assert (r.status, (await r.json())["reason"]) == (403, "participant")


async def test_a_stream_ends_when_its_token_expires(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    secret = await regulated.server.app[CONTRACTS].shared.store.auth_secret()
    soon = auth.issue(secret, auth.Token(D.did, "distributor", int(time.time()) + 2))
    headers = {"Authorization": f"Bearer {soon}", sse.LAST_EVENT_ID: "3"}
    started = time.monotonic()
    async with regulated.session.get(regulated.url("/v1/feed/stream"), headers=headers) as live:
        assert live.status == 200
        rest = await asyncio.wait_for(live.content.read(), 10)
    assert time.monotonic() - started < 5 and b"data:" not in rest
