"""The access matrices, cell by cell, through HTTP (docs/contracts.md §5): 7 stakeholders ×
9 columns × read and write, each cell's value read from ../shared/vectors/access-matrix.json,
so a changed cell fails its test (the code's matrix is compared with the file's first, then
the behaviour is checked against the file's value).

Reads: a real cloud runs one supply-chain scenario (M → D → R → P with order references, a
split, a recall, certificates); each stakeholder signs in (the public has no token) and reads
GET /v1/lots/{gtin}/{lot}, /v1/participants[/{did}] and /v1/certificates?subject=. Each
value's meaning is asserted: yes, the records present; no, the column absent and named by
its cell in `withheld` (and its identifiers nowhere in the answer); if involved, present
for a reader in the lot's chain and withheld from one of the same role outside it;
restricted, global only and own only as §5 defines them.

Writes: a second cloud; for each cell the stakeholder signs a transaction of that column and
posts it: allowed, 201 and two entries on the log (0x03 and 0x04); denied, 403 naming the
cell with nothing on the log and the root unchanged. Some cells have no transaction for
their role (a retailer writes nothing on the M→D leg; no one writes another's name): there
the test asserts that no transaction type of the catalog maps the role to the column
(access.TX_COLUMNS; the catalog's types are exactly those), and posts the nearest real
attempt, which is refused and leaves nothing. The public has no key the ledger knows: every
transaction it signs stops at the "who" step (403 participant) before any cell.

Both worlds run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from cloud.api.state import CONTRACTS
from cloud.contracts import access, catalog, cid, entries, stateroot, tx
from gateway import config_entry
from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.api.test_auth import sign_in
from tests.cloud.conftest import ENGINES, fresh_schema
from tests.cloud.contracts.world import GTIN, PROFILE, REGULATOR, Party, admission, party
from tests.conftest import SHARED_VECTORS

ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the clouds are module fixtures

VECTOR = SHARED_VECTORS / "access-matrix.json"
LOT_COLUMNS = [c for c in access.COLUMNS if c != access.ENTITIES_IDENTITY]  # a lot's view
MATRIX: dict[str, Any] | None = json.loads(VECTOR.read_text()) if VECTOR.exists() else None
ABSENT = f"{VECTOR} is absent (the shared vectors live beside the worktree)"


def cells(matrix: str) -> list[Any]:
    """(stakeholder, column, value) of every cell of `matrix`, from the vector file."""
    if MATRIX is None:
        return [pytest.param(None, None, None, marks=pytest.mark.skip(reason=ABSENT))]
    return [
        pytest.param(role, column, value, id=f"{role}-{column}")
        for role, row in MATRIX[matrix].items()
        for column, value in row.items()
    ]


def named(role: str, column: str, matrix: str) -> str:
    """The cell's name as a refusal or `withheld` gives it, from the file's value."""
    assert MATRIX is not None
    value = MATRIX[matrix][role][column].replace("_", " ")
    return f"{matrix}: {role.replace('_', ' ')} × {access.TITLES[column]} = {value}"


def now_ms() -> int:
    return int(time.time() * 1000)


def signed(who: Party, contract: str, tx_type: str, args: dict[str, Any]) -> tx.SignedTx:
    return tx.make(contract, tx_type, args, who.secret)


def lots(who: Party, tx_type: str, **args: Any) -> tx.SignedTx:
    return signed(who, "lots", tx_type, args)


def commission(who: Party, lot: str, quantity: int) -> tx.SignedTx:
    return lots(
        who,
        "commission",
        gtin=GTIN,
        lot=lot,
        expiry="271200",
        quantity=quantity,
        unit="pack",
        profile=PROFILE,
    )


def ship(who: Party, lot: str, shipment: str, to: Party, quantity: int, **ref: str) -> tx.SignedTx:
    args = {"gtin": GTIN, "lot": lot, "shipment": shipment, "receiver": to.did}
    return lots(who, "ship", quantity=quantity, **args, **ref)


DOC = cid.cid_of(b"a certificate's document")


def certify(who: Party, certificate: str, kind: str, **subject: str) -> tx.SignedTx:
    start = now_ms() - 60_000
    return lots(
        who,
        "certify",
        certificate=certificate,
        kind=kind,
        valid_from=start,
        valid_until=start + 86_400_000,
        document=DOC,
        **subject,
    )


async def post(cloud: Cloud, envelope: tx.SignedTx) -> tuple[int, Any]:
    return await cloud.post("/v1/tx", envelope.to_wire(), "application/json")


async def applied(cloud: Cloud, envelope: tx.SignedTx) -> dict[str, Any]:
    status, answer = await post(cloud, envelope)
    assert status == 201, answer
    return dict(answer)


# -- the read world ----------------------------------------------------------------------

# Participants: (name, role, region). D, R and P are in lot L1's chain; D2, R2, P2 are not.
PEOPLE = (
    ("M", "manufacturer", "DE"),
    ("M2", "manufacturer", "FR"),
    ("D", "distributor", "DE"),
    ("D2", "distributor", "FR"),
    ("R", "retailer", "DE"),
    ("R2", "retailer", "DE"),
    ("P", "pharmacy", "DE"),
    ("P2", "pharmacy", "AT"),
    ("O", "operator_team", "DE"),
)
P_ = {name: party(f"matrix/{name}") for name, _, _ in PEOPLE} | {"regulator": REGULATOR}
READER = {  # who reads for each stakeholder (None: the public, no token)
    "manufacturer": "M",
    "distributor": "D",
    "retailer": "R",
    "pharmacy": "P",
    "operator_team": "O",
    "regulator": "regulator",
    "public": None,
}
OUTSIDER = {"distributor": "D2", "retailer": "R2", "pharmacy": "P2"}  # same role, not in L1
# L1's shipments: one per leg, each with an order reference; distinctive numbers and ids,
# so the public log can be searched for them.
SHIPPED = {
    access.M_TO_D: ("SHIP-MD-7001", "M", "D", 6007, "PO-MD-7001"),
    access.D_TO_R: ("SHIP-DR-7002", "D", "R", 3001, "PO-DR-7002"),
    access.R_TO_P: ("SHIP-RP-7003", "R", "P", 1009, "PO-RP-7003"),
}
MADE, DISPENSED = 7919, 13
# every lot of GTIN the scenario makes
LOTS_OF_GTIN = ("L1", "L2", "L2-A", "L2-B", "L9", "L3", "L3-A", "L3-B")
RECALL_REASON = "sterility-failure-batch-4471"


@dataclass
class Reads:
    """The read world: a cloud after the scenario, and a bearer header per party."""

    cloud: Cloud
    headers: dict[str | None, dict[str, str]] = field(default_factory=dict)

    async def get(self, who: str | None, path: str, **params: str) -> tuple[int, Any]:
        async with self.cloud.session.get(
            self.cloud.url(path), params=params, headers=self.headers[who]
        ) as r:
            return r.status, await r.json(content_type=None)

    async def ok(self, who: str | None, path: str, **params: str) -> dict[str, Any]:
        status, answer = await self.get(who, path, **params)
        assert status == 200, answer
        return dict(answer)

    async def lot(self, who: str | None, lot: str) -> dict[str, Any]:
        """The lot's view for `who`; each column asked for by name agrees with it: the same
        value, or 403 naming the same cell."""
        view = await self.ok(who, f"/v1/lots/{GTIN}/{lot}")
        for column in LOT_COLUMNS:
            status, one = await self.get(who, f"/v1/lots/{GTIN}/{lot}/columns/{column}")
            if column in view.get("columns", {}):
                assert (status, one["value"]) == (200, view["columns"][column]), one
            else:
                assert (status, one["reason"]) == (403, "access"), one
                assert one["detail"] == view["withheld"][column]
        return view


async def scenario(cloud: Cloud) -> None:
    """Admit everyone; L1 goes M → D → R → P (order references on each leg) and P dispenses;
    M splits L2 into L2-A and L2-B; L9 goes M → D and the regulator recalls it; the
    regulator certifies D (cold storage) and D2 (GMP), M releases L1. L3 involves only the
    outsiders: M → D2, who splits it into L3-A and L3-B and ships L3-A to R2; M's other
    units of L3 went to D: 5 received, 10 on their way."""
    for name, role, region in PEOPLE:
        args = admission(P_[name], role, name, region)
        await applied(cloud, signed(REGULATOR, "participants", "admit", args))
    m = P_["M"]
    await applied(cloud, commission(m, "L1", MADE))
    for shipment, sender, receiver, quantity, ref in SHIPPED.values():
        await applied(
            cloud, ship(P_[sender], "L1", shipment, P_[receiver], quantity, order_ref=ref)
        )
        await applied(cloud, lots(P_[receiver], "receive", shipment=shipment, quantity=quantity))
    await applied(cloud, lots(P_["P"], "dispense", gtin=GTIN, lot="L1", quantity=DISPENSED))
    await applied(cloud, commission(m, "L2", 500))
    kids = [{"lot": "L2-A", "quantity": 250}, {"lot": "L2-B", "quantity": 250}]
    await applied(cloud, lots(m, "split", gtin=GTIN, lot="L2", children=kids))
    await applied(cloud, commission(m, "L9", 400))
    await applied(cloud, ship(m, "L9", "SHIP-MD-7009", P_["D"], 400))
    await applied(cloud, lots(P_["D"], "receive", shipment="SHIP-MD-7009", quantity=400))
    recall = {"gtin": GTIN, "lot": "L9", "class": "II", "reason": RECALL_REASON}
    await applied(cloud, signed(REGULATOR, "lots", "recall", recall))
    await applied(cloud, certify(REGULATOR, "CERT-D-COLD", "cold-storage", subject=P_["D"].did))
    await applied(cloud, certify(REGULATOR, "CERT-D2-GMP", "gmp", subject=P_["D2"].did))
    await applied(cloud, certify(m, "CERT-L1-REL", "release", gtin=GTIN, lot="L1"))
    await applied(cloud, commission(m, "L3", 35))
    await applied(cloud, ship(m, "L3", "SHIP-MD-7020", P_["D2"], 20))
    await applied(cloud, lots(P_["D2"], "receive", shipment="SHIP-MD-7020", quantity=20))
    kids = [{"lot": "L3-A", "quantity": 10}, {"lot": "L3-B", "quantity": 10}]
    await applied(cloud, lots(P_["D2"], "split", gtin=GTIN, lot="L3", children=kids))
    await applied(cloud, ship(P_["D2"], "L3-A", "SHIP-DR-7022", P_["R2"], 10))
    await applied(cloud, lots(P_["R2"], "receive", shipment="SHIP-DR-7022", quantity=10))
    await applied(cloud, ship(m, "L3", "SHIP-MD-7021", P_["D"], 10))  # in transit
    await applied(cloud, ship(m, "L3", "SHIP-MD-7023", P_["D"], 5))
    await applied(cloud, lots(P_["D"], "receive", shipment="SHIP-MD-7023", quantity=5))


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=ENGINES)
async def engine(request: pytest.FixtureRequest) -> str | None:
    """CloudSettings.database for each engine, for a module's clouds: None (SQLite) or the
    DSN of an empty PostgreSQL schema."""
    if MATRIX is None:
        pytest.skip(ABSENT)
    if request.param == "postgres":
        return await fresh_schema(request.getfixturevalue("postgres_database"))
    return None


@contextlib.asynccontextmanager
async def served(
    tmp_path_factory: pytest.TempPathFactory, name: str, database: str | None
) -> AsyncIterator[Cloud]:
    """A cloud with the regulator configured, for one module's tests."""
    data = tmp_path_factory.mktemp(name)
    server, session = await start(settings(data, database, regulators=(REGULATOR.xonly,)))
    try:
        yield Cloud(server, session)
    finally:
        await session.close()
        await server.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reads(
    tmp_path_factory: pytest.TempPathFactory, engine: str | None
) -> AsyncIterator[Reads]:
    async with served(tmp_path_factory, "reads", engine) as cloud:
        world = Reads(cloud)
        await scenario(cloud)
        world.headers[None] = {}
        for name, key in P_.items():
            token = (await sign_in(cloud, key))["token"]
            world.headers[name] = {"Authorization": f"Bearer {token}"}
        yield world


def withheld(view: dict[str, Any], role: str, column: str) -> None:
    """The column is absent from `view` and its cell named in `withheld`."""
    assert column not in view.get("columns", {}), view
    assert view["withheld"][column] == named(role, column, "read"), view


async def read_product(w: Reads, role: str, value: str) -> None:
    view = await w.lot(READER[role], "L2")
    if value == "no":
        return withheld(view, role, access.PRODUCT)
    product = view["columns"][access.PRODUCT]
    assert (product["lot"]["gtin"], product["lot"]["lot"]) == (GTIN, "L2")
    assert product["lots_of_gtin"] == len(LOTS_OF_GTIN)
    if value == "yes":  # identity and lineage
        assert (product["parent"], product["children"]) == (None, ["L2-A", "L2-B"])
        child = await w.lot(READER[role], "L2-A")
        assert child["columns"][access.PRODUCT]["parent"] == "L2"
    elif value == "global_only":  # identity and the GTIN's figure, no lineage
        assert set(product) == {"lot", "lots_of_gtin"}
        assert "L2-A" not in json.dumps(view)
    else:
        pytest.fail(f"no check for product = {value}")


def full_quality(view: dict[str, Any], recalled: bool) -> None:
    quality = view["columns"][access.QUALITY]
    assert quality["status"]["status"] == "released"
    assert (quality["recall"] is not None) is recalled
    assert quality["boxes"] == []  # no box rides these lots: the key is there, empty


async def read_quality(w: Reads, role: str, value: str) -> None:
    who = READER[role]
    view, recalled = await w.lot(who, "L1"), await w.lot(who, "L9")
    if value == "yes":
        full_quality(view, False)
        full_quality(recalled, True)
    elif value == "if_involved":
        full_quality(view, False)  # in L1's chain
        outside = await w.lot(OUTSIDER[role], "L1")  # the same role, outside the chain
        withheld(outside, role, access.QUALITY)
    elif value == "global_only":
        assert view["columns"][access.QUALITY] == {"status": "released", "recalled": False}
        assert recalled["columns"][access.QUALITY] == {"status": "released", "recalled": True}
    elif value == "no":
        withheld(view, role, access.QUALITY)
    else:
        pytest.fail(f"no check for quality status = {value}")


def read_leg(leg: str) -> Callable[[Reads, str, str], Awaitable[None]]:
    shipment, sender, receiver, quantity, _ = SHIPPED[leg]

    async def check(w: Reads, role: str, value: str) -> None:
        view = await w.lot(READER[role], "L1")
        if value == "yes":
            flow = view["columns"][leg]
            assert [
                (s["shipment"], s["sender"], s["receiver"], s["quantity"], s["status"])
                for s in flow["shipments"]
            ] == [(shipment, P_[sender].did, P_[receiver].did, quantity, "received")]
            if leg == access.R_TO_P:
                assert flow["dispensed"] == DISPENSED
        elif value == "no":
            withheld(view, role, leg)
            assert shipment not in json.dumps(view)
        else:
            pytest.fail(f"no check for {leg} = {value}")

    return check


def refs_on_legs(role: str) -> list[dict[str, str]]:
    """L1's order references on the legs the file lets `role` read."""
    assert MATRIX is not None
    return [
        {"shipment": shipment, "order_ref": ref}
        for leg, (shipment, _, _, _, ref) in SHIPPED.items()
        if MATRIX["read"][role][leg] == "yes"
    ]


async def read_orders(w: Reads, role: str, value: str) -> None:
    view = await w.lot(READER[role], "L1")
    if value == "yes":
        assert view["columns"][access.ORDERS] == refs_on_legs(role)
    elif value == "if_involved":
        assert view["columns"][access.ORDERS] == refs_on_legs(role)
        outside = await w.lot(OUTSIDER[role], "L1")
        withheld(outside, role, access.ORDERS)
        assert "PO-" not in json.dumps(outside)
    elif value == "no":
        withheld(view, role, access.ORDERS)
        assert "PO-" not in json.dumps(view)
    else:
        pytest.fail(f"no check for PO/invoices = {value}")


VALIDITY = {"id", "kind", "valid_from", "valid_until", "revoked"}


async def read_compliance(w: Reads, role: str, value: str) -> None:
    who = READER[role]
    others = await w.ok(who, "/v1/certificates", subject=P_["D2"].did)
    lot, recalled = await w.lot(who, "L1"), await w.lot(who, "L9")
    other = await w.ok(who, f"/v1/participants/{P_['M2'].did}")
    assert recalled["columns"][access.COMPLIANCE]["recall"]["reason"] == RECALL_REASON
    if value == "yes":  # every certificate and status in full
        (gmp,) = others["certificates"]
        assert (gmp["id"], gmp["document"], gmp["issuer"]) == ("CERT-D2-GMP", DOC, REGULATOR.did)
        (release,) = lot["columns"][access.COMPLIANCE]["certificates"]
        assert (release["id"], release["document"]) == ("CERT-L1-REL", DOC)
        assert other["columns"][access.COMPLIANCE]["reason"] == "admitted"
        assert others["withheld"] == {}
    elif value == "restricted":  # others': validity facts; own: in full
        (gmp,) = others["certificates"]
        assert set(gmp) == VALIDITY and gmp["id"] == "CERT-D2-GMP" and gmp["revoked"] is False
        assert others["withheld"] == {access.COMPLIANCE: named(role, access.COMPLIANCE, "read")}
        (release,) = lot["columns"][access.COMPLIANCE]["certificates"]
        assert set(release) == VALIDITY and DOC not in json.dumps(lot)
        assert other["columns"][access.COMPLIANCE] == {"status": "active"}
        if who == "D":  # the subject of CERT-D-COLD reads it in full, and its own status
            mine = await w.ok(who, "/v1/certificates", subject=P_["D"].did)
            assert mine["certificates"][0]["document"] == DOC and mine["withheld"] == {}
            me = await w.ok(who, f"/v1/participants/{P_['D'].did}")
            assert me["columns"][access.COMPLIANCE]["reason"] == "admitted"
    else:
        pytest.fail(f"no check for compliance = {value}")


async def read_manufacturer_identity(w: Reads, role: str, value: str) -> None:
    who, m = READER[role], P_["M"]
    view = await w.lot(who, "L1")
    one = await w.get(who, f"/v1/participants/{m.did}")
    listed = await w.ok(who, "/v1/participants")
    if value == "yes":
        assert view["columns"][access.MANUFACTURER_IDENTITY] == {
            "did": m.did,
            "role": "manufacturer",
            "name": "M",
            "region": "DE",
            "licence": {"number": "L-M", "issuer": "BfArM"},
        }
        assert one[0] == 200 and one[1]["columns"][access.MANUFACTURER_IDENTITY]["name"] == "M"
        dids = {p["did"] for p in listed["participants"]}
        assert {m.did, P_["M2"].did} <= dids
    elif value == "no":
        withheld(view, role, access.MANUFACTURER_IDENTITY)
    else:
        pytest.fail(f"no check for manufacturer identity = {value}")


ENTITIES = [name for name, role, _ in PEOPLE if role != "manufacturer"]
MAKERS = {P_["M"].did, P_["M2"].did}


async def read_entities_identity(w: Reads, role: str, value: str) -> None:
    who = READER[role]
    listed = await w.ok(who, "/v1/participants")
    dids = {p["did"] for p in listed["participants"]}
    target = OUTSIDER.get(role, "D")  # another participant of the reader's kind
    one = await w.ok(who, f"/v1/participants/{P_[target].did}")
    column = access.ENTITIES_IDENTITY
    if value == "yes":
        assert dids == MAKERS | {P_[n].did for n in ENTITIES}
        assert one["columns"][column]["name"] == target
        assert listed["withheld"] == {} and "counts" not in listed
        return
    withheld(one, role, column)
    assert listed["withheld"] == {column: named(role, column, "read")}
    if value == "own_only":
        assert who is not None
        assert dids == MAKERS | {P_[who].did}
        mine = await w.ok(who, f"/v1/participants/{P_[who].did}")
        assert mine["columns"][column]["name"] == who
    elif value == "global_only":  # counts per role and region, no record
        assert dids == MAKERS
        want: dict[str, dict[str, int]] = {}
        for _, r, region in PEOPLE:
            if r != "manufacturer":
                want.setdefault(r, {})
                want[r][region] = want[r].get(region, 0) + 1
        assert listed["counts"] == want
    elif value == "no":
        assert dids == MAKERS and "counts" not in listed
        assert P_[target].did in json.dumps(one)  # only because the reader asked by it
        assert "name" not in json.dumps(one)
    else:
        pytest.fail(f"no check for entities' identity = {value}")


READ_CHECKS: dict[str, Callable[[Reads, str, str], Awaitable[None]]] = {
    access.PRODUCT: read_product,
    access.QUALITY: read_quality,
    **{leg: read_leg(leg) for leg in SHIPPED},
    access.ORDERS: read_orders,
    access.COMPLIANCE: read_compliance,
    access.MANUFACTURER_IDENTITY: read_manufacturer_identity,
    access.ENTITIES_IDENTITY: read_entities_identity,
}


@ON_MODULE_LOOP
@pytest.mark.parametrize(("role", "column", "value"), cells("read"))
async def test_read_cell(reads: Reads, role: str, column: str, value: str) -> None:
    assert access.READ[role][column] == value  # the code's cell is the file's
    await READ_CHECKS[column](reads, role, value)


@ON_MODULE_LOOP
async def test_reads_refuse_bad_input(reads: Reads) -> None:
    status, problem = await reads.get(None, "/v1/participants/did:key:zNotAKey")
    assert (status, problem["reason"]) == (400, "did")
    status, problem = await reads.get(None, f"/v1/participants/{party('nobody').did}")
    assert (status, problem["reason"]) == (404, "participant")
    for subject in ("", "x" * 101, "did:key:z1", f"{GTIN}", "09506000134353/L1", f"{GTIN}/ L"):
        status, problem = await reads.get(None, "/v1/certificates", subject=subject)
        assert (status, problem["reason"]) == (400, "subject"), subject
    status, problem = await reads.get(None, "/v1/certificates")
    assert (status, problem["reason"]) == (400, "subject")
    reads.headers["forged"] = {"Authorization": "Bearer v1.x.y"}
    for path in ("/v1/participants", f"/v1/participants/{P_['M'].did}", f"/v1/lots/{GTIN}/L1"):
        status, problem = await reads.get("forged", path)
        assert (status, problem["reason"]) == (401, "token"), path
    status, view = await reads.get(None, f"/v1/lots/{GTIN}/NEVER")  # public records only
    assert status == 200 and "columns" not in view and view["records"]["lot"]["value"] is None
    for path, want in (
        (f"/v1/lots/{GTIN}/NEVER/columns/product", (404, "lot")),
        (f"/v1/lots/{GTIN}/L1/columns/entities_identity", (400, "column")),
        (f"/v1/lots/{GTIN}/L1/columns/x", (400, "column")),
        ("/v1/lots/09506000134353/L1/columns/product", (400, "gtin")),
        (f"/v1/lots/{GTIN}/%20/columns/product", (400, "lot")),
    ):
        status, problem = await reads.get("M", path)
        assert (status, problem["reason"]) == want, path


@ON_MODULE_LOOP
async def test_involved_reaches_ancestors_and_descendants_not_siblings(reads: Reads) -> None:
    """R2 received L3-A, split from L3: it is in L3's chain, not in its sibling L3-B's; R,
    of the same role, is in neither. The custody R2 sees of L3 keeps out the M→D shipment
    in transit and the M→D receivers (its M→D cell is no); the manufacturer's shows them."""
    assert access.READ["retailer"][access.QUALITY] == "if_involved"
    parent = await reads.lot("R2", "L3")
    assert parent["columns"][access.QUALITY]["status"]["status"] == "released"
    assert parent["custody"]["children"] == ["L3-A", "L3-B"]
    assert "SHIP-MD-7021" not in json.dumps(parent) and parent["custody"]["in_transit"] == []
    # nor whom the manufacturer shipped L3 to (D2 and D, on M→D): only the manufacturer
    assert parent["custody"]["involved"] == [P_["M"].did]
    withheld(await reads.lot("R2", "L3-B"), "retailer", access.QUALITY)
    stranger = await reads.lot("R", "L3")
    withheld(stranger, "retailer", access.QUALITY)
    assert "custody" not in stranger
    maker = await reads.lot("M", "L3")
    assert maker["custody"]["in_transit"] == ["SHIP-MD-7021"]
    assert sorted(maker["custody"]["involved"]) == sorted(P_[n].did for n in ("M", "D", "D2"))
    (moving,) = [
        s for s in maker["columns"][access.M_TO_D]["shipments"] if s["status"] != "received"
    ]
    assert (moving["shipment"], moving["receiver"]) == ("SHIP-MD-7021", P_["D"].did)


@ON_MODULE_LOOP
async def test_the_public_log_reveals_no_holder_quantity_or_counterparty(reads: Reads) -> None:
    """After the whole scenario, every entry of the public log: transactions (0x03) are a
    contract name and a commitment, state roots (0x04) a count, an index and a root, and
    the only configuration (0x06) names the regulator; no participant's DID or key, no
    shipment id, order reference or name appears in any entry's bytes, and no quantity in
    any entry's readable fields (readable_fields: every other byte is accounted for)."""
    store = reads.cloud.server.app[CONTRACTS].shared.store
    size = await store.log_size()
    found: list[bytes] = []
    while len(found) < size:
        status, page = await reads.get(None, "/v1/log/entries", start=str(len(found)))
        assert status == 200, page
        found += [bytes.fromhex(e) for e in page["entries"]]
    kinds = {entry[0] for entry in found}
    assert kinds == {entries.KIND, stateroot.KIND, config_entry.ENTRY_CONFIG}, kinds
    secrets = [P_[n].did.encode() for n, _, _ in PEOPLE]
    secrets += [P_[n].xonly for n, _, _ in PEOPLE]
    secrets += [P_[n].xonly.hex().encode() for n, _, _ in PEOPLE]
    secrets += [shipment.encode() for shipment, *_ in SHIPPED.values()]
    secrets += [ref.encode() for *_, ref in SHIPPED.values()]
    secrets += [b"SHIP-MD-7009", b"SHIP-MD-7020", b"SHIP-MD-7021", b"SHIP-DR-7022"]
    secrets += [b"SHIP-MD-7023"]
    secrets += [RECALL_REASON.encode(), b"quantity", b"BfArM", b"CERT-D-COLD"]
    secrets += [b"receiver", b"holder", b"sender", b"order_ref"]
    # Quantities are short digit strings that a 32-byte hash, key or signature may hold by
    # chance, so they are looked for as whole numbers in each entry's readable fields only,
    # once every other byte of the entry is accounted for as a hash, key, signature or
    # binary integer (a quantity leaking anywhere else would change the entry's layout).
    numbers = [str(q) for q in (MADE, DISPENSED, *(s[3] for s in SHIPPED.values()))]
    for index, entry in enumerate(found):
        text = readable_fields(entry)
        for secret in secrets:
            assert secret not in entry, (index, secret)
        for number in numbers:
            assert not re.search(rf"(?<![0-9]){number}(?![0-9])", text), (index, number, text)


def readable_fields(entry: bytes) -> str:
    """The text an entry of the public log carries beside its hashes, keys, signatures and
    binary integers, after checking that those account for every other byte: a transaction's
    contract name (0x03: then a commitment), nothing for a state root (0x04: count, index,
    root), a configuration change's op, site and contracts (0x06: its keys are hex, its
    time a number the ledger sets)."""
    if entry[0] == entries.KIND:
        parsed = entries.parse(entry)
        assert parsed.contract in {"participants", "lots"}
        assert len(entry) == 3 + len(parsed.contract) + entries.COMMITMENT_SIZE
        return parsed.contract
    if entry[0] == stateroot.KIND:
        assert stateroot.parse(entry).encode() == entry
        return ""
    assert entry[0] == config_entry.ENTRY_CONFIG, entry[:1]
    _, change = config_entry.parse_entry(entry[1:])
    assert entry[1 + 32 + 64 :] == change.canonical()  # signer, signature, the change
    assert change.op in {"regulator", "owners"}, change
    return " ".join([change.op, change.site or "", *change.contracts])


# -- the write world -----------------------------------------------------------------------

# who writes for each stakeholder: its reader's party; the public: a key never admitted
WRITERS: dict[str, str] = {role: name or "stranger" for role, name in READER.items()}
# Participants that rotate their own key (so the others keep theirs), and the targets of
# rotations that must be refused (never rotated, so every attempt meets the same record).
SELF = {"manufacturer": "M-self", "distributor": "D-self", "retailer": "R-self"}
SELF |= {"pharmacy": "P-self", "operator_team": "O-self"}
TARGET = {access.MANUFACTURER_IDENTITY: "M2", access.ENTITIES_IDENTITY: "D2"}
NEXT = {"M": "D", "D": "R", "R": "P"}  # who a holder ships to


class Writes:
    """The write world: a cloud where every role is admitted, with fresh lots on demand."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.roles = {"M": "manufacturer", "M2": "manufacturer", "D": "distributor"}
        self.roles |= {"D2": "distributor", "R": "retailer", "P": "pharmacy"}
        self.roles |= {"O": "operator_team"} | {name: role for role, name in SELF.items()}
        self.keys = {name: party(f"writes/{name}") for name in self.roles}
        self.keys |= {"regulator": REGULATOR, "stranger": party("writes/stranger")}
        self.counter = itertools.count(1)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    async def admit_all(self) -> None:
        for name, role in self.roles.items():
            args = admission(self.keys[name], role, name)
            await applied(self.cloud, signed(REGULATOR, "participants", "admit", args))

    async def held_by(self, name: str, quantity: int = 10) -> str:
        """A fresh lot of which `name` (M, D, R or P) holds `quantity`; its lot number."""
        lot = self.fresh("W")
        await applied(self.cloud, commission(self.keys["M"], lot, quantity))
        holder = "M"
        while holder != name:
            await self.shipped(holder, lot, NEXT[holder], quantity, receive=True)
            holder = NEXT[holder]
        return lot

    async def shipped(
        self, sender: str, lot: str, receiver: str, quantity: int, receive: bool = False
    ) -> str:
        shipment = self.fresh("S")
        to = self.keys[receiver]
        await applied(self.cloud, ship(self.keys[sender], lot, shipment, to, quantity))
        if receive:
            await applied(self.cloud, lots(to, "receive", shipment=shipment, quantity=quantity))
        return shipment

    async def in_transit_to(self, name: str) -> str:
        """A shipment on its way to `name` (D, R or P), not yet received; its id."""
        sender = {"D": "M", "R": "D", "P": "R"}[name]
        lot = await self.held_by(sender)
        return await self.shipped(sender, lot, name, 10)


Build = Callable[[Writes, Party], Awaitable[tx.SignedTx]]


async def w_commission(w: Writes, who: Party) -> tx.SignedTx:
    return commission(who, w.fresh("N"), 5)


def w_hold(holder: str) -> Build:
    async def build(w: Writes, who: Party) -> tx.SignedTx:
        lot = await w.held_by(holder)
        return lots(who, "hold", gtin=GTIN, lot=lot, kind="damage", reason="crushed case")

    return build


def w_ship(sender: str, receiver: str, **ref: str) -> Build:
    async def build(w: Writes, who: Party) -> tx.SignedTx:
        lot = await w.held_by(sender)
        return ship(who, lot, w.fresh("S"), w.keys[receiver], 5, **ref)

    return build


def w_receive(receiver: str, **extra: str) -> Build:
    async def build(w: Writes, who: Party) -> tx.SignedTx:
        shipment = await w.in_transit_to(receiver)
        return lots(who, "receive", shipment=shipment, quantity=10, **extra)

    return build


def w_dispense(holder: str) -> Build:
    async def build(w: Writes, who: Party) -> tx.SignedTx:
        lot = await w.held_by(holder)
        return lots(who, "dispense", gtin=GTIN, lot=lot, quantity=1)

    return build


async def w_release(w: Writes, who: Party) -> tx.SignedTx:
    lot = await w.held_by("M")
    return certify(who, w.fresh("C"), "release", gtin=GTIN, lot=lot)


async def w_gmp(w: Writes, who: Party) -> tx.SignedTx:
    return certify(who, w.fresh("C"), "gmp", subject=w.keys["D"].did)


def w_rotate(target: str) -> Build:
    async def build(w: Writes, who: Party) -> tx.SignedTx:
        new = party(w.fresh("writes/new-key-"))
        args = {"did": w.keys[target].did, "new_did": new.did}
        return signed(who, "participants", "rotate", args)

    return build


async def w_gs1_prefix(w: Writes, who: Party) -> tx.SignedTx:
    """A GS1 company prefix of its own (6 digits, none a prefix of another)."""
    return signed(who, "lots", "gs1-prefix", {"prefixes": [str(700000 + next(w.counter))]})


def built(role: str, column: str) -> tuple[str, Build]:
    """Who signs, and the transaction, for a cell whose role writes the column: the first of
    its types (writes_column) in this order. A lot it names is one the signer holds where
    it can hold one (else the manufacturer's), so the cell, not the rule, decides."""
    name = WRITERS[role]
    holder = name if name in ("M", "D", "R", "P") else "M"
    types = [t for _, t in writes_column(role, column)]
    order = ["commission", "hold", "ship", "receive", "dispense", "certify", "rotate"]
    order.append("gs1-prefix")  # the manufacturer's identity, for every other role
    kind = next(t for t in order if t in types)
    if kind == "rotate":  # its own key: the participant kept for that
        return SELF[role], w_rotate(SELF[role])
    if kind == "ship":
        ref = {"order_ref": "PO-9"} if column == access.ORDERS else {}
        return name, w_ship(holder, NEXT[holder], **ref)
    if kind == "receive" and column == access.ORDERS:  # its own purchase order
        return name, w_receive(name, order_ref="PO-9")
    builds: dict[str, Build] = {
        "commission": w_commission,
        "hold": w_hold(holder),
        "receive": w_receive(name),
        "dispense": w_dispense(holder),
        "certify": w_release if role == "manufacturer" else w_gmp,
        "gs1-prefix": w_gs1_prefix,
    }
    return name, builds[kind]


# What the public signs for each column (any key the ledger does not know).
PUBLIC_TRY: dict[str, Build] = {
    access.PRODUCT: w_commission,
    access.QUALITY: w_hold("M"),
    access.M_TO_D: w_ship("M", "D"),
    access.D_TO_R: w_ship("D", "R"),
    access.R_TO_P: w_dispense("P"),
    access.ORDERS: w_ship("M", "D", order_ref="PO-X"),
    access.COMPLIANCE: w_gmp,
    access.MANUFACTURER_IDENTITY: w_rotate("M2"),
    access.ENTITIES_IDENTITY: w_rotate("D2"),
}

# Cells whose role has no transaction of the column, and the nearest real attempt with the
# refusal it gets: (build, status, reason). None: no attempt can even be signed (the
# regulator's only rotation is a lost-key rotation, which is compliance).
NEAREST: dict[tuple[str, str], tuple[Build, int, str] | None] = {
    ("manufacturer", access.D_TO_R): (w_ship("M", "R"), 409, "leg"),
    ("manufacturer", access.ENTITIES_IDENTITY): (w_rotate("D2"), 403, "access"),
    ("retailer", access.M_TO_D): (w_receive("D"), 409, "receiver"),
    ("pharmacy", access.M_TO_D): (w_receive("D"), 409, "receiver"),
    ("pharmacy", access.D_TO_R): (w_receive("R"), 409, "receiver"),
    ("operator_team", access.M_TO_D): (w_ship("M", "D"), 403, "access"),
    ("operator_team", access.D_TO_R): (w_receive("R"), 403, "access"),
    ("operator_team", access.ORDERS): (w_ship("M", "D", order_ref="PO-O"), 403, "access"),
    ("regulator", access.M_TO_D): (w_ship("M", "D"), 403, "access"),
    ("regulator", access.D_TO_R): (w_receive("R"), 403, "access"),
    ("regulator", access.ORDERS): (w_ship("M", "D", order_ref="PO-G"), 403, "access"),
    ("regulator", access.ENTITIES_IDENTITY): None,
}


def writes_column(role: str, column: str) -> list[tuple[str, str]]:
    """The catalog's transaction types by which `role` writes `column` (an order reference
    is written by `ship` for a role with an outbound leg and by `receive` for one with an
    inbound leg, each checking the signer's PO/invoices cell)."""
    found = [k for k in access.TX_COLUMNS if access.column_of(role, *k) == column]
    if column == access.ORDERS and role in access.OUTBOUND:
        found.append(("lots", "ship"))
    if column == access.ORDERS and role in access.INBOUND:
        found.append(("lots", "receive"))
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def writes(
    tmp_path_factory: pytest.TempPathFactory, engine: str | None
) -> AsyncIterator[Writes]:
    async with served(tmp_path_factory, "writes", engine) as cloud:
        world = Writes(cloud)
        await world.admit_all()
        yield world


async def log_and_root(w: Writes) -> tuple[int, Any]:
    size = await w.cloud.server.app[CONTRACTS].shared.store.log_size()
    return size, (await w.cloud.get("/v1/state"))[1]


async def refused(w: Writes, envelope: tx.SignedTx, status: int, reason: str) -> str:
    """Post `envelope`, require the refusal, and that the log and root did not move."""
    before = await log_and_root(w)
    got, problem = await post(w.cloud, envelope)
    assert (got, problem["reason"]) == (status, reason), problem
    assert await log_and_root(w) == before
    return str(problem["detail"])


def test_the_catalog_is_the_column_table() -> None:
    """Every transaction type the ledger runs has a column (access.TX_COLUMNS), so the
    cells without a transaction are found from the table."""
    types = {(c.name, t) for c in catalog.engine().contracts.values() for t in c.rules}
    assert types == set(access.TX_COLUMNS)


@ON_MODULE_LOOP
@pytest.mark.parametrize(("role", "column", "value"), cells("write"))
async def test_write_cell(writes: Writes, role: str, column: str, value: str) -> None:
    assert access.WRITE[role][column] == value  # the code's cell is the file's
    if role == "public":  # no key the ledger knows: stopped before any cell
        assert value == "no"
        envelope = await PUBLIC_TRY[column](writes, writes.keys["stranger"])
        detail = await refused(writes, envelope, 403, "participant")
        assert "not an admitted participant" in detail
        return
    if (role, column) in NEAREST:
        assert writes_column(role, column) == [], "a transaction exists: test it directly"
        nearest = NEAREST[role, column]
        if nearest is None:  # nothing to sign: the role's rotation is another column's
            assert access.column_of(role, "participants", "rotate") not in TARGET
            return
        build, status, reason = nearest
        who = writes.keys[WRITERS[role]]
        await refused(writes, await build(writes, who), status, reason)
        return
    assert writes_column(role, column), f"no transaction: add ({role}, {column}) to NEAREST"
    name, build = built(role, column)
    who = writes.keys[name]
    if value == "own_only":  # another's of the same kind: refused, naming the cell
        other = await w_rotate(TARGET[column])(writes, who)
        detail = await refused(writes, other, 403, "access")
        assert named(role, column, "write") in detail
    envelope = await build(writes, who)
    if value in ("yes", "own_only"):
        size, _ = await log_and_root(writes)
        answer = await applied(writes.cloud, envelope)
        _, head = await writes.cloud.get("/v1/state")
        assert await log_and_root(writes) == (size + 2, head)
        assert answer["index"] == size and answer["root_index"] == size + 1
        assert head["covers"] == answer["index"]
    elif value == "no":
        detail = await refused(writes, envelope, 403, "access")
        assert named(role, column, "write") in detail
    else:
        pytest.fail(f"no check for write value {value}")


def test_every_stakeholder_and_column_has_a_check() -> None:
    if MATRIX is None:
        pytest.skip(ABSENT)
    assert set(MATRIX["write"]) == set(WRITERS) == set(READER) == set(MATRIX["read"])
    for matrix in ("read", "write"):
        for row in MATRIX[matrix].values():
            assert set(row) == set(READ_CHECKS) == set(PUBLIC_TRY)


@ON_MODULE_LOOP
async def test_a_suspended_reader_is_refused(writes: Writes) -> None:
    """A token outlives its holder's suspension by up to 15 minutes: every read checks the
    holder is still active (403 participant), and reads again once reinstated."""
    late = party("writes/late")
    args = admission(late, "distributor", "late")
    await applied(writes.cloud, signed(REGULATOR, "participants", "admit", args))
    header = {"Authorization": f"Bearer {(await sign_in(writes.cloud, late))['token']}"}
    for tx_type in ("suspend", "reinstate"):
        change = {"did": late.did, "reason": "inspection"}
        await applied(writes.cloud, signed(REGULATOR, "participants", tx_type, change))
        for path in ("/v1/participants", f"/v1/lots/{GTIN}/W1", "/v1/certificates"):
            query = {"subject": late.did} if path == "/v1/certificates" else {}
            url = writes.cloud.url(path)
            async with writes.cloud.session.get(url, headers=header, params=query) as r:
                answer = await r.json(content_type=None)
                if tx_type == "suspend":
                    assert (r.status, answer["reason"]) == (403, "participant"), answer
                else:
                    assert r.status == 200, answer


@ON_MODULE_LOOP
async def test_a_rotated_key_is_not_tied_to_its_successor_for_the_public(writes: Writes) -> None:
    """The public reads a participant's status and certificates by either DID, but neither
    answer names the other DID (entities' identity: no); the manufacturer's identity column
    (yes) gives the current one."""
    old, new = party("writes/rot-old"), party("writes/rot-new")
    args = admission(old, "pharmacy", "rot")
    await applied(writes.cloud, signed(REGULATOR, "participants", "admit", args))
    rotation = {"did": old.did, "new_did": new.did}
    await applied(writes.cloud, signed(old, "participants", "rotate", rotation))
    await applied(writes.cloud, certify(REGULATOR, "C-ROT", "cold-storage", subject=new.did))
    for asked, other in ((old, new), (new, old)):
        _, one = await writes.cloud.get(f"/v1/participants/{asked.did}")
        assert one["did"] == asked.did and one["columns"] == {
            access.COMPLIANCE: {"status": "active"}
        }
        _, certificates = await writes.cloud.get("/v1/certificates", subject=asked.did)
        assert [c["id"] for c in certificates["certificates"]] == ["C-ROT"]
        assert other.did not in json.dumps(one) + json.dumps(certificates)
    token = (await sign_in(writes.cloud, writes.keys["M"]))["token"]
    url = writes.cloud.url(f"/v1/participants/{old.did}")
    async with writes.cloud.session.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
        seen = await r.json()
    assert seen["columns"][access.ENTITIES_IDENTITY]["did"] == new.did
