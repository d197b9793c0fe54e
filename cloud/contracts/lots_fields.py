"""The field checks the lots contract reads from GS1 and the cold chain, named for lots.py:
GTIN-14, AI 10 lot number, AI 17 expiry and the storage profile.

Each delegates to the one definition of its rule — cloud/contracts/gs1.py for GS1 element
values, gateway/alarms.py's LotProfile for the storage profile (the gateway alarms on the same
semantics) — and raises ValueError saying got/want, which lots.py turns into a 400 naming the
argument.
"""

from __future__ import annotations

import datetime
from typing import Any

from cloud.contracts import gs1
from gateway.alarms import LotProfile


def _text(value: object) -> str:
    if type(value) is not str:
        raise ValueError(f"got {type(value).__name__}, want a string")
    return value


def gtin14(value: object) -> str:
    """Return `value` as a GTIN-14 (a GTIN-8, -12 or -13 is left-padded with zeros), its GS1
    mod-10 check digit verified. Raises ValueError (gs1.Gs1Error)."""
    return gs1.gtin14(_text(value))


def lot_number(value: object) -> str:
    """Return `value` if it is a GS1 AI (10) batch/lot number: 1 to 20 characters of
    character set 82. Raises ValueError (gs1.Gs1Error)."""
    return gs1.lot(_text(value))


def expiry_date(value: object, today: datetime.date) -> str:
    """Return the ISO date (YYYY-MM-DD) of a GS1 AI (17) expiry YYMMDD; day 00 means the
    month's last day, and the century is GS1's sliding window around `today` (the
    transaction's own date: a contract reads no clock). Raises ValueError (gs1.Gs1Error)."""
    return gs1.expiry(_text(value), today).date.isoformat()


def storage_profile(value: object) -> dict[str, Any]:
    """Return the storage profile `value` in its signed form (gateway/alarms.py
    LOT_SIGNED_FIELDS: integers, centi-°C and seconds; needs_licence 0 or 1). Raises
    ValueError (AlarmError) naming the member."""
    if not isinstance(value, dict):
        raise ValueError(f"got {type(value).__name__}, want an object")
    return LotProfile.from_signed(value).to_signed()
