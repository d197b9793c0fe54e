"""Stock and shortage per GTIN (docs/contracts.md §5, "Stock and shortage (as built)"): units
on hand per holder role and in transit, by quality class; units dispensed and days of cover;
the regulator's minimum (cloud/contracts/lots_stock.py) and the shortage alert. Pure: no
storage, no clock (a read passes its own time).

What the figures count, per GTIN, over every lot of it (child lots of splits included):

- **on hand**: the units each participant holds (`holding` records), grouped by the
  holder's role (manufacturer, distributor, retailer, pharmacy);
- **in transit**: the units of shipments not yet received (what a count later credits
  may be less: a shortfall leaves the supply chain at the receive);
- each split by class: `recalled` (the lot is recalled, whatever its quality), else the
  lot's quality status `released`, `quarantined` or `rejected`. Every unit is in exactly
  one class;
- **stock** (what a shortage is judged on): units on hand or in transit of lots released
  and not recalled: the units the supply chain can still deliver. Expiry is not counted
  (it depends on a clock; a read could, an alert could not);
- **dispensed in the last 30 days**: dispenses whose transaction's own time is in
  (now - 30 days, now], `now` the read's time; **days of cover** = stock / (that / 30),
  None when nothing was dispensed.

The **shortage alert** is derived here, not by a rule: after each applied change, in log
order, a GTIN whose stock is below its minimum that was not below it before raises one
`shortage` notification per regulator (edge-triggered: again only after the stock rose to
the minimum or above, or the minimum was cleared). Whoever applies the log in order (every
worker, by replay at start) derives the same alerts from the same changes: a transaction's
(index, tx id), or a cold-chain quarantine's. `below` is a function of the records alone
(stock < minimum), so the index built at once from the records (`StockIndex.of`) agrees
with one fed change by change; only the dispense times are not in the records (`of` knows
none), which is why the service's index is always fed by replay.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from cloud.contracts import didkey, lots, lots_stock, pack_facts, participants
from cloud.contracts.engine import Applied, Notification, Record, State

HOLDER_ROLES: Final = ("manufacturer", "distributor", "retailer", "pharmacy")
RECALLED: Final = "recalled"
CLASSES: Final = (lots.RELEASED, lots.QUARANTINED, lots.REJECTED, RECALLED)
WINDOW_MS: Final = 30 * 86_400_000  # the dispense rate's window: the last 30 days
SHORTAGE: Final = "shortage"  # the alert's event type
# The record types the index follows, by (contract, type byte): a tuple's hash, where
# comparing frozen dataclasses field by field was a fifth of the time of apply().
_FOLLOWED: Final = {
    (t.contract, t.code): t
    for t in (
        participants.PARTICIPANT,
        lots_stock.MINIMUM,
        lots.SHIPMENT,
        lots.CUSTODY,
        lots.HOLDING,
        lots.QUALITY,
        lots.RECALL,
        pack_facts.DECOMMISSION,
    )
}


@dataclass
class _Lot:
    """What the index keeps of one lot (changed as records are applied)."""

    gtin: str
    status: str = lots.RELEASED
    recalled: bool = False
    holders: dict[str, int] = field(default_factory=dict)  # participant id -> units
    moving: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # shipment -> ...
    dispensed: int = 0

    @property
    def kind(self) -> str:
        """The class every unit of the lot counts in (module docstring)."""
        return RECALLED if self.recalled else self.status

    def stock(self) -> int:
        """Units on hand or in transit if released and not recalled, else 0."""
        if self.kind != lots.RELEASED:
            return 0
        return sum(self.holders.values()) + sum(q for _, _, q in self.moving.values())


@dataclass
class _Gtin:
    """What the index keeps of one GTIN."""

    lots: set[str] = field(default_factory=set)
    stock: int = 0  # sum of its lots' stock(), kept as they change
    minimum: int | None = None
    below: bool = False
    # dispenses, sorted by the transaction's own time: (time ms, units, pharmacy id)
    dispenses: list[tuple[int, int, str]] = field(default_factory=list)


def _time(dispense: tuple[int, int, str]) -> int:
    return dispense[0]


def _classes() -> dict[str, int]:
    return dict.fromkeys(CLASSES, 0)


def regulator_dids(regulators: Iterable[bytes]) -> list[str]:
    """Return the did:keys a shortage alert goes to, one per regulator's x-only key, sorted:
    the even-Y point's (02 ‖ x). The ledger knows a regulator by its x-only key only
    (docs/contracts.md §3), and feeds.owner_of files either DID of that key under this one,
    so the alert reaches the regulator whichever it signs in with."""
    return sorted(didkey.from_point(b"\x02" + key) for key in regulators)


class StockIndex:
    """Stock per GTIN beside the State, fed every applied change in log order (module
    docstring)."""

    def __init__(self) -> None:
        self._lots: dict[tuple[str, str], _Lot] = {}
        self._gtins: dict[str, _Gtin] = {}
        self._roles: dict[str, str] = {}  # participant id -> role
        self._holdings: dict[bytes, tuple[str, str, str]] = {}  # tree key -> gtin, lot, id
        self._minimums: dict[bytes, str] = {}  # tree key -> gtin
        self._involved: dict[str, set[str]] = {}  # participant id -> GTINs of its chains
        # a dispensed pack's decommission (tree key) -> gtin, lot, its dispense's entry
        self._sold: dict[bytes, tuple[str, str, tuple[int, int, str]]] = {}

    @classmethod
    def of(cls, state: State) -> StockIndex:
        """Return the index of every record the State holds (no dispense times: those are
        not in the records), `below` set from the records."""
        index = cls()
        touched: set[str] = set()
        for key, record in state.records.items():
            index._put(key, record, {}, None, touched)
        for gtin in touched:
            node = index._gtins[gtin]
            node.below = node.minimum is not None and node.stock < node.minimum
        return index

    def apply(self, applied: Applied, regulators: Iterable[bytes]) -> list[Notification]:
        """Take in what one transaction (or one reading batch's cold chains) changed, in log
        order; return the shortage alerts it raises, GTINs in order, addressed to
        `regulators` (x-only keys, each as both its did:keys: regulator_dids): those of the
        change's own log position, `applied.regulators` on the ledger."""
        touched: set[str] = set()
        drops = self._dropped(applied)  # units each holder lost, to attribute a dispense
        undone = self._undone(applied)  # dispenses of packs this change put back
        for key in applied.deleted:
            self._delete(key, touched)
        for key, record in applied.put.items():
            self._put(key, record, drops, applied.time, touched, undone)
        alerts: list[Notification] = []
        for gtin in sorted(touched):
            node = self._gtins[gtin]
            below = node.minimum is not None and node.stock < node.minimum
            if below and not node.below:
                event = {"type": SHORTAGE, "gtin": gtin, "stock": node.stock}
                event["minimum"] = node.minimum
                alerts.extend(Notification(did, event) for did in regulator_dids(regulators))
            node.below = below
        return alerts

    def _dropped(self, applied: Applied) -> dict[tuple[str, str], list[str]]:
        """The holders whose units of a lot this change moved, by lot (sorted ids): the
        pharmacy a dispense's units left, or an undone pack dispense's unit came back to
        (packs.undo: its -1 must come off that pharmacy's own window, not no one's)."""
        out: dict[tuple[str, str], list[str]] = {}
        for record in applied.put.values():
            if record.type.code == lots.HOLDING.code and record.type.contract == lots.NAME:
                gtin, lot, pid = record.fields
                node = self._lots.get((gtin, lot))
                if node is not None and record.value["quantity"] != node.holders.get(pid, 0):
                    out.setdefault((gtin, lot), []).append(pid)
        for key in applied.deleted:
            if (where := self._holdings.get(key)) is not None:
                out.setdefault(where[:2], []).append(where[2])
        return {lot: sorted(ids) for lot, ids in out.items()}

    def _undone(self, applied: Applied) -> dict[tuple[str, str], int]:
        """The dispensed packs whose decommission this change deleted (packs.undo), counted
        by lot: each one's dispense leaves its GTIN's dispenses where it was dated, and the
        custody's fall of as many units is no dispense of its own (else a window could hold
        the undo without the dispense it undoes: -1)."""
        out: dict[tuple[str, str], int] = {}
        for key in applied.deleted:
            if (found := self._sold.pop(key, None)) is None:
                continue
            gtin, lot, entry = found
            events = self._gtins[gtin].dispenses
            at = bisect.bisect_left(events, entry)
            if at < len(events) and events[at] == entry:
                del events[at]
                out[(gtin, lot)] = out.get((gtin, lot), 0) + 1
        return out

    def _gtin(self, gtin: str) -> _Gtin:
        return self._gtins.setdefault(gtin, _Gtin())

    def _lot(self, gtin: str, lot: str) -> _Lot:
        node = self._lots.get((gtin, lot))
        if node is None:
            node = self._lots[(gtin, lot)] = _Lot(gtin)
            self._gtin(gtin).lots.add(lot)
        return node

    def _change(self, node: _Lot, touched: set[str]) -> _Gtin:
        """Take the lot's stock out of its GTIN's before changing it (_settle adds it back)."""
        g = self._gtins[node.gtin]
        g.stock -= node.stock()
        touched.add(node.gtin)
        return g

    def _delete(self, key: bytes, touched: set[str]) -> None:
        if (where := self._holdings.pop(key, None)) is not None:
            node = self._lots[where[:2]]
            g = self._change(node, touched)
            node.holders.pop(where[2], None)
            g.stock += node.stock()
        elif (gtin := self._minimums.pop(key, None)) is not None:
            self._gtins[gtin].minimum = None
            touched.add(gtin)

    def _put(
        self,
        key: bytes,
        record: Record,
        drops: dict[tuple[str, str], list[str]],
        time: int | None,
        touched: set[str],
        undone: dict[tuple[str, str], int] | None = None,
    ) -> None:
        rtype = _FOLLOWED.get((record.type.contract, record.type.code))
        if rtype is None:
            return
        if rtype is pack_facts.DECOMMISSION:
            v = record.value
            if v["status"] == "dispensed":  # its dispense entry, as the custody's adds it
                self._sold[key] = (record.fields[0], v["lot"], (v["since"], 1, v["by"]))
            return
        if rtype is participants.PARTICIPANT:
            v = record.value
            self._roles[v["id"]] = v["role"]
            return
        if rtype is lots_stock.MINIMUM:
            gtin = record.fields[0]
            self._gtin(gtin).minimum = record.value["minimum"]
            self._minimums[key] = gtin
            touched.add(gtin)
            return
        if rtype is lots.SHIPMENT:
            v = record.value
            sid = record.fields[0]
            node = self._lot(v["gtin"], v["lot"])
            g = self._change(node, touched)
            if v["status"] == lots.IN_TRANSIT:
                node.moving[sid] = (v["sender"], v["receiver"], v["quantity"])
            else:
                node.moving.pop(sid, None)
            g.stock += node.stock()
            return
        gtin, lot = record.fields[:2]
        node = self._lot(gtin, lot)
        g = self._change(node, touched)
        v = record.value
        if rtype is lots.CUSTODY:
            for pid in v["involved"]:
                self._involved.setdefault(pid, set()).add(gtin)
            units = v["dispensed"] - node.dispensed + (undone or {}).get((gtin, lot), 0)
            node.dispensed = v["dispensed"]
            if units and time is not None:
                pharmacy = (drops.get((gtin, lot)) or [""])[0]
                bisect.insort(g.dispenses, (time, units, pharmacy))
        elif rtype is lots.HOLDING:
            node.holders[record.fields[2]] = v["quantity"]
            self._holdings[key] = (gtin, lot, record.fields[2])
        elif rtype is lots.QUALITY:
            node.status = v["status"]
        else:
            node.recalled = True
        g.stock += node.stock()

    # -- reads ---------------------------------------------------------------------------

    def gtins(self, by_minimum: bool = True) -> list[str]:
        """Every GTIN the index knows (knows(gtin, by_minimum)), sorted."""
        return sorted(g for g in self._gtins if self.knows(g, by_minimum))

    def knows(self, gtin: str, by_minimum: bool = True) -> bool:
        """Whether a lot of the GTIN was commissioned, or (`by_minimum`: for a reader of the
        minimum, compliance data whose very existence it is) the regulator set its minimum."""
        node = self._gtins.get(gtin)
        return node is not None and (bool(node.lots) or (by_minimum and node.minimum is not None))

    def gtins_of(self, participant_id: str) -> list[str]:
        """The GTINs of every lot in whose custody the participant has been (it held,
        shipped or received units: the lots' `involved` lists), sorted."""
        return sorted(self._involved.get(participant_id, ()))

    def _dispensed(self, gtin: str, now_ms: int, pharmacy: str | None = None) -> int:
        """Units dispensed in (now - 30 days, now] (by `pharmacy` only, if given)."""
        events = self._gtins[gtin].dispenses
        start = bisect.bisect_right(events, now_ms - WINDOW_MS, key=_time)
        end = bisect.bisect_right(events, now_ms, key=_time)
        return sum(u for _, u, p in events[start:end] if pharmacy is None or p == pharmacy)

    def figures(self, gtin: str, now_ms: int) -> dict[str, Any]:
        """Return the GTIN's figures per holder role, no participant named: on hand per role
        and in transit, each by class; stock; units dispensed in the 30 days up to
        `now_ms`; days of cover. Raises KeyError for a GTIN the index does not know."""
        g = self._gtins[gtin]
        on_hand = {role: _classes() for role in HOLDER_ROLES}
        moving = _classes()
        dispensed = 0
        for lot in sorted(g.lots):
            node = self._lots[(gtin, lot)]
            kind = node.kind
            dispensed += node.dispensed
            for pid, units in node.holders.items():
                on_hand[self._roles[pid]][kind] += units
            for _, _, units in node.moving.values():
                moving[kind] += units
        recent = self._dispensed(gtin, now_ms)
        return {
            "on_hand": on_hand,
            "in_transit": moving,
            "stock": g.stock,
            "dispensed": dispensed,
            "dispensed_30d": recent,
            "days_of_cover": days_of_cover(g.stock, recent),
        }

    def own(self, gtin: str, participant_id: str, now_ms: int) -> dict[str, Any]:
        """Return one participant's own figures of the GTIN: units it holds and units in
        transit to it and from it, each by class; its stock (released, not recalled, held
        or on the way to it); what it dispensed in the 30 days up to `now_ms` and its days
        of cover. Raises KeyError for a GTIN the index does not know."""
        g = self._gtins[gtin]
        held, inbound, outbound = _classes(), _classes(), _classes()
        for lot in sorted(g.lots):
            node = self._lots[(gtin, lot)]
            kind = node.kind
            held[kind] += node.holders.get(participant_id, 0)
            for sender, receiver, units in node.moving.values():
                if receiver == participant_id:
                    inbound[kind] += units
                if sender == participant_id:
                    outbound[kind] += units
        stock = held[lots.RELEASED] + inbound[lots.RELEASED]
        recent = self._dispensed(gtin, now_ms, participant_id)
        return {
            "on_hand": held,
            "in_transit_to_you": inbound,
            "in_transit_from_you": outbound,
            "stock": stock,
            "dispensed_30d": recent,
            "days_of_cover": days_of_cover(stock, recent),
        }

    def shortage(self, gtin: str) -> dict[str, Any]:
        """Return the regulator's minimum of the GTIN (None: none set) and whether its
        stock is below it. Raises KeyError for a GTIN the index does not know."""
        g = self._gtins[gtin]
        return {"minimum": g.minimum, "below": g.below}

    def snapshot(self) -> dict[str, Any]:
        """Everything the index holds that the records determine (not the dispense times),
        for comparing an index fed change by change with StockIndex.of."""
        return {
            "lots": {
                k: (n.status, n.recalled, dict(n.holders), dict(n.moving), n.dispensed)
                for k, n in self._lots.items()
            },
            "gtins": {
                k: (sorted(g.lots), g.stock, g.minimum, g.below)
                for k, g in self._gtins.items()
                if g.lots or g.minimum is not None
            },
            "involved": {k: sorted(v) for k, v in self._involved.items()},
            "roles": dict(self._roles),
        }


def days_of_cover(stock: int, dispensed_30d: int) -> float | None:
    """Return how many days `stock` lasts at the rate of `dispensed_30d` units in 30 days,
    to a tenth of a day; None when nothing was dispensed (no rate to divide by)."""
    if dispensed_30d <= 0:
        return None
    return round(stock * 30 / dispensed_30d, 1)
