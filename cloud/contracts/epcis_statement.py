"""A trading partner's signed statement of an EPCIS document (POST /epcis/capture;
docs/contracts.md §4 "EPCIS"): the lots contract's `statement` transaction and the check of
the document's events against the ledger. Pure.

How a capture is signed: the partner posts the EPCISDocument as the body and, in the header
`PharmaSync-Statement`, a lots transaction of type `statement` it signed, whose args are

    gtin, lot   the lot the document is about (already on the ledger)
    document    SHA-256 (hex) of the body's exact bytes
    events      how many events the document holds

so the signature covers the document. The ledger checks that the hash is the body's, then
every event against the contract (check_events: the first that contradicts it is named),
then applies the transaction: record STATEMENT (type 18, private, keyed by the document's
hash) {gtin, lot, by (the partner's id), events, since}. The rule itself (statement) checks
what a replay can: the lot exists, the signer is in its custody chain, a document is stated
once. The document is not kept by the ledger (its hash is): the partner holds it, and the
hash on the ledger proves what it stated and when. A replayer cannot re-check the events
(it has no document); they agreed with the ledger at the statement's log position.

Which events are checked (each must be one of these, about the statement's lot):

    ObjectEvent shipping    a bizTransaction `urn:pharmasync:shipment:<id>` (type desadv) of
                            a shipment of the lot the signer sent or received; quantity =
                            shipped; sourceList parties = the sender's DID, destinationList
                            parties = the receiver's; eventTime within TIME_TOLERANCE_MS of
                            the ship transaction's time
    ObjectEvent receiving   the same, with quantity = counted, the shipment received, and
                            eventTime near the receive transaction's time
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final
from urllib.parse import unquote

from cloud.contracts import args, gs1_prefixes, lots, lots_fields, participants
from cloud.contracts.engine import Conflict, Context, Invalid, RecordType
from cloud.contracts.epcis import SHIPMENT_URN, EpcError, match_uri

STATEMENT: Final = RecordType(lots.NAME, 18, "statement", private=True)
MAX_EVENTS: Final = 1000
TIME_TOLERANCE_MS: Final = 15 * 60 * 1000  # a partner's clock and the ledger's
_HASH: Final = re.compile("[0-9a-f]{64}")


def statement(ctx: Context) -> None:
    """Record a partner's statement of a document: args gtin, lot, document (SHA-256 hex),
    events (1 to MAX_EVENTS). Conflict "lot" (never commissioned), "involved" (the signer
    is not in the lot's custody chain), "stated" (that document was stated before)."""
    args.exact(ctx.args, ("gtin", "lot", "document", "events"))
    gtin = args.checked(ctx.args, "gtin", lots_fields.gtin14)
    lot = args.checked(ctx.args, "lot", lots_fields.lot_number)
    document = ctx.args["document"]
    if type(document) is not str or not _HASH.fullmatch(document):
        raise Invalid("args.document", f"got {str(document)[:70]!r}, want 64 lowercase hex")
    events = args.integer(ctx.args, "events")
    if events > MAX_EVENTS:
        raise Invalid("args.events", f"got {events}, want at most {MAX_EVENTS}")
    if ctx.get(lots.LOT, gtin, lot) is None:
        raise Conflict("lot", f"lot {gtin}/{lot} was never commissioned")
    if not lots.involved(ctx, gtin, lot, ctx.me.id):
        raise Conflict("involved", f"{ctx.me.did} is not in lot {gtin}/{lot}'s custody chain")
    if ctx.get(STATEMENT, document) is not None:
        raise Conflict("stated", f"document {document} was stated before")
    value = {"gtin": gtin, "lot": lot, "by": ctx.me.id, "events": events, "since": ctx.time}
    ctx.put(STATEMENT, [document], value)


RULES: Final = {"statement": statement}


@dataclass(frozen=True)
class Contradiction:
    """The first event of a document that the ledger contradicts (or that cannot be read):
    its position, its eventID (None if it has none), what disagrees, and how."""

    position: int
    event_id: str | None
    field: str
    detail: str

    def __str__(self) -> str:
        named = f" ({self.event_id})" if self.event_id else ""
        return f"event {self.position}{named}: {self.field}: {self.detail}"


def events_of(document: object) -> list[Any]:
    """The eventList of an EPCISDocument. Raises ValueError saying what is missing."""
    if not isinstance(document, dict) or document.get("type") != "EPCISDocument":
        raise ValueError('want a JSON object with "type": "EPCISDocument"')
    body = document.get("epcisBody")
    events = body.get("eventList") if isinstance(body, dict) else None
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        raise ValueError(f"want epcisBody.eventList: 1 to {MAX_EVENTS} events")
    return events


def check_events(
    view: Any, gtin: str, lot: str, signer: str, events: Sequence[Any], times: Mapping[str, int]
) -> Contradiction | None:
    """Return the first of `events` that contradicts the ledger (module docstring), or None
    if all agree. `signer`: the partner's participant id; `times`: the time (ms) of each
    of the lot's ship and receive transactions, by "ship:<shipment>" / "receive:<id>"."""
    for n, event in enumerate(events):
        found = _check(view, gtin, lot, signer, event, times)
        if found is not None:
            field, detail = found
            event_id = event.get("eventID") if isinstance(event, dict) else None
            shown = event_id[:100] if isinstance(event_id, str) else None
            return Contradiction(n, shown, field, detail)
    return None


def _check(
    view: Any, gtin: str, lot: str, signer: str, event: object, times: Mapping[str, int]
) -> tuple[str, str] | None:
    if not isinstance(event, dict) or event.get("type") != "ObjectEvent":
        return "type", "want an ObjectEvent"
    step = event.get("bizStep")
    if step not in ("shipping", "receiving"):
        return "bizStep", f"got {str(step)[:40]!r}, want shipping or receiving"
    shipment_id = _shipment_id(event)
    if shipment_id is None:
        return "bizTransactionList", f"want one {SHIPMENT_URN}<id> naming the shipment"
    shipment = view.get(lots.SHIPMENT, shipment_id)
    # One answer whether the shipment is unknown, of another lot or another's: a partner
    # learns nothing of shipments it is no party to.
    if (
        shipment is None
        or (shipment["gtin"], shipment["lot"]) != (gtin, lot)
        or signer not in (shipment["sender"], shipment["receiver"])
    ):
        detail = f"{shipment_id[:64]!r} is no shipment of lot {gtin}/{lot} the signer sent or"
        return "shipment", f"{detail} received"
    named = _lots(view, event)
    if isinstance(named, str):
        return "quantityList", named
    if named != [(gtin, lot)]:
        return "quantityList", f"want exactly one element, of lot {gtin}/{lot}"
    sender = participants.by_id(view, shipment["sender"])["did"]
    receiver = participants.by_id(view, shipment["receiver"])["did"]
    for key, party in (("sourceList", sender), ("destinationList", receiver)):
        found = _parties(event.get(key), key)
        if not found or any(p != party for p in found):
            return key, f"got {found!r:.200}, want the parties to be {party}"
    if step == "receiving" and shipment["received"] is None:
        return "bizStep", f"shipment {shipment_id} is not received on the ledger"
    want = shipment["quantity"] if step == "shipping" else shipment["counted"]
    got = event["quantityList"][0].get("quantity")
    if got != want:
        return "quantity", f"got {got!r:.40}, the ledger has {want} (shipment {shipment_id})"
    at = times.get(f"{'ship' if step == 'shipping' else 'receive'}:{shipment_id}")
    when = _time(event.get("eventTime"))
    if when is None:
        return "eventTime", "want an RFC 3339 date-time with an offset"
    if at is None or abs(when - at) > TIME_TOLERANCE_MS:
        return "eventTime", f"more than {TIME_TOLERANCE_MS // 60000} min from the ledger's"
    return None


def _shipment_id(event: Mapping[str, Any]) -> str | None:
    found = event.get("bizTransactionList")
    if not isinstance(found, list):
        return None
    ids = [
        unquote(b["bizTransaction"][len(SHIPMENT_URN) :])
        for b in found
        if isinstance(b, dict)
        and isinstance(b.get("bizTransaction"), str)
        and b["bizTransaction"].startswith(SHIPMENT_URN)
    ]
    return ids[0] if len(ids) == 1 else None


def _lots(view: Any, event: Mapping[str, Any]) -> list[tuple[str, str | None]] | str | None:
    """The lots a quantity list names (Digital Link URIs, or LGTIN URNs split at their
    GTIN's registered company prefix), None if it is malformed, or why an epcClass is
    refused."""
    elements = event.get("quantityList")
    if not isinstance(elements, list):
        return None
    out: list[tuple[str, str | None]] = []
    urns = partial(gs1_prefixes.split_refused, view)
    for element in elements:
        if not isinstance(element, dict) or not isinstance(element.get("epcClass"), str):
            return None
        try:
            epc = match_uri(element["epcClass"], urns)
        except EpcError as e:
            return str(e)
        out.append((epc.gtin, epc.lot))
    return out


def _parties(value: object, key: str) -> list[object]:
    member = "source" if key == "sourceList" else "destination"
    if not isinstance(value, list):
        return []
    return [p.get(member) if isinstance(p, dict) else p for p in value]


def _time(value: object) -> int | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        at = datetime.datetime.fromisoformat(value)
        return None if at.tzinfo is None else int(at.timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        return None
