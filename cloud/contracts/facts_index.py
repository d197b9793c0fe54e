"""The index the reads' facts (cloud/contracts/facts.py) are found by: a lot's shipments and
the boxes attached to it, a subject's certificates, the participants, and how many lots each
GTIN has. Pure: no storage, no clock.

Why an index: those records are keyed by their own ids (a shipment by its id, a box's
attachment windows by the box, a certificate by its id), so no key leads from a lot to them.
Finding them by walking every record of the State took about two seconds a read at 1M
records. A FactIndex keeps, beside the State, which records may belong to which group — fed
with every applied change in log order (`apply`, the Applied values the engine returns), or
built from the records at once (`of`) — so a read looks up its own records only, by key:
about 0.1 ms for a lot's facts at 1M records.

    group                    members (key fields)  from
    shipments of a lot       shipment ids          SHIPMENT values' gtin, lot
    boxes on a lot           box keys (hex)        ATTACHMENT values' windows' gtin, lot
    certificates of subject  certificate ids       CERTIFICATE values' subject
    participants             participant ids       PARTICIPANT keys
    lots of a GTIN           (a count)             LOT keys

Candidates, not answers: a record is added to the groups its value names whenever it is put
and never taken out, so every record that belongs to a group is among its members. The facts
read each member's record through the State and keep it only if it is there and belongs —
the same tests the walk over every record made — so an answer from the index is the walk's
answer (tests/cloud/contracts/test_facts_index.py checks it after every step of random
transactions, against the walk kept there). Today no record ever leaves a group (a
shipment's lot, a certificate's subject, a box's windows' lots only grow, and none of these
records is deleted), so there are no stale members either; were a rule to move or delete
them, the answers would stay right and only the groups would carry the stale names. Only
keys and names are kept, never values: about 90 MB beside a State of 1M records (a quarter
of them shipments, a quarter lots). The lot count is exact: a LOT record's key is kept with
its GTIN, and its delete would be followed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Final

from cloud.contracts import lots, participants
from cloud.contracts.engine import Applied, Record

# A group's name: its kind (below) and what it is of (a lot's gtin and number, a subject).
Group = tuple[str, ...]
SHIPMENTS: Final = "shipments"
BOXES: Final = "boxes"
CERTIFICATES: Final = "certificates"
PARTICIPANTS: Final = "participants"


def places(record: Record) -> list[tuple[Group, str]]:
    """Return the groups a record belongs to, each with the member it is there (the module
    docstring's table; LOT records are counted, not grouped)."""
    rtype = record.type
    if rtype == lots.SHIPMENT:
        v = record.value
        return [((SHIPMENTS, sys.intern(v["gtin"]), v["lot"]), record.fields[0])]
    if rtype == lots.ATTACHMENT:
        on = dict.fromkeys((w["gtin"], w["lot"]) for w in record.value["windows"])
        return [((BOXES, sys.intern(gtin), lot), record.fields[0]) for gtin, lot in on]
    if rtype == lots.CERTIFICATE:
        return [((CERTIFICATES, record.value["subject"]), record.fields[0])]
    if rtype == participants.PARTICIPANT:
        return [((PARTICIPANTS,), record.fields[0])]
    return []


class FactIndex:
    """The groups of records the reads' facts need (module docstring)."""

    def __init__(self) -> None:
        # Each group's members, in the order first put; lists, not sets: most groups hold
        # one or two names, and a set costs 216 bytes before its first.
        self._members: dict[Group, list[str]] = {}
        self._lots: dict[bytes, str] = {}  # LOT tree key -> its GTIN
        self._per_gtin: dict[str, int] = {}

    @classmethod
    def of(cls, records: Mapping[bytes, Record]) -> FactIndex:
        """Return the index of these records (a State's `records`)."""
        index = cls()
        for key, record in records.items():
            index._put(key, record)
        return index

    def apply(self, applied: Applied) -> None:
        """Take in what one transaction (or one reading batch) changed, in log order."""
        for key in applied.deleted:
            gtin = self._lots.pop(key, None)
            if gtin is not None:
                self._per_gtin[gtin] -= 1
        for key, record in applied.put.items():
            self._put(key, record)

    def _put(self, key: bytes, record: Record) -> None:
        if record.type == lots.LOT:
            if key not in self._lots:
                gtin = self._lots[key] = sys.intern(record.fields[0])
                self._per_gtin[gtin] = self._per_gtin.get(gtin, 0) + 1
            return
        for group, member in places(record):
            members = self._members.setdefault(group, [])
            if member not in members:
                members.append(member)

    def _sorted(self, group: Group) -> list[str]:
        return sorted(self._members.get(group, ()))

    def shipments(self, gtin: str, lot: str) -> list[str]:
        """The ids of shipments that may be of the lot (candidates: module docstring), sorted."""
        return self._sorted((SHIPMENTS, gtin, lot))

    def boxes(self, gtin: str, lot: str) -> list[str]:
        """The boxes (x-only keys, hex) that may have an attachment window on the lot,
        sorted."""
        return self._sorted((BOXES, gtin, lot))

    def certificates(self, subject: str) -> list[str]:
        """The ids of certificates that may be of `subject` (a participant id, or
        "<gtin>/<lot>"), sorted."""
        return self._sorted((CERTIFICATES, subject))

    def participants(self) -> list[str]:
        """The ids of every participant (and of none that is not), sorted."""
        return self._sorted((PARTICIPANTS,))

    def lots_of(self, gtin: str) -> int:
        """How many lots of `gtin` exist (commissioned or split off): exact."""
        return self._per_gtin.get(gtin, 0)
