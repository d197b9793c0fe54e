"""Notification feeds (cloud/contracts/feeds.py): the engine's notifications kept per
participant in log order — a recall reaches every holder of a descendant lot once, and no
one else; a rotated participant keeps its feed; the cursor pages without gaps or repeats;
replaying the same transactions derives the same feeds."""

from __future__ import annotations

from typing import Any

from cloud.contracts.engine import Applied
from cloud.contracts.feeds import Feeds, owner_of
from tests.cloud.contracts.test_lots_trace import ref, story
from tests.cloud.contracts.world import REGULATOR, World, party, supply_chain


def feeds_of(applied: list[Applied], world: World) -> Feeds:
    feeds = Feeds()
    for index, each in enumerate(applied):
        feeds.add(world.state, index, each)
    return feeds


class Logged:
    """Every Applied of a world, in order (wraps its apply)."""

    def __init__(self, world: World) -> None:
        self.applied: list[Applied] = []
        apply = world.apply

        def logged(signed: Any) -> Applied:
            self.applied.append(apply(signed))
            return self.applied[-1]

        world.apply = logged  # type: ignore[method-assign]


def test_a_recall_reaches_each_holder_of_a_descendant_once_and_no_one_else() -> None:
    world = story()
    logged = Logged(world)
    world.lots("M", "recall", ref("B7", reason="sterility", **{"class": "I"}))
    feeds = feeds_of(logged.applied, world)
    told = {}
    for name, key in world.parties.items():
        events = feeds.page(owner_of(world.state, key.did), 0, 100)
        told[name] = [e.event["type"] for e in events]
    for name in ("M", "D", "D2", "R", "R3", "P", "P2"):  # P2: B7-1b in transit to it
        assert told[name] == ["recall"], name
    for name in ("M2", "R2", "O", "regulator"):
        assert told[name] == [], name


def test_shipments_quarantines_and_a_rotated_key_keep_one_feed() -> None:
    world = supply_chain()
    logged = Logged(world)
    world.commission("M", "L1", 10)
    world.ship("M", "L1", "S1", "D", 4)
    world.receive("D", "S1", 3)  # disputed: M is told
    world.lots("D", "hold", ref("L1", kind="damage", reason="crushed"))  # M is told
    old, new = world.parties["D"], party("D-new")
    world.do("D", "participants", "rotate", {"did": old.did, "new_did": new.did})
    world.parties["D"] = new
    world.commission("M", "L2", 10)
    world.ship("M", "L2", "S2", "D", 5)  # to D's new DID
    feeds = feeds_of(logged.applied, world)
    d = owner_of(world.state, new.did)
    assert d == owner_of(world.state, old.did) == old.did  # the id: the DID first admitted
    events = feeds.page(d, 0, 10)
    assert [(e.event["type"], e.event.get("shipment")) for e in events] == [
        ("shipment", "S1"),
        ("rotated", None),
        ("shipment", "S2"),
    ], events
    m = owner_of(world.state, world.parties["M"].did)
    events = feeds.page(m, 0, 10)
    assert [e.event["type"] for e in events] == ["disputed", "damage"]
    assert [e.id for e in events] == [1, 2] and feeds.last(m) == 2
    assert events[0].index < events[1].index and events[0].tx != events[1].tx
    assert events[0].to_json()["event"] == {
        "type": "disputed",
        "shipment": "S1",
        "shipped": 4,
        "counted": 3,
    }
    assert owner_of(world.state, REGULATOR.did) == REGULATOR.did  # not a participant


def test_the_cursor_pages_without_gaps_and_replay_derives_the_same_feeds() -> None:
    world = supply_chain()
    logged = Logged(world)
    world.commission("M", "L1", 100)
    for n in range(7):
        world.ship("M", "L1", f"S{n}", "D", 1)
    feeds = feeds_of(logged.applied, world)
    d = owner_of(world.state, world.parties["D"].did)
    seen, after = [], 0
    while page := feeds.page(d, after, 3):
        seen += [e.event["shipment"] for e in page]
        after = page[-1].id
    assert seen == [f"S{n}" for n in range(7)]
    assert feeds.page(d, 7, 3) == [] and feeds.page(d, 100, 3) == []
    again = feeds_of(logged.applied, world)
    assert again.page(d, 0, 100) == feeds.page(d, 0, 100)
