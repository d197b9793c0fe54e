"""Which lots a box is on (cloud/contracts/box_lots.py): open and later windows count, ended
ones do not, a lot on several legs of one box is named once with its widest window, and
only the lot's public facts and profile come out."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.contracts import box_lots
from tests.cloud.contracts.world import GTIN, PROFILE, World, party, supply_chain

BOX = party("box-1")
OTHER = party("box-2")
NOW = 1_800_000_000_000
STRICT = PROFILE | {"high_cc": 500}


@pytest.fixture
def world() -> World:
    chain = supply_chain()
    chain.commission("M", "L1", 100)
    chain.commission("M", "L2", 100, profile=STRICT)
    chain.state.boxes[BOX.xonly] = chain.parties["M"].xonly
    chain.state.boxes[OTHER.xonly] = chain.parties["M"].xonly
    return chain


def attach(world: World, lot: str, start: int, end: int | None, at: int, box: Any = BOX) -> None:
    args = {"box": box.xonly.hex(), "gtin": GTIN, "lot": lot, "start": start, "end": end}
    world.apply(world.sign("M", "lots", "attach", args, time_ms=at))


def test_a_box_is_on_the_lots_whose_windows_have_not_ended(world: World) -> None:
    assert box_lots.lots_of_box(world.state, BOX.xonly, NOW) == []
    attach(world, "L2", NOW, None, NOW)
    attach(world, "L1", NOW, NOW + 1000, NOW)
    got = box_lots.lots_of_box(world.state, BOX.xonly, NOW + 1000)  # end is inclusive
    assert [(x.lot, x.start, x.end, x.profile.to_signed()) for x in got] == [
        ("L1", NOW, NOW + 1000, PROFILE),
        ("L2", NOW, None, STRICT),
    ]
    assert [x.lot for x in box_lots.lots_of_box(world.state, BOX.xonly, NOW + 1001)] == ["L2"]
    assert got[0].to_json() == {
        "gtin": GTIN,
        "lot": "L1",
        "start": NOW,
        "end": NOW + 1000,
        "profile": PROFILE,
    }


def test_a_window_that_starts_later_is_listed_with_its_start(world: World) -> None:
    attach(world, "L1", NOW + 60_000, None, NOW)
    (got,) = box_lots.lots_of_box(world.state, BOX.xonly, NOW)
    assert (got.lot, got.start) == ("L1", NOW + 60_000)


def test_several_legs_of_one_lot_are_one_entry_with_the_widest_window(world: World) -> None:
    attach(world, "L1", NOW, NOW + 5000, NOW)  # M's storage
    m, d = world.parties["M"], world.parties["D"]
    ship = {"gtin": GTIN, "lot": "L1", "shipment": "S1", "quantity": 10, "receiver": d.did}
    world.apply(world.sign("M", "lots", "ship", ship, time_ms=NOW + 1000))
    leg = {"box": BOX.xonly.hex(), "shipment": "S1", "start": NOW + 2000, "end": None}
    world.apply(world.sign("M", "lots", "attach", leg, time_ms=NOW + 2000))
    (got,) = box_lots.lots_of_box(world.state, BOX.xonly, NOW + 3000)
    assert (got.lot, got.start, got.end) == ("L1", NOW, None)
    assert m.did not in str(got.to_json())  # no holder, leg or shipment in what it tells
    assert "S1" not in str(got.to_json())


def test_lots_of_boxes_leaves_out_boxes_on_no_lot(world: World) -> None:
    attach(world, "L1", NOW, None, NOW)
    got = box_lots.lots_of_boxes(world.state, [OTHER.xonly, BOX.xonly, BOX.xonly], NOW)
    assert list(got) == [BOX.xonly]
    assert [x.lot for x in got[BOX.xonly]] == ["L1"]
