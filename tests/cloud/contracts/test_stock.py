"""Stock and shortage (cloud/contracts/stock.py, lots_stock.py): the figures per role and
class, the index fed change by change equal to one built from the records, the regulator's
minimum and its edge-triggered shortage alert, the same alerts on replay, and who may set a
minimum (docs/contracts.md §5, "Stock and shortage (as built)")."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cloud.contracts import catalog, feeds, lots, lots_stock, participants, policy
from cloud.contracts.engine import (
    Applied,
    ContractError,
    Forbidden,
    Notification,
    Record,
    State,
)
from cloud.contracts.stock import (
    CLASSES,
    HOLDER_ROLES,
    StockIndex,
    days_of_cover,
    regulator_dids,
)
from gateway.jcs import canonicalize
from tests.cloud.contracts.test_facts_index import GTIN2, Indexed, apply_drawn, boxed_chain
from tests.cloud.contracts.world import GTIN, REGULATOR, T0, World, supply_chain

DAY_MS = 86_400_000


class Fed:
    """A world whose every applied transaction also feeds a StockIndex; the alerts kept."""

    def __init__(self) -> None:
        self.world = supply_chain()
        self.index = StockIndex.of(self.world.state)  # the admissions
        self.alerts: list[Notification] = []

    def take(self, applied: Applied) -> list[Notification]:
        """Feed one change; check the index equals one built from the records; return
        its alerts."""
        alerts = self.index.apply(applied, self.world.state.regulators)
        self.alerts.extend(alerts)
        assert self.index.snapshot() == StockIndex.of(self.world.state).snapshot()
        return alerts

    def lots(self, who: str, tx_type: str, args: dict[str, Any]) -> list[Notification]:
        return self.take(self.world.lots(who, tx_type, args))

    def minimum(self, units: int) -> list[Notification]:
        args = {"gtin": GTIN, "minimum": units}
        return self.take(self.world.do("regulator", "lots", "stock-minimum", args))


def moved(fed: Fed) -> None:
    """L1 of 100 units: 60 to D, 40 of them on to R, 30 of those on to P (all received)."""
    w = fed.world
    fed.take(w.commission("M", "L1", 100))
    fed.take(w.ship("M", "L1", "S1", "D", 60))
    fed.take(w.receive("D", "S1", 60))
    fed.take(w.ship("D", "L1", "S2", "R", 40))
    fed.take(w.receive("R", "S2", 40))
    fed.take(w.ship("R", "L1", "S3", "P", 30))


def test_figures_per_role_class_and_days_of_cover() -> None:
    fed = Fed()
    moved(fed)
    now = T0 + DAY_MS
    f = fed.index.figures(GTIN, now)
    on_hand = {role: v["released"] for role, v in f["on_hand"].items()}
    assert on_hand == {"manufacturer": 40, "distributor": 20, "retailer": 10, "pharmacy": 0}
    assert f["in_transit"] == {"released": 30, "quarantined": 0, "rejected": 0, "recalled": 0}
    assert f["stock"] == 100 and f["dispensed_30d"] == 0 and f["days_of_cover"] is None
    fed.take(fed.world.receive("P", "S3", 28))  # counted short: 2 units leave the chain
    fed.lots("P", "dispense", {"gtin": GTIN, "lot": "L1", "quantity": 10})
    f = fed.index.figures(GTIN, now)
    assert f["stock"] == 88 and f["on_hand"]["pharmacy"]["released"] == 18
    assert f["dispensed"] == 10 and f["dispensed_30d"] == 10
    assert f["days_of_cover"] == days_of_cover(88, 10) == 264.0
    # the window is the 30 days up to the read's own time
    assert fed.index.figures(GTIN, T0 + 31 * DAY_MS)["dispensed_30d"] == 0
    assert fed.index.figures(GTIN, T0 - 1)["dispensed_30d"] == 0
    # the pharmacy's own: what it holds, what it dispensed
    p = fed.world.parties["P"].did
    own = fed.index.own(GTIN, p, now)
    assert own["on_hand"]["released"] == 18 and own["dispensed_30d"] == 10
    assert own["days_of_cover"] == 54.0
    r = fed.index.own(GTIN, fed.world.parties["R"].did, now)
    assert r["on_hand"]["released"] == 10 and r["dispensed_30d"] == 0
    assert fed.index.gtins_of(p) == [GTIN] and fed.index.gtins_of("nobody") == []


def test_an_undone_pack_dispense_leaves_the_pharmacys_own_30_days() -> None:
    """A pack dispensed and undone (packs.undo) is no dispense: the undo's unit is put back
    on the pharmacy's own figures too, not only on the GTIN's (it was counted against a
    pharmacy of no one, so the pharmacy's own dispensed_30d stayed 1)."""
    fed = Fed()
    moved(fed)
    fed.take(fed.world.receive("P", "S3", 30))
    serials = {"gtin": GTIN, "lot": "L1", "serials": ["A1", "A2"]}
    fed.lots("M", "serialize", serials)
    pack = {"gtin": GTIN, "serial": "A1"}
    fed.lots("P", "decommission", {**pack, "status": "dispensed"})
    now = T0 + DAY_MS
    p = fed.world.parties["P"].did
    assert fed.index.own(GTIN, p, now)["dispensed_30d"] == 1
    fed.lots("P", "undo", pack)
    assert fed.index.figures(GTIN, now)["dispensed_30d"] == 0
    own = fed.index.own(GTIN, p, now)
    assert own["dispensed_30d"] == 0 and own["days_of_cover"] is None
    assert own["on_hand"]["released"] == 30


def test_an_undone_dispense_leaves_the_window_with_the_dispense_it_undoes() -> None:
    """An undo (up to 10 days after) takes back the dispense it undoes, dated as that
    dispense: so no 30-day window holds one without the other, and no window counts -1
    (the day the dispense left the window, the undo still in it)."""
    fed = Fed()
    moved(fed)
    fed.take(fed.world.receive("P", "S3", 30))
    fed.lots("M", "serialize", {"gtin": GTIN, "lot": "L1", "serials": ["A1"]})
    pack = {"gtin": GTIN, "serial": "A1"}
    sold = fed.world.sign("P", "lots", "decommission", {**pack, "status": "dispensed"})
    fed.take(fed.world.apply(sold))
    five_days = sold.body.time + 5 * DAY_MS
    fed.take(fed.world.apply(fed.world.sign("P", "lots", "undo", pack, time_ms=five_days)))
    p = fed.world.parties["P"].did
    for now in (sold.body.time, five_days, sold.body.time + 31 * DAY_MS, five_days + 31 * DAY_MS):
        assert fed.index.figures(GTIN, now)["dispensed_30d"] == 0, now
        assert fed.index.own(GTIN, p, now)["dispensed_30d"] == 0, now


def test_classes_quarantined_rejected_recalled() -> None:
    fed = Fed()
    moved(fed)
    fed.take(fed.world.commission("M", "L2", 5))
    fed.lots("D", "hold", {"gtin": GTIN, "lot": "L1", "kind": "hold", "reason": "leak"})
    f = fed.index.figures(GTIN, T0)
    assert f["on_hand"]["distributor"]["quarantined"] == 20
    assert f["in_transit"]["quarantined"] == 30 and f["stock"] == 5
    args = {"gtin": GTIN, "lot": "L1", "outcome": "rejected", "reason": "spoilt"}
    fed.lots("M", "dispose", args)
    assert fed.index.figures(GTIN, T0)["on_hand"]["manufacturer"]["rejected"] == 40
    fed.lots("M", "recall", {"gtin": GTIN, "lot": "L2", "class": "II", "reason": "label"})
    f = fed.index.figures(GTIN, T0)
    assert f["on_hand"]["manufacturer"] == {
        "released": 0,
        "quarantined": 0,
        "rejected": 40,
        "recalled": 5,
    }
    assert f["stock"] == 0


def test_shortage_alert_is_edge_triggered() -> None:
    fed = Fed()
    moved(fed)
    assert fed.minimum(50) == []  # stock 100: not below
    hold = {"gtin": GTIN, "lot": "L1", "kind": "hold", "reason": "leak"}
    alerts = fed.lots("D", "hold", hold)  # stock 0
    want = {"type": "shortage", "gtin": GTIN, "stock": 0, "minimum": 50}
    assert [a.event for a in alerts] == [want]
    assert [a.did for a in alerts] == regulator_dids([REGULATOR.xonly])
    # the feed the regulator reads, whichever point of its key it signs in with
    assert feeds.owner_of(fed.world.state, REGULATOR.did) == alerts[0].did
    assert fed.take(fed.world.commission("M", "L2", 10)) == []  # still below: no new alert
    assert fed.minimum(80) == []  # still below: none either
    args = {"gtin": GTIN, "lot": "L1", "outcome": "released", "reason": "ok"}
    assert fed.lots("M", "dispose", args) == []  # 110 >= 80: re-armed
    alerts = fed.lots("M", "recall", {"gtin": GTIN, "lot": "L1", "class": "I", "reason": "x"})
    assert [a.event["stock"] for a in alerts] == [10]  # below again: alerted again
    assert fed.minimum(0) == []  # cleared
    assert fed.index.shortage(GTIN) == {"minimum": None, "below": False}
    assert fed.minimum(11) != []  # set above the stock: the setting itself alerts


def test_a_cold_chain_quarantine_alerts_too() -> None:
    """A quarantine no transaction made (lots_coldchain.py: tx id empty, no time) is taken
    in like any change."""
    fed = Fed()
    fed.take(fed.world.commission("M", "L1", 100))
    fed.minimum(50)
    value = {"status": "quarantined", "source": "cold-chain", "reason": "x", "since": T0}
    record = Record(lots.QUALITY, (GTIN, "L1"), canonicalize(value), None)
    applied = Applied("", {record.key: record}, frozenset(), (), None, None)
    alerts = fed.index.apply(applied, [REGULATOR.xonly])
    assert [a.event["stock"] for a in alerts] == [0]


def test_replay_derives_the_same_alerts() -> None:
    fed = Fed()
    moved(fed)
    fed.minimum(50)
    fed.lots("D", "hold", {"gtin": GTIN, "lot": "L1", "kind": "hold", "reason": "leak"})
    args = {"gtin": GTIN, "lot": "L1", "outcome": "released", "reason": "ok"}
    fed.lots("M", "dispose", args)
    fed.lots("M", "recall", {"gtin": GTIN, "lot": "L1", "class": "I", "reason": "x"})
    assert len(fed.alerts) == 2
    engine, state, index = catalog.engine(), State([REGULATOR.xonly]), StockIndex()
    again: list[Notification] = []
    for signed, salt in fed.world.log:
        again += index.apply(engine.apply(state, signed, salt), state.regulators)
    assert again == fed.alerts
    assert index.snapshot() == fed.index.snapshot()
    assert index.figures(GTIN, T0 + DAY_MS) == fed.index.figures(GTIN, T0 + DAY_MS)


def test_only_the_regulator_sets_a_minimum() -> None:
    world = supply_chain()
    args = {"gtin": GTIN, "minimum": 5}
    assert world.refused("M", "lots", "stock-minimum", args).reason == "role"  # compliance yes
    for name in ("D", "R", "P", "O"):
        assert world.refused(name, "lots", "stock-minimum", args).reason == "access"
    bad = world.refused("regulator", "lots", "stock-minimum", {"gtin": "123", "minimum": 5})
    assert bad.reason == "args.gtin"
    bad = world.refused("regulator", "lots", "stock-minimum", {"gtin": GTIN, "minimum": -1})
    assert bad.reason == "args.minimum"
    assert world.refused("regulator", "lots", "stock-minimum", {"gtin": GTIN}).reason == "args"
    clear = {"gtin": GTIN, "minimum": 0}
    assert world.refused("regulator", "lots", "stock-minimum", clear).reason == "no minimum"
    world.do("regulator", "lots", "stock-minimum", args)
    world.do("regulator", "lots", "stock-minimum", clear)


@pytest.mark.parametrize(
    ("role", "figures", "own", "minimum"),
    [
        ("manufacturer", True, True, True),
        ("distributor", True, True, False),
        ("retailer", False, True, False),
        ("pharmacy", False, True, False),
        ("operator_team", True, False, False),
        ("regulator", True, False, True),
    ],
)
def test_stock_access_per_role(role: str, figures: bool, own: bool, minimum: bool) -> None:
    seen = policy.stock_access(role, Forbidden)
    assert (seen.figures, seen.own, seen.minimum) == (figures, own, minimum)
    if not figures:
        assert seen.withheld["figures"].startswith(f"read: {role} × ")


def test_the_public_sees_no_stock() -> None:
    with pytest.raises(Forbidden) as info:
        policy.stock_access("public", Forbidden)
    assert info.value.detail == "read: public × M→D = no"


# -- random steps: the index against a walk of the records ---------------------------------


class Stocked(Indexed):
    """The random-steps world of test_facts_index.py, also feeding a StockIndex."""

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.stock = StockIndex.of(world.state)
        self.alerts: list[Notification] = []

    def apply(self, signed: Any) -> Applied:
        applied = super().apply(signed)
        self.alerts += self.stock.apply(applied, self.state.regulators)
        return applied


def walked(state: State, gtin: str) -> dict[str, Any]:
    """The GTIN's figures (no dispense window) by a walk over every record: the reference."""

    def kind(lot: str) -> str:
        if state.get(lots.RECALL, gtin, lot) is not None:
            return "recalled"
        quality = state.get(lots.QUALITY, gtin, lot)
        assert quality is not None
        return str(quality["status"])

    on_hand = {r: dict.fromkeys(CLASSES, 0) for r in HOLDER_ROLES}
    moving = dict.fromkeys(CLASSES, 0)
    dispensed = 0
    for record in state.records.values():
        v = record.value
        if record.type == lots.HOLDING and record.fields[0] == gtin:
            role = participants.by_id(state, record.fields[2])["role"]
            on_hand[role][kind(record.fields[1])] += v["quantity"]
        elif record.type == lots.SHIPMENT and v["gtin"] == gtin and v["status"] == "in_transit":
            moving[kind(v["lot"])] += v["quantity"]
        elif record.type == lots.CUSTODY and record.fields[0] == gtin:
            dispensed += v["dispensed"]
    stock = sum(c["released"] for c in on_hand.values()) + moving["released"]
    return {"on_hand": on_hand, "in_transit": moving, "stock": stock, "dispensed": dispensed}


def extra_step(world: Stocked, rnd: random.Random, step: int) -> None:
    """A minimum, a hold, a disposition or a pharmacy's dispense (what the facts index's
    steps seldom or never draw); a refusal is fine."""
    records = list(world.state.records.values())
    held = [r.fields for r in records if r.type == lots.HOLDING]
    held_by = {p.did: name for name, p in world.parties.items()}  # (rotated ones: refused)
    quarantined = [
        r.fields for r in records if r.type == lots.QUALITY and r.value["status"] == "quarantined"
    ]
    dispensable = [
        (g, lot, pid)
        for g, lot, pid in held
        if participants.by_id(world.state, pid)["role"] == "pharmacy"
    ]
    op = rnd.choice(["minimum", "minimum", "hold", "dispose", "dispense", "dispense"])
    try:
        if op == "minimum":
            args = {"gtin": rnd.choice([GTIN, GTIN2]), "minimum": rnd.choice([0, 10, 50, 150])}
            world.do("regulator", "lots", "stock-minimum", args)
        elif op == "hold" and held:
            g, lot, pid = rnd.choice(held)
            args = {"gtin": g, "lot": lot, "kind": "hold", "reason": f"check {step}"}
            world.do(held_by.get(pid, "regulator"), "lots", "hold", args)
        elif op == "dispose" and quarantined:
            g, lot = rnd.choice(quarantined)
            args = {"gtin": g, "lot": lot, "outcome": rnd.choice(["released", "rejected"])}
            world.do("regulator", "lots", "dispose", {**args, "reason": "reviewed"})
        elif op == "dispense" and dispensable:
            g, lot, pid = rnd.choice(dispensable)
            args = {"gtin": g, "lot": lot, "quantity": 1}
            world.do(held_by.get(pid, "regulator"), "lots", "dispense", args)
    except ContractError:
        pass


def same_stock(world: Stocked) -> None:
    rebuilt = StockIndex.of(world.state)
    assert world.stock.snapshot() == rebuilt.snapshot()
    now = T0 + (world.n + 1) * 1000  # every dispense is within 30 days of it
    for gtin in world.stock.gtins():
        found = world.stock.figures(gtin, now)
        reference = walked(world.state, gtin)
        assert {k: found[k] for k in reference} == reference
        assert found["dispensed_30d"] == reference["dispensed"]
        shortage = world.stock.shortage(gtin)
        record = world.state.get(lots_stock.MINIMUM, gtin)
        want = None if record is None else record["minimum"]
        assert shortage == {"minimum": want, "below": want is not None and found["stock"] < want}


def started() -> Stocked:
    """The random steps' world with lot A of 100 moved down to the pharmacies (20 at P, 10
    at P2), so that dispenses are drawn."""
    world = Stocked(boxed_chain())
    world.commission("M", "A", 100)
    for sender, receiver, quantity in (("M", "D", 60), ("D", "R", 40), ("R", "P", 20)):
        world.ship(sender, "A", f"{sender}{receiver}", receiver, quantity)
        world.receive(receiver, f"{sender}{receiver}", quantity)
    world.ship("R", "A", "RP2", "P2", 10)
    world.receive("P2", "RP2", 10)
    return world


@pytest.mark.parametrize("seed", range(6))
def test_the_index_equals_a_walk_of_the_records_after_every_step(seed: int) -> None:
    rnd = random.Random(seed)
    world = started()
    same_stock(world)
    for step in range(80):
        if rnd.random() < 0.25:
            extra_step(world, rnd, step)
        else:
            apply_drawn(world, rnd, step)
        same_stock(world)
    # a replay of the same log derives the same alerts
    engine, state, index = catalog.engine(), State([REGULATOR.xonly]), StockIndex()
    state.boxes.update(world.state.boxes)
    again: list[Notification] = []
    for signed, salt in world.log:
        again += index.apply(engine.apply(state, signed, salt), state.regulators)
    assert again == world.alerts
    assert index.snapshot() == world.stock.snapshot()


def test_the_random_steps_reach_alerts_and_every_class() -> None:
    """Across the seeds above, the steps raised alerts and put units in every class (a
    generator of refusals only would pass vacuously)."""
    seen: set[str] = set()
    for seed in range(6):
        rnd = random.Random(seed)
        world = started()
        for step in range(80):
            if rnd.random() < 0.25:
                extra_step(world, rnd, step)
            else:
                apply_drawn(world, rnd, step)
        seen |= {"alert"} if world.alerts else set()
        for gtin in world.stock.gtins():
            f = walked(world.state, gtin)
            for counts in (*f["on_hand"].values(), f["in_transit"]):
                seen |= {k for k, n in counts.items() if n}
            seen |= {"dispensed"} if f["dispensed"] else set()
    assert seen == {"alert", "dispensed", *CLASSES}
