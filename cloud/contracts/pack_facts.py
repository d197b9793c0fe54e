"""What the ledger knows of one pack, and the counter's verdict on a scan of it
(docs/contracts.md §6). Pure reads over a State (or a rule's Context) and its serial index:
no storage, no clock (the caller passes the time it asks at).

For the resolver and the proof bundle: `pack(view, gtin, serial)` answers a pack's facts,
`pack_proof_keys(view, gtin, serial)` the records a proof of them needs (each a state-tree
key, present or proven absent), and `serial_proof(view, gtin, serial)` the RFC 6962
inclusion proof of the serial in its registration's Merkle root. A verifier recomputes every
key itself from the scanned GTIN, lot and serial (and the registration's number, which the
bundle states): `grouped_key("lots", 14, gtin, lot, str(n))` for the registration,
`record_key("lots", 15, gtin, serial)` for the pack record (absent: active in its registered
lot), `grouped_key("lots", 1|2|3|12, gtin, lot)` for the lot it is in (statetree_hash: a
lot's records under one prefix, so one proof path serves them all).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Final, Protocol

from cloud.contracts import gs1, lots
from cloud.contracts.engine import RecordType
from cloud.contracts.pack_index import Reader
from gateway import merkle

SERIALS: Final = RecordType(lots.NAME, 13, "serials", private=True)
REGISTRATION: Final = RecordType(lots.NAME, 14, "registration", private=False, grouped=True)
PACK: Final = RecordType(lots.NAME, 15, "pack", private=False)
DECOMMISSION: Final = RecordType(lots.NAME, 16, "decommission", private=True)
SUSPECT: Final = RecordType(lots.NAME, 17, "suspect", private=True)

ACTIVE: Final = "active"

# The counter's verdicts, in the order they are checked (the first that holds is the
# verdict; every one that holds is a reason). Suspect ones alert (a suspect report).
AUTHENTIC: Final = "authentic"  # registered, active, lot fit, not expired: dispensable
UNKNOWN: Final = "unknown"  # no such serial of this GTIN: suspect
MISMATCH: Final = "mismatch"  # the pack's lot or expiry is not what was registered: suspect
DECOMMISSIONED: Final = "decommissioned"  # already dispensed, destroyed, ...
RECALLED: Final = "recalled"
REJECTED: Final = "rejected"
QUARANTINED: Final = "quarantined"
EXPIRED: Final = "expired"
VERDICTS: Final = (
    AUTHENTIC,
    UNKNOWN,
    MISMATCH,
    DECOMMISSIONED,
    RECALLED,
    REJECTED,
    QUARANTINED,
    EXPIRED,
)
SUSPECT_CODES: Final = (UNKNOWN, MISMATCH, DECOMMISSIONED, "other")
SUSPECT_VERDICTS: Final = frozenset({UNKNOWN, MISMATCH})


class PackView(Protocol):
    """Read access to records and the serial index (a State, a Context)."""

    @property
    def packs(self) -> Reader: ...

    def get(self, rtype: RecordType, *fields: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class PackFacts:
    """One pack as the ledger knows it, unfiltered (the read policy decides what a reader
    sees): its registered lot and registration (number, position in the sorted serials),
    the lot it is in now (a split moves it), that lot's expiry (ISO date), quality status
    and recall class (None: not recalled), the pack's own status, and — decommissioned
    only — when (ms) and by whom (the pharmacy's participant id)."""

    gtin: str
    serial: str
    registered_lot: str
    registration: int
    position: int
    lot: str
    expiry: str
    quality: str
    recall: str | None
    status: str
    since: int | None
    by: str | None

    @property
    def departed(self) -> bool:
        """Whether the pack has a PACK record (moved or decommissioned)."""
        return self.lot != self.registered_lot or self.status != ACTIVE


def pack(view: PackView, gtin: str, serial: str) -> PackFacts | None:
    """Return the facts of the pack (gtin: a GTIN-14; serial: AI 21), None if no lot of
    the GTIN registered that serial."""
    found = view.packs.find(gtin, serial)
    if found is None:
        return None
    registration = found.registration
    record = view.get(PACK, gtin, serial)
    lot = registration.lot if record is None else record["lot"]
    status = ACTIVE if record is None else record["status"]
    identity = view.get(lots.LOT, gtin, lot)
    quality = view.get(lots.QUALITY, gtin, lot)
    assert identity is not None and quality is not None, "a registered pack's lot exists"
    recall = view.get(lots.RECALL, gtin, lot)
    done = view.get(DECOMMISSION, gtin, serial) if status != ACTIVE else None
    return PackFacts(
        gtin,
        serial,
        registration.lot,
        registration.number,
        found.position,
        lot,
        identity["expiry"],
        quality["status"],
        None if recall is None else recall["class"],
        status,
        None if done is None else done["since"],
        None if done is None else done["by"],
    )


def pack_proof_keys(
    view: PackView, gtin: str, serial: str
) -> list[tuple[RecordType, tuple[str, ...]]]:
    """Return the records (type, key fields) a proof of the pack's facts shows against a
    state root, each present or proven absent: its registration, its PACK record (absent:
    active in the registered lot), and the lot, quality and recall records of the lot it
    is in now. [] for a serial never registered (a verifier proves nothing of it)."""
    facts = pack(view, gtin, serial)
    if facts is None:
        return []
    lot = facts.lot
    return [
        (REGISTRATION, (gtin, facts.registered_lot, str(facts.registration))),
        (PACK, (gtin, serial)),
        (lots.LOT, (gtin, lot)),
        (lots.QUALITY, (gtin, lot)),
        (lots.RECALL, (gtin, lot)),
    ]


@dataclass(frozen=True)
class SerialProof:
    """The serial's RFC 6962 inclusion proof in its registration: leaf = the serial's UTF-8,
    at `index` of `size` leaves, `path` to the registration record's `root`."""

    index: int
    size: int
    path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "size": self.size, "path": [h.hex() for h in self.path]}


def serial_proof(view: PackView, gtin: str, serial: str) -> SerialProof | None:
    """Return the inclusion proof of the serial in its registration's root, None if it is
    not registered. Rebuilds the registration's tree (about 0.1 s for 100,000 serials)."""
    found = view.packs.find(gtin, serial)
    if found is None:
        return None
    registration = found.registration
    leaves = [s.encode() for s in registration.serials()]
    path = merkle.inclusion_proof(leaves, found.position)
    return SerialProof(found.position, len(leaves), tuple(path))


@dataclass(frozen=True)
class Verdict:
    """The counter's answer on a scan: `code` (the first reason, or AUTHENTIC), every
    reason that holds, and the pack's facts (None for an unknown serial)."""

    code: str
    reasons: tuple[str, ...]
    facts: PackFacts | None

    @property
    def dispensable(self) -> bool:
        return self.code == AUTHENTIC

    @property
    def suspect(self) -> bool:
        """Whether the scan is a suspect counterfeit (the pharmacy files a report)."""
        return self.code in SUSPECT_VERDICTS


def check(
    view: PackView, gtin: str, serial: str, lot: str | None, expiry: str | None, time_ms: int
) -> Verdict:
    """Return the verdict on a scanned pack at `time_ms`: its GTIN-14 and serial, and the
    lot (AI 10) and expiry (AI 17 YYMMDD, day 00 = the month's last day) its label carries,
    each None if the scan had none. The label is compared with the registration (its lot
    and that lot's expiry); the status with the lot the pack is in now. Requires a valid
    expiry (gs1.expiry) when given."""
    facts = pack(view, gtin, serial)
    if facts is None:
        return Verdict(UNKNOWN, (UNKNOWN,), None)
    reasons = []
    registered = view.get(lots.LOT, gtin, facts.registered_lot)
    assert registered is not None
    label_expiry = None
    if expiry is not None:
        label_expiry = gs1.expiry(expiry, gs1.today_of_ms(time_ms)).date.isoformat()
    if (lot is not None and lot != facts.registered_lot) or (
        label_expiry is not None and label_expiry != registered["expiry"]
    ):
        reasons.append(MISMATCH)
    if facts.status != ACTIVE:
        reasons.append(DECOMMISSIONED)
    if facts.recall is not None:
        reasons.append(RECALLED)
    if facts.quality in (REJECTED, QUARANTINED):
        reasons.append(facts.quality)
    day = datetime.datetime.fromtimestamp(time_ms // 1000, datetime.UTC).date()
    if day.isoformat() > facts.expiry:
        reasons.append(EXPIRED)
    return Verdict(reasons[0] if reasons else AUTHENTIC, tuple(reasons), facts)
