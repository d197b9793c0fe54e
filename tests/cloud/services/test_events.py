"""POST /v1/events and GET /v1/gateways/{key}/events, served for real on SQLite and
PostgreSQL: each event is one log entry of kind 0x05, exactly once by (gateway, event seq);
forged, conflicting, out-of-order, unregistered and oversized events are refused with their
reasons (problem+json), counted, and store nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cloud.api.routes.events import MAX_BODY
from cloud.log import tlog
from cloud.storage.postgres import PostgresEngine
from cloud.storage.store import Store
from device import schnorr
from gateway import event
from tests.cloud.api import test_app
from tests.cloud.api.test_app import Cloud
from tests.cloud.services.test_ingest import BOX, GW

T0 = 1_793_620_800
cloud = test_app.cloud  # the fixture: a served ledger with a gateway and a box registered
GATEWAY = schnorr.pubkey(GW)


def events(seqs: range, secret: bytes = GW, **body: Any) -> list[event.Event]:
    """Signed site alarms of the gateway holding `secret`, one per seq."""
    return [
        event.Event(
            schnorr.pubkey(secret),
            s,
            T0 + s,
            event.SITE_ALARM,
            {"alarm": "spool", "state": "raised", "bytes": s} | body,
        ).sign(secret)
        for s in seqs
    ]


async def post(cloud: Cloud, page: object) -> tuple[int, Any]:
    return await cloud.post("/v1/events", json.dumps(page).encode(), "application/json")


async def log_size(cloud: Cloud) -> int:
    _, note = await cloud.get("/v1/checkpoint")
    return int(note.decode().split("\n")[1])


async def refused(cloud: Cloud) -> str:
    _, metrics = await cloud.get("/metrics")
    return metrics.decode()


async def test_each_event_is_one_log_entry_and_a_resend_gets_the_same_indexes(
    cloud: Cloud,
) -> None:
    first = events(range(3))
    status, answer = await post(cloud, event.page(first))
    assert status == 201, answer
    # After the owners' bootstrap and the two registry entries of the fixture, one entry
    # per event, in seq order.
    assert answer == {
        "gateway": GATEWAY.hex(),
        "events": [{"seq": s, "log_index": 3 + s} for s in range(3)],
    }
    _, listed = await cloud.get("/v1/log/entries", start=3, end=6)
    assert [bytes.fromhex(e) for e in listed["entries"]] == [
        tlog.event_entry(ev.encode()) for ev in first
    ]
    assert all(bytes.fromhex(e)[0] == tlog.ENTRY_EVENT for e in listed["entries"])

    status, again = await post(cloud, event.page(first))
    assert (status, again) == (200, answer)  # exactly once: nothing appended
    assert await log_size(cloud) == 6

    overlap = first[1:] + events(range(3, 5))  # a resend after a lost answer, plus new ones
    status, mixed = await post(cloud, event.page(overlap))
    assert status == 201
    assert [e["log_index"] for e in mixed["events"]] == [4, 5, 6, 7]
    assert await log_size(cloud) == 8

    status, got = await cloud.get(f"/v1/gateways/{GATEWAY.hex()}/events")
    assert status == 200 and [e["seq"] for e in got["events"]] == [0, 1, 2, 3, 4]
    for item in got["events"]:
        ev = event.from_wire({"event": item["event"], "signature": item["signature"]})
        assert ev.verify_signature() and item["log_index"] == 3 + ev.seq
    _, after = await cloud.get(f"/v1/gateways/{GATEWAY.hex()}/events", after=2, limit=1)
    assert [e["seq"] for e in after["events"]] == [3]

    metrics = await refused(cloud)
    assert "pharmasync_gateway_events_total 5.0" in metrics
    assert "pharmasync_gateway_event_resends_total 5.0" in metrics


async def test_concurrent_copies_of_a_page_store_it_once(cloud: Cloud) -> None:
    page = event.page(events(range(4)))
    answers = await asyncio.gather(*(post(cloud, page) for _ in range(8)))
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({json.dumps(a) for _, a in answers}) == 1
    assert await log_size(cloud) == 3 + 4


OTHER = bytes(31) + b"\x63"  # a key no owner registered


def _forged(page: dict[str, Any]) -> dict[str, Any]:
    item = page["events"][0]
    item["event"]["body"]["bytes"] += 1  # changed after signing
    return page


def _with(**members: Any) -> dict[str, Any]:
    """A page whose event body has `members` added (the gateway cannot even sign such)."""
    page = event.page(events(range(2, 3)))
    page["events"][0]["event"]["body"].update(members)
    return page


def _bad_signature_hex(page: dict[str, Any]) -> dict[str, Any]:
    page["events"][0]["signature"] = "00" * 64
    return page


@pytest.mark.parametrize(
    ("make", "status", "reason", "detail"),
    [
        (lambda: _forged(event.page(events(range(2, 3)))), 400, "event signature", "event 2"),
        (lambda: _bad_signature_hex(event.page(events(range(2, 3)))), 400, "event signature", ""),
        (lambda: event.page(events(range(5, 6))), 409, "event gap", "want event 2"),
        (lambda: event.page(events(range(1, 3), detail="other")), 409, "event conflict", "event 1"),
        (lambda: event.page(events(range(0, 1), OTHER)), 403, "unregistered gateway", ""),
        (lambda: {"events": [{"event": {"lot": "7"}, "signature": "00" * 64}]}, 400, "event", ""),
        (lambda: _with(lot="LOT-7"), 400, "event body", "lot"),
        (lambda: _with(detail="x" * 300), 400, "event body.detail", "want at most 200"),
        (lambda: {"events": []}, 400, "event page", "want 1 to 100"),
        (lambda: [0] * 3, 400, "event page", ""),
    ],
    ids=[
        "forged",
        "bad-signature",
        "gap",
        "conflict",
        "unregistered",
        "malformed",
        "names-a-lot",
        "oversized-string",
        "empty-page",
        "not-a-page",
    ],
)
async def test_bad_events_are_refused_with_their_reason_and_counted(
    cloud: Cloud,
    make: Any,
    status: int,
    reason: str,
    detail: str,
) -> None:
    assert (await post(cloud, event.page(events(range(2)))))[0] == 201
    page = make()
    size = await log_size(cloud)
    got, problem = await post(cloud, page)
    assert (got, problem["reason"]) == (status, reason), problem
    assert detail in problem["detail"]
    assert await log_size(cloud) == size  # nothing stored
    assert f'pharmasync_refused_total{{reason="{reason}"}} 1.0' in await refused(cloud)


async def test_bodies_that_are_not_pages_are_refused_before_parsing(
    cloud: Cloud,
) -> None:
    for data, ctype, status, reason in (
        (b"[" * 200_000 + b"]" * 200_000, "application/json", 413, "json"),
        (b"[" * 100_000, "application/json", 400, "json"),
        (b"not json", "application/json", 400, "json"),
        (json.dumps(event.page(events(range(1)))).encode(), "text/plain", 415, "content type"),
    ):
        assert len(data) > MAX_BODY or status != 413
        got, problem = await cloud.post("/v1/events", data, ctype)
        assert (got, problem["reason"]) == (status, reason), problem
    assert await log_size(cloud) == 3


async def test_reading_events_of_an_unknown_gateway_or_with_bad_parameters(
    cloud: Cloud,
) -> None:
    status, problem = await cloud.get(f"/v1/gateways/{'ab' * 32}/events")
    assert (status, problem["reason"]) == (404, "unregistered gateway")
    status, problem = await cloud.get(f"/v1/gateways/{GATEWAY.hex()}/events", after="-1")
    assert (status, problem["reason"]) == (400, "after")
    status, problem = await cloud.get("/v1/gateways/zz/events")
    assert (status, problem["reason"]) == (400, "gateway")
    status, empty = await cloud.get(f"/v1/gateways/{GATEWAY.hex()}/events")
    assert (status, empty["events"]) == (200, [])
    assert BOX  # boxes are registered by the fixture; events name none here


async def test_a_postgres_ledger_from_before_events_gains_the_table(postgres_dsn: str) -> None:
    store = await Store.postgres(postgres_dsn)
    assert isinstance(store.engine, PostgresEngine)
    await store.engine.pool.execute("DROP TABLE gateway_events")  # as a version-1 database was
    await store.close()
    store = await Store.postgres(postgres_dsn)
    try:
        await store.register_gateway(GATEWAY, "w1")
        stored = await store.store_events(GATEWAY, events(range(2)))
        assert stored == [(0, True), (1, True)]
        assert [s for s, _, _ in await store.gateway_events(GATEWAY, -1, 10)] == [0, 1]
    finally:
        await store.close()
