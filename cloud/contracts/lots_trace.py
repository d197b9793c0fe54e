"""The recall trace (docs/contracts.md §5): a lot and every lot split from it, at any depth,
with who holds how many units, the shipments in transit and the units dispensed; and the
regulator's global figures of the same (lots, units and holders counted per role and
region, no names). Pure: no storage, no clock.

Why an index: lots.trace walks the State itself, and each step reads a record (a SHA-256 of
its key, a JSON parse of its value): about 30 µs a lot, 300 ms for 10,000 descendants. A
LotIndex keeps, beside the State, what a trace needs already parsed — each lot's parent,
children, holders, shipments in transit, status and recall — fed with every applied change
in log order (`apply`, the same Applied values the engine returns), or built from the records
at once (`of`). A trace then walks the children lists only: linear in the descendants, no
scan of all lots, a few µs a lot. It is a projection of the records: `LotIndex.of(state)`
equals one fed change by change (tests/cloud/contracts/test_lots_trace.py checks it, and that
a trace from it equals lots.trace over the State).

What a reader sees of a trace is decided by cloud/contracts/policy.py (`trace_access`):
`visible` keeps the legs a reader's flow cells allow, `figures` counts for the regulator.
The answers are JSON objects built directly, without a value object per lot (a frozen
dataclass per lot and holder doubled the time of a 10,000-lot trace). What the route sends
is each lot's JSON written straight to text (`_encode`: the bytes json.dumps gives of the
object `_shown` builds, without building it) and kept, as bytes only, until that lot (or
any participant) changes. Bytes are not tracked by the garbage collector: a first trace
that keeps 10,000 answers as objects left ~60,000 new containers behind and set off a
full collection of the whole process's heap inside that request (hundreds of ms with the
State of a recall in memory); kept as bytes, it leaves none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _text
from typing import Any, Final

from cloud.contracts import access, lots, participants
from cloud.contracts.engine import Applied, Record, State

# The leg whose data a holding is: units a participant of this role holds came to it on
# that leg (the manufacturer's own units leave on M→D; docs/contracts.md §5, "recall trace").
HOLDING_LEG: Final = {
    "manufacturer": access.M_TO_D,
    "distributor": access.M_TO_D,
    "retailer": access.D_TO_R,
    "pharmacy": access.R_TO_P,
}
DISPENSE_LEG: Final = access.R_TO_P
MAX_KEPT_FIGURES: Final = 1024  # lots whose figures() answer is kept (LotIndex.figures)


@dataclass
class _Lot:
    """What the index keeps of one lot (mutable: changed as records are applied)."""

    lot: str  # its lot number
    lot_json: str  # as JSON text
    parent: str | None = None
    children: list[str] = field(default_factory=list)
    # The children's nodes, found by the first walk after `children` changed (None: not
    # yet); a lot without children never gets a list.
    kids: list[_Lot] | None = None
    involved: frozenset[str] = frozenset()
    in_transit: list[str] = field(default_factory=list)
    dispensed: int = 0
    status: str = lots.RELEASED
    recall: dict[str, Any] | None = None
    holders: dict[str, int] = field(default_factory=dict)
    # This lot's JSON in encoded(), per set of legs shown; emptied when it changes.
    shown: dict[frozenset[str], bytes] = field(default_factory=dict)
    # JSON text of the fields above, written when they change (_encode joins them): the
    # parent's, the status's and the recall's.
    parent_json: str = "null"
    status_json: str = _text(lots.RELEASED)
    recall_json: str = "null"


@dataclass(frozen=True)
class _Party:
    did: str
    role: str
    region: str
    leg: str | None  # the leg units it holds came on (HOLDING_LEG; None: it holds none)
    did_json: str  # the did as JSON text
    holder_json: str  # a holding of its as JSON text, up to its quantity: '{"did": …, '


@dataclass(frozen=True)
class _Shipment:
    sender: str
    receiver: str
    quantity: int
    leg: str


class LotIndex:
    """The trace's index of lots, shipments and participants (module docstring)."""

    def __init__(self) -> None:
        self._lots: dict[tuple[str, str], _Lot] = {}
        self._shipments: dict[str, _Shipment] = {}
        self._parties: dict[str, _Party] = {}
        self._holdings: dict[bytes, tuple[str, str, str]] = {}  # tree key -> gtin, lot, id
        # figures() answered, by lot, with the count of changes taken in when it did: any
        # change may touch a descendant or a participant, so any change retires them all
        self._changes = 0
        self._figures: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}

    @classmethod
    def of(cls, state: State) -> LotIndex:
        """Return the index of every record the State holds."""
        index = cls()
        for key, record in state.records.items():
            index._put(key, record)
        return index

    def apply(self, applied: Applied) -> None:
        """Take in what one transaction (or one reading batch) changed, in log order."""
        self._changes += 1
        for key in applied.deleted:
            where = self._holdings.pop(key, None)
            if where is not None:
                node = self._lots[where[:2]]
                node.holders.pop(where[2], None)
                node.shown.clear()
        for key, record in applied.put.items():
            self._put(key, record)

    def _put(self, key: bytes, record: Record) -> None:
        rtype = record.type
        if rtype == participants.PARTICIPANT:
            v = record.value
            did, role = v["did"], v["role"]
            written = f'{{"did": {_text(did)}, "role": {_text(role)}, "quantity": '
            leg = HOLDING_LEG.get(role)
            self._parties[v["id"]] = _Party(did, role, v["region"], leg, _text(did), written)
            for node in self._lots.values():  # a DID may have changed (rotation): rare
                node.shown.clear()
            return
        if rtype.contract != lots.NAME:
            return
        if rtype == lots.SHIPMENT:
            v = record.value
            self._shipments[record.fields[0]] = _Shipment(
                v["sender"], v["receiver"], v["quantity"], v["leg"]
            )
            if (shipped := self._lots.get((v["gtin"], v["lot"]))) is not None:
                shipped.shown.clear()
            return
        if rtype not in (lots.CUSTODY, lots.HOLDING, lots.QUALITY, lots.RECALL):
            return
        gtin, lot = record.fields[:2]
        if (gtin, lot) not in self._lots:
            self._lots[(gtin, lot)] = _Lot(lot, _text(lot))
        node = self._lots[(gtin, lot)]
        node.shown.clear()
        v = record.value
        if rtype == lots.CUSTODY:
            node.parent, node.children, node.kids = v["parent"], v["children"], None
            node.parent_json = "null" if node.parent is None else _text(node.parent)
            node.involved = frozenset(v["involved"])
            node.in_transit, node.dispensed = v["in_transit"], v["dispensed"]
        elif rtype == lots.HOLDING:
            node.holders[record.fields[2]] = v["quantity"]
            self._holdings[key] = (gtin, lot, record.fields[2])
        elif rtype == lots.QUALITY:
            node.status = v["status"]
            node.status_json = _text(node.status)
        else:
            node.recall = {"class": v["class"], "since": v["since"]}
            node.recall_json = f'{{"class": {_text(v["class"])}, "since": {v["since"]}}}'

    def knows(self, gtin: str, lot: str) -> bool:
        """Whether the lot was commissioned (or split off)."""
        return (gtin, lot) in self._lots

    def descendants(self, gtin: str, lot: str) -> list[str]:
        """Return the lot and every lot split from it, parents first (lots.descendants, from
        the index). Requires a lot the index knows."""
        return [node.lot for node in self._walk(gtin, lot)]

    def _walk(self, gtin: str, lot: str) -> list[_Lot]:
        """descendants()' nodes, through each node's kept list of its children's (nothing
        new for the garbage collector to track but the answer's list)."""
        nodes = self._lots
        out = [nodes[(gtin, lot)]]
        for node in out:  # grows as it goes: breadth first
            if node.children:
                kids = node.kids
                if kids is None:
                    kids = node.kids = [nodes[(gtin, child)] for child in node.children]
                out.extend(kids)
        return out

    def involved(self, gtin: str, lot: str, participant_id: str) -> bool:
        """Whether the participant is in the lot's custody chain (lots.involved, from the
        index): it held, shipped or received the lot, an ancestor or a descendant. The lot
        and its ancestors are asked first, then the descendants breadth first, stopping at
        the first that names it (the manufacturer of a recalled lot: at once)."""
        nodes = self._lots
        node = nodes.get((gtin, lot))
        if node is None:
            return False
        while True:  # the lot, then its ancestors
            if participant_id in node.involved:
                return True
            if node.parent is None:
                break
            node = nodes[(gtin, node.parent)]
        queue = list(nodes[(gtin, lot)].children)
        for here in queue:  # grows as it goes: breadth first
            node = nodes[(gtin, here)]
            if participant_id in node.involved:
                return True
            queue.extend(node.children)
        return False

    def visible(self, gtin: str, lot: str, legs: frozenset[str]) -> list[dict[str, Any]]:
        """Return the trace of a lot (itself and its descendants, parents first) as JSON
        objects with the holders, shipments in transit and dispenses of `legs` only (the
        reader's flow cells: policy.trace_access); lot, parent, quality status and recall
        are public records and always shown. Raises KeyError for a lot never commissioned.
        Built each time (what encoded() keeps is its JSON)."""
        if (gtin, lot) not in self._lots:
            raise KeyError(f"{gtin}/{lot}")
        return [self._shown(node, legs) for node in self._walk(gtin, lot)]

    def encoded(self, gtin: str, lot: str, legs: frozenset[str]) -> list[bytes]:
        """visible(), each lot's object as its JSON (the bytes json.dumps(...).encode()
        gives), kept until the lot or a participant changes: a trace asked again (during a
        recall, by many readers) is joined from these, and re-encodes only the lots that
        changed. Raises KeyError for a lot never commissioned."""
        if (gtin, lot) not in self._lots:
            raise KeyError(f"{gtin}/{lot}")
        out = []
        for node in self._walk(gtin, lot):
            text = node.shown.get(legs)
            if text is None:
                text = node.shown[legs] = self._encode(node, legs)
            out.append(text)
        return out

    def _encode(self, node: _Lot, legs: frozenset[str]) -> bytes:
        """json.dumps(self._shown(node, legs)).encode(), written directly: ~3 times
        faster, and no object per lot, holder and shipment to build and free (test:
        tests/cloud/contracts/test_lots_trace.py checks the bytes are the same)."""
        parties, held = self._parties, node.holders
        holders = ""
        if held:
            written = []
            for pid in sorted(held) if len(held) > 1 else held:
                p = parties[pid]
                if p.leg in legs:
                    written.append(f"{p.holder_json}{held[pid]}}}")
            holders = ", ".join(written)
        moving = ""
        if node.in_transit:
            written = []
            for sid in node.in_transit:
                s = self._shipments[sid]
                if s.leg in legs:
                    written.append(
                        f'{{"shipment": {_text(sid)}, "sender": {parties[s.sender].did_json}, '
                        f'"receiver": {parties[s.receiver].did_json}, '
                        f'"quantity": {s.quantity}, "leg": {_text(s.leg)}}}'
                    )
            moving = ", ".join(written)
        dispensed = node.dispensed if DISPENSE_LEG in legs else "null"
        return (
            f'{{"lot": {node.lot_json}, "parent": {node.parent_json}, "status": '
            f'{node.status_json}, "recall": {node.recall_json}, "holders": [{holders}], '
            f'"in_transit": [{moving}], "dispensed": {dispensed}}}'
        ).encode()

    def _shown(self, node: _Lot, legs: frozenset[str]) -> dict[str, Any]:
        """One lot of visible(), built as JSON objects (what _encode writes as text)."""
        parties, held = self._parties, node.holders
        holders = []
        for pid in sorted(held) if len(held) > 1 else held:
            p = parties[pid]
            if p.leg in legs:
                holders.append({"did": p.did, "role": p.role, "quantity": held[pid]})
        moving = []
        for sid in node.in_transit:
            s = self._shipments[sid]
            if s.leg in legs:
                moving.append(
                    {
                        "shipment": sid,
                        "sender": parties[s.sender].did,
                        "receiver": parties[s.receiver].did,
                        "quantity": s.quantity,
                        "leg": s.leg,
                    }
                )
        return {
            "lot": node.lot,
            "parent": node.parent,
            "status": node.status,
            "recall": node.recall,
            "holders": holders,
            "in_transit": moving,
            "dispensed": node.dispensed if DISPENSE_LEG in legs else None,
        }

    def figures(self, gtin: str, lot: str) -> dict[str, Any]:
        """Return the global figures of a lot's trace (the regulator's view): lots and
        recalled lots counted; units held, in transit and dispensed; and per (role, region)
        the holders, the units they hold and are about to receive, and their holdings (a
        lot one of them holds). No DID, name or lot number. Raises KeyError for a lot never
        commissioned. The answer is kept until the index next changes (a regulator asking
        again during a recall: ~40 ms for 10,000 lots the first time) and shared with later
        answers: the caller must not change it."""
        if (gtin, lot) not in self._lots:
            raise KeyError(f"{gtin}/{lot}")
        kept = self._figures.get((gtin, lot))
        if kept is not None and kept[0] == self._changes:
            return kept[1]
        found = self._count(gtin, lot)
        if len(self._figures) >= MAX_KEPT_FIGURES:
            self._figures.clear()
        self._figures[(gtin, lot)] = (self._changes, found)
        return found

    def _count(self, gtin: str, lot: str) -> dict[str, Any]:
        """figures(), counted."""
        totals = dict.fromkeys(("lots", "recalled", "held", "in_transit", "dispensed"), 0)
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        holders: dict[tuple[str, str], set[str]] = {}

        def group(p: _Party) -> dict[str, Any]:
            key = (p.role, p.region)
            if key not in groups:
                groups[key] = {"role": p.role, "region": p.region, "units": 0}
                groups[key] |= {"in_transit": 0, "holdings": 0}
                holders[key] = set()
            return groups[key]

        for node in self._walk(gtin, lot):
            totals["lots"] += 1
            totals["recalled"] += node.recall is not None
            totals["dispensed"] += node.dispensed
            for pid, quantity in node.holders.items():
                p = self._parties[pid]
                g = group(p)
                g["units"] += quantity
                g["holdings"] += 1
                holders[(p.role, p.region)].add(pid)
                totals["held"] += quantity
            for sid in node.in_transit:
                s = self._shipments[sid]
                group(self._parties[s.receiver])["in_transit"] += s.quantity
                totals["in_transit"] += s.quantity
        rows = [{**groups[key], "holders": len(holders[key])} for key in sorted(groups)]
        return {"totals": totals, "by_role_region": rows}
