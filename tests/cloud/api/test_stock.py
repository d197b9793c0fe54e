"""Stock and shortage through HTTP (GET /v1/stock, /v1/stock/{gtin}; cloud/services/stock.py),
on SQLite and PostgreSQL: what each reader sees (the regulator's figures per role with no
participant named, a holder's own, the public refused naming the cell), bad GTINs and
parameters refused naming the field, the regulator's minimum set by a transaction (the
manufacturer refused), and the shortage alert reaching the regulator's feed once per
crossing — from a transaction or a reading batch's cold-chain quarantine, through another
worker, the same after a restart (replay), and still the old regulator's after a handover."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cloud.api.state import FEEDS
from cloud.settings import CloudSettings
from gateway import config_entry
from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.api.test_auth import sign_in
from tests.cloud.api.test_feeds import events
from tests.cloud.api.test_lot_coldchain import BOX, HIGH, shipped
from tests.cloud.api.test_tx import applied, post, receive, ship, signed
from tests.cloud.contracts.world import GTIN, PROFILE, REGULATOR, Party, admission, party
from tests.cloud.services.test_config_regulators import change

ROLES = (
    ("M", "manufacturer"),
    ("D", "distributor"),
    ("R", "retailer"),
    ("P", "pharmacy"),
    ("O", "operator_team"),
)
PARTIES = {name: (party(name), role) for name, role in ROLES}
M, D, R, P, OPS = (key for key, _ in PARTIES.values())
OTHER_GTIN = "09506000134369"  # GS1's example with another item reference, check digit 9


def lots_tx(who: Party, tx_type: str, args: dict[str, Any]) -> Any:
    return signed(who, "lots", tx_type, {"gtin": GTIN, **args})


def minimum(units: int, who: Party = REGULATOR, gtin: str = GTIN) -> Any:
    return signed(who, "lots", "stock-minimum", {"gtin": gtin, "minimum": units})


async def chain(cloud: Cloud) -> None:
    """L1 of 100: 60 to D, 40 on to R, 30 on to P, who dispenses 10; L2 of 7 of another
    GTIN stays with M."""
    for name, (key, role) in PARTIES.items():
        args = admission(key, role, name)
        await applied(cloud, signed(REGULATOR, "participants", "admit", args))
    made = {"lot": "L1", "expiry": "271200", "quantity": 100, "unit": "pack", "profile": PROFILE}
    await applied(cloud, lots_tx(M, "commission", made))
    await applied(cloud, lots_tx(M, "commission", {**made, "gtin": OTHER_GTIN, "quantity": 7}))
    await applied(cloud, ship(M, "L1", "S1", D, 60))
    await applied(cloud, receive(D, "S1", 60))
    await applied(cloud, ship(D, "L1", "S2", R, 40))
    await applied(cloud, receive(R, "S2", 40))
    await applied(cloud, ship(R, "L1", "S3", P, 30))
    await applied(cloud, receive(P, "S3", 30))
    await applied(cloud, lots_tx(P, "dispense", {"lot": "L1", "quantity": 10}))


@contextlib.asynccontextmanager
async def running(config: CloudSettings) -> AsyncIterator[Cloud]:
    """A cloud served with `config` until the block ends (a restart: two in a row)."""
    server, session = await start(config)
    try:
        yield Cloud(server, session)
    finally:
        await session.close()
        await server.close()


async def get(cloud: Cloud, path: str, who: Party | None, **params: str) -> tuple[int, Any]:
    headers = {}
    if who is not None:
        headers["Authorization"] = f"Bearer {(await sign_in(cloud, who))['token']}"
    async with cloud.session.get(cloud.url(path), headers=headers, params=params) as r:
        return r.status, await r.json(content_type=None)


def released(classes: dict[str, int]) -> int:
    return classes["released"]


async def test_each_reader_sees_what_its_cells_allow(regulated: Cloud) -> None:
    await chain(regulated)
    await applied(regulated, minimum(50))
    status, found = await get(regulated, f"/v1/stock/{GTIN}", REGULATOR)
    assert status == 200, found
    figures = found["figures"]
    on_hand = {role: released(v) for role, v in figures["on_hand"].items()}
    assert on_hand == {"manufacturer": 40, "distributor": 20, "retailer": 10, "pharmacy": 20}
    assert figures["stock"] == 90 and figures["dispensed_30d"] == 10
    assert figures["days_of_cover"] == 270.0  # 90 / (10 / 30)
    assert found["shortage"] == {"minimum": 50, "below": False}
    assert "own" not in found and "did:key" not in json.dumps(found)  # no holder named
    _, head = await regulated.get("/v1/state")
    assert found["state"] == head

    status, found = await get(regulated, f"/v1/stock/{GTIN}", P)
    assert status == 200, found
    assert "figures" not in found and "shortage" not in found
    assert found["withheld"] == {
        "figures": "read: pharmacy × M→D = no",
        "minimum": "read: pharmacy × compliance = restricted",
    }
    own = found["own"]
    assert released(own["on_hand"]) == 20 and own["dispensed_30d"] == 10
    assert own["days_of_cover"] == 60.0

    status, found = await get(regulated, f"/v1/stock/{GTIN}", D)
    assert status == 200 and found["figures"]["stock"] == 90, found
    assert released(found["own"]["on_hand"]) == 20 and "shortage" not in found
    status, found = await get(regulated, f"/v1/stock/{GTIN}", M)
    assert status == 200 and found["shortage"]["minimum"] == 50, found
    assert released(found["own"]["on_hand"]) == 40
    status, found = await get(regulated, f"/v1/stock/{GTIN}", OPS)
    assert status == 200 and "own" not in found and found["figures"]["stock"] == 90, found

    status, problem = await get(regulated, f"/v1/stock/{GTIN}", None)
    assert (status, problem["reason"]) == (403, "access"), problem
    assert problem["detail"] == "read: public × M→D = no"
    status, problem = await get(regulated, "/v1/stock", None)
    assert (status, problem["reason"]) == (403, "access"), problem


async def test_the_list_pages_through_the_gtins_a_reader_may_see(regulated: Cloud) -> None:
    await chain(regulated)
    status, page = await get(regulated, "/v1/stock", REGULATOR, limit="1")
    assert status == 200, page
    assert [g["gtin"] for g in page["gtins"]] == [GTIN] and page["next"] == GTIN
    status, page = await get(regulated, "/v1/stock", REGULATOR, after=page["next"])
    assert [g["gtin"] for g in page["gtins"]] == [OTHER_GTIN] and page["next"] is None
    assert page["gtins"][0]["figures"]["on_hand"]["manufacturer"]["released"] == 7
    status, page = await get(regulated, "/v1/stock", R)  # own only: the GTINs it handled
    assert status == 200 and [g["gtin"] for g in page["gtins"]] == [GTIN], page


async def test_bad_gtins_and_parameters_are_refused_naming_the_field(regulated: Cloud) -> None:
    await chain(regulated)
    for path, params, reason in (
        ("/v1/stock/123", {}, "gtin"),
        ("/v1/stock/09506000134353", {}, "gtin"),  # wrong check digit
        ("/v1/stock/0950600013435x", {}, "gtin"),
        ("/v1/stock", {"limit": "0"}, "limit"),
        ("/v1/stock", {"limit": "1001"}, "limit"),
        ("/v1/stock", {"limit": "ten"}, "limit"),
        ("/v1/stock", {"after": "L1"}, "after"),
    ):
        status, problem = await get(regulated, path, REGULATOR, **params)
        assert (status, problem["reason"]) == (400, reason), (path, params, problem)
    status, problem = await get(regulated, "/v1/stock/00000000000017", REGULATOR)
    assert (status, problem["reason"]) == (404, "gtin"), problem
    headers = {"Authorization": "Bearer v1.forged.token"}
    async with regulated.session.get(regulated.url(f"/v1/stock/{GTIN}"), headers=headers) as r:
        assert (r.status, (await r.json())["reason"]) == (401, "token")


async def test_a_minimum_alone_shows_only_to_readers_of_the_minimum(regulated: Cloud) -> None:
    """A GTIN no lot was commissioned of, known only by the regulator's minimum: its
    existence is compliance data, so a reader who may not see the minimum (a distributor
    reads figures, a pharmacy its own) gets the 404 of an unknown GTIN and no list entry,
    as if no minimum were set; the regulator and a manufacturer see it."""
    await chain(regulated)
    lone = "09506000134376"  # GS1's example item reference 137, check digit 6
    await applied(regulated, minimum(5, gtin=lone))
    for who in (REGULATOR, M):
        status, answer = await get(regulated, f"/v1/stock/{lone}", who)
        assert status == 200 and answer["shortage"]["minimum"] == 5, answer
        status, page = await get(regulated, "/v1/stock", who)
        assert lone in [g["gtin"] for g in page["gtins"]], page
    for who in (D, OPS, R, P):
        status, problem = await get(regulated, f"/v1/stock/{lone}", who)
        assert (status, problem["reason"]) == (404, "gtin"), (who, problem)
        status, page = await get(regulated, "/v1/stock", who)
        assert status == 200 and lone not in [g["gtin"] for g in page["gtins"]], page


async def test_only_the_regulator_sets_a_minimum(regulated: Cloud) -> None:
    await chain(regulated)
    status, problem = await post(regulated, minimum(50, M))
    assert (status, problem["reason"]) == (403, "role"), problem
    status, problem = await post(regulated, minimum(50, D))
    assert (status, problem["reason"]) == (403, "access"), problem
    assert problem["detail"] == "write: distributor × compliance = no"
    status, problem = await post(regulated, minimum(0))
    assert (status, problem["reason"]) == (409, "no minimum"), problem
    status, problem = await post(regulated, minimum(5, gtin="123"))
    assert (status, problem["reason"]) == (400, "args.gtin"), problem


def shortages(feed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in feed if e["event"]["type"] == "shortage"]


async def crossings(cloud: Cloud) -> dict[str, Any]:
    """Minimum 50, then D's hold quarantines L1 (stock 0: an alert), a new lot (still
    below: none), M releases L1 (97 >= 50: re-armed), M recalls it (an alert again);
    return the hold's and the recall's answers."""
    await applied(cloud, minimum(50))
    hold = {"lot": "L1", "kind": "hold", "reason": "leak"}
    held = await applied(cloud, lots_tx(D, "hold", hold))
    made = {"lot": "L2", "expiry": "271200", "quantity": 7, "unit": "pack", "profile": PROFILE}
    await applied(cloud, lots_tx(M, "commission", made))
    dispose = {"lot": "L1", "outcome": "released", "reason": "fine"}
    await applied(cloud, lots_tx(M, "dispose", dispose))
    recall = {"lot": "L1", "class": "I", "reason": "sterility"}
    recalled = await applied(cloud, lots_tx(M, "recall", recall))
    return {"hold": held, "recall": recalled}


async def test_the_shortage_alert_reaches_the_regulators_feed(regulated: Cloud) -> None:
    await chain(regulated)
    answers = await crossings(regulated)
    found = shortages(await events(regulated, REGULATOR))
    assert [e["event"] for e in found] == [
        {"type": "shortage", "gtin": GTIN, "stock": 0, "minimum": 50},
        {"type": "shortage", "gtin": GTIN, "stock": 7, "minimum": 50},
    ]
    assert [(e["index"], e["tx"]) for e in found] == [
        (answers[k]["index"], answers[k]["id"]) for k in ("hold", "recall")
    ]
    assert shortages(await events(regulated, M)) == []  # the regulator's alone
    status, stock = await get(regulated, f"/v1/stock/{GTIN}", REGULATOR)
    assert status == 200, stock
    assert stock["shortage"] == {"minimum": 50, "below": True}
    assert stock["figures"]["on_hand"]["distributor"]["recalled"] == 20


async def test_a_restart_replays_the_same_alerts(tmp_path: Path, database: str | None) -> None:
    config = settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    async with running(config) as cloud:
        await chain(cloud)
        await crossings(cloud)
        before = await events(cloud, REGULATOR)
        _, stock_before = await get(cloud, f"/v1/stock/{GTIN}", REGULATOR)
    async with running(config) as cloud:
        assert await events(cloud, REGULATOR) == before and len(shortages(before)) == 2
        _, stock_after = await get(cloud, f"/v1/stock/{GTIN}", REGULATOR)
        assert {**stock_after, "as_of": 0} == {**stock_before, "as_of": 0}


async def test_alerts_applied_by_one_worker_reach_the_feed_on_another(
    tmp_path: Path, postgres_dsn: str
) -> None:
    config = settings(tmp_path / "cloud", postgres_dsn, regulators=(REGULATOR.xonly,))
    started = [await start(config) for _ in range(2)]
    a, b = (Cloud(server, session) for server, session in started)
    try:
        await chain(b)
        await crossings(b)  # applied by worker b only
        found = shortages(await events(a, REGULATOR))  # worker a catches up on the log
        assert len(found) == 2 and found == shortages(await events(b, REGULATOR))
        _, on_a = await get(a, f"/v1/stock/{GTIN}", REGULATOR)
        _, on_b = await get(b, f"/v1/stock/{GTIN}", REGULATOR)
        assert {**on_a, "as_of": 0} == {**on_b, "as_of": 0}
        assert on_a["shortage"] == {"minimum": 50, "below": True}
    finally:
        for server, session in started:
            await session.close()
            await server.close()


async def test_a_handover_leaves_earlier_alerts_with_the_old_regulator(
    tmp_path: Path, database: str | None
) -> None:
    """An alert goes to the regulators of its change's own log position, live and when a
    restart replays the whole log (one page: the handover is followed before the listeners
    are told)."""
    config = settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    successor = party("regulator-2")
    async with running(config) as cloud:
        await chain(cloud)
        await crossings(cloud)
        handover = config_entry.ConfigChange(
            config_entry.REGULATOR, int(time.time()), owners=(successor.xonly,)
        )
        assert (await change(cloud, REGULATOR.secret, handover))[0] == 201
        assert shortages(await events(cloud, successor)) == []
    async with running(config) as cloud:
        assert shortages(await events(cloud, successor)) == []
        kept = cloud.server.app[FEEDS].feeds.page(REGULATOR.did, 0, 100)
        assert [e.event["type"] for e in kept] == ["shortage", "shortage"]


async def test_a_cold_chain_quarantine_raises_the_alert_too(regulated: Cloud) -> None:
    """A quarantine no transaction made (a batch's readings: lots_coldchain.py) takes the
    stock below the minimum: the alert names the batch's 0x01 entry and no transaction."""
    site, t0 = await shipped(regulated)  # L1 of 100 in transit to D, a box on it
    await applied(regulated, minimum(50))
    hot = await site.send(BOX, t0, [HIGH] * 20)  # 19 min above 8 °C: quarantined
    (alert,) = shortages(await events(regulated, REGULATOR))
    assert (alert["index"], alert["tx"]) == (hot, "")
    assert alert["event"] == {"type": "shortage", "gtin": GTIN, "stock": 0, "minimum": 50}
    status, stock = await get(regulated, f"/v1/stock/{GTIN}", REGULATOR)
    assert status == 200 and stock["figures"]["in_transit"]["quarantined"] == 100, stock
