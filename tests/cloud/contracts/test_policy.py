"""The read policy over a lot with boxes on it (cloud/contracts/policy.py lot_view, facts.py):
what HTTP cannot reach yet, since the ledger does not feed the registry's boxes to the
contracts' State (tests/cloud/api/test_access_matrix.py checks every cell through HTTP).
Quality status shows each box's window and calibration, never the shipment it rode with
or who attached it: those are the flows' and the entities' columns."""

from __future__ import annotations

import json

from cloud.contracts import access, facts, policy
from cloud.contracts.facts_index import FactIndex
from tests.cloud.contracts.world import GTIN, World, party, supply_chain

BOX = party("policy/box")
NOW = 1_800_000_000_000


def boxed() -> World:
    """M ships 40 of L1 to D as S-BOXED with a box on the shipment, calibrated."""
    world = supply_chain()
    world.commission("M", "L1", 100)
    world.state.boxes[BOX.xonly] = world.parties["M"].xonly  # owner key: M's own
    world.ship("M", "L1", "S-BOXED", "D", 40)
    box = BOX.xonly.hex()
    attach = {"box": box, "shipment": "S-BOXED", "start": NOW, "end": None}
    calibrate = {"box": box, "offset": -15, "date": NOW, "due": NOW + 1500}
    for tx_type, args in (("attach", attach), ("calibrate", calibrate)):
        world.apply(world.sign("M", "lots", tx_type, args, time_ms=NOW))
    return world


def test_quality_shows_boxes_without_their_shipment_or_holder() -> None:
    world = boxed()
    found = facts.lot_facts(world.state, FactIndex.of(world.state.records), GTIN, "L1")
    assert found is not None
    assert access.READ["regulator"][access.QUALITY] == "yes"
    assert access.READ["regulator"][access.M_TO_D] == "no"
    columns, withheld, custody = policy.lot_view("regulator", False, found)
    assert columns[access.QUALITY]["boxes"] == [
        {
            "box": BOX.xonly.hex(),
            "start": NOW,
            "end": None,
            "calibration": {"offset_cc": -15, "date": NOW, "due": NOW + 1500},
        }
    ]
    text = json.dumps(columns)
    assert "S-BOXED" not in text and world.parties["D"].did not in text
    assert withheld[access.M_TO_D] == "read: regulator × M→D = no" and custody is None
    columns, _, custody = policy.lot_view("manufacturer", True, found)
    (shipment,) = columns[access.M_TO_D]["shipments"]
    assert (shipment["shipment"], shipment["quantity"]) == ("S-BOXED", 40)
    assert custody is not None and custody["in_transit"] == ["S-BOXED"]


def test_a_lot_never_commissioned_has_no_facts() -> None:
    world = supply_chain()
    assert facts.lot_facts(world.state, FactIndex.of(world.state.records), GTIN, "NONE") is None
