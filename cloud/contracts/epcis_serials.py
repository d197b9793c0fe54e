"""GS1 EPCIS 2.0 events of serialized packs (docs/contracts.md §4 "EPCIS (as built)",
"Serialized packs"): the instance-level events of the packs contract's transactions
(cloud/contracts/packs.py), each pack an SGTIN written as a GS1 Digital Link URI,
https://id.gs1.org/01/{gtin}/21/{serial} (epcis.serial_uri). epcis.py runs these builders
(SERIAL_EVENTS) like its lot-level ones; the transactions reach a lot's history because
they write its SERIALS record (epcis.TOUCHING).

    serialize     ObjectEvent ADD, bizStep commissioning, disposition active, epcList the
                  registration's serials in the order signed (one event per transaction:
                  up to 100,000 EPCs), ilmd lot number and expiry, bizLocation the
                  manufacturer's DID
    decommission  ObjectEvent DELETE of the pack, by its status (CBV 2.0):
                      dispensed   bizStep dispensing      disposition dispensed
                      destroyed   bizStep destroying      disposition destroyed
                      stolen      bizStep decommissioning disposition stolen
                      exported    bizStep decommissioning disposition inactive
                      sample      bizStep sampling        disposition inactive
                  (the CBV has no "exported" disposition; `inactive` is its state of a
                  decommissioned identifier), readPoint and bizLocation the pharmacy's DID
    undo          ObjectEvent ADD of the pack, bizStep commissioning, disposition active, no
                  ilmd: the identifier is back in use. The CBV has no step that reverses a
                  decommissioning; EPCIS 2.0's errorDeclaration says an event did not occur
                  or was wrong, while an undo (EU 2016/161 Art. 13) is a later act of its
                  own, so it is a new event: the reverse of DELETE is ADD, and the CBV's step
                  for an ADD of an SGTIN is commissioning. A reader tells it from the first
                  commissioning by the DELETE before it and the ilmd it lacks.
    split naming  one TransformationEvent per child lot: inputQuantityList the parent lot
      serials     and inputEPCList the child's packs, outputQuantityList the child lot and
                  outputEPCList the same packs (an SGTIN keeps its identity; its lot
                  changes: ilmd names the child lot). The parent's history holds every
                  child's event, a child's its own.

No AggregationEvent: the packs contract records no packing (which packs a case or a
shipment holds); shipments stay lot-level (epcis.py).

Access (docs/contracts.md §5, §6): the commissioning's list of serials only to a reader of
the product column in full (the ledger keeps them as a Merkle root: no list of valid serials
for the public); a decommissioning and its undo only to a reader of the R→P flow (retailer
→ pharmacy), with who did it (readPoint, bizLocation: the pharmacy): when a pack was
dispensed is R→P data (§6), and a pack's status alone is public through the Digital Link
resolver. The manufacturer's location as for the lot's commissioning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from cloud.contracts import access
from cloud.contracts.epcis import (
    ACTIVE,
    COMMISSIONING,
    DISPENSED,
    DISPENSING,
    REPACKAGING,
    SERIAL_EVENTS,
    Event,
    LedgerTx,
    _commissioning,
    _event,
    _Lot,
    _split,
    serial_uri,
)

DESTROYING: Final = "destroying"
DECOMMISSIONING: Final = "decommissioning"
SAMPLING: Final = "sampling"
DESTROYED: Final = "destroyed"
STOLEN: Final = "stolen"
INACTIVE: Final = "inactive"
# A decommissioned pack's status (packs.DECOMMISSIONED) as CBV (bizStep, disposition).
DECOMMISSIONED: Final[Mapping[str, tuple[str, str]]] = {
    "dispensed": (DISPENSING, DISPENSED),
    "destroyed": (DESTROYING, DESTROYED),
    "stolen": (DECOMMISSIONING, STOLEN),
    "exported": (DECOMMISSIONING, INACTIVE),
    "sample": (SAMPLING, INACTIVE),
}


def epc_list(gtin: str, serials: Sequence[str]) -> list[str]:
    """The packs' Digital Link URIs: serial_uri of each, in order. A serial of only
    unreserved characters (the usual one) needs no percent-encoding: the fast path of a
    100,000-pack registration."""
    head = f"{serial_uri(gtin, '')}"
    return [head + s if s.isalnum() else serial_uri(gtin, s) for s in serials]


def _instance(ctx: _Lot, key: str, t: LedgerTx, serials: Sequence[str], **fields: Any) -> Event:
    """An ObjectEvent of this lot's packs `serials` (epcList) for transaction `t`."""
    body = _event(key, t.time, epcList=epc_list(ctx.gtin, serials), **fields)
    named = frozenset((ctx.gtin, s) for s in serials)
    return Event(t.time, body["eventID"], frozenset({(ctx.gtin, ctx.lot)}), body, named)


def _pharmacy(ctx: _Lot, t: LedgerTx) -> dict[str, Any]:
    """readPoint and bizLocation (the pharmacy that signed `t`) if the reader reads R→P."""
    if not ctx.reads(access.R_TO_P):
        return {}
    where = {"id": ctx.signer(t)}
    return {"readPoint": where, "bizLocation": where}


def serialize(ctx: _Lot, t: LedgerTx) -> list[Event]:
    """The commissioning of a registration's packs (module docstring): its epcList names
    every serial registered, which the ledger keeps as a Merkle root only, so only to a
    reader of the product column in full (not global only: no list of valid serials)."""
    fields = _commissioning(ctx)
    if fields is None or not ctx.reads(access.PRODUCT):
        return []
    key = f"{t.tx_id}/serialize/{ctx.gtin}/{ctx.lot}"
    return [_instance(ctx, key, t, t.args["serials"], **fields)]


def decommission(ctx: _Lot, t: LedgerTx) -> list[Event]:
    """A pack taken out of the supply chain, to a reader of R→P (module docstring)."""
    if not ctx.reads(access.R_TO_P):
        return []
    step, disposition = DECOMMISSIONED[t.args["status"]]
    fields = {"action": "DELETE", "bizStep": step, "disposition": disposition}
    key = f"{t.tx_id}/decommission/{ctx.gtin}/{t.args['serial']}"
    return [_instance(ctx, key, t, [t.args["serial"]], **fields, **_pharmacy(ctx, t))]


def undo(ctx: _Lot, t: LedgerTx) -> list[Event]:
    """A decommission undone: the pack back in use, to a reader of R→P (module docstring)."""
    if not ctx.reads(access.R_TO_P):
        return []
    fields = {"action": "ADD", "bizStep": COMMISSIONING, "disposition": ACTIVE}
    key = f"{t.tx_id}/undo/{ctx.gtin}/{t.args['serial']}"
    return [_instance(ctx, key, t, [t.args["serial"]], **fields, **_pharmacy(ctx, t))]


def split(ctx: _Lot, t: LedgerTx) -> list[Event]:
    """A split: the lot-level TransformationEvent (epcis.py) when it names no packs, else
    one per child naming its packs (module docstring)."""
    named: Mapping[str, Sequence[str]] | None = t.args.get("serials")
    if named is None:
        return _split(ctx, t)
    if not ctx.reads(access.PRODUCT):
        return []
    gtin, parent = ctx.gtin, t.args["lot"]
    out = []
    for child in t.args["children"]:
        number, quantity = child["lot"], child["quantity"]
        if ctx.lot not in (parent, number):
            continue
        serials = named[number]
        epcs = epc_list(gtin, serials)
        body = _event(
            f"{t.tx_id}/split/{gtin}/{parent}/{number}",
            t.time,
            "TransformationEvent",
            inputEPCList=epcs,
            inputQuantityList=[ctx.quantity(gtin, parent, quantity)],
            outputEPCList=epcs,
            outputQuantityList=[ctx.quantity(gtin, number, quantity)],
            bizStep=REPACKAGING,
            disposition=ACTIVE,
            ilmd={"cbvmda:lotNumber": number},
        )
        lots_named = frozenset({(gtin, parent), (gtin, number)})
        packs = frozenset((gtin, s) for s in serials)
        out.append(Event(t.time, body["eventID"], lots_named, body, packs))
    return out


# epcis.SERIAL_EVENTS: the builders of the packs contract's transactions, by type.
BUILDERS: Final[Mapping[str, Callable[[_Lot, LedgerTx], list[Event]]]] = {
    "serialize": serialize,
    "decommission": decommission,
    "undo": undo,
    "split": split,
}
SERIAL_EVENTS.update(BUILDERS)
