"""Stock and shortage (cloud/contracts/stock.py, lots_stock.py): the figures per role and
class, the index fed change by change equal to one built from the records, the regulator's
minimum and its edge-triggered shortage alert, the same alerts on replay, and who may set a
minimum (docs/contracts.md §5, "Stock and shortage (as built)")."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.contracts import catalog, lots, policy
from cloud.contracts.engine import Applied, Forbidden, Notification, Record, State
from cloud.contracts.stock import StockIndex, days_of_cover, regulator_dids
from gateway.jcs import canonicalize
from tests.cloud.contracts.world import GTIN, REGULATOR, T0, supply_chain

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
    assert [a.event for a in alerts] == [want, want]
    assert [a.did for a in alerts] == regulator_dids([REGULATOR.xonly])
    assert REGULATOR.did in [a.did for a in alerts]  # the DID it signs in with, either point
    assert fed.take(fed.world.commission("M", "L2", 10)) == []  # still below: no new alert
    assert fed.minimum(80) == []  # still below: none either
    args = {"gtin": GTIN, "lot": "L1", "outcome": "released", "reason": "ok"}
    assert fed.lots("M", "dispose", args) == []  # 110 >= 80: re-armed
    alerts = fed.lots("M", "recall", {"gtin": GTIN, "lot": "L1", "class": "I", "reason": "x"})
    assert [a.event["stock"] for a in alerts] == [10, 10]  # below again: alerted again
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
    assert [a.event["stock"] for a in alerts] == [0, 0]


def test_replay_derives_the_same_alerts() -> None:
    fed = Fed()
    moved(fed)
    fed.minimum(50)
    fed.lots("D", "hold", {"gtin": GTIN, "lot": "L1", "kind": "hold", "reason": "leak"})
    args = {"gtin": GTIN, "lot": "L1", "outcome": "released", "reason": "ok"}
    fed.lots("M", "dispose", args)
    fed.lots("M", "recall", {"gtin": GTIN, "lot": "L1", "class": "I", "reason": "x"})
    assert len(fed.alerts) == 4
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
