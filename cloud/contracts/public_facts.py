"""What a public check says about a lot, from its public records alone (docs/contracts.md §4:
`lot`, `quality`, `recall`, `coldchain`, each a public leaf; the `records` GET /v1/lots
shows everyone): the same function for the resolver (over the records it proves) and for
`pharmasync verify --public` (over the records it has just verified), so both say the same.

Nothing here names a holder, a quantity or a leg: the records hold none (access matrix,
public row: product and quality status `global only`, compliance `restricted`; recalls and
dispositions are public records). Pure: the caller passes the day it reads on.

The verdict: DISPENSABLE when the lot is registered, released, not recalled, not expired and
the pack's expiry (AI 17, if scanned) is the registered one; otherwise DO_NOT_DISPENSE with
each reason, or UNKNOWN when no lot of that GTIN and number was ever registered (suspect).
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any, Final

from cloud.contracts import gs1, lots

DISPENSABLE: Final = "dispensable"
DO_NOT_DISPENSE: Final = "do not dispense"
UNKNOWN: Final = "unknown"


@dataclass(frozen=True)
class PublicRecords:
    """A lot's public records as decoded JSON objects, each None when absent."""

    lot: dict[str, Any] | None
    quality: dict[str, Any] | None
    recall: dict[str, Any] | None
    coldchain: dict[str, Any] | None

    @classmethod
    def from_values(cls, values: dict[str, bytes | None]) -> PublicRecords:
        """Decode the canonical values named by record name ("lot", "quality", ...)."""
        names = ("lot", "quality", "recall", "coldchain")
        return cls(
            *(None if values.get(n) is None else json.loads(values[n] or b"") for n in names)
        )


def facts(
    records: PublicRecords,
    on: datetime.date,
    scanned_expiry: gs1.Gs1Date | None = None,
) -> dict[str, Any]:
    """Return the public facts of a lot read on day `on` (UTC): authentic, expiry (and
    whether the scanned AI 17 agrees), quality status, recall, cold chain, the verdict and
    its reasons. `serial` is None: a pack's facts are public_pack.facts, over these."""
    lot = records.lot
    reasons: list[str] = []
    answer: dict[str, Any] = {"authentic": lot is not None}
    if lot is None:
        answer |= {"verdict": UNKNOWN, "reasons": ["no such lot of this GTIN is registered"]}
        answer["serial"] = None
        return answer
    expiry = datetime.date.fromisoformat(lot["expiry"])
    expired = on > expiry
    answer |= {
        "manufacturer": lot["manufacturer"],
        "registered": lot["since"],
        "expiry": lot["expiry"],
        "expired": expired,
        "profile": lot["profile"],
    }
    if expired:
        reasons.append(f"expired on {lot['expiry']}")
    if scanned_expiry is not None:
        agrees = scanned_expiry.date == expiry
        answer["scanned_expiry"] = {
            "yymmdd": scanned_expiry.yymmdd,
            "date": scanned_expiry.date.isoformat(),
            "agrees": agrees,
        }
        if not agrees:
            reasons.append(
                f"pack's expiry {scanned_expiry.yymmdd} ({scanned_expiry.date.isoformat()})"
                f" is not the registered {lot['expiry']}"
            )
    quality = records.quality
    answer["quality"] = quality
    if quality is None or quality["status"] != lots.RELEASED:
        status = "none" if quality is None else quality["status"]
        reasons.append(f"quality status {status}")
    answer["recalled"] = records.recall is not None
    answer["recall"] = records.recall
    if records.recall is not None:
        reasons.append(f"recalled (class {records.recall['class']})")
    answer["coldchain"] = _coldchain(records.coldchain, quality)
    answer["verdict"] = DO_NOT_DISPENSE if reasons else DISPENSABLE
    answer["reasons"] = reasons
    answer["serial"] = None
    return answer


def _coldchain(record: dict[str, Any] | None, quality: dict[str, Any] | None) -> dict[str, Any]:
    """Whether the cold chain stayed within the lot's profile: no excursion or gap was ever
    acted on (no coldchain record); else the public verdict and whether its quarantine still
    stands (`standing`: the quality record's source is still the cold chain; a dispose or a
    later hold replaced it)."""
    if record is None:
        return {"within_profile": True, "verdict": None, "since": None, "standing": False}
    standing = quality is not None and quality["source"] == "cold-chain"
    return {
        "within_profile": False,
        "verdict": record["verdict"],
        "since": record["since"],
        "standing": standing,
    }


def utc(seconds: int) -> str:
    """POSIX seconds as people read them: ISO 8601 date and time, UTC."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
