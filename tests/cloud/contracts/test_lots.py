"""The lots contract (cloud/contracts/lots.py): every rule and every refusal with the rule
it names, a full M→D→R→P story with a split and a recall, the trace, and what the state
tree shows of a lot (public status provable, holdings only as salted hashes)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloud.contracts import engine, lots, participants
from cloud.contracts.statetree_proof import verify_proof
from device import schnorr
from tests.cloud.contracts.world import GTIN, PROFILE, World, party, supply_chain


def held(world: World, lot: str, who: str) -> int:
    pid = participants.identify(world.state, world.parties[who].did).id
    record = world.state.get(lots.HOLDING, GTIN, lot, pid)
    return 0 if record is None else int(record["quantity"])


def ref(lot: str, **more: Any) -> dict[str, Any]:
    return {"gtin": GTIN, "lot": lot, **more}


@pytest.fixture
def world() -> World:
    chain = supply_chain()
    chain.commission("M", "L1", 100)
    return chain


def refused(world: World, who: str, tx_type: str, args: dict[str, Any]) -> tuple[int, str]:
    error = world.refused(who, "lots", tx_type, args)
    return error.status, error.reason


# -- commission


def test_commission_writes_public_identity_and_status_private_custody(world: World) -> None:
    m = world.parties["M"].did
    assert world.state.get(lots.LOT, GTIN, "L1") == {
        "gtin": GTIN,
        "lot": "L1",
        "expiry": "2027-12-31",
        "unit": "pack",
        "profile": PROFILE,
        "manufacturer": m,
        "since": world.log[-1][0].body.time,
    }
    quality = world.state.get(lots.QUALITY, GTIN, "L1")
    assert quality is not None and quality["status"] == "released"
    assert quality["source"] == quality["reason"] == "commission"
    assert held(world, "L1", "M") == 100
    assert world.state.record(lots.LOT, GTIN, "L1").salt is None  # type: ignore[union-attr]
    assert world.state.record(lots.HOLDING, GTIN, "L1", m).salt is not None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gtin": GTIN[:13] + "0"}, "args.gtin"),
        ({"lot": "L 1"}, "args.lot"),
        ({"expiry": "271301"}, "args.expiry"),
        ({"quantity": 0}, "args.quantity"),
        ({"quantity": -5}, "args.quantity"),
        ({"quantity": True}, "args.quantity"),
        ({"unit": ""}, "args.unit"),
        ({"profile": {**PROFILE, "high_cc": 100}}, "args.profile"),
    ],
)
def test_commission_refuses_malformed_fields(
    world: World, change: dict[str, Any], field: str
) -> None:
    args = {"gtin": GTIN, "lot": "L9", "expiry": "271200", "quantity": 1, "unit": "pack"}
    assert refused(world, "M", "commission", {**args, "profile": PROFILE, **change}) == (400, field)


def test_commission_refusals(world: World) -> None:
    args = {"gtin": GTIN, "lot": "L1", "expiry": "271200", "quantity": 5, "unit": "pack"}
    args["profile"] = PROFILE
    assert refused(world, "M", "commission", args) == (409, "commissioned")
    assert refused(world, "M2", "commission", args) == (409, "commissioned")
    error = world.refused("D", "lots", "commission", {**args, "lot": "L2"})
    assert (error.status, error.reason) == (403, "access")
    assert error.detail == "write: distributor × product = no"
    error = world.refused("regulator", "lots", "commission", {**args, "lot": "L2"})
    assert error.detail == "write: regulator × product = no"
    assert refused(world, "M", "commission", {**args, "lot": "L2", "extra": 1}) == (400, "args")


# -- ship and receive


def test_ship_and_receive(world: World) -> None:
    applied = world.ship("M", "L1", "S1", "D", 30)
    assert [n.event["type"] for n in applied.notifications] == ["shipment"]
    assert applied.notifications[0].did == world.parties["D"].did
    assert held(world, "L1", "M") == 70 and held(world, "L1", "D") == 0
    shipment = world.state.get(lots.SHIPMENT, "S1")
    assert shipment is not None
    assert (shipment["status"], shipment["leg"], shipment["quantity"]) == (
        "in_transit",
        "flow_m_to_d",
        30,
    )
    applied = world.receive("D", "S1", 30)
    assert applied.notifications == ()
    assert held(world, "L1", "D") == 30
    assert world.state.get(lots.SHIPMENT, "S1")["status"] == "received"  # type: ignore[index]
    custody = world.state.get(lots.CUSTODY, GTIN, "L1")
    assert custody is not None and custody["in_transit"] == []
    assert custody["involved"] == sorted([world.parties["M"].did, world.parties["D"].did])


def test_a_short_count_is_disputed_and_the_sender_told(world: World) -> None:
    world.ship("M", "L1", "S1", "D", 30)
    applied = world.receive("D", "S1", 28)
    assert [(n.did, n.event) for n in applied.notifications] == [
        (
            world.parties["M"].did,
            {"type": "disputed", "shipment": "S1", "shipped": 30, "counted": 28},
        )
    ]
    assert world.state.get(lots.SHIPMENT, "S1")["status"] == "disputed"  # type: ignore[index]
    assert held(world, "L1", "D") == 28


def test_an_over_count_is_disputed_and_creates_no_units(world: World) -> None:
    world.ship("M", "L1", "S1", "D", 30)
    world.receive("D", "S1", 35)
    assert world.state.get(lots.SHIPMENT, "S1")["counted"] == 35  # type: ignore[index]
    assert held(world, "L1", "D") == 30


def test_ship_refusals(world: World) -> None:
    def ship(
        who: str = "M", lot: str = "L1", shipment: str = "S", to: str = "D", n: int = 1
    ) -> tuple[int, str]:
        receiver = world.parties[to].did if to in world.parties else party(to).did
        return refused(
            world, who, "ship", ref(lot, shipment=shipment, receiver=receiver, quantity=n)
        )

    assert ship(lot="L9") == (409, "lot")
    assert ship(n=101) == (409, "quantity")
    assert ship(n=0) == (400, "args.quantity")
    assert ship(who="M2") == (409, "holder")
    assert ship(who="M2", n=0) == (400, "args.quantity")  # arguments before state
    assert ship(to="R") == (409, "leg")
    assert ship(to="stranger") == (409, "receiver")
    assert ship(shipment="S S") == (400, "args.shipment")
    world.ship("M", "L1", "S1", "D", 10)
    assert ship(shipment="S1") == (409, "shipment exists")
    world.do(
        "regulator", "participants", "suspend", {"did": world.parties["D"].did, "reason": "audit"}
    )
    assert ship(shipment="S2") == (409, "receiver")


def test_a_pharmacy_ships_on_no_leg(world: World) -> None:
    error = world.refused(
        "P", "lots", "ship", ref("L1", shipment="S", receiver=world.parties["P2"].did, quantity=1)
    )
    assert (error.status, error.reason) == (403, "access")
    assert "write: pharmacy × lots ship: no column" in error.detail


def test_an_order_reference_needs_the_po_cell(world: World) -> None:
    args = ref("L1", shipment="S1", receiver=world.parties["D"].did, quantity=5, order_ref="PO-1")
    world.lots("M", "ship", args)
    assert world.state.get(lots.SHIPMENT, "S1")["order_ref"] == "PO-1"  # type: ignore[index]
    bad = {**args, "shipment": "S2", "order_ref": "PO 1"}
    assert refused(world, "M", "ship", bad) == (400, "args.order_ref")


def test_a_profile_that_needs_a_licence_is_not_shipped_to_an_unlicensed_receiver(
    world: World,
) -> None:
    world.commission("M", "COLD", 10, profile={**PROFILE, "needs_licence": 1})
    args = ref("COLD", shipment="S", receiver=world.parties["D"].did, quantity=1)
    assert refused(world, "M", "ship", args) == (409, "licence")


def test_receive_refusals(world: World) -> None:
    world.ship("M", "L1", "S1", "D", 10)
    assert refused(world, "D", "receive", {"shipment": "S9", "quantity": 10}) == (409, "shipment")
    assert refused(world, "D2", "receive", {"shipment": "S1", "quantity": 10}) == (409, "receiver")
    assert refused(world, "D", "receive", {"shipment": "S1", "quantity": -1}) == (
        400,
        "args.quantity",
    )
    error = world.refused("M", "lots", "receive", {"shipment": "S1", "quantity": 10})
    assert (error.status, error.reason) == (403, "access")  # no leg arrives at a manufacturer
    world.receive("D", "S1", 10)
    assert refused(world, "D", "receive", {"shipment": "S1", "quantity": 10}) == (409, "received")


# -- split


def test_split_makes_child_lots_of_the_same_product(world: World) -> None:
    world.ship("M", "L1", "S1", "D", 60)
    world.receive("D", "S1", 60)
    children = [{"lot": "L1-A", "quantity": 25}, {"lot": "L1-B", "quantity": 35}]
    world.lots("D", "split", ref("L1", children=children))
    assert held(world, "L1", "D") == 0 and held(world, "L1", "M") == 40
    assert held(world, "L1-A", "D") == 25 and held(world, "L1-B", "D") == 35
    parent = world.state.get(lots.LOT, GTIN, "L1")
    child = world.state.get(lots.LOT, GTIN, "L1-A")
    assert parent is not None and child is not None
    assert {k: v for k, v in child.items() if k not in ("lot", "since")} == {
        k: v for k, v in parent.items() if k not in ("lot", "since")
    }
    assert world.state.get(lots.CUSTODY, GTIN, "L1")["children"] == ["L1-A", "L1-B"]  # type: ignore[index]
    assert world.state.get(lots.CUSTODY, GTIN, "L1-B")["parent"] == "L1"  # type: ignore[index]
    assert world.state.get(lots.QUALITY, GTIN, "L1-A")["source"] == "split"  # type: ignore[index]


def test_split_refusals(world: World) -> None:
    def split(who: str, *children: tuple[str, int]) -> tuple[int, str]:
        kids = [{"lot": lot, "quantity": q} for lot, q in children]
        return refused(world, who, "split", ref("L1", children=kids))

    assert split("M", ("A", 50), ("B", 49)) == (409, "quantity")
    assert split("M", ("A", 50), ("B", 51)) == (409, "quantity")
    assert split("M2", ("A", 100)) == (409, "holder")
    assert split("M", ("L1", 100)) == (409, "commissioned")
    assert split("M", ("A", 50), ("A", 50)) == (400, "args.children")
    assert split("M", ("A B", 100)) == (400, "args.children[0].lot")
    assert split("M", ("A", 0), ("B", 100)) == (400, "args.children[0].quantity")
    assert split("M") == (400, "args.children")
    assert refused(world, "M", "split", ref("L1", children=[{"lot": "A"}])) == (
        400,
        "args.children[0]",
    )
    error = world.refused("O", "lots", "split", ref("L1", children=[{"lot": "A", "quantity": 1}]))
    assert error.detail == "write: operator team × product = no"


# -- dispense


def to_pharmacy(world: World, quantity: int = 20, lot: str = "L1") -> None:
    world.ship("M", lot, f"{lot}-MD", "D", quantity)
    world.receive("D", f"{lot}-MD", quantity)
    world.ship("D", lot, f"{lot}-DR", "R", quantity)
    world.receive("R", f"{lot}-DR", quantity)
    world.ship("R", lot, f"{lot}-RP", "P", quantity)
    world.receive("P", f"{lot}-RP", quantity)


def test_dispense(world: World) -> None:
    to_pharmacy(world)
    world.lots("P", "dispense", ref("L1", quantity=3))
    assert held(world, "L1", "P") == 17
    assert world.state.get(lots.CUSTODY, GTIN, "L1")["dispensed"] == 3  # type: ignore[index]
    assert refused(world, "P", "dispense", ref("L1", quantity=18)) == (409, "quantity")
    assert refused(world, "P2", "dispense", ref("L1", quantity=1)) == (409, "holder")
    error = world.refused("R", "lots", "dispense", ref("L1", quantity=1))
    assert (error.status, error.reason) == (403, "role")  # the R→P cell is the retailer's too
    error = world.refused("D", "lots", "dispense", ref("L1", quantity=1))
    assert (error.status, error.detail) == (403, "write: distributor × R→P = no")


def test_dispensing_an_expired_lot_is_refused(world: World) -> None:
    world.commission("M", "OLD", 5, expiry="261100")  # 2026-11-30, before T0
    to_pharmacy(world, 5, "OLD")
    assert refused(world, "P", "dispense", ref("OLD", quantity=1)) == (409, "expired")
    # On its expiry day a lot is still in date.
    world.commission("M", "EDGE", 5, expiry="261201")
    to_pharmacy(world, 5, "EDGE")
    world.lots("P", "dispense", ref("EDGE", quantity=1))


# -- hold, dispose


def test_hold_quarantines_and_dispose_releases_or_rejects(world: World) -> None:
    world.ship("M", "L1", "S1", "D", 50)
    world.receive("D", "S1", 50)
    applied = world.lots("D", "hold", ref("L1", kind="damage", reason="crushed pallet"))
    assert [(n.did, n.event["type"]) for n in applied.notifications] == [
        (world.parties["M"].did, "damage")
    ]
    quality = world.state.get(lots.QUALITY, GTIN, "L1")
    assert quality is not None
    assert (quality["status"], quality["source"], quality["reason"]) == (
        "quarantined",
        "damage",
        "crushed pallet",
    )
    r = world.parties["R"].did
    assert refused(world, "D", "ship", ref("L1", shipment="S2", receiver=r, quantity=1)) == (
        409,
        "quarantined",
    )
    assert refused(world, "D", "hold", ref("L1", kind="hold", reason="again")) == (
        409,
        "quarantined",
    )
    assert refused(world, "M2", "dispose", ref("L1", outcome="released", reason="x")) == (
        403,
        "role",
    )
    applied = world.lots("M", "dispose", ref("L1", outcome="released", reason="inspected"))
    assert sorted(n.did for n in applied.notifications) == sorted(
        [world.parties["M"].did, world.parties["D"].did]
    )
    assert world.state.get(lots.QUALITY, GTIN, "L1")["status"] == "released"  # type: ignore[index]
    assert refused(world, "M", "dispose", ref("L1", outcome="released", reason="x")) == (
        409,
        "not quarantined",
    )
    world.lots("D", "hold", ref("L1", kind="hold", reason="temperature doubt"))
    world.do("regulator", "lots", "dispose", ref("L1", outcome="rejected", reason="excursion"))
    assert refused(world, "D", "hold", ref("L1", kind="hold", reason="x")) == (409, "rejected")
    assert refused(world, "D", "ship", ref("L1", shipment="S3", receiver=r, quantity=1)) == (
        409,
        "rejected",
    )


def test_hold_refusals(world: World) -> None:
    assert refused(world, "D", "hold", ref("L1", kind="hold", reason="x")) == (409, "holder")
    assert refused(world, "M", "hold", ref("L1", kind="theft", reason="x")) == (400, "args.kind")
    to_pharmacy(world, 5)
    error = world.refused("P", "lots", "hold", ref("L1", kind="hold", reason="x"))
    assert (error.status, error.detail) == (403, "write: pharmacy × quality status = no")


# -- recall and the full story


def test_recall_refusals(world: World) -> None:
    args = ref("L1", reason="contamination", **{"class": "I"})
    assert refused(world, "M2", "recall", args) == (403, "role")
    assert refused(world, "D", "recall", args) == (403, "role")
    assert refused(world, "P", "recall", args) == (403, "access")
    assert refused(world, "M", "recall", {**args, "class": "IV"}) == (400, "args.class")
    world.lots("M", "recall", args)
    assert refused(world, "M", "recall", args) == (409, "recalled")
    assert refused(world, "regulator", "recall", args) == (409, "recalled")


def test_the_full_story_m_d_r_p_with_a_split_and_a_recall() -> None:
    world = supply_chain()
    names = {world.parties[n].did: n for n in world.parties}
    world.commission("M", "B7", 1000)
    world.ship("M", "B7", "MD-1", "D", 600)
    world.ship("M", "B7", "MD-2", "D2", 300)
    world.receive("D", "MD-1", 600)
    world.receive("D2", "MD-2", 300)
    world.lots(
        "D",
        "split",
        ref("B7", children=[{"lot": "B7-1", "quantity": 400}, {"lot": "B7-2", "quantity": 200}]),
    )
    world.ship("D", "B7-1", "DR-1", "R", 400)
    world.receive("R", "DR-1", 400)
    world.lots(
        "R",
        "split",
        ref(
            "B7-1", children=[{"lot": "B7-1a", "quantity": 150}, {"lot": "B7-1b", "quantity": 250}]
        ),
    )
    world.ship("R", "B7-1a", "RP-1", "P", 150)
    world.receive("P", "RP-1", 150)
    world.lots("P", "dispense", ref("B7-1a", quantity=10))
    world.ship("R", "B7-1b", "RP-2", "P2", 100)  # still in transit when the recall comes
    world.ship("D", "B7-2", "DR-2", "R2", 50)
    world.receive("R2", "DR-2", 50)

    applied = world.lots("M", "recall", ref("B7", reason="sterility", **{"class": "I"}))
    recalled = ["B7", "B7-1", "B7-2", "B7-1a", "B7-1b"]
    for lot in recalled:
        record = world.state.get(lots.RECALL, GTIN, lot)
        assert record is not None and record["class"] == "I" and record["by"] == "manufacturer"
    told = sorted(names[n.did] for n in applied.notifications)
    # Holders: M (100 of B7), D2 (300 of B7), D (150 of B7-2), R (150 of B7-1b), P (140 of
    # B7-1a), R2 (50 of B7-2); P2 has 100 of B7-1b in transit.
    assert told == ["D", "D2", "M", "P", "P2", "R", "R2"]
    event = applied.notifications[0].event
    assert event["lots"] == recalled and event["class"] == "I"

    # A recalled lot cannot be shipped, received, split or dispensed.
    p2 = world.parties["P2"].did
    assert refused(world, "R", "ship", ref("B7-1b", shipment="X", receiver=p2, quantity=1)) == (
        409,
        "recalled",
    )
    assert refused(world, "P2", "receive", {"shipment": "RP-2", "quantity": 100}) == (
        409,
        "recalled",
    )
    assert refused(world, "D2", "split", ref("B7", children=[{"lot": "Z", "quantity": 300}])) == (
        409,
        "recalled",
    )
    assert refused(world, "P", "dispense", ref("B7-1a", quantity=1)) == (409, "recalled")

    traced = {t.lot: t for t in lots.trace(world.state, GTIN, "B7")}
    assert list(traced) == recalled
    assert {(names[h.did], h.quantity) for h in traced["B7"].holders} == {("M", 100), ("D2", 300)}
    assert traced["B7-1"].holders == () and traced["B7-1"].parent == "B7"
    assert [(names[h.did], h.role, h.quantity) for h in traced["B7-1a"].holders] == [
        ("P", "pharmacy", 140)
    ]
    assert traced["B7-1a"].dispensed == 10
    assert [(t.shipment, names[t.receiver], t.quantity) for t in traced["B7-1b"].in_transit] == [
        ("RP-2", "P2", 100)
    ]
    assert all(t.recalled for t in traced.values())
    # Units are conserved: made = held + in transit + dispensed.
    total = sum(h.quantity for t in traced.values() for h in t.holders)
    total += sum(s.quantity for t in traced.values() for s in t.in_transit)
    assert total + sum(t.dispensed for t in traced.values()) == 1000
    # A trace from a child covers its own descendants only.
    assert [t.lot for t in lots.trace(world.state, GTIN, "B7-1")] == ["B7-1", "B7-1a", "B7-1b"]
    with pytest.raises(KeyError):
        lots.trace(world.state, GTIN, "nope")

    # "If involved": in the custody chain of the lot, an ancestor or a descendant.
    ids = {n: world.parties[n].did for n in ("M", "D", "D2", "R", "R2", "P", "P2", "M2")}
    assert lots.ancestors(world.state, GTIN, "B7-1a") == ["B7-1", "B7"]
    chain_of_b7_1a = {n for n, i in ids.items() if lots.involved(world.state, GTIN, "B7-1a", i)}
    # B7's holders (M, D, D2) count for its descendant; R2, which took the sibling B7-2, not.
    assert chain_of_b7_1a == {"M", "D", "D2", "R", "P"}
    chain_of_b7_2 = {n for n, i in ids.items() if lots.involved(world.state, GTIN, "B7-2", i)}
    assert chain_of_b7_2 == {"M", "D", "D2", "R2"}  # P2's shipment is not received: not yet
    assert not lots.involved(world.state, GTIN, "nope", ids["M"])

    # Live equals replay, root by root.
    assert engine.replay(world.engine, world.log, world.state.regulators) == world.roots


def test_a_recall_keeps_a_descendants_earlier_recall(world: World) -> None:
    world.lots(
        "M",
        "split",
        ref("L1", children=[{"lot": "A", "quantity": 60}, {"lot": "B", "quantity": 40}]),
    )
    world.do("regulator", "lots", "recall", ref("A", reason="label", **{"class": "III"}))
    world.lots("M", "recall", ref("L1", reason="potency", **{"class": "II"}))
    assert world.state.get(lots.RECALL, GTIN, "A")["class"] == "III"  # type: ignore[index]
    assert world.state.get(lots.RECALL, GTIN, "B")["class"] == "II"  # type: ignore[index]


# -- the state tree


def test_public_status_is_provable_and_holdings_are_salted_hashes(world: World) -> None:
    world.ship("M", "L1", "S1", "D", 30)
    world.receive("D", "S1", 30)
    state = world.state
    root = state.root
    for rtype in (lots.LOT, lots.QUALITY):
        record = state.record(rtype, GTIN, "L1")
        assert record is not None and record.salt is None
        key = rtype.key(GTIN, "L1")
        assert state.tree.get(key) == record.canonical
        verify_proof(root, key, record.canonical, state.tree.prove(key))
        assert json.loads(record.canonical)  # readable public fields
    # Not recalled: the proof shows the recall record absent.
    verify_proof(
        root, lots.RECALL.key(GTIN, "L1"), None, state.tree.prove(lots.RECALL.key(GTIN, "L1"))
    )

    d = world.parties["D"].did
    holding = state.record(lots.HOLDING, GTIN, "L1", d)
    assert holding is not None and holding.salt is not None
    leaf = state.tree.get(holding.key)
    assert leaf is not None and len(leaf) == 32
    assert b"30" not in leaf and leaf != holding.canonical
    # The leaf is the salted hash of docs/contracts.md §2, salt derived from the tx's salt.
    tx_salt = world.log[-1][1]
    salt = schnorr.tagged_hash(b"PharmaSync/state/salt/v1", tx_salt + holding.key)
    assert holding.salt == salt
    assert leaf == schnorr.tagged_hash(b"PharmaSync/state/private/v1", salt + b'{"quantity":30}')
    verify_proof(root, holding.key, leaf, state.tree.prove(holding.key))
    # Every private record in the tree is 32 bytes that are not its canonical bytes.
    for record in state.records.values():
        if record.type.private:
            assert state.tree.get(record.key) == record.leaf != record.canonical
