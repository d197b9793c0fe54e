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

    ship naming   the lot-level shipping event (epcis.py), and before it an AggregationEvent
      serials     ADD, bizStep packing, disposition in_progress: parentID the logistic
                  unit, the SSCC's Digital Link https://id.gs1.org/00/{sscc} when the ship
                  named one, else the shipment (urn:pharmasync:shipment:<id>, as its
                  desadv), childEPCs the packs in the order signed, readPoint the sender,
                  the shipment as bizTransaction. Its time is the ship's less 1 ms (the
                  packing came first: a document's events are in time order)
    receive of    the lot-level receiving event, and after it (1 ms later) the same
      a packed    AggregationEvent with DELETE, bizStep unpacking, disposition in_progress,
      shipment    readPoint and bizLocation the receiver, childEPCs the packs the ship named

Access (docs/contracts.md §5, §6): the commissioning's list of serials, and a shipment's
packing and unpacking (which also needs its leg's flow cell, as its shipping event), only to
a reader of the product column in full (the ledger keeps them as a Merkle root: no list of
valid serials for the public); a decommissioning and its undo only to a reader of the R→P
flow (retailer → pharmacy), with who did it (readPoint, bizLocation: the pharmacy): when a pack was
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
    IN_PROGRESS,
    REPACKAGING,
    SERIAL_EVENTS,
    Event,
    LedgerTx,
    _commissioning,
    _event,
    _Lot,
    _receive,
    _ship,
    _shipment,
    _split,
    _transactions,
    serial_uri,
    sscc_uri,
)

PACKING: Final = "packing"
UNPACKING: Final = "unpacking"
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


def _aggregation(ctx: _Lot, t: LedgerTx, ship: LedgerTx, packing: bool) -> list[Event]:
    """The packing (ADD, at ship) or unpacking (DELETE, at receive) of the packs `ship`
    named (module docstring), to a reader of its leg's flow and of the product in full."""
    shipment_id = ship.args["shipment"]
    shipment = _shipment(ctx, shipment_id)
    if shipment is None or not ctx.reads(access.PRODUCT):
        return []
    desadv = _transactions(ctx, shipment_id, None)  # the shipment alone, no order
    sscc = ship.args.get("sscc")
    where = {"id": ctx.did(shipment["sender" if packing else "receiver"])}
    fields: dict[str, Any] = {
        "parentID": desadv[0]["bizTransaction"] if sscc is None else sscc_uri(sscc),
        "childEPCs": epc_list(ctx.gtin, ship.args["serials"]),
        "action": "ADD" if packing else "DELETE",
        "bizStep": PACKING if packing else UNPACKING,
        "disposition": IN_PROGRESS,
        "readPoint": where,
    }
    if not packing:
        fields["bizLocation"] = where
    fields["bizTransactionList"] = desadv
    time_ms = t.time - 1 if packing else t.time + 1
    what = "pack" if packing else "unpack"
    body = _event(f"{t.tx_id}/{what}/{ctx.gtin}/{ctx.lot}", time_ms, "AggregationEvent", **fields)
    packs = frozenset((ctx.gtin, s) for s in ship.args["serials"])
    return [Event(time_ms, body["eventID"], frozenset({(ctx.gtin, ctx.lot)}), body, packs)]


def ship(ctx: _Lot, t: LedgerTx) -> list[Event]:
    """A shipment: its shipping event, after its packs' packing when it names packs."""
    if "serials" not in t.args:
        return _ship(ctx, t)
    return [*_aggregation(ctx, t, t, packing=True), *_ship(ctx, t)]


def receive(ctx: _Lot, t: LedgerTx) -> list[Event]:
    """A shipment received: its receiving event, then its packs' unpacking when its ship
    named packs."""
    shipped = ctx.ships.get(t.args["shipment"])
    if shipped is None or "serials" not in shipped.args:
        return _receive(ctx, t)
    return [*_receive(ctx, t), *_aggregation(ctx, t, shipped, packing=False)]


# epcis.SERIAL_EVENTS: the builders of the packs contract's transactions, by type.
BUILDERS: Final[Mapping[str, Callable[[_Lot, LedgerTx], list[Event]]]] = {
    "serialize": serialize,
    "ship": ship,
    "receive": receive,
    "decommission": decommission,
    "undo": undo,
    "split": split,
}
SERIAL_EVENTS.update(BUILDERS)
