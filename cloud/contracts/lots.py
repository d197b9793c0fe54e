"""The lots contract (docs/contracts.md §4): commission, ship, receive, split, dispense, hold,
dispose and recall, with custody and quantities per participant per lot. Attach and
calibrate are in lots_boxes.py, certify and revoke in certificates.py, the cold-chain
quarantine in lots_coldchain.py; every record type of the contract is declared here.

A lot is named by (GTIN, lot number) in every argument ("gtin", "lot") and record key.
Participants are named by their id (participants.py), so a key rotation moves nothing.

Records of contract "lots" (docs/contracts.md §2):

    LOT       public  (gtin, lot)        {"gtin", "lot", "expiry" (ISO date), "unit",
                                          "profile", "manufacturer" (id), "since" (ms)}
    QUALITY   public  (gtin, lot)        {"status": released | quarantined | rejected,
                                          "source": commission | split | hold | damage |
                                          dispose | cold-chain, "reason", "since"}
    RECALL    public  (gtin, lot)        {"class": I | II | III, "reason", "by" (role),
                                          "since"}
    CUSTODY   private (gtin, lot)        {"parent": lot | null, "children": [lot, ...],
                                          "involved": [id, ...] (sorted: everyone who held,
                                          shipped or received it), "in_transit":
                                          [shipment, ...], "quantity" (units made or split
                                          into it), "dispensed"}
    HOLDING   private (gtin, lot, id)    {"quantity"}  (absent when 0)
    SHIPMENT  private (shipment id)      {"gtin", "lot", "sender", "receiver", "leg",
                                          "quantity", "order_ref" | null, "shipped",
                                          "status": in_transit | received | disputed,
                                          "counted", "received", "receiver_order_ref"
                                          (only if the receiver gave one)}

Shipped units leave the sender's holding at once; the receiver is credited with what it
counted, at most what was shipped (a count that differs marks the shipment disputed, and
the sender is told), so units are never created by a count.
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from cloud.contracts import access, args, gs1, lots_fields, participants
from cloud.contracts.engine import (
    Conflict,
    Context,
    Forbidden,
    Invalid,
    RecordType,
    View,
)

NAME: Final = "lots"
LOT: Final = RecordType(NAME, 1, "lot", private=False, grouped=True)
QUALITY: Final = RecordType(NAME, 2, "quality", private=False, grouped=True)
RECALL: Final = RecordType(NAME, 3, "recall", private=False, grouped=True)
CUSTODY: Final = RecordType(NAME, 4, "custody", private=True)
HOLDING: Final = RecordType(NAME, 5, "holding", private=True)
SHIPMENT: Final = RecordType(NAME, 6, "shipment", private=True)
# A participant's cold-storage licences (by participant id), written by `certify` and
# `revoke` (cloud/contracts/certificates.py); read by `ship` for a profile that needs one.
LICENCE: Final = RecordType(NAME, 7, "licence", private=False)
# Boxes on lots (cloud/contracts/lots_boxes.py): a box's attachment windows (by box key)
# and a lot's legs (by gtin, lot, leg name).
ATTACHMENT: Final = RecordType(NAME, 8, "attachment", private=True)
LEG: Final = RecordType(NAME, 9, "leg", private=True)
# Certificates (cloud/contracts/certificates.py): validity facts, the document by CID.
CERTIFICATE: Final = RecordType(NAME, 10, "certificate", private=False)
# A box's calibration (cloud/contracts/lots_boxes.py), by box key.
CALIBRATION: Final = RecordType(NAME, 11, "calibration", private=True)
# The cold-chain verdict last acted on (cloud/contracts/lots_coldchain.py), by gtin, lot.
COLDCHAIN: Final = RecordType(NAME, 12, "coldchain", private=False, grouped=True)

RELEASED: Final = "released"
QUARANTINED: Final = "quarantined"
REJECTED: Final = "rejected"
IN_TRANSIT: Final = "in_transit"
RECEIVED: Final = "received"
DISPUTED: Final = "disputed"
RECALL_CLASSES: Final = ("I", "II", "III")
HOLD_KINDS: Final = ("hold", "damage")
MAX_CHILDREN: Final = 1000  # a split's children; its envelope stays well under 64 KiB


def _lot_args(ctx: Context) -> tuple[str, str]:
    gtin = args.checked(ctx.args, "gtin", lots_fields.gtin14)
    return gtin, args.checked(ctx.args, "lot", lots_fields.lot_number)


def _lot(ctx: Context, gtin: str, lot: str) -> dict[str, Any]:
    """Return the lot's public record. Raises Conflict "lot" if it was never commissioned."""
    record = ctx.get(LOT, gtin, lot)
    if record is None:
        raise Conflict("lot", f"lot {gtin}/{lot} was never commissioned")
    return record


def _held(view: View, gtin: str, lot: str, holder: str) -> int:
    record = view.get(HOLDING, gtin, lot, holder)
    return 0 if record is None else int(record["quantity"])


def _set_held(ctx: Context, gtin: str, lot: str, holder: str, quantity: int) -> None:
    if quantity:
        ctx.put(HOLDING, [gtin, lot, holder], {"quantity": quantity})
    else:
        ctx.delete(HOLDING, gtin, lot, holder)


def _holder(ctx: Context, gtin: str, lot: str) -> int:
    """Return what the signer holds of the lot. Raises Conflict "holder" if nothing."""
    held = _held(ctx, gtin, lot, ctx.me.id)
    if held == 0:
        raise Conflict("holder", f"{ctx.me.did} holds none of lot {gtin}/{lot}")
    return held


def _movable(ctx: Context, gtin: str, lot: str) -> None:
    """Raises Conflict "recalled", "quarantined" or "rejected" for a lot that cannot move."""
    if ctx.get(RECALL, gtin, lot) is not None:
        raise Conflict("recalled", f"lot {gtin}/{lot} is recalled")
    quality = ctx.get(QUALITY, gtin, lot)
    assert quality is not None
    if quality["status"] != RELEASED:
        raise Conflict(quality["status"], f"lot {gtin}/{lot} is {quality['status']}")


def _set_quality(ctx: Context, gtin: str, lot: str, status: str, source: str, reason: str) -> None:
    value = {"status": status, "source": source, "reason": reason, "since": ctx.time}
    ctx.put(QUALITY, [gtin, lot], value)


def _at_most(quantity: int, held: int) -> None:
    if quantity > held:
        raise Conflict("quantity", f"quantity {quantity} exceeds the {held} held")


def _involve(custody: dict[str, Any], participant_id: str) -> None:
    if participant_id not in custody["involved"]:
        custody["involved"] = sorted([*custody["involved"], participant_id])


def _custody(ctx: Context, gtin: str, lot: str) -> dict[str, Any]:
    custody = ctx.get(CUSTODY, gtin, lot)
    assert custody is not None, "every commissioned lot has a custody record"
    return custody


def _manufacturer_or_regulator(ctx: Context, record: dict[str, Any]) -> None:
    me = ctx.me
    if me.role != "regulator" and me.id != record["manufacturer"]:
        raise Forbidden("role", f"{ctx.tx.body.type}: the lot's manufacturer's or the regulator's")


def commission(ctx: Context) -> None:
    """Commission a lot: args gtin, lot, expiry (AI 17 YYMMDD), quantity, unit, profile.
    Conflict "commissioned" if the GTIN already has that lot."""
    args.exact(ctx.args, ("gtin", "lot", "expiry", "quantity", "unit", "profile"))
    gtin, lot = _lot_args(ctx)
    today = gs1.today_of_ms(ctx.time)
    expiry = args.checked(ctx.args, "expiry", lambda v: lots_fields.expiry_date(v, today))
    quantity = args.integer(ctx.args, "quantity")
    unit = args.text(ctx.args, "unit", 32)
    profile = args.checked(ctx.args, "profile", lots_fields.storage_profile)
    if ctx.get(LOT, gtin, lot) is not None:
        raise Conflict("commissioned", f"lot {gtin}/{lot} is already commissioned")
    me = ctx.me.id
    identity = {
        "gtin": gtin,
        "lot": lot,
        "expiry": expiry,
        "unit": unit,
        "profile": profile,
        "manufacturer": me,
        "since": ctx.time,
    }
    _new_lot(ctx, identity, None, quantity, me, "commission")


def _new_lot(
    ctx: Context,
    identity: dict[str, Any],
    parent: str | None,
    quantity: int,
    holder: str,
    source: str,
) -> None:
    gtin, lot = identity["gtin"], identity["lot"]
    ctx.put(LOT, [gtin, lot], identity)
    _set_quality(ctx, gtin, lot, RELEASED, source, source)
    ctx.put(
        CUSTODY,
        [gtin, lot],
        {
            "parent": parent,
            "children": [],
            "involved": [holder],
            "in_transit": [],
            "quantity": quantity,
            "dispensed": 0,
        },
    )
    _set_held(ctx, gtin, lot, holder, quantity)


def ship(ctx: Context) -> None:
    """Ship units of a lot the signer holds: args gtin, lot, shipment (a new id), receiver
    (did), quantity, optional order_ref (needs the signer's PO/invoices cell). Conflict:
    "lot", "shipment exists", "holder", "quantity", "recalled"/"quarantined"/"rejected",
    "receiver" (not an active participant), "leg" (not the next role), "licence"."""
    args.exact(ctx.args, ("gtin", "lot", "shipment", "receiver", "quantity"), ("order_ref",))
    me = ctx.me
    gtin, lot = _lot_args(ctx)
    shipment = args.ident(ctx.args, "shipment")
    receiver_did, receiver_key = args.did(ctx.args, "receiver")
    quantity = args.integer(ctx.args, "quantity")
    order_ref = None
    if "order_ref" in ctx.args:
        access.check(me.role, access.ORDERS, Forbidden)
        order_ref = args.ident(ctx.args, "order_ref")
    record = _lot(ctx, gtin, lot)
    if ctx.get(SHIPMENT, shipment) is not None:
        raise Conflict("shipment exists", f"shipment {shipment} already exists")
    held = _holder(ctx, gtin, lot)
    _at_most(quantity, held)
    _movable(ctx, gtin, lot)
    receiver = participants.current(ctx, receiver_key)
    if receiver is None:
        raise Conflict("receiver", f"{receiver_did} is not a current participant's key")
    if receiver["status"] != participants.ACTIVE:
        raise Conflict("receiver", f"{receiver_did} is {receiver['status']}")
    want = access.NEXT_ROLE.get(me.role)
    if receiver["role"] != want:
        raise Conflict("leg", f"a {me.role} ships to a {want}, not to a {receiver['role']}")
    if record["profile"]["needs_licence"] and not licensed(ctx, receiver["id"], ctx.time):
        raise Conflict("licence", f"{receiver_did} has no valid cold-storage licence")
    _set_held(ctx, gtin, lot, me.id, held - quantity)
    ctx.put(
        SHIPMENT,
        [shipment],
        {
            "gtin": gtin,
            "lot": lot,
            "sender": me.id,
            "receiver": receiver["id"],
            "leg": access.OUTBOUND[me.role],
            "quantity": quantity,
            "order_ref": order_ref,
            "shipped": ctx.time,
            "status": IN_TRANSIT,
            "counted": None,
            "received": None,
        },
    )
    custody = _custody(ctx, gtin, lot)
    custody["in_transit"] = [*custody["in_transit"], shipment]
    ctx.put(CUSTODY, [gtin, lot], custody)
    ctx.notify(
        receiver["did"],
        {"type": "shipment", "shipment": shipment, "gtin": gtin, "lot": lot, "quantity": quantity},
    )


def licensed(view: View, participant_id: str, time_ms: int) -> bool:
    """Whether the participant holds a cold-storage licence valid at `time_ms` (a
    transaction's own time): issued, valid_from <= time < valid_until, not revoked (a
    revoked certificate leaves the LICENCE record)."""
    record = view.get(LICENCE, participant_id)
    if record is None:
        return False
    return any(start <= time_ms < until for start, until in record["certificates"].values())


def receive(ctx: Context) -> None:
    """Receive a shipment: args shipment, quantity (what was counted, 0 or more), optional
    order_ref (the receiver's own purchase order; needs its PO/invoices cell). Conflict
    "shipment" (unknown), "receiver" (meant for someone else), "received" (twice),
    "recalled". A count that differs from the shipped quantity marks it disputed."""
    args.exact(ctx.args, ("shipment", "quantity"), ("order_ref",))
    me = ctx.me
    shipment_id = args.ident(ctx.args, "shipment")
    counted = args.integer(ctx.args, "quantity", minimum=0)
    receiver_ref = None
    if "order_ref" in ctx.args:
        access.check(me.role, access.ORDERS, Forbidden)
        receiver_ref = args.ident(ctx.args, "order_ref")
    shipment = ctx.get(SHIPMENT, shipment_id)
    if shipment is None:
        raise Conflict("shipment", f"no shipment {shipment_id}")
    if shipment["receiver"] != me.id:
        raise Conflict("receiver", f"shipment {shipment_id} is meant for another participant")
    if shipment["status"] != IN_TRANSIT:
        raise Conflict("received", f"shipment {shipment_id} was already received")
    gtin, lot = shipment["gtin"], shipment["lot"]
    if ctx.get(RECALL, gtin, lot) is not None:
        raise Conflict("recalled", f"lot {gtin}/{lot} is recalled")
    credited = min(counted, shipment["quantity"])
    status = RECEIVED if counted == shipment["quantity"] else DISPUTED
    shipment.update(status=status, counted=counted, received=ctx.time)
    if receiver_ref is not None:
        shipment["receiver_order_ref"] = receiver_ref
    ctx.put(SHIPMENT, [shipment_id], shipment)
    _set_held(ctx, gtin, lot, me.id, _held(ctx, gtin, lot, me.id) + credited)
    custody = _custody(ctx, gtin, lot)
    custody["in_transit"] = [s for s in custody["in_transit"] if s != shipment_id]
    _involve(custody, me.id)
    ctx.put(CUSTODY, [gtin, lot], custody)
    if status == DISPUTED:
        sender = participants.by_id(ctx, shipment["sender"])
        ctx.notify(
            sender["did"],
            {
                "type": "disputed",
                "shipment": shipment_id,
                "shipped": shipment["quantity"],
                "counted": counted,
            },
        )


def split(ctx: Context) -> None:
    """Split the signer's whole holding of a lot into new child lots of the same product:
    args gtin, lot, children [{lot, quantity}]. Conflict "holder", "recalled"/"quarantined"/
    "rejected", "commissioned" (a child lot exists), "quantity" (children do not sum to the
    held quantity)."""
    args.exact(ctx.args, ("gtin", "lot", "children"))
    gtin, lot = _lot_args(ctx)
    children = _children(ctx.args["children"])
    record = _lot(ctx, gtin, lot)
    held = _holder(ctx, gtin, lot)
    _movable(ctx, gtin, lot)
    total = sum(quantity for _, quantity in children)
    if total != held:
        raise Conflict("quantity", f"children sum to {total}, want the {held} held")
    for child, _ in children:
        if ctx.get(LOT, gtin, child) is not None:
            raise Conflict("commissioned", f"lot {gtin}/{child} already exists")
    me = ctx.me.id
    _set_held(ctx, gtin, lot, me, 0)
    custody = _custody(ctx, gtin, lot)
    custody["children"] = [*custody["children"], *(child for child, _ in children)]
    ctx.put(CUSTODY, [gtin, lot], custody)
    for child, quantity in children:
        _new_lot(ctx, {**record, "lot": child, "since": ctx.time}, lot, quantity, me, "split")


def _children(value: object) -> list[tuple[str, int]]:
    """Return a split's children as (lot, quantity). Raises Invalid "args.children"."""
    if type(value) is not list or not 1 <= len(value) <= MAX_CHILDREN:
        raise Invalid("args.children", f"want a list of 1 to {MAX_CHILDREN} {{lot, quantity}}")
    out: list[tuple[str, int]] = []
    for i, child in enumerate(value):
        if type(child) is not dict or child.keys() != {"lot", "quantity"}:
            raise Invalid(f"args.children[{i}]", "want an object {lot, quantity}")
        with args.within(f"children[{i}]"):
            lot = args.checked(child, "lot", lots_fields.lot_number)
            quantity = args.integer(child, "quantity")
        out.append((lot, quantity))
    lots = [lot for lot, _ in out]
    if len(set(lots)) != len(lots):
        raise Invalid("args.children", "child lot numbers repeat")
    return out


def _expired(ctx: Context, expiry: str) -> bool:
    """Whether the tx's own time (UTC date) is past the expiry date."""
    day = datetime.datetime.fromtimestamp(ctx.time // 1000, datetime.UTC).date()
    return day.isoformat() > expiry


def dispense(ctx: Context) -> None:
    """Dispense units a pharmacy holds: args gtin, lot, quantity. Forbidden "role" for
    other roles; Conflict "holder", "quantity", "recalled"/"quarantined"/"rejected",
    "expired" (the tx's UTC date is after the expiry date)."""
    args.exact(ctx.args, ("gtin", "lot", "quantity"))
    if ctx.me.role != "pharmacy":
        raise Forbidden("role", f"dispense: a pharmacy's, not a {ctx.me.role}'s")
    gtin, lot = _lot_args(ctx)
    quantity = args.integer(ctx.args, "quantity")
    record = _lot(ctx, gtin, lot)
    held = _holder(ctx, gtin, lot)
    _at_most(quantity, held)
    _movable(ctx, gtin, lot)
    if _expired(ctx, record["expiry"]):
        raise Conflict("expired", f"lot {gtin}/{lot} expired on {record['expiry']}")
    _set_held(ctx, gtin, lot, ctx.me.id, held - quantity)
    custody = _custody(ctx, gtin, lot)
    custody["dispensed"] += quantity
    ctx.put(CUSTODY, [gtin, lot], custody)


def hold(ctx: Context) -> None:
    """Quarantine a lot the signer holds: args gtin, lot, kind (hold | damage), reason.
    Conflict "holder", "quarantined" (already), "rejected". Tells the manufacturer."""
    args.exact(ctx.args, ("gtin", "lot", "kind", "reason"))
    gtin, lot = _lot_args(ctx)
    kind = args.choice(ctx.args, "kind", HOLD_KINDS)
    reason = args.text(ctx.args, "reason")
    record = _lot(ctx, gtin, lot)
    _holder(ctx, gtin, lot)
    quality = ctx.get(QUALITY, gtin, lot)
    assert quality is not None
    if quality["status"] != RELEASED:
        raise Conflict(quality["status"], f"lot {gtin}/{lot} is already {quality['status']}")
    _set_quality(ctx, gtin, lot, QUARANTINED, kind, reason)
    maker = participants.by_id(ctx, record["manufacturer"])
    ctx.notify(maker["did"], {"type": kind, "gtin": gtin, "lot": lot, "reason": reason})


def dispose(ctx: Context) -> None:
    """Dispose a quarantined lot: args gtin, lot, outcome (released | rejected), reason. The
    lot's manufacturer or the regulator (Forbidden "role"). Conflict "not quarantined"."""
    args.exact(ctx.args, ("gtin", "lot", "outcome", "reason"))
    gtin, lot = _lot_args(ctx)
    outcome = args.choice(ctx.args, "outcome", (RELEASED, REJECTED))
    reason = args.text(ctx.args, "reason")
    record = _lot(ctx, gtin, lot)
    _manufacturer_or_regulator(ctx, record)
    quality = ctx.get(QUALITY, gtin, lot)
    assert quality is not None
    if quality["status"] != QUARANTINED:
        raise Conflict("not quarantined", f"lot {gtin}/{lot} is {quality['status']}")
    _set_quality(ctx, gtin, lot, outcome, "dispose", reason)
    event = {"type": "disposed", "gtin": gtin, "lot": lot, "outcome": outcome, "reason": reason}
    for did in holders_to_tell(ctx, [(gtin, lot)]):
        ctx.notify(did, event)


def recall(ctx: Context) -> None:
    """Recall a lot and every lot split from it: args gtin, lot, class (I | II | III),
    reason. The lot's manufacturer or the regulator (Forbidden "role"); Conflict "recalled"
    if the lot already is. Descendants already recalled keep their own recall. Every
    holder of a recalled lot, and every receiver of one in transit, is told once."""
    args.exact(ctx.args, ("gtin", "lot", "class", "reason"))
    gtin, lot = _lot_args(ctx)
    recall_class = args.choice(ctx.args, "class", RECALL_CLASSES)
    reason = args.text(ctx.args, "reason")
    record = _lot(ctx, gtin, lot)
    _manufacturer_or_regulator(ctx, record)
    if ctx.get(RECALL, gtin, lot) is not None:
        raise Conflict("recalled", f"lot {gtin}/{lot} is already recalled")
    value = {"class": recall_class, "reason": reason, "by": ctx.me.role, "since": ctx.time}
    lots = [(gtin, each) for each in descendants(ctx, gtin, lot)]
    for each in lots:
        if each == (gtin, lot) or ctx.get(RECALL, *each) is None:
            ctx.put(RECALL, list(each), value)
    event = {
        "type": "recall",
        "gtin": gtin,
        "lot": lot,
        "class": recall_class,
        "reason": reason,
        "lots": [each for _, each in lots],
    }
    for did in holders_to_tell(ctx, lots):
        ctx.notify(did, event)


def holders_to_tell(view: View, lots: list[tuple[str, str]]) -> list[str]:
    """Return the current DIDs of everyone holding units of `lots` or about to receive some,
    sorted, each once."""
    ids: set[str] = set()
    for gtin, lot in lots:
        custody = view.get(CUSTODY, gtin, lot)
        assert custody is not None
        ids.update(p for p in custody["involved"] if _held(view, gtin, lot, p))
        for shipment in custody["in_transit"]:
            record = view.get(SHIPMENT, shipment)
            assert record is not None
            ids.add(record["receiver"])
    return sorted(participants.by_id(view, p)["did"] for p in ids)


def descendants(view: View, gtin: str, lot: str) -> list[str]:
    """Return the lot and every lot split from it, at any depth, parents before children
    (lot numbers; all of one GTIN). Requires a commissioned lot."""
    return list(_walk(view, gtin, lot))


def _walk(view: View, gtin: str, lot: str) -> Iterator[str]:
    queue = deque([lot])
    while queue:
        here = queue.popleft()
        yield here
        custody = view.get(CUSTODY, gtin, here)
        assert custody is not None
        queue.extend(custody["children"])


def ancestors(view: View, gtin: str, lot: str) -> list[str]:
    """Return the lots the lot was split from, nearest first. Requires a commissioned lot."""
    out = []
    custody = view.get(CUSTODY, gtin, lot)
    while custody is not None and custody["parent"] is not None:
        out.append(custody["parent"])
        custody = view.get(CUSTODY, gtin, custody["parent"])
    return out


def involved(view: View, gtin: str, lot: str, participant_id: str) -> bool:
    """Whether the participant is in the lot's custody chain (docs/contracts.md §5, "if
    involved"): it held, shipped or received the lot, one of its ancestors or one of its
    descendants. False for a lot never commissioned."""
    if view.get(LOT, gtin, lot) is None:
        return False
    for each in (*ancestors(view, gtin, lot), *descendants(view, gtin, lot)):
        custody = view.get(CUSTODY, gtin, each)
        assert custody is not None
        if participant_id in custody["involved"]:
            return True
    return False


@dataclass(frozen=True)
class Holding:
    """Units of a lot that one participant holds (its current DID and role)."""

    did: str
    role: str
    quantity: int


@dataclass(frozen=True)
class InTransit:
    """A shipment of the lot not yet received."""

    shipment: str
    sender: str
    receiver: str
    quantity: int


@dataclass(frozen=True)
class TracedLot:
    """One lot in a trace: its parent, holders, shipments in transit, units dispensed,
    quality status and whether it is recalled."""

    gtin: str
    lot: str
    parent: str | None
    holders: tuple[Holding, ...]
    in_transit: tuple[InTransit, ...]
    dispensed: int
    status: str
    recalled: bool


def trace(view: View, gtin: str, lot: str) -> tuple[TracedLot, ...]:
    """Return the lot and every descendant lot (parents first) with holders and quantities:
    the recall trace. Raises KeyError if the lot was never commissioned. Unfiltered: the
    read policy decides what a reader sees of it."""
    if view.get(LOT, gtin, lot) is None:
        raise KeyError(f"{gtin}/{lot}")
    out = []
    for each in descendants(view, gtin, lot):
        custody = view.get(CUSTODY, gtin, each)
        quality = view.get(QUALITY, gtin, each)
        assert custody is not None and quality is not None
        holders = []
        for pid in custody["involved"]:
            if held := _held(view, gtin, each, pid):
                p = participants.by_id(view, pid)
                holders.append(Holding(p["did"], p["role"], held))
        moving = []
        for shipment in custody["in_transit"]:
            s = view.get(SHIPMENT, shipment)
            assert s is not None
            sender = participants.by_id(view, s["sender"])["did"]
            receiver = participants.by_id(view, s["receiver"])["did"]
            moving.append(InTransit(shipment, sender, receiver, s["quantity"]))
        out.append(
            TracedLot(
                gtin,
                each,
                custody["parent"],
                tuple(holders),
                tuple(moving),
                custody["dispensed"],
                quality["status"],
                view.get(RECALL, gtin, each) is not None,
            )
        )
    return tuple(out)


# The rules of this module; cloud/contracts/catalog.py joins them with lots_boxes' and
# certificates' into the one "lots" contract.
RULES: Final = {
    "commission": commission,
    "ship": ship,
    "receive": receive,
    "split": split,
    "dispense": dispense,
    "hold": hold,
    "dispose": dispose,
    "recall": recall,
}
