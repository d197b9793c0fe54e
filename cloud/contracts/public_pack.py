"""What a public check says about a pack (GTIN + serial, GS1 AI 21), from its public records
alone: the same function for the resolver and for `pharmasync verify --public`, so both say
the same (docs/contracts.md §6, "Packs"; the lot's part is public_facts.facts).

Read from the registration record (the serial is registered by the lot's manufacturer: a
lot is registered only by an admitted one), the pack record (absent: active in its
registered lot; present: the lot a split moved it to, and its status) and the public records
of the lot the pack is in now. Nothing here names a holder, a quantity, a leg, nor who
decommissioned the pack or when (that record, DECOMMISSION, is private): only its status.

Suspect (a counterfeit's signs, GS1/EU FMD): a serial no lot of the GTIN registered, a
label lot (AI 10) that is not the registered lot, a label expiry (AI 17; day 00 = the
month's last day) that is not the lot's. Pure: the caller passes the day it reads on.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Final

from cloud.contracts import gs1, pack_facts, public_facts

SUSPECT: Final = "suspect"  # the pack's verdict when it shows a counterfeit's signs
NOT_REGISTERED: Final = "serial not registered by the manufacturer — suspect"


def facts(
    gtin: str,
    label_lot: str | None,
    serial: str,
    on: datetime.date,
    scanned_expiry: gs1.Gs1Date | None,
    registration: tuple[str, int, bytes | None] | None,
    pack: bytes | None,
    lot_records: public_facts.PublicRecords,
) -> dict[str, Any]:
    """Return the public facts of the pack `serial` of `gtin` scanned with `label_lot` (AI 10,
    None if absent) and `scanned_expiry`, read on `on`: `registration` is (registered lot,
    n, its record's canonical value) or None for a serial no lot registered; `pack` the pack
    record's value (None: absent); `lot_records` the public records of the lot it is in."""
    answer = public_facts.facts(lot_records, on, scanned_expiry)
    reasons = list(answer["reasons"])
    value = None if registration is None else registration[2]
    if registration is None or value is None:
        answer["serial"] = {"value": serial, "checked": True, "registered": False}
        answer["authentic"] = False  # whatever its lot: no manufacturer registered this pack
        answer["verdict"] = SUSPECT
        answer["reasons"] = [NOT_REGISTERED, *reasons]
        return answer
    registered_lot, number, _ = registration
    record = json.loads(value)
    status, lot = pack_facts.ACTIVE, registered_lot
    if pack is not None:
        moved = json.loads(pack)
        status, lot = moved["status"], moved["lot"]
    suspect = []
    if label_lot is not None and label_lot != registered_lot:
        suspect.append(f"label lot {label_lot} is not the registered lot {registered_lot}")
    scanned = answer.get("scanned_expiry")
    if scanned is not None and not scanned["agrees"]:
        suspect.append(f"label expiry {scanned['yymmdd']} is not the lot's {answer['expiry']}")
        reasons = [r for r in reasons if not r.startswith("pack's expiry")]
    if status != pack_facts.ACTIVE:
        reasons.insert(0, f"decommissioned ({status}): no longer in the supply chain")
    answer["serial"] = {
        "value": serial,
        "checked": True,
        "registered": True,
        "registered_lot": registered_lot,
        "registration": number,
        "registered_since": record["since"],
        "status": status,
        "in_supply_chain": status == pack_facts.ACTIVE,
        "lot": lot,
        "moved": lot != registered_lot,
    }
    answer["lot"] = lot
    answer["reasons"] = suspect + reasons
    if suspect:
        answer["verdict"] = SUSPECT
    elif reasons:
        answer["verdict"] = public_facts.DO_NOT_DISPENSE
    return answer


__all__ = ["NOT_REGISTERED", "SUSPECT", "facts"]
