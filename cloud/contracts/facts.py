"""What a read is about, gathered from the contracts' records and not yet filtered: a lot's
shipments, boxes, certificates and lineage; the participants. The read policy
(cloud/contracts/policy.py) decides what of it a reader sees; the service only gathers.

Pure: a View for keyed reads, and a FactIndex (cloud/contracts/facts_index.py) for the facts
no key reaches from what is asked (a lot's shipments are keyed by shipment id, a certificate
by its id, a box's windows by box): the index names the candidates, the View reads them, and
each is kept only if it is there and belongs (the index may name more, never fewer). So a
read looks up its own records only, never all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud.contracts import lots, participants
from cloud.contracts.engine import View
from cloud.contracts.facts_index import FactIndex


def did_of(view: View, participant_id: str) -> str:
    """The current DID of the participant with this id (ids are the DIDs admitted with)."""
    return str(participants.by_id(view, participant_id)["did"])


@dataclass(frozen=True)
class LotFacts:
    """Everything about one commissioned lot a read may show, unfiltered.

    shipments: the lot's shipments in shipping order, sender and receiver as current DIDs
    (their ids in sender_id, receiver_id), each with its `leg` (access column); boxes: each
    attachment window on the lot with the box's calibration (None if none); certificates:
    the lot's own (release) certificates;
    lots_of_gtin: how many lots of the lot's GTIN exist (the product's global figure)."""

    lot: dict[str, Any]
    quality: dict[str, Any]
    recall: dict[str, Any] | None
    coldchain: dict[str, Any] | None
    custody: dict[str, Any]
    manufacturer: dict[str, Any]
    shipments: tuple[dict[str, Any], ...]
    boxes: tuple[dict[str, Any], ...]
    certificates: tuple[dict[str, Any], ...]
    lots_of_gtin: int


def lot_facts(view: View, index: FactIndex, gtin: str, lot: str) -> LotFacts | None:
    """Gather a lot's facts; None if it was never commissioned. `index`: the FactIndex of
    the records `view` reads."""
    identity = view.get(lots.LOT, gtin, lot)
    if identity is None:
        return None
    quality, custody = view.get(lots.QUALITY, gtin, lot), view.get(lots.CUSTODY, gtin, lot)
    assert quality is not None and custody is not None, "a commissioned lot has both"
    shipments = []
    for shipment in index.shipments(gtin, lot):
        s = view.get(lots.SHIPMENT, shipment)
        if s is None or (s["gtin"], s["lot"]) != (gtin, lot):
            continue
        s["shipment"] = shipment
        s["sender_id"], s["receiver_id"] = s["sender"], s["receiver"]
        s["sender"], s["receiver"] = did_of(view, s["sender"]), did_of(view, s["receiver"])
        shipments.append(s)
    boxes: list[dict[str, Any]] = []
    for box in index.boxes(gtin, lot):
        attachment = view.get(lots.ATTACHMENT, box)
        on = [] if attachment is None else attachment["windows"]
        windows = [w for w in on if (w["gtin"], w["lot"]) == (gtin, lot)]
        if windows:
            calibration = view.get(lots.CALIBRATION, box)
            boxes.extend({"box": box, **w, "calibration": calibration} for w in windows)
    certificates = certificates_of(view, index, f"{gtin}/{lot}")
    shipments.sort(key=lambda s: (s["shipped"], s["shipment"]))
    boxes.sort(key=lambda b: (b["start"], b["box"]))
    return LotFacts(
        identity,
        quality,
        view.get(lots.RECALL, gtin, lot),
        view.get(lots.COLDCHAIN, gtin, lot),
        custody,
        participants.by_id(view, identity["manufacturer"]),
        tuple(shipments),
        tuple(boxes),
        tuple(certificates),
        index.lots_of(gtin),
    )


def participant_of(view: View, xonly: bytes) -> dict[str, Any] | None:
    """The participant record a key names, current or rotated away; None if no one's."""
    key = view.get(participants.KEY, xonly.hex())
    return None if key is None else view.get(participants.PARTICIPANT, key["participant"])


def all_participants(view: View, index: FactIndex) -> list[dict[str, Any]]:
    """Every participant record, in id order."""
    found = (view.get(participants.PARTICIPANT, p) for p in index.participants())
    return [p for p in found if p is not None]


def certificates_of(view: View, index: FactIndex, subject: str) -> list[dict[str, Any]]:
    """Every certificate whose subject is `subject` (a participant id, or "<gtin>/<lot>"),
    in issuing order."""
    found = (view.get(lots.CERTIFICATE, c) for c in index.certificates(subject))
    mine = [c for c in found if c is not None and c["subject"] == subject]
    return sorted(mine, key=lambda c: (c["since"], c["id"]))
