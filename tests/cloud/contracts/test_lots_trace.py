"""The recall trace's index (cloud/contracts/lots_trace.py) and its read policy
(cloud/contracts/policy.py `trace_access`): the index fed change by change equals the one
built from the State's records and agrees with lots.trace's walk over the State; the
reader's legs filter holders and shipments; the regulator's figures name no one; the policy
decides each stakeholder's view from its matrix row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloud.contracts import access, lots, policy
from cloud.contracts.engine import Applied, ContractError, Forbidden
from cloud.contracts.lots_trace import LotIndex
from tests.cloud.contracts.world import GTIN, World, party, supply_chain

ALL_LEGS = frozenset(policy.LEGS)


RETAILER_LEGS = frozenset({access.D_TO_R, access.R_TO_P})


class Indexed(World):
    """A world whose every applied transaction also feeds a LotIndex, and which asks for
    the trace of B7 after each (as readers would), so the answers kept per lot must follow
    every change."""

    def __init__(self, world: World) -> None:
        self.__dict__.update(world.__dict__)
        self.index = LotIndex.of(world.state)

    def apply(self, signed: Any) -> Applied:
        applied = super().apply(signed)
        self.index.apply(applied)
        if self.index.knows(GTIN, "B7"):
            self.index.encoded(GTIN, "B7", ALL_LEGS)
            self.index.encoded(GTIN, "B7", RETAILER_LEGS)
        return applied


def ref(lot: str, **more: Any) -> dict[str, Any]:
    return {"gtin": GTIN, "lot": lot, **more}


def story() -> Indexed:
    """B7 (1000) made by M: 600 to D, 300 to D2; D splits into B7-1 (400) and B7-2 (200);
    B7-1 to R, who splits it into B7-1a (150, to P, who dispenses 10) and B7-1b (250: 100
    in transit to P2); 50 of B7-2 to R2 (region FR). Then D rotates its key."""
    world = Indexed(supply_chain())
    world.admit("R3", "retailer", region="FR")
    world.commission("M", "B7", 1000)
    world.ship("M", "B7", "MD-1", "D", 600)
    world.ship("M", "B7", "MD-2", "D2", 300)
    world.receive("D", "MD-1", 600)
    world.receive("D2", "MD-2", 300)
    kids = [{"lot": "B7-1", "quantity": 400}, {"lot": "B7-2", "quantity": 200}]
    world.lots("D", "split", ref("B7", children=kids))
    world.ship("D", "B7-1", "DR-1", "R", 400)
    world.receive("R", "DR-1", 400)
    kids = [{"lot": "B7-1a", "quantity": 150}, {"lot": "B7-1b", "quantity": 250}]
    world.lots("R", "split", ref("B7-1", children=kids))
    world.ship("R", "B7-1a", "RP-1", "P", 150)
    world.receive("P", "RP-1", 150)
    world.lots("P", "dispense", ref("B7-1a", quantity=10))
    world.ship("R", "B7-1b", "RP-2", "P2", 100)
    world.ship("D", "B7-2", "DR-2", "R3", 50)
    world.receive("R3", "DR-2", 50)
    new_d = party("D-new")
    world.do("D", "participants", "rotate", {"did": world.parties["D"].did, "new_did": new_d.did})
    world.parties["D"] = new_d
    return world


def same_as_rebuilt(world: Indexed) -> None:
    """Require the index fed change by change to answer as one built from the records."""
    rebuilt = LotIndex.of(world.state)
    for lot in lots.descendants(world.state, GTIN, "B7"):
        for legs in (ALL_LEGS, RETAILER_LEGS):
            assert world.index.visible(GTIN, lot, legs) == rebuilt.visible(GTIN, lot, legs)
            kept = world.index.encoded(GTIN, lot, legs)
            dumped = [json.dumps(each).encode() for each in rebuilt.visible(GTIN, lot, legs)]
            assert kept == dumped  # the kept JSON is not stale, and is json.dumps' own bytes
        assert world.index.figures(GTIN, lot) == rebuilt.figures(GTIN, lot)
        for name in world.parties:
            pid = world.parties[name].did
            want = lots.involved(world.state, GTIN, lot, pid)
            assert world.index.involved(GTIN, lot, pid) == want


def test_the_index_fed_change_by_change_equals_the_index_of_the_records() -> None:
    world = story()  # ends with a key rotation: holders' DIDs change, no lot does
    same_as_rebuilt(world)
    world.lots("M", "recall", ref("B7", reason="sterility", **{"class": "I"}))
    same_as_rebuilt(world)


def test_the_trace_agrees_with_the_walk_over_the_state() -> None:
    world = story()
    world.lots("M", "recall", ref("B7", reason="sterility", **{"class": "I"}))
    fast = world.index.visible(GTIN, "B7", ALL_LEGS)
    slow = lots.trace(world.state, GTIN, "B7")
    assert [t["lot"] for t in fast] == [t.lot for t in slow]
    for f, s in zip(fast, slow, strict=True):
        assert (f["parent"], f["status"], f["dispensed"]) == (s.parent, s.status, s.dispensed)
        assert (f["recall"] is not None) is s.recalled
        assert sorted((h["did"], h["role"], h["quantity"]) for h in f["holders"]) == sorted(
            (h.did, h.role, h.quantity) for h in s.holders
        )
        assert [
            (m["shipment"], m["sender"], m["receiver"], m["quantity"]) for m in f["in_transit"]
        ] == [(m.shipment, m.sender, m.receiver, m.quantity) for m in s.in_transit]
    names = {world.parties[n].did: n for n in world.parties}
    by_lot = {t["lot"]: t for t in fast}
    # D rotated its key: its holding shows under its new DID.
    holders = [(names[h["did"]], h["quantity"]) for h in by_lot["B7-2"]["holders"]]
    assert sorted(holders) == [("D", 150), ("R3", 50)]
    assert by_lot["B7-1a"]["dispensed"] == 10
    assert by_lot["B7-1b"]["in_transit"][0]["leg"] == access.R_TO_P
    assert by_lot["B7"]["recall"] == {"class": "I", "since": by_lot["B7"]["recall"]["since"]}


def test_each_lot_is_written_as_json_dumps_would_write_it() -> None:
    """The JSON written directly (LotIndex._encode) is json.dumps' bytes of the object,
    whatever the lot number holds (GS1 character set 82 has quotes), with shipments in
    transit, a dispense, a recall and no parent."""
    world = story()
    odd = 'Q"1%&<>/'
    world.commission("M", odd, 10)
    world.lots("M", "split", ref(odd, children=[{"lot": "Q'2", "quantity": 10}]))
    world.lots("M", "recall", ref("B7", reason="sterility", **{"class": "II"}))
    for lot, legs in [("B7", ALL_LEGS), ("B7", RETAILER_LEGS), (odd, ALL_LEGS)]:
        objects = world.index.visible(GTIN, lot, legs)
        assert world.index.encoded(GTIN, lot, legs) == [json.dumps(o).encode() for o in objects]
    assert json.loads(world.index.encoded(GTIN, odd, ALL_LEGS)[1])["parent"] == odd


def test_a_reader_sees_only_the_legs_it_reads() -> None:
    world = story()
    names = {world.parties[n].did: n for n in world.parties}
    seen = {t["lot"]: t for t in world.index.visible(GTIN, "B7", RETAILER_LEGS)}
    assert seen["B7"]["holders"] == []  # M and D2: units of M→D
    assert [names[h["did"]] for h in seen["B7-1b"]["holders"]] == ["R"]
    assert [names[m["receiver"]] for m in seen["B7-1b"]["in_transit"]] == ["P2"]
    assert seen["B7-1a"]["dispensed"] == 10
    pharmacy = {t["lot"]: t for t in world.index.visible(GTIN, "B7", frozenset({access.R_TO_P}))}
    assert pharmacy["B7-1b"]["holders"] == [] and pharmacy["B7-1a"]["holders"] != []
    mine = {t["lot"]: t for t in world.index.visible(GTIN, "B7", frozenset({access.M_TO_D}))}
    assert mine["B7-1a"]["dispensed"] is None  # dispenses are R→P


def test_the_global_figures_count_per_role_and_region_and_name_no_one() -> None:
    world = story()
    figures = world.index.figures(GTIN, "B7")
    assert figures["totals"] == {
        "lots": 5,
        "recalled": 0,
        "held": 100 + 300 + 150 + 150 + 140 + 50,
        "in_transit": 100,
        "dispensed": 10,
    }
    rows = {(r["role"], r["region"]): r for r in figures["by_role_region"]}
    assert rows[("distributor", "DE")] == {
        "role": "distributor",
        "region": "DE",
        "units": 300 + 150,
        "in_transit": 0,
        "holdings": 2,
        "holders": 2,
    }
    assert rows[("retailer", "FR")]["units"] == 50 and rows[("retailer", "FR")]["holders"] == 1
    assert rows[("pharmacy", "DE")]["in_transit"] == 100  # P2's, counted on its row
    text = repr(figures)
    assert "did:" not in text and "B7" not in text and "MD-1" not in text
    # Units are conserved: made = held + in transit + dispensed.
    assert sum(figures["totals"][k] for k in ("held", "in_transit", "dispensed")) == 1000


def test_the_global_figures_are_kept_until_the_index_changes() -> None:
    world = story()
    first = world.index.figures(GTIN, "B7")
    assert world.index.figures(GTIN, "B7") is first  # asked again: the kept answer
    before = first["totals"]["in_transit"]
    world.ship("R3", "B7-2", "RX-1", "P", 20)  # R3 holds 50 of B7-2
    again = world.index.figures(GTIN, "B7")
    assert again is not first and again["totals"]["in_transit"] == before + 20
    assert again == LotIndex.of(world.state).figures(GTIN, "B7")


def test_an_unknown_lot_raises() -> None:
    with pytest.raises(KeyError):
        LotIndex().visible(GTIN, "nope", ALL_LEGS)
    with pytest.raises(KeyError):
        LotIndex().figures(GTIN, "nope")
    assert not LotIndex().involved(GTIN, "nope", "did:key:z")


@pytest.mark.parametrize(
    ("role", "involved", "legs", "global_only"),
    [
        ("manufacturer", False, ALL_LEGS, False),  # compliance yes, every leg yes
        ("regulator", False, frozenset(), True),  # compliance yes, legs no: figures
        ("distributor", True, ALL_LEGS, False),  # restricted, involved
        ("retailer", True, frozenset({access.D_TO_R, access.R_TO_P}), False),
        ("pharmacy", True, frozenset({access.R_TO_P}), False),
    ],
)
def test_trace_access_grants(
    role: str, involved: bool, legs: frozenset[str], global_only: bool
) -> None:
    assert policy.trace_access(role, involved, Forbidden) == policy.TraceAccess(legs, global_only)


@pytest.mark.parametrize(
    ("role", "involved", "cell"),
    [
        ("distributor", False, "read: distributor × compliance = restricted"),
        ("retailer", False, "read: retailer × compliance = restricted"),
        ("pharmacy", False, "read: pharmacy × compliance = restricted"),
        ("operator_team", False, "read: operator team × compliance = restricted"),
        ("public", False, "read: public × compliance = restricted"),
    ],
)
def test_trace_access_refusals(role: str, involved: bool, cell: str) -> None:
    with pytest.raises(ContractError) as info:
        policy.trace_access(role, involved, Forbidden)
    assert (info.value.status, info.value.reason) == (403, "access")
    assert info.value.detail.startswith(cell), info.value.detail


class _Counting(dict[Any, Any]):
    """A dict that counts the lookups made through it and refuses to be scanned."""

    lookups = 0

    def __getitem__(self, key: Any) -> Any:
        self.lookups += 1
        return super().__getitem__(key)

    def _scan(self, *_: Any) -> Any:
        raise AssertionError("a trace scanned every lot")

    __iter__ = keys = values = items = _scan


def test_a_trace_looks_at_the_descendants_only() -> None:
    world = Indexed(supply_chain())
    world.commission("M", "A", 300)
    kids = [{"lot": f"A-{n}", "quantity": 1} for n in range(300)]
    world.lots("M", "split", ref("A", children=kids))  # 300 lots beside the traced ones
    world.commission("M", "B", 4)
    world.lots("M", "split", ref("B", children=[{"lot": "B-1", "quantity": 4}]))
    counting = _Counting(world.index._lots)
    world.index._lots = counting
    assert [t["lot"] for t in world.index.visible(GTIN, "B", ALL_LEGS)] == ["B", "B-1"]
    assert world.index.figures(GTIN, "B")["totals"]["lots"] == 2
    assert counting.lookups <= 8  # a few per traced lot, none for the 301 others
