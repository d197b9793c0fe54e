"""Serialized packs (docs/contracts.md §6): transactions of the lots contract that register a
lot's pack serials (GS1 AI 21), move them with a split, name them in a shipment (packed,
optionally in a logistic unit with an SSCC), and decommission them at the pharmacy counter
(EU 2016/161: verify, decommission, undo within 10 days; a suspect scan is its own signed
report). Pure: no storage, no clock.

Per-serial state stays out of the log's entries and, as far as it can, out of the state
tree: a registration is one public record holding its count and an RFC 6962 Merkle root
over its sorted serials; a serial gets a record of its own only when its state departs from
its registration (decommissioned, or moved to a child lot by a split). Which registration
holds a serial the serial index knows (cloud/contracts/pack_index.py, State.packs).

Records of contract "lots" (type bytes 13 to 17; lots.py has 1 to 12):

    SERIALS       private (gtin, lot)           {"registrations": n, "registered",
                                                 "moved_in", "moved_out", "decommissioned"}
                                                (the lot's packs, counted)
    REGISTRATION  public  (gtin, lot, n)        {"count", "root" (hex: RFC 6962 MTH over the
                                                 sorted serials' UTF-8), "since"}
    PACK          public  (gtin, serial)        {"lot" (the lot it is in now), "status":
                                                 active | dispensed | destroyed | stolen |
                                                 exported | sample}  (absent: active, in
                                                 its registered lot)
    DECOMMISSION  private (gtin, serial)        {"status", "lot", "by" (pharmacy id),
                                                 "since"}  (absent unless decommissioned)
    SUSPECT       private (report: its tx id)   {"gtin", "serial", "lot" | null, "expiry" |
                                                 null, "reason", "verdict", "place",
                                                 "time", "by"}
"""

from __future__ import annotations

import re
from typing import Any, Final

from cloud.contracts import args, gs1, lots, lots_fields, pack_facts, participants
from cloud.contracts.didkey import from_point
from cloud.contracts.engine import Conflict, Context, Forbidden, Invalid
from cloud.contracts.pack_index import MAX_PER_REGISTRATION, Registration
from gateway import merkle

SERIALS: Final = pack_facts.SERIALS
REGISTRATION: Final = pack_facts.REGISTRATION
PACK: Final = pack_facts.PACK
DECOMMISSION: Final = pack_facts.DECOMMISSION
SUSPECT: Final = pack_facts.SUSPECT

ACTIVE: Final = pack_facts.ACTIVE
DISPENSED: Final = "dispensed"
DECOMMISSIONED: Final = ("dispensed", "destroyed", "stolen", "exported", "sample")
# A pack leaving the supply chain to a patient or a market must be fit for it; a destroyed
# or stolen one is recorded whatever its lot's state.
NEEDS_FIT_LOT: Final = frozenset({"dispensed", "exported", "sample"})
# EU 2016/161 Art. 13: never undone for a destroyed or stolen pack
NEVER_UNDONE: Final = frozenset({"destroyed", "stolen"})
UNDO_WINDOW_MS: Final = 10 * 86_400_000  # Art. 13(1)(b): within 10 days
SUSPECT_REASONS: Final = pack_facts.SUSPECT_CODES
_SET82: Final = re.compile(
    "[" + re.escape("".join(sorted(gs1.CSET82))) + f"]{{1,{gs1.SERIAL_MAX}}}", re.ASCII
)


def _lot_args(ctx: Context) -> tuple[str, str]:
    gtin = args.checked(ctx.args, "gtin", lots_fields.gtin14)
    return gtin, args.checked(ctx.args, "lot", lots_fields.lot_number)


def _serial_list(value: object, name: str, most: int) -> list[str]:
    """Return a list of 1 to `most` distinct AI 21 serials. Raises Invalid naming the first
    bad or repeated one ("args.serials[3]")."""
    if type(value) is not list or not 1 <= len(value) <= most:
        raise Invalid(f"args.{name}", f"want a list of 1 to {most} AI 21 serials")
    match = _SET82.fullmatch
    for i, serial in enumerate(value):
        if type(serial) is not str or match(serial) is None:
            try:
                gs1.serial(serial)
            except ValueError as e:
                raise Invalid(f"args.{name}[{i}]", str(e)) from None
            raise Invalid(f"args.{name}[{i}]", f"got {str(serial)[:40]!r}, want a string")
    if len(set(value)) != len(value):
        seen: set[str] = set()
        for i, serial in enumerate(value):
            if serial in seen:
                raise Invalid(f"args.{name}[{i}]", f"serial {serial!r} repeats")
            seen.add(serial)
    return value


def _counts(ctx: Context, gtin: str, lot: str) -> dict[str, Any]:
    found = ctx.get(SERIALS, gtin, lot)
    if found is not None:
        return found
    return {"registrations": 0, "registered": 0, "moved_in": 0, "moved_out": 0, "decommissioned": 0}


def serialize(ctx: Context) -> None:
    """Register serials of a lot's packs: args gtin, lot, serials (1 to 100,000 AI 21
    values, distinct). The lot's manufacturer only (Forbidden "role"). Conflict "lot"
    (never commissioned), "quantity" (more serials than the lot has units), "serial" (one is
    registered already for this GTIN, in any lot: the first named)."""
    args.exact(ctx.args, ("gtin", "lot", "serials"))
    gtin, lot = _lot_args(ctx)
    serials = _serial_list(ctx.args["serials"], "serials", MAX_PER_REGISTRATION)
    record = lots._lot(ctx, gtin, lot)
    if ctx.me.id != record["manufacturer"]:
        raise Forbidden("role", "serialize: the lot's manufacturer's")
    custody = lots._custody(ctx, gtin, lot)
    counts = _counts(ctx, gtin, lot)
    total = counts["registered"] + counts["moved_in"] + len(serials)
    if total > custody["quantity"]:
        raise Conflict("quantity", f"{total} serials would exceed the lot's {custody['quantity']}")
    ordered = sorted(serials)  # set 82 is ASCII: the order of their UTF-8 bytes
    number = counts["registrations"] + 1
    registration = Registration.of(gtin, lot, number, ordered)
    if ctx.packs.first_known(gtin, ordered, registration.fps) is not None:
        known = ctx.packs.first_known(gtin, serials)  # the first in the order given
        assert known is not None
        i, found = known
        where = found.registration.lot
        raise Conflict("serial", f"serial {serials[i]!r} of {gtin} is registered in lot {where}")
    root = merkle.root(registration.blob.split(b"\n"))
    counts.update(registrations=number, registered=counts["registered"] + len(serials))
    ctx.put(SERIALS, [gtin, lot], counts)
    value = {"count": len(ordered), "root": root.hex(), "since": ctx.time}
    ctx.put(REGISTRATION, [gtin, lot, str(number)], value)
    ctx.packs.add(registration, ctx.me.id)


def split(ctx: Context) -> None:
    """lots.split, and for a lot with packs in it, which packs each child gets: args as
    lots.split plus `serials` {child lot: [serial, ...]} naming every child, as many serials
    as its quantity, each active and in the split lot now (Invalid "args.serials";
    Conflict "serial" naming the first that is not). A lot with no active pack splits as
    before, without `serials`."""
    whole = ctx.args
    given = whole.get("serials")
    ctx.args = {k: v for k, v in whole.items() if k != "serials"}
    try:
        lots.split(ctx)
    finally:
        ctx.args = whole
    gtin, lot = _lot_args(ctx)
    counts = _counts(ctx, gtin, lot)
    active = (
        counts["registered"] + counts["moved_in"] - counts["moved_out"] - counts["decommissioned"]
    )
    if given is None:
        if active:
            raise Invalid("args.serials", f"lot {gtin}/{lot} has packs: name each child's")
        return
    if not active:
        raise Invalid("args.serials", f"lot {gtin}/{lot} has no active packs to name")
    children = {child["lot"]: child["quantity"] for child in whole["children"]}
    if type(given) is not dict or given.keys() != children.keys():
        raise Invalid("args.serials", f"want an object naming each child lot: {sorted(children)}")
    seen: set[str] = set()
    moved = 0
    for child, quantity in children.items():
        serials = _serial_list(given[child], f"serials.{child}", quantity)
        if len(serials) != quantity:
            raise Invalid(f"args.serials.{child}", f"got {len(serials)}, want {quantity}")
        child_counts = _counts(ctx, gtin, child)
        for serial in serials:
            if serial in seen:
                raise Invalid(f"args.serials.{child}", f"serial {serial!r} named twice")
            seen.add(serial)
            facts = pack_facts.pack(ctx, gtin, serial)
            if facts is None or facts.lot != lot or facts.status != ACTIVE:
                where = "unknown" if facts is None else f"{facts.status} in lot {facts.lot}"
                raise Conflict("serial", f"serial {serial!r}: {where}, not active in lot {lot}")
            ctx.put(PACK, [gtin, serial], {"lot": child, "status": ACTIVE})
        child_counts["moved_in"] += len(serials)
        moved += len(serials)
        ctx.put(SERIALS, [gtin, child], child_counts)
    counts["moved_out"] += moved
    ctx.put(SERIALS, [gtin, lot], counts)


# A shipment names at most as many packs as a registration holds (a bulk transaction, as
# serialize and split: tx.BULK_TYPES), and at most its quantity.
MAX_PACKED: Final = MAX_PER_REGISTRATION
# The members a packed shipment adds to its lots.SHIPMENT record.
PACKED: Final = "packs"  # how many packs it names (the serials stay in the transaction)
SSCC: Final = "sscc"  # the logistic unit's SSCC (AI 00), or null


def ship(ctx: Context) -> None:
    """lots.ship, optionally naming the packs shipped: args as lots.ship plus `serials` (1 to
    the quantity shipped, at most MAX_PACKED, AI 21 values, distinct: Invalid
    "args.serials" / "args.serials[i]" naming the first bad or repeated one) and `sscc` (AI
    00, 18 digits with the GS1 check digit, the logistic unit holding them; only with
    serials: Invalid "args.sscc"). Each serial must be registered for the GTIN, in the
    shipped lot now and active (not decommissioned): Conflict "serial" naming the first that
    is not. The SHIPMENT record then holds PACKED (how many) and SSCC; the serials are read
    from the transaction (the EPCIS export's AggregationEvents)."""
    whole = ctx.args
    serials, sscc = None, None
    if "serials" in whole:
        serials = _serial_list(whole["serials"], "serials", MAX_PACKED)
    if "sscc" in whole:
        if serials is None:
            raise Invalid("args.sscc", "an SSCC names the unit holding the serials: give serials")
        sscc = args.checked(whole, "sscc", _sscc)
    ctx.args = {k: v for k, v in whole.items() if k not in ("serials", "sscc")}
    try:
        lots.ship(ctx)
    finally:
        ctx.args = whole
    if serials is None:
        return
    gtin, lot = _lot_args(ctx)
    quantity = whole["quantity"]
    if len(serials) > quantity:
        raise Invalid("args.serials", f"got {len(serials)} serials, want at most {quantity}")
    for serial in serials:
        facts = pack_facts.pack(ctx, gtin, serial)
        if facts is None or facts.lot != lot or facts.status != ACTIVE:
            where = "not registered" if facts is None else f"{facts.status} in lot {facts.lot}"
            raise Conflict("serial", f"serial {serial!r} of {gtin}: {where}, not active in {lot}")
    shipment = whole["shipment"]
    record = ctx.get(lots.SHIPMENT, shipment)
    assert record is not None, "lots.ship wrote it"
    ctx.put(lots.SHIPMENT, [shipment], {**record, PACKED: len(serials), SSCC: sscc})


def _sscc(value: object) -> str:
    if type(value) is not str:
        raise ValueError(f"got {type(value).__name__}, want a string of 18 digits")
    return gs1.sscc(value)


def _pack_args(ctx: Context) -> tuple[str, str]:
    gtin = args.checked(ctx.args, "gtin", lots_fields.gtin14)
    return gtin, args.checked(ctx.args, "serial", _serial)


def _serial(value: object) -> str:
    if type(value) is not str:
        raise ValueError(f"got {type(value).__name__}, want a string")
    return gs1.serial(value)


def _pharmacy(ctx: Context) -> str:
    if ctx.me.role != "pharmacy":
        raise Forbidden("role", f"{ctx.tx.body.type}: a pharmacy's, not a {ctx.me.role}'s")
    return ctx.me.id


def _fit(ctx: Context, gtin: str, lot: str, expiry: str) -> None:
    """Raises Conflict "recalled"/"quarantined"/"rejected"/"expired" for a lot whose packs
    may not go to a patient at this transaction's time."""
    lots._movable(ctx, gtin, lot)
    if lots._expired(ctx, expiry):
        raise Conflict("expired", f"lot {gtin}/{lot} expired on {expiry}")


def _move_units(ctx: Context, gtin: str, lot: str, status: str, by: int) -> None:
    """Take `by` units (1 or -1) of the signer's holding out of stock for a pack decommissioned
    as `status` (-1: put back by an undo); a dispensed pack counts as a dispense."""
    me = ctx.me.id
    held = lots._held(ctx, gtin, lot, me)
    lots._set_held(ctx, gtin, lot, me, held - by)
    if status == DISPENSED:
        custody = lots._custody(ctx, gtin, lot)
        custody["dispensed"] += by
        ctx.put(lots.CUSTODY, [gtin, lot], custody)
    counts = _counts(ctx, gtin, lot)
    counts["decommissioned"] += by
    ctx.put(SERIALS, [gtin, lot], counts)


def decommission(ctx: Context) -> None:
    """Decommission a pack: args gtin, serial, status (dispensed | destroyed | stolen |
    exported | sample). A pharmacy holding the pack's lot (Forbidden "role"; Conflict
    "holder"). Conflict "serial" (not registered: the client files a suspect report),
    "decommissioned" (already: a second dispense is a suspect), and for dispensed, exported
    and sample "recalled"/"quarantined"/"rejected"/"expired". Takes one unit from the
    pharmacy's holding (a dispense counts in the lot's dispensed units, as lots.dispense)."""
    args.exact(ctx.args, ("gtin", "serial", "status"))
    me = _pharmacy(ctx)
    gtin, serial = _pack_args(ctx)
    status = args.choice(ctx.args, "status", DECOMMISSIONED)
    facts = pack_facts.pack(ctx, gtin, serial)
    if facts is None:
        raise Conflict("serial", f"serial {serial!r} of {gtin} is not registered")
    if facts.status != ACTIVE:
        raise Conflict("decommissioned", f"pack {gtin}/{serial} is already {facts.status}")
    lots._holder(ctx, gtin, facts.lot)
    if status in NEEDS_FIT_LOT:
        _fit(ctx, gtin, facts.lot, facts.expiry)
    _move_units(ctx, gtin, facts.lot, status, 1)
    ctx.put(PACK, [gtin, serial], {"lot": facts.lot, "status": status})
    value = {"status": status, "lot": facts.lot, "by": me, "since": ctx.time}
    ctx.put(DECOMMISSION, [gtin, serial], value)


def undo(ctx: Context) -> None:
    """Undo a decommission (EU 2016/161 Art. 13): args gtin, serial. Only the pharmacy that
    decommissioned it (Forbidden "decommissioner"), within 10 days of that transaction's
    time (Conflict "undo window"), never for a destroyed or stolen pack (Conflict "status")
    nor one whose lot is expired, recalled or rejected (withdrawn) now. Conflict "serial"
    (unknown), "not decommissioned"."""
    args.exact(ctx.args, ("gtin", "serial"))
    me = _pharmacy(ctx)
    gtin, serial = _pack_args(ctx)
    facts = pack_facts.pack(ctx, gtin, serial)
    if facts is None:
        raise Conflict("serial", f"serial {serial!r} of {gtin} is not registered")
    done = ctx.get(DECOMMISSION, gtin, serial)
    if done is None:
        raise Conflict("not decommissioned", f"pack {gtin}/{serial} is active")
    if done["by"] != me:
        raise Forbidden("decommissioner", "undo: only the pharmacy that decommissioned the pack")
    if ctx.time - done["since"] > UNDO_WINDOW_MS:
        raise Conflict("undo window", f"decommissioned at {done['since']}, over 10 days ago")
    if done["status"] in NEVER_UNDONE:
        raise Conflict("status", f"a {done['status']} pack is never put back")
    if ctx.get(lots.RECALL, gtin, facts.lot) is not None:
        raise Conflict("recalled", f"lot {gtin}/{facts.lot} is recalled")
    if facts.quality == lots.REJECTED:
        raise Conflict("rejected", f"lot {gtin}/{facts.lot} is rejected (withdrawn)")
    if lots._expired(ctx, facts.expiry):
        raise Conflict("expired", f"lot {gtin}/{facts.lot} expired on {facts.expiry}")
    _move_units(ctx, gtin, facts.lot, done["status"], -1)
    ctx.delete(DECOMMISSION, gtin, serial)
    if facts.lot == facts.registered_lot:
        ctx.delete(PACK, gtin, serial)
    else:
        ctx.put(PACK, [gtin, serial], {"lot": facts.lot, "status": ACTIVE})


def suspect(ctx: Context) -> None:
    """File a suspect scan (a pharmacy's signed report; the refused decommission leaves
    nothing, this stays): args gtin, serial, reason (one of SUSPECT_REASONS), place (where
    the scan was: 1 to 200 characters), optional lot and expiry (AI 10 and AI 17 as the pack
    carries them). The report records the ledger's own verdict at its time beside the
    pharmacy's reason; the GTIN's manufacturer and every regulator are alerted with the
    scan's place and time (the transaction's)."""
    args.exact(ctx.args, ("gtin", "serial", "reason", "place"), ("lot", "expiry"))
    me = _pharmacy(ctx)
    gtin, serial = _pack_args(ctx)
    reason = args.choice(ctx.args, "reason", SUSPECT_REASONS)
    place = args.text(ctx.args, "place")
    lot = args.checked(ctx.args, "lot", lots_fields.lot_number) if "lot" in ctx.args else None
    expiry = None
    if "expiry" in ctx.args:
        today = gs1.today_of_ms(ctx.time)
        args.checked(ctx.args, "expiry", lambda v: lots_fields.expiry_date(v, today))
        expiry = ctx.args["expiry"]
    verdict = pack_facts.check(ctx, gtin, serial, lot, expiry, ctx.time)
    report = {
        "gtin": gtin,
        "serial": serial,
        "lot": lot,
        "expiry": expiry,
        "reason": reason,
        "verdict": verdict.code,
        "place": place,
        "time": ctx.time,
        "by": me,
    }
    ctx.put(SUSPECT, [ctx.tx_id], report)
    alert = {"type": "suspect", "report": ctx.tx_id, **report}
    del alert["by"]
    maker = _maker_of(ctx, gtin, serial, lot)
    if maker is not None:
        ctx.notify(participants.by_id(ctx, maker)["did"], {**alert, "pharmacy": ctx.me.did})
    for key in sorted(ctx.regulators):
        ctx.notify(from_point(b"\x02" + key), alert)  # a regulator's feed: its x-only key's


def _maker_of(ctx: Context, gtin: str, serial: str, lot: str | None) -> str | None:
    """The manufacturer to alert: of the pack's registered lot, else of the lot the pack
    names, else the GTIN's first serializer; None if the ledger knows none."""
    found = ctx.packs.find(gtin, serial)
    if found is not None:
        lot = found.registration.lot
    record = ctx.get(lots.LOT, gtin, lot) if lot is not None else None
    if record is not None:
        return str(record["manufacturer"])
    return ctx.packs.maker(gtin)


# cloud/contracts/catalog.py joins these into the "lots" contract; `split` and `ship` replace
# lots.split and lots.ship (each calls it, then moves or names the packs).
RULES: Final = {
    "serialize": serialize,
    "ship": ship,
    "split": split,
    "decommission": decommission,
    "undo": undo,
    "suspect": suspect,
}
