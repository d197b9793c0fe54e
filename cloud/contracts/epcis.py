"""GS1 EPCIS 2.0 (JSON-LD) events of a lot, built from the ledger's applied transactions
and the cold chain's aggregates (docs/contracts.md §4 "EPCIS"), filtered by the read policy.

Pure: the caller hands over, per lot, its applied transactions (LedgerTx: the stored
canonical bodies with their log index, id and time), its cold-chain quarantines and its
history (lots_coldchain.History, the aggregates: no reading is read again), and a View to
name participants and shipments. One function per event kind:

    commission        ObjectEvent ADD, bizStep commissioning, disposition active, ilmd
                      (lot number, expiry), bizLocation the manufacturer's DID
    ship              ObjectEvent OBSERVE shipping / in_transit, readPoint the sender's DID,
                      sourceList and destinationList (owning_party and possessing_party:
                      sender and receiver DIDs), bizTransactionList: the shipment (desadv,
                      urn:pharmasync:shipment:<id>) and the sender's order reference (po,
                      where the reader reads PO/invoices)
    receive           ObjectEvent OBSERVE receiving / in_progress, the quantity counted,
                      readPoint and bizLocation the receiver's DID, the receiver's order
    split             TransformationEvent repackaging: the parent lot in, the child lots out
                      (one event of the parent and of each child: merge keeps it once)
    dispense          ObjectEvent OBSERVE dispensing / dispensed (units of a lot), readPoint
                      the pharmacy's DID
    hold (damage)     ObjectEvent OBSERVE holding / non_sellable_other (inspecting / damaged)
    cold-chain        ObjectEvent OBSERVE inspecting / non_sellable_other (no transaction:
      quarantine      the readings decided it; its eventID names its log index)
    dispose           ObjectEvent OBSERVE inspecting / sellable_accessible (released) or
                      non_sellable_other (rejected)
    recall            ObjectEvent OBSERVE, disposition recalled (CBV has no recall bizStep)
    expiry            ObjectEvent OBSERVE, disposition expired, at 00:00 UTC of the day after
                      the expiry date, once that time has passed (derived, no transaction)
    each leg          ObjectEvent OBSERVE sensor_reporting with one sensorElement: min, max,
                      mean temperature (°C, uom CEL) over the leg, min, max, mean relative
                      humidity (type RelativeHumidity, uom P1: percent) where its readings
                      carry it, and one ALARM_CONDITION report per excursion raised on it
                      (the lot's cumulative one on the leg it rose in)

Identifiers. A lot is a class-level EPC written as a GS1 Digital Link URI,
https://id.gs1.org/01/{gtin}/10/{lot} (lot percent-encoded), in `quantityList` /
`epcClass` (EPCIS 2.0 allows Digital Link wherever an EPC goes). EPC URNs
(urn:epc:class:lgtin:..., urn:epc:id:sgtin:...: cloud/contracts/epc_urn.py) need the GS1
company prefix, which a manufacturer declares (cloud/contracts/gs1_prefixes.py): match_uri
reads them when its caller says which splits are registered, and epcis_format.py writes
them on request (the GS1-EPC-Format header).
Participants (sources, destinations, locations) are named by their current DID; the ledger
holds no GLN. Serialized packs are SGTINs in `epcList` (and a split's input/output EPC
lists), https://id.gs1.org/01/{gtin}/21/{serial} (serial_uri): their commissioning,
decommissioning, undo and split events are cloud/contracts/epcis_serials.py's builders
(SERIAL_EVENTS, which events_of asks first); their transactions reach a lot's LotLedger
through EventIndex because they write its SERIALS record (TOUCHING); Event.serials is what
they name, and the matching (epcis_query.py) compares it.

eventID: `urn:uuid:` of a UUID (version 8, RFC 9562) made from SHA-256("PharmaSync/epcis/
event/v1" ‖ key), the key naming the transaction (its id) and what of it the event shows
(e.g. "<tx id>/recall/<gtin>/<lot>"), so an event keeps its ID across exports and workers.
Not the CBV 2.0 event hash (ni:///sha-256;…?ver=CBV2.0): that hash is defined over the
event's canonical content, which differs by reader (a field withheld changes it), so a
partner could not rely on it to name one ledger fact.

Access (docs/contracts.md §5): an event is shown only if the reader reads its column —
shipping, receiving and dispensing: that leg's flow cell (yes, or if involved and
involved), so a reader who may not see a leg gets no event of it; order references: also
PO/invoices; a split: product `yes` (lineage); commissioning: product (quantities only to
a reader who sees custody); quality changes, recalls and expiry: everyone (public records);
sensor reports: the quality-status cell (policy.history_view COLDCHAIN).
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

from cloud.contracts import (
    access,
    didkey,
    epc_urn,
    lots,
    lots_fields,
    pack_facts,
    participants,
    policy,
)
from cloud.contracts.coldchain import Excursion, LegSummary
from cloud.contracts.engine import Applied, View
from cloud.contracts.lots_coldchain import History

CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
SCHEMA_VERSION: Final = "2.0"
DIGITAL_LINK: Final = "https://id.gs1.org"
EVENT_ID_TAG: Final = b"PharmaSync/epcis/event/v1"
TIME_ZONE: Final = "+00:00"  # every time the ledger keeps is UTC

# CBV 2.0 business steps and dispositions used here (bare terms: the EPCIS 2.0 JSON-LD
# context maps them to https://ref.gs1.org/cbv/BizStep-… and …/Disp-…).
COMMISSIONING: Final = "commissioning"
SHIPPING: Final = "shipping"
RECEIVING: Final = "receiving"
REPACKAGING: Final = "repackaging"
DISPENSING: Final = "dispensing"
HOLDING: Final = "holding"
INSPECTING: Final = "inspecting"
SENSOR_REPORTING: Final = "sensor_reporting"
ACTIVE: Final = "active"
IN_TRANSIT: Final = "in_transit"
IN_PROGRESS: Final = "in_progress"
DISPENSED: Final = "dispensed"
DAMAGED: Final = "damaged"
NON_SELLABLE: Final = "non_sellable_other"
SELLABLE: Final = "sellable_accessible"
RECALLED: Final = "recalled"
EXPIRED: Final = "expired"
ALARM: Final = "ALARM_CONDITION"
# CBV 2.0 measurement types and UN/CEFACT Rec. 20 units of the sensor reports.
TEMPERATURE: Final = "Temperature"
# A box measures relative humidity (device/reading.py: centi-percent): the GS1 Web
# Vocabulary's RelativeHumidity, in percent (Rec. 20 P1). Not "Humidity" with A93: A93 is
# gram per cubic metre, absolute humidity, and GS1's EPCIS 2.0 JSON Schema lists
# RelativeHumidity and AbsoluteHumidity among the bare measurement types.
HUMIDITY: Final = "RelativeHumidity"
CELSIUS: Final = "CEL"
PERCENT: Final = "P1"
SHIPMENT_URN: Final = "urn:pharmasync:shipment:"  # a shipment id, percent-encoded
ORDER_URN: Final = "urn:pharmasync:order:"  # an order reference, percent-encoded

# The URI forms of CBV terms a query may name (EPCIS 2.0 §8.2.7 accepts either form).
CBV_PREFIXES: Final = {
    "bizStep": ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-"),
    "disposition": ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
}


class EpcError(ValueError):
    """An identifier a query names is not one this ledger writes; str() says got/want."""


def lot_uri(gtin: str, lot: str) -> str:
    """The lot's GS1 Digital Link URI (a class-level EPC: GTIN + AI 10)."""
    return f"{DIGITAL_LINK}/01/{gtin}/10/{quote(lot, safe='')}"


def sscc_uri(sscc: str) -> str:
    """A logistic unit's GS1 Digital Link URI (an SSCC: AI 00)."""
    return f"{DIGITAL_LINK}/00/{sscc}"


def serial_uri(gtin: str, serial: str) -> str:
    """A pack's GS1 Digital Link URI (an SGTIN: GTIN + AI 21), for serialized packs."""
    return f"{DIGITAL_LINK}/01/{gtin}/21/{quote(serial, safe='')}"


@dataclass(frozen=True)
class Epc:
    """What an EPC names: a GTIN's lot (class level) or serial (instance level)."""

    gtin: str
    lot: str | None = None
    serial: str | None = None


# Why an EPC URN's split of a GS1 key at a company prefix is refused, None if it is the
# key's registered GCP: (prefix, key) -> reason (gs1_prefixes.split_refused over a View).
SplitCheck = Callable[[str, str], str | None]


def match_uri(uri: str, urns: SplitCheck | None = None) -> Epc:
    """Parse a GS1 Digital Link URI naming a lot (/01/{gtin}/10/{lot}) or a pack
    (/01/{gtin}[/10/{lot}]/21/{serial}), on any host, GTIN-8/12/13 padded to 14, or, given
    `urns`, an LGTIN or SGTIN EPC URN whose company prefix `urns` accepts. Raises EpcError
    for anything else, saying why (an EPC URN: malformed, or not split at the GTIN's
    registered company prefix)."""
    if uri.startswith("urn:epc:"):
        return _match_urn(uri, urns)
    try:
        parts = urlsplit(uri)
    except ValueError as e:  # an unclosed IPv6 bracket, a bad port, ...
        raise EpcError(f"got {uri[:60]!r}: {e}") from None
    segments = parts.path.strip("/").split("/")
    if parts.scheme not in ("http", "https") or len(segments) % 2 or len(segments) < 4:
        raise EpcError(f"got {uri[:60]!r}, want {DIGITAL_LINK}/01/{{gtin}}/10/{{lot}}")
    pairs = dict(zip(segments[::2], (unquote(s) for s in segments[1::2]), strict=True))
    if segments[0] != "01" or not pairs.keys() <= {"01", "22", "10", "21"}:
        raise EpcError(f"got {uri[:60]!r}, want a path /01/{{gtin}}[/10/{{lot}}][/21/{{serial}}]")
    try:
        gtin = lots_fields.gtin14(pairs["01"])
        lot = lots_fields.lot_number(pairs["10"]) if "10" in pairs else None
    except ValueError as e:
        raise EpcError(str(e)) from None
    serial = pairs.get("21")
    if lot is None and serial is None:
        raise EpcError(f"got {uri[:60]!r}, want a lot (/10/) or a serial (/21/)")
    return Epc(gtin, lot, serial)


def _match_urn(uri: str, urns: SplitCheck | None) -> Epc:
    if urns is None:
        raise EpcError(
            f"got {uri[:60]!r}: EPC URNs are read where the ledger knows the GS1 company "
            f"prefixes; want a GS1 Digital Link URI ({DIGITAL_LINK}/01/{{gtin}}/10/{{lot}})"
        )
    try:
        urn = epc_urn.parse(uri)
    except epc_urn.UrnError as e:
        raise EpcError(str(e)) from None
    if urn.kind == "sscc":
        raise EpcError(f"got {uri[:60]!r}, want an SGTIN (a pack) or LGTIN (a lot) URN")
    refused = urns(urn.prefix, urn.key)
    if refused is not None:
        raise EpcError(f"got {uri[:60]!r}: {refused}")
    if urn.kind == "lgtin":
        return Epc(urn.key, lot=urn.value)
    return Epc(urn.key, serial=urn.value)


def cbv_term(kind: str, value: str) -> str:
    """A CBV business step or disposition as the bare term this module writes, from its
    bare, URN or Web URI form (kind "bizStep" or "disposition")."""
    for prefix in CBV_PREFIXES[kind]:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def event_id(key: str) -> str:
    """The eventID of the event named by `key` (module docstring): urn:uuid: of a version 8
    UUID from SHA-256(EVENT_ID_TAG ‖ key)."""
    digest = bytearray(hashlib.sha256(EVENT_ID_TAG + key.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    return uuid.UUID(bytes=bytes(digest)).urn


def iso_time(ms: int) -> str:
    """An EPCIS time from Unix milliseconds: UTC, millisecond precision, "Z"."""
    at = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True)
class LedgerTx:
    """One applied transaction that touched a lot: its 0x03 entry's log index, its id, and
    its body's type, time (ms), signer (DID) and args, as stored."""

    index: int
    tx_id: str
    type: str
    time: int
    signer: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class Quarantine:
    """A cold-chain quarantine of a lot (no transaction): the log index of the entry it
    followed and the quality record it wrote."""

    index: int
    quality: Mapping[str, Any]


@dataclass(frozen=True)
class LotLedger:
    """What the ledger holds of one lot for its events: its transactions in log order, its
    cold-chain quarantines and a function giving its history from the aggregates, called
    only for a reader who sees the cold chain."""

    gtin: str
    lot: str
    txs: tuple[LedgerTx, ...]
    quarantines: tuple[Quarantine, ...] = ()
    history: Callable[[], History | None] = field(default=lambda: None)


@dataclass(frozen=True)
class Reader:
    """Who reads: a row of access.READ ("public" without a token) and its participant id
    (None for the public); `involved(gtin, lot, id)` says whether that participant is in
    the lot's custody chain (lots.involved over a View, or the trace index's)."""

    role: str
    id: str | None = None
    involved: Callable[[str, str, str], bool] = field(default=lambda gtin, lot, who: False)


@dataclass(frozen=True)
class Event:
    """One EPCIS event: its time (ms) and eventID (the order of a document and of query
    pages), the lots it names in (quantity lists: class level), its serials (epcList
    and the like: instance level; none until serialized packs), and its JSON-LD object."""

    time: int
    event_id: str
    lots: frozenset[tuple[str, str]]
    body: dict[str, Any]
    serials: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class _Lot:
    """Everything one lot's builders read: the View, the lot, the reader and what it sees."""

    view: View
    gtin: str
    lot: str
    reader: Reader
    involved: bool
    custody: bool  # the reader sees quantities (policy.sees_custody)
    # The lot's ship transactions by shipment id: a receive's unpacking names the packs its
    # shipment's ship named (epcis_serials.py).
    ships: Mapping[str, LedgerTx] = field(default_factory=dict)

    def reads(self, column: str) -> bool:
        return policy.reads(self.reader.role, column, self.involved)

    def did(self, participant_id: str) -> str:
        return str(participants.by_id(self.view, participant_id)["did"])

    def signer(self, t: LedgerTx) -> str:
        """The current DID of the participant who signed `t` (its key may have rotated)."""
        key = self.view.get(participants.KEY, didkey.to_xonly(t.signer).hex())
        return t.signer if key is None else self.did(key["participant"])

    def quantity(self, gtin: str, lot: str, quantity: int | None) -> dict[str, Any]:
        element: dict[str, Any] = {"epcClass": lot_uri(gtin, lot)}
        if quantity is not None and self.custody:
            element["quantity"] = quantity
        return element


def _event(key: str, time_ms: int, kind: str = "ObjectEvent", **fields: Any) -> dict[str, Any]:
    """The common part of an event (type, eventTime, offset, eventID) and its fields."""
    return {
        "type": kind,
        "eventTime": iso_time(time_ms),
        "eventTimeZoneOffset": TIME_ZONE,
        "eventID": event_id(key),
        **fields,
    }


def _object(ctx: _Lot, t: LedgerTx, what: str, quantity: int | None, **fields: Any) -> Event:
    """An ObjectEvent of this lot (its quantity list) for transaction `t`."""
    key = f"{t.tx_id}/{what}/{ctx.gtin}/{ctx.lot}"
    body = _event(key, t.time, quantityList=[ctx.quantity(ctx.gtin, ctx.lot, quantity)])
    body.update(fields)
    return Event(t.time, body["eventID"], frozenset({(ctx.gtin, ctx.lot)}), body)


def _party(kind: str, did: str) -> list[dict[str, str]]:
    return [{"type": t, kind: did} for t in ("owning_party", "possessing_party")]


def _commissioning(ctx: _Lot) -> dict[str, Any] | None:
    """The fields of a commissioning of this lot or of its packs (ADD, commissioning,
    active, ilmd, the manufacturer's location where the reader reads it), or None for a
    reader who does not read the product column."""
    if access.READ[ctx.reader.role][access.PRODUCT] == access.NO:
        return None
    record = ctx.view.get(lots.LOT, ctx.gtin, ctx.lot)
    assert record is not None
    fields: dict[str, Any] = {
        "action": "ADD",
        "bizStep": COMMISSIONING,
        "disposition": ACTIVE,
        "ilmd": {"cbvmda:lotNumber": ctx.lot, "cbvmda:itemExpirationDate": record["expiry"]},
    }
    if ctx.reads(access.MANUFACTURER_IDENTITY):
        fields["bizLocation"] = {"id": ctx.did(record["manufacturer"])}
    return fields


def _commission(ctx: _Lot, t: LedgerTx) -> list[Event]:
    fields = _commissioning(ctx)
    if fields is None:
        return []
    return [_object(ctx, t, "commission", t.args.get("quantity"), **fields)]


def _shipment(ctx: _Lot, shipment_id: str) -> dict[str, Any] | None:
    """The shipment record if the reader reads its leg's flow (else None: no event)."""
    record = ctx.view.get(lots.SHIPMENT, shipment_id)
    if record is None or not ctx.reads(record["leg"]):
        return None
    return record


def _transactions(ctx: _Lot, shipment_id: str, ref: str | None) -> list[dict[str, str]]:
    """The business transactions of a shipping or receiving event: the shipment (a
    despatch advice, `desadv`: what a partner's capture names, epcis_statement.py) and,
    where the reader reads PO/invoices, the order reference (`po`)."""
    found = [{"type": "desadv", "bizTransaction": SHIPMENT_URN + quote(shipment_id, safe="")}]
    if ref is not None and ctx.reads(access.ORDERS):
        found.append({"type": "po", "bizTransaction": ORDER_URN + quote(ref, safe="")})
    return found


def _ship(ctx: _Lot, t: LedgerTx) -> list[Event]:
    return _leg(ctx, t, "ship")


def _receive(ctx: _Lot, t: LedgerTx) -> list[Event]:
    return _leg(ctx, t, "receive")


def _leg(ctx: _Lot, t: LedgerTx, kind: str) -> list[Event]:
    """The shipping (`ship`) or receiving (`receive`) event of a shipment, if the reader
    reads its leg: at the sender's, or the receiver's (also the bizLocation), its parties
    both owning and possessing, its business transactions."""
    shipment = _shipment(ctx, t.args["shipment"])
    if shipment is None:
        return []
    sender, receiver = ctx.did(shipment["sender"]), ctx.did(shipment["receiver"])
    shipping = kind == "ship"
    ref = shipment["order_ref"] if shipping else shipment.get("receiver_order_ref")
    fields: dict[str, Any] = {
        "action": "OBSERVE",
        "bizStep": SHIPPING if shipping else RECEIVING,
        "disposition": IN_TRANSIT if shipping else IN_PROGRESS,
        "readPoint": {"id": sender if shipping else receiver},
    }
    if not shipping:
        fields["bizLocation"] = {"id": receiver}
    fields |= {
        "bizTransactionList": _transactions(ctx, t.args["shipment"], ref),
        "sourceList": _party("source", sender),
        "destinationList": _party("destination", receiver),
    }
    return [_object(ctx, t, kind, t.args["quantity"], **fields)]


def _split(ctx: _Lot, t: LedgerTx) -> list[Event]:
    if not ctx.reads(access.PRODUCT):
        return []
    gtin, parent = ctx.gtin, t.args["lot"]
    children = [(c["lot"], c["quantity"]) for c in t.args["children"]]
    body = _event(
        f"{t.tx_id}/split/{gtin}/{parent}",
        t.time,
        "TransformationEvent",
        inputQuantityList=[ctx.quantity(gtin, parent, sum(q for _, q in children))],
        outputQuantityList=[ctx.quantity(gtin, c, q) for c, q in children],
        bizStep=REPACKAGING,
        disposition=ACTIVE,
    )
    named = frozenset({(gtin, parent), *((gtin, c) for c, _ in children)})
    return [Event(t.time, body["eventID"], named, body)]


def _dispense(ctx: _Lot, t: LedgerTx) -> list[Event]:
    if not ctx.reads(access.R_TO_P):
        return []
    fields: dict[str, Any] = {"action": "OBSERVE", "bizStep": DISPENSING}
    fields |= {"disposition": DISPENSED, "readPoint": {"id": ctx.signer(t)}}
    return [_object(ctx, t, "dispense", t.args["quantity"], **fields)]


def _hold(ctx: _Lot, t: LedgerTx) -> list[Event]:
    damage = t.args["kind"] == "damage"
    fields = {
        "action": "OBSERVE",
        "bizStep": INSPECTING if damage else HOLDING,
        "disposition": DAMAGED if damage else NON_SELLABLE,
    }
    return [_object(ctx, t, "hold", None, **fields)]


def _dispose(ctx: _Lot, t: LedgerTx) -> list[Event]:
    released = t.args["outcome"] == lots.RELEASED
    fields = {
        "action": "OBSERVE",
        "bizStep": INSPECTING,
        "disposition": SELLABLE if released else NON_SELLABLE,
    }
    return [_object(ctx, t, "dispose", None, **fields)]


def _recall(ctx: _Lot, t: LedgerTx) -> list[Event]:
    return [_object(ctx, t, "recall", None, action="OBSERVE", disposition=RECALLED)]


# The lot-level builders, by transaction type; a transaction of another type (attach,
# calibrate, certify, ...) makes no event.
BUILDERS: Final[Mapping[str, Callable[[_Lot, LedgerTx], list[Event]]]] = {
    "commission": _commission,
    "ship": _ship,
    "receive": _receive,
    "split": _split,
    "dispense": _dispense,
    "hold": _hold,
    "dispose": _dispose,
    "recall": _recall,
}


# The serialized packs' builders (cloud/contracts/epcis_serials.py fills this when imported,
# at the end of this module), by transaction type: events_of asks them first (their split
# falls back to _split for a split that names no packs).
SERIAL_EVENTS: dict[str, Callable[[_Lot, LedgerTx], list[Event]]] = {}


def _quarantine(ctx: _Lot, q: Quarantine) -> Event:
    time_ms = int(q.quality["since"])
    key = f"coldchain/{q.index}/{ctx.gtin}/{ctx.lot}"
    body = _event(
        key,
        time_ms,
        action="OBSERVE",
        bizStep=INSPECTING,
        disposition=NON_SELLABLE,
        quantityList=[ctx.quantity(ctx.gtin, ctx.lot, None)],
    )
    return Event(time_ms, body["eventID"], frozenset({(ctx.gtin, ctx.lot)}), body)


def _expiry(ctx: _Lot, now_ms: int) -> list[Event]:
    record = ctx.view.get(lots.LOT, ctx.gtin, ctx.lot)
    assert record is not None
    day = datetime.date.fromisoformat(record["expiry"]) + datetime.timedelta(days=1)
    at = datetime.datetime.combine(day, datetime.time(), datetime.UTC)
    time_ms = int(at.timestamp() * 1000)
    if time_ms > now_ms:
        return []
    body = _event(
        f"expiry/{ctx.gtin}/{ctx.lot}",
        time_ms,
        action="OBSERVE",
        disposition=EXPIRED,
        quantityList=[ctx.quantity(ctx.gtin, ctx.lot, None)],
    )
    return [Event(time_ms, body["eventID"], frozenset({(ctx.gtin, ctx.lot)}), body)]


def _figures(
    kind: str, uom: str, low: float | None, high: float | None, mean: float | None
) -> dict[str, Any]:
    """A sensor report of a leg's min, max and mean (each left out when None), to 2 decimals."""
    report: dict[str, Any] = {"type": kind, "uom": uom}
    for name, value in (("minValue", low), ("maxValue", high), ("meanValue", mean)):
        if value is not None:
            report[name] = round(value, 2)
    return report


def _alarm(e: Excursion) -> dict[str, Any]:
    """An excursion as an ALARM_CONDITION sensor report: when it was raised; the worst
    reading (°C) for a high or low one, the lot's time out of range (s) for the
    cumulative one (its own report type: the EPCIS Temperature type has no duration)."""
    report: dict[str, Any] = {
        "type": TEMPERATURE,
        "exception": ALARM,
        "time": iso_time(e.raised_s * 1000),
    }
    if e.kind == "cumulative":
        return report | {"uom": CELSIUS}
    return report | {"value": e.worst_cc / 100, "uom": CELSIUS}


def _sensor_events(ctx: _Lot, history: History) -> list[Event]:
    """One sensor_reporting event per leg of the lot's cold chain (module docstring); the
    lot's cumulative excursion goes with the leg it rose in (else the last leg)."""
    summary = history.coldchain
    if summary is None or not summary.legs:
        return []
    legs = summary.legs
    extra: list[list[Excursion]] = [[] for _ in legs]
    for e in summary.excursions:
        if e.kind == "cumulative":
            at = [n for n, leg in enumerate(legs) if _within(leg, e.raised_s)]
            extra[at[0] if at else len(legs) - 1].append(e)
    return [
        _sensor_event(ctx, leg, [*leg.excursions, *more])
        for leg, more in zip(legs, extra, strict=True)
    ]


def _within(leg: LegSummary, second: int) -> bool:
    return leg.start_s <= second and (leg.end_s is None or second < leg.end_s)


def _sensor_event(ctx: _Lot, leg: LegSummary, excursions: Sequence[Excursion]) -> Event:
    stats = leg.stats
    reports = [_figures(TEMPERATURE, CELSIUS, stats.min_c, stats.max_c, stats.mean_c)]
    if stats.mean_rh is not None:
        reports.append(_figures(HUMIDITY, PERCENT, stats.min_rh, stats.max_rh, stats.mean_rh))
    end_s = leg.end_s if leg.end_s is not None else leg.start_s
    metadata = {"startTime": iso_time(leg.start_s * 1000)}
    if leg.end_s is not None:
        metadata["endTime"] = iso_time(leg.end_s * 1000)
    element = {"sensorMetadata": metadata, "sensorReport": [*reports, *map(_alarm, excursions)]}
    time_ms = end_s * 1000
    key = f"sensor/{ctx.gtin}/{ctx.lot}/{leg.leg}/{leg.end_s}/{stats.count}"
    body = _event(
        key,
        time_ms,
        action="OBSERVE",
        bizStep=SENSOR_REPORTING,
        quantityList=[ctx.quantity(ctx.gtin, ctx.lot, None)],
        sensorElementList=[element],
    )
    return Event(time_ms, body["eventID"], frozenset({(ctx.gtin, ctx.lot)}), body)


# The records whose writing makes a transaction part of a lot's history.
# SERIALS (gtin, lot): the packs' counts, written by serialize, a split naming packs, and
# each decommission and undo (cloud/contracts/packs.py).
TOUCHING: Final = frozenset({lots.LOT, lots.QUALITY, lots.RECALL, lots.CUSTODY, pack_facts.SERIALS})


class EventIndex:
    """For each lot, the log indices of the applied transactions that wrote one of its
    records (identity, quality, recall, custody: TOUCHING) and its cold-chain quarantines,
    fed every applied change in log order (so rebuilt by replay): what names a lot's
    transactions, which are read back by index."""

    def __init__(self) -> None:
        self.touches: dict[tuple[str, str], list[int]] = {}
        self.quarantines: dict[tuple[str, str], list[Quarantine]] = {}

    def apply(self, index: int, applied: Applied) -> None:
        """Take in one applied change: a transaction's (`index` its 0x03 entry's), or the
        cold chains' (tx_id empty: a quarantine the readings decided, `index` the entry it
        followed)."""
        for record in applied.put.values():
            if record.type not in TOUCHING:
                continue
            lot = (record.fields[0], record.fields[1])
            seen = self.touches.setdefault(lot, [])
            if applied.tx_id:
                if not seen or seen[-1] != index:
                    seen.append(index)
            elif record.type == lots.QUALITY:
                self.quarantines.setdefault(lot, []).append(Quarantine(index, record.value))

    def indices(self, wanted: Iterable[tuple[str, str]]) -> list[int]:
        """The log indices of the transactions of the lots `wanted`."""
        return [i for lot in wanted for i in self.touches.get(lot, ())]

    def ledger(
        self,
        gtin: str,
        lot: str,
        txs: Mapping[int, LedgerTx],
        history: Callable[[], History | None],
    ) -> LotLedger:
        """The lot's LotLedger from its transactions among `txs` (by log index)."""
        found = tuple(txs[i] for i in self.touches.get((gtin, lot), ()) if i in txs)
        return LotLedger(gtin, lot, found, tuple(self.quarantines.get((gtin, lot), ())), history)


def events_of(view: View, ledger: LotLedger, reader: Reader, now_ms: int) -> list[Event]:
    """Return the events of one lot a reader may see (module docstring), in (time, eventID)
    order. Requires a commissioned lot; `now_ms` decides whether it has expired yet."""
    gtin, lot = ledger.gtin, ledger.lot
    involved = reader.id is not None and reader.involved(gtin, lot, reader.id)
    ships = {t.args["shipment"]: t for t in ledger.txs if t.type == "ship"}
    custody = policy.sees_custody(reader.role, involved)
    ctx = _Lot(view, gtin, lot, reader, involved, custody, ships)
    out: list[Event] = []
    for t in ledger.txs:
        build = SERIAL_EVENTS.get(t.type) or BUILDERS.get(t.type)
        if build is not None:
            out.extend(build(ctx, t))
    out.extend(_quarantine(ctx, q) for q in ledger.quarantines)
    out.extend(_expiry(ctx, now_ms))
    if policy.history_view(reader.role, involved) == policy.COLDCHAIN:
        history = ledger.history()
        if history is not None:
            out.extend(_sensor_events(ctx, history))
    return sorted(out, key=lambda e: (e.time, e.event_id))


def merge(events: Iterable[Event]) -> list[Event]:
    """Events of several lots in (time, eventID) order, each once (a split's
    TransformationEvent belongs to the parent and to each child)."""
    seen: dict[str, Event] = {}
    for e in events:
        seen.setdefault(e.event_id, e)
    return sorted(seen.values(), key=lambda e: (e.time, e.event_id))


def document(events: Sequence[Event], now_ms: int, doc_id: str | None = None) -> dict[str, Any]:
    """An EPCISDocument holding `events` (JSON-LD), created at `now_ms`."""
    answer: dict[str, Any] = {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": iso_time(now_ms),
    }
    if doc_id is not None:
        answer["id"] = doc_id
    answer["epcisBody"] = {"eventList": [e.body for e in events]}
    return answer


def query_document(events: Sequence[Event], now_ms: int) -> dict[str, Any]:
    """An EPCISQueryDocument answering the SimpleEventQuery with `events`."""
    return {
        "@context": [CONTEXT],
        "type": "EPCISQueryDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": iso_time(now_ms),
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": {"eventList": [e.body for e in events]},
            }
        },
    }


# Last: epcis_serials imports this module's helpers, then fills SERIAL_EVENTS.
from cloud.contracts import epcis_serials as _serials  # noqa: E402,F401
