"""The recall trace through HTTP (GET /v1/lots/{gtin}/{lot}/trace; cloud/services/traces.py),
on SQLite and PostgreSQL: a manufacturer's recall of a parent reaches its children and
grandchildren, which then refuse ship, receive, split and dispense (409 "recalled"); the
trace lists them with holders and quantities for the manufacturer, the legs it reads for an
involved retailer, global counts only for the regulator, 403 naming the cell for an
uninvolved retailer and for the public; a restart rebuilds the same trace by replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.api.test_auth import sign_in
from tests.cloud.api.test_tx import applied, post, receive, ship, signed
from tests.cloud.contracts.world import GTIN, PROFILE, REGULATOR, Party, admission, party

M, D, R, R2, P = party("M"), party("D"), party("R"), party("R2"), party("P")
PARTIES = {
    "M": (M, "manufacturer"),
    "D": (D, "distributor"),
    "R": (R, "retailer"),
    "R2": (R2, "retailer"),
    "P": (P, "pharmacy"),
}


def lots_tx(who: Party, tx_type: str, args: dict[str, Any]) -> Any:
    return signed(who, "lots", tx_type, {"gtin": GTIN, **args})


async def recalled_chain(cloud: Cloud) -> None:
    """M makes L1 (100) and ships 60 to D; D splits it into L1-A and L1-B (30 each) and
    ships L1-A to R; R splits L1-A into L1-A1 (20) and L1-A2 (10), ships L1-A2 to P (who
    receives) and 5 of L1-A1 to P (left in transit); then M recalls L1."""
    for name, (key, role) in PARTIES.items():
        region = "FR" if name == "P" else "DE"
        await applied(
            cloud, signed(REGULATOR, "participants", "admit", admission(key, role, name, region))
        )
    commission = {"lot": "L1", "expiry": "271200", "quantity": 100, "unit": "pack"}
    await applied(cloud, lots_tx(M, "commission", {**commission, "profile": PROFILE}))
    await applied(cloud, ship(M, "L1", "S1", D, 60))
    await applied(cloud, receive(D, "S1", 60))
    kids = [{"lot": "L1-A", "quantity": 30}, {"lot": "L1-B", "quantity": 30}]
    await applied(cloud, lots_tx(D, "split", {"lot": "L1", "children": kids}))
    await applied(cloud, ship(D, "L1-A", "S2", R, 30))
    await applied(cloud, receive(R, "S2", 30))
    kids = [{"lot": "L1-A1", "quantity": 20}, {"lot": "L1-A2", "quantity": 10}]
    await applied(cloud, lots_tx(R, "split", {"lot": "L1-A", "children": kids}))
    await applied(cloud, ship(R, "L1-A2", "S3", P, 10))
    await applied(cloud, receive(P, "S3", 10))
    await applied(cloud, ship(R, "L1-A1", "S4", P, 5))
    await applied(cloud, lots_tx(M, "recall", {"lot": "L1", "class": "I", "reason": "sterility"}))


async def trace(cloud: Cloud, who: Party | None, lot: str = "L1") -> tuple[int, Any]:
    headers = {}
    if who is not None:
        headers["Authorization"] = f"Bearer {(await sign_in(cloud, who))['token']}"
    async with cloud.session.get(cloud.url(f"/v1/lots/{GTIN}/{lot}/trace"), headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def test_a_recall_reaches_every_descendant_and_they_cannot_move(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    for lot in ("L1", "L1-A", "L1-B", "L1-A1", "L1-A2"):
        status, facts = await regulated.get(f"/v1/lots/{GTIN}/{lot}")
        assert status == 200 and facts["records"]["recall"]["value"]["class"] == "I", lot
    refusals = [
        ship(D, "L1-B", "X1", R, 1),  # a child
        receive(P, "S4", 5),  # a grandchild in transit
        lots_tx(R, "split", {"lot": "L1-A1", "children": [{"lot": "Z", "quantity": 15}]}),
        lots_tx(P, "dispense", {"lot": "L1-A2", "quantity": 1}),
    ]
    for refused in refusals:
        status, problem = await post(regulated, refused)
        assert (status, problem["reason"]) == (409, "recalled"), problem


async def test_the_manufacturer_traces_every_holder_and_quantity(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    status, found = await trace(regulated, M)
    assert status == 200, found
    assert found["view"] == "flows" and len(found["legs"]) == 3
    by_lot = {t["lot"]: t for t in found["lots"]}
    assert list(by_lot) == ["L1", "L1-A", "L1-B", "L1-A1", "L1-A2"]  # parents first
    holders = {
        lot: sorted((h["did"], h["quantity"]) for h in t["holders"]) for lot, t in by_lot.items()
    }
    assert holders == {
        "L1": [(M.did, 40)],
        "L1-A": [],
        "L1-B": [(D.did, 30)],
        "L1-A1": [(R.did, 15)],
        "L1-A2": [(P.did, 10)],
    }
    (moving,) = by_lot["L1-A1"]["in_transit"]
    assert (moving["shipment"], moving["receiver"], moving["quantity"]) == ("S4", P.did, 5)
    assert by_lot["L1-A2"]["parent"] == "L1-A" and by_lot["L1-A"]["parent"] == "L1"
    assert all(t["recall"]["class"] == "I" for t in found["lots"])
    _, head = await regulated.get("/v1/state")
    assert found["state"] == head


async def test_an_involved_retailer_sees_its_legs_only(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    status, found = await trace(regulated, R)
    assert status == 200, found
    by_lot = {t["lot"]: t for t in found["lots"]}
    assert by_lot["L1"]["holders"] == [] and by_lot["L1-B"]["holders"] == []  # M→D: no
    assert [h["did"] for h in by_lot["L1-A2"]["holders"]] == [P.did]  # R→P: yes
    assert [h["did"] for h in by_lot["L1-A1"]["holders"]] == [R.did]  # D→R: yes


async def test_the_regulator_gets_global_figures_only(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    status, found = await trace(regulated, REGULATOR)
    assert status == 200, found
    assert found["view"] == "global" and "lots" not in found
    assert found["totals"] == {
        "lots": 5,
        "recalled": 5,
        "held": 40 + 30 + 15 + 10,
        "in_transit": 5,
        "dispensed": 0,
    }
    rows = {(r["role"], r["region"]): r for r in found["by_role_region"]}
    assert set(rows) == {
        ("manufacturer", "DE"),
        ("distributor", "DE"),
        ("retailer", "DE"),
        ("pharmacy", "FR"),
    }
    assert (rows[("pharmacy", "FR")]["units"], rows[("pharmacy", "FR")]["in_transit"]) == (10, 5)
    text = json.dumps(found)
    assert "did:key" not in text and "L1-A" not in text and "S4" not in text


async def test_an_uninvolved_retailer_and_the_public_are_refused(regulated: Cloud) -> None:
    await recalled_chain(regulated)
    status, problem = await trace(regulated, R2)
    assert (status, problem["reason"]) == (403, "access"), problem
    assert problem["detail"].startswith("read: retailer × compliance = restricted")
    status, problem = await trace(regulated, None)
    assert (status, problem["reason"]) == (403, "access"), problem
    assert problem["detail"].startswith("read: public × compliance = restricted")
    status, problem = await trace(regulated, M, "NOPE")
    assert (status, problem["reason"]) == (404, "lot"), problem
    async with regulated.session.get(regulated.url("/v1/lots/123/L1/trace")) as r:
        assert (r.status, (await r.json())["reason"]) == (400, "gtin")
    async with regulated.session.get(
        regulated.url(f"/v1/lots/{GTIN}/L1/trace"), headers={"Authorization": "Bearer v1.x.y"}
    ) as r:
        assert (r.status, (await r.json())["reason"]) == (401, "token")


async def test_a_restart_rebuilds_the_same_trace(tmp_path: Path, database: str | None) -> None:
    config = settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    server, session = await start(config)
    try:
        await recalled_chain(Cloud(server, session))
        _, before = await trace(Cloud(server, session), M)
    finally:
        await session.close()
        await server.close()
    server, session = await start(config)
    try:
        status, after = await trace(Cloud(server, session), M)
        assert status == 200 and after == before
    finally:
        await session.close()
        await server.close()
