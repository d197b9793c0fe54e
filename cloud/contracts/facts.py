"""What a read is about, gathered from the contracts' records and not yet filtered: a lot's
shipments, boxes, certificates and lineage; the participants. The read policy
(cloud/contracts/policy.py) decides what of it a reader sees; the service only gathers.

Pure: a View for keyed reads, and the State's records (an iterable of engine.Record) for the
few facts no key reaches (a lot's shipments are keyed by shipment id, a certificate by its
id, a box's windows by box). Those scans walk every record: fine at today's sizes, an index
kept beside the State is the way once lots number in the millions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cloud.contracts import lots, participants
from cloud.contracts.engine import Record, RecordType, View


def _of(records: Iterable[Record], rtype: RecordType) -> Iterable[Record]:
    return (r for r in records if r.type == rtype)


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


def lot_facts(view: View, records: Iterable[Record], gtin: str, lot: str) -> LotFacts | None:
    """Gather a lot's facts; None if it was never commissioned. `records`: every record of
    the State (walked once)."""
    identity = view.get(lots.LOT, gtin, lot)
    if identity is None:
        return None
    quality, custody = view.get(lots.QUALITY, gtin, lot), view.get(lots.CUSTODY, gtin, lot)
    assert quality is not None and custody is not None, "a commissioned lot has both"
    shipments, boxes, certificates, count = [], [], [], 0
    subject = f"{gtin}/{lot}"
    for record in records:
        if record.type == lots.LOT and record.fields[0] == gtin:
            count += 1
        elif record.type == lots.SHIPMENT:
            s = record.value
            if (s["gtin"], s["lot"]) == (gtin, lot):
                s["shipment"] = record.fields[0]
                s["sender_id"], s["receiver_id"] = s["sender"], s["receiver"]
                s["sender"], s["receiver"] = did_of(view, s["sender"]), did_of(view, s["receiver"])
                shipments.append(s)
        elif record.type == lots.ATTACHMENT:
            for window in record.value["windows"]:
                if (window["gtin"], window["lot"]) == (gtin, lot):
                    box = record.fields[0]
                    calibration = view.get(lots.CALIBRATION, box)
                    boxes.append({"box": box, **window, "calibration": calibration})
        elif record.type == lots.CERTIFICATE:
            c = record.value
            if c["subject"] == subject:
                certificates.append(c)
    shipments.sort(key=lambda s: (s["shipped"], s["shipment"]))
    boxes.sort(key=lambda b: (b["start"], b["box"]))
    certificates.sort(key=lambda c: (c["since"], c["id"]))
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
        count,
    )


def participant_of(view: View, xonly: bytes) -> dict[str, Any] | None:
    """The participant record a key names, current or rotated away; None if no one's."""
    key = view.get(participants.KEY, xonly.hex())
    return None if key is None else view.get(participants.PARTICIPANT, key["participant"])


def all_participants(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Every participant record, in id order."""
    found = [r.value for r in _of(records, participants.PARTICIPANT)]
    return sorted(found, key=lambda p: str(p["id"]))


def certificates_of(records: Iterable[Record], subject: str) -> list[dict[str, Any]]:
    """Every certificate whose subject is `subject` (a participant id, or "<gtin>/<lot>"),
    in issuing order."""
    found = [
        c for c in (r.value for r in _of(records, lots.CERTIFICATE)) if c["subject"] == subject
    ]
    return sorted(found, key=lambda c: (c["since"], c["id"]))
