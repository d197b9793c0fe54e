"""Boxes on lots (docs/contracts.md §4, issue 11 §4 and §6): `attach` puts a registered box on
a shipment or on a lot's storage for a time window; `calibrate` records a box's calibration.

Who: only the participant that controls the box's owner key (participants.controller: the
owner key its admission named, or its own key) may attach or calibrate a box; the registry's
boxes reach the contract as State.boxes (box key -> owner key), fed in log order.

Windows (ms, like a transaction's time): [start, end], end null while open. A window never
starts before its transaction's time, so no one can choose readings after seeing them; a
later attach of the same box to the same leg may only extend it (the same start, a later or
open end), and only while it is still open at that transaction's time. A leg starts at its
first window's start; a later box on it may not start earlier.

Records (lots.py declares them, both private):

    ATTACHMENT (box hex)              {"windows": [{"leg", "gtin", "lot", "shipment" | null,
                                       "start", "end" | null, "by" (id)}, ...] by leg}
    LEG (gtin, lot, leg)              {"start" (ms), "shipment" | null, "boxes": [hex, ...]}
    CALIBRATION (box hex)             {"offset_cc", "date", "due" (ms), "by" (id)}

A shipment's leg is named "shipment:<id>"; a holder's storage "storage:<holder id>".
"""

from __future__ import annotations

from typing import Any, Final

from cloud.contracts import access, args, lots, lots_fields, participants
from cloud.contracts.engine import Conflict, Context, Forbidden, Invalid, View
from gateway import registry_change

MAX_OFFSET_CC: Final = 1000  # ±10 °C: a larger correction is a broken sensor, not a calibration


def _box(ctx: Context) -> bytes:
    """Return args.box (an x-only key, 64 lower-case hex digits) if the signer controls its
    owner key. Invalid "args.box"; Conflict "box" (not registered); Forbidden "owner"."""
    value = ctx.args["box"]
    if type(value) is not str or not participants.HEX32.fullmatch(value):
        raise Invalid("args.box", f"got {str(value)[:70]!r}, want 64 lower-case hex digits")
    box = bytes.fromhex(value)
    owner = ctx.box_owner(box)
    if owner is None:
        raise Conflict("box", f"box {value} is not registered")
    if participants.controller(ctx, owner) != ctx.me.id:
        raise Forbidden("owner", f"box {value}'s owner key {owner.hex()} is not the signer's")
    return box


def _time(ctx: Context, name: str) -> int:
    return args.integer(ctx.args, name, minimum=0)


def attach(ctx: Context) -> None:
    """Attach a box for a window: args box, start, end (ms or null), and either shipment (one
    the signer sent, in transit) or gtin and lot (storage of a lot the signer holds).
    Invalid "args.end" (not after start); Conflict "box", "shipment", "holder", "window"
    (starts before the tx time, or before its leg), "shortened" (a re-attach that does not
    contain the window it replaces), "ended" (re-attach after the window ended), "recalled";
    Forbidden "owner"."""
    if "shipment" in ctx.args:
        args.exact(ctx.args, ("box", "shipment", "start", "end"))
    else:
        args.exact(ctx.args, ("box", "gtin", "lot", "start", "end"))
    me = ctx.me
    box = _box(ctx)
    start = _time(ctx, "start")
    end = None if ctx.args["end"] is None else _time(ctx, "end")
    if end is not None and end <= start:
        raise Invalid("args.end", f"got {end}, want null or after start {start}")
    shipment_id: str | None = None
    if "shipment" in ctx.args:
        shipment_id = args.ident(ctx.args, "shipment")
        shipment = ctx.get(lots.SHIPMENT, shipment_id)
        if shipment is None or shipment["sender"] != me.id:
            raise Conflict("shipment", f"no shipment {shipment_id} sent by the signer")
        if shipment["status"] != lots.IN_TRANSIT:
            raise Conflict("shipment", f"shipment {shipment_id} was already received")
        gtin, lot, leg = shipment["gtin"], shipment["lot"], f"shipment:{shipment_id}"
    else:
        access.check(me.role, access.QUALITY, Forbidden)
        gtin = args.checked(ctx.args, "gtin", lots_fields.gtin14)
        lot = args.checked(ctx.args, "lot", lots_fields.lot_number)
        if ctx.get(lots.LOT, gtin, lot) is None:
            raise Conflict("lot", f"lot {gtin}/{lot} was never commissioned")
        if not ctx.get(lots.HOLDING, gtin, lot, me.id):
            raise Conflict("holder", f"{me.did} holds none of lot {gtin}/{lot}")
        leg = f"storage:{me.id}"
    if ctx.get(lots.RECALL, gtin, lot) is not None:
        raise Conflict("recalled", f"lot {gtin}/{lot} is recalled")
    record = ctx.get(lots.ATTACHMENT, box.hex()) or {"windows": []}
    windows: list[dict[str, Any]] = record["windows"]
    subject = (gtin, lot, leg)
    old = next((w for w in windows if (w["gtin"], w["lot"], w["leg"]) == subject), None)
    if old is None:
        if start < ctx.time:
            raise Conflict("window", f"start {start} is before the transaction's time {ctx.time}")
    else:
        _extends(ctx, old, start, end)
        windows.remove(old)
    leg_record = ctx.get(lots.LEG, gtin, lot, leg)
    if leg_record is None:
        leg_record = {"start": start, "shipment": shipment_id, "boxes": []}
    elif start < leg_record["start"]:
        raise Conflict("window", f"start {start} is before its leg's start {leg_record['start']}")
    if box.hex() not in leg_record["boxes"]:
        leg_record["boxes"] = sorted([*leg_record["boxes"], box.hex()])
    ctx.put(lots.LEG, [gtin, lot, leg], leg_record)
    window = {"leg": leg, "gtin": gtin, "lot": lot, "shipment": shipment_id}
    windows.append({**window, "start": start, "end": end, "by": me.id})
    windows.sort(key=lambda w: (w["gtin"], w["lot"], w["leg"]))
    ctx.put(lots.ATTACHMENT, [box.hex()], {"windows": windows})


def _extends(ctx: Context, old: dict[str, Any], start: int, end: int | None) -> None:
    """Require a re-attach to extend the window it replaces: the same start, an end not
    earlier (null: open), while the old window is still open at the tx time."""
    if old["end"] is not None and old["end"] < ctx.time:
        raise Conflict("ended", f"the window ended at {old['end']}, before {ctx.time}")
    shorter = end is not None and (old["end"] is None or end < old["end"])
    if start != old["start"] or shorter:
        want = f"start {old['start']} and an end at or after {old['end']} (or null)"
        raise Conflict("shortened", f"got [{start}, {end}], want {want}")


def calibrate(ctx: Context) -> None:
    """Record a box's calibration: args box, offset (centi-°C, ±MAX_OFFSET_CC), date, due
    (ms; due after date). Forbidden "owner"; Conflict "box"; Invalid for the fields."""
    args.exact(ctx.args, ("box", "offset", "date", "due"))
    box = _box(ctx)
    offset = ctx.args["offset"]
    if type(offset) is not int or not -MAX_OFFSET_CC <= offset <= MAX_OFFSET_CC:
        raise Invalid("args.offset", f"got {str(offset)[:20]!r}, want centi-°C within ±1000")
    date = _time(ctx, "date")
    due = _time(ctx, "due")
    if due <= date:
        raise Invalid("args.due", f"got {due}, want after the calibration date {date}")
    value = {"offset_cc": offset, "date": date, "due": due, "by": ctx.me.id}
    ctx.put(lots.CALIBRATION, [box.hex()], value)


def calibration_due_s(view: View, box: str) -> int | None:
    """Return the first second (Unix) at which box `box` (hex)'s calibration is due, or None
    if it has none: coldchain.LotColdChain.summary flags readings at or after it. A box never
    calibrated is not flagged (docs/contracts.md §4)."""
    record = view.get(lots.CALIBRATION, box)
    return None if record is None else ceil_s(int(record["due"]))


def ceil_s(ms: int) -> int:
    """Return the first whole second (Unix) at or after `ms`: readings are timed in seconds,
    windows and due dates in ms like a transaction's time."""
    return -(-ms // 1000)


def registered_box(entry: bytes) -> tuple[bytes, bytes] | None:
    """Return (box key, owner key) if a registry log entry (0x02, kind byte included)
    registers a box: what whoever applies the log sets in State.boxes; None for a gateway or
    an attachment. Raises RegistryError for an entry that does not parse or verify."""
    owner, _, change = registry_change.parse_entry(entry[1:])
    if isinstance(change, registry_change.BoxRegistration):
        return change.key, owner
    return None


def windows(view: View, box: bytes) -> list[dict[str, Any]]:
    """Return the box's attachment windows (ATTACHMENT), [] if it was never attached."""
    record = view.get(lots.ATTACHMENT, box.hex())
    return [] if record is None else list(record["windows"])


RULES: Final = {"attach": attach, "calibrate": calibrate}
