"""Read policy through HTTP (cloud/contracts/policy.py on GET /v1/lots/{gtin}/{lot}): a
lot's custody record goes to a signed-in reader whose role reads every leg (manufacturer,
distributor) or who is in the lot's chain, never to the public, a
retailer outside the chain or the regulator (its leg cells are `no`). A few cells of
docs/contracts.md §5's read matrix; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud.contracts import cid, policy
from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.api.test_auth import cloud, sign_in  # noqa: F401  (the fixture)
from tests.cloud.api.test_traces import PARTIES, lots_tx, recalled_chain
from tests.cloud.api.test_tx import (
    GTIN,
    D,
    M,
    R,
    admit,
    applied,
    commission,
    receive,
    ship,
    signed,
)
from tests.cloud.contracts.world import REGULATOR, Party

DOC = cid.cid_of(b"%PDF-1.7 release")


async def read(cloud: Cloud, who: Party | None) -> dict[str, Any]:  # noqa: F811
    headers = {}
    if who is not None:
        headers["Authorization"] = f"Bearer {(await sign_in(cloud, who))['token']}"
    async with cloud.session.get(cloud.url(f"/v1/lots/{GTIN}/L1"), headers=headers) as r:
        assert r.status == 200
        return dict(await r.json())


async def test_custody_follows_the_read_matrix(cloud: Cloud) -> None:  # noqa: F811
    for name in ("M", "D", "R"):
        await applied(cloud, admit(name))
    await applied(cloud, commission("L1", 10))
    await applied(cloud, ship(M, "L1", "S1", D, 4))
    await applied(cloud, receive(D, "S1", 4))
    assert "custody" not in await read(cloud, None)  # the public
    seen = await read(cloud, M)  # manufacturer: yes on every leg
    assert seen["custody"]["quantity"] == 10, seen
    assert "custody" in await read(cloud, D)  # distributor: yes on every leg
    assert "custody" not in await read(cloud, R)  # retailer: not in the chain
    assert "custody" not in await read(cloud, REGULATOR)  # regulator: legs are `no`
    async with cloud.session.get(
        cloud.url(f"/v1/lots/{GTIN}/L1"), headers={"Authorization": "Bearer v1.x.y"}
    ) as r:
        assert r.status == 401 and (await r.json())["reason"] == "token"


@pytest.mark.parametrize(
    ("role", "involved", "sees"),
    [
        ("manufacturer", False, True),
        ("operator_team", False, True),
        ("distributor", False, True),  # yes on every leg
        ("retailer", True, True),
        ("retailer", False, False),
        ("pharmacy", True, True),
        ("regulator", True, False),
        ("public", True, False),
    ],
)
def test_custody_cells(role: str, involved: bool, sees: bool) -> None:
    assert policy.sees_custody(role, involved) is sees


async def test_a_receivers_own_order_reference_is_kept_and_read_as_po(
    cloud: Cloud,  # noqa: F811
) -> None:
    """The receiver writes PO/invoices too: its purchase order, given when it receives (how
    a pharmacy, which ships nothing, writes the column). Readers of the leg's orders see
    it; the public does not, and the log never carries it."""
    for name in ("M", "D", "R"):
        await applied(cloud, admit(name))
    await applied(cloud, commission("L1", 10))
    await applied(cloud, ship(M, "L1", "S1", D, 4))
    args = {"shipment": "S1", "quantity": 4, "order_ref": "PO-D-77"}
    await applied(cloud, signed(D, "lots", "receive", args))
    refs = (await read(cloud, M))["columns"]["purchase_orders_invoices"]
    assert {"shipment": "S1", "receiver_order_ref": "PO-D-77"} in refs, refs
    public = await read(cloud, None)
    assert "PO-D-77" not in str(public)
    async with cloud.session.get(cloud.url("/v1/log/entries"), params={"start": 0}) as r:
        entries = [bytes.fromhex(e) for e in (await r.json())["entries"]]
    assert len(entries) >= 12 and not any(b"PO-D-77" in e for e in entries)


# -- the reads' fact index (cloud/contracts/facts_index.py) is rebuilt by replay at start


async def reads(cloud: Cloud) -> list[Any]:  # noqa: F811
    """What the fact index serves: lots with shipments (as their manufacturer and a
    distributor read them), a lot's certificates, the participants (as the regulator)."""
    out = []
    for who, path in (
        (M, f"/v1/lots/{GTIN}/L1"),
        (D, f"/v1/lots/{GTIN}/L1-A"),
        (M, f"/v1/certificates?subject={GTIN}/L1"),
        (REGULATOR, "/v1/participants"),
    ):
        headers = {"Authorization": f"Bearer {(await sign_in(cloud, who))['token']}"}
        async with cloud.session.get(cloud.url(path), headers=headers) as r:
            assert r.status == 200, await r.text()
            out.append(await r.json())
    return out


async def test_a_restart_reads_the_same_facts(tmp_path: Path, database: str | None) -> None:
    config = settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    server, session = await start(config)
    try:
        cloud = Cloud(server, session)
        await recalled_chain(cloud)
        certificate = {"certificate": "REL-1", "kind": "release", "lot": "L1"}
        certificate |= {"valid_from": 0, "valid_until": 2**40, "document": DOC}
        await applied(cloud, lots_tx(M, "certify", certificate))
        before = await reads(cloud)
    finally:
        await session.close()
        await server.close()
    lot, child, certificates, everyone = before
    assert [s["shipment"] for s in lot["columns"]["flow_m_to_d"]["shipments"]] == ["S1"]
    assert [s["shipment"] for s in child["columns"]["flow_d_to_r"]["shipments"]] == ["S2"]
    assert [c["id"] for c in certificates["certificates"]] == ["REL-1"]
    counted = sum(n for regions in everyone["counts"].values() for n in regions.values())
    assert len(everyone["participants"]) + counted == len(PARTIES)  # M listed, others counted
    server, session = await start(config)
    try:
        assert await reads(Cloud(server, session)) == before
    finally:
        await session.close()
        await server.close()
