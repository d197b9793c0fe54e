"""The field checks the lots contract needs from GS1 and the cold chain, behind one small
adapter: GTIN-14, AI 10 lot number, AI 17 expiry and the storage profile.

These are minimal correct implementations so lots.py stands alone; at merge they are
repointed to cloud/contracts/gs1.py and cloud/contracts/coldchain.py (the one definition of
each), keeping these names and signatures. Each raises ValueError saying got/want; lots.py
turns it into a 400 naming the argument.
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Mapping
from typing import Any, Final

# GS1 General Specifications, figure 7.11-1: AI (10) is up to 20 characters of character set
# 82 (section 7.11: ! " % & ' ( ) * + , - . / 0-9 : ; < = > ? A-Z _ a-z).
_CSET82: Final = re.compile(r"""[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}""")
_GTIN: Final = re.compile("[0-9]{14}")
_YYMMDD: Final = re.compile("[0-9]{6}")
PROFILE_INTS: Final = (
    "low_cc",
    "high_cc",
    "delay_consecutive_s",
    "delay_cumulative_s",
    "hysteresis_cc",
    "max_gap_s",
)
PROFILE_MEMBERS: Final = frozenset({*PROFILE_INTS, "needs_licence"})
_MAX_CC: Final = 100_00  # ±100 °C in centi-°C: no medicine is stored beyond that
_MAX_S: Final = 366 * 86400


def gtin14(value: object) -> str:
    """Return `value` if it is a GTIN-14: 14 digits whose last is the GS1 mod-10 check digit
    of the first 13 (weights 3, 1, 3, ... from the right). Raises ValueError."""
    if type(value) is not str or not _GTIN.fullmatch(value):
        raise ValueError(f"got {str(value)[:40]!r}, want 14 digits")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(value[:13])))
    check = (10 - total % 10) % 10
    if int(value[13]) != check:
        raise ValueError(f"check digit {value[13]}, want {check}")
    return value


def lot_number(value: object) -> str:
    """Return `value` if it is a GS1 AI (10) batch/lot number: 1 to 20 characters of
    character set 82. Raises ValueError."""
    if type(value) is not str or not _CSET82.fullmatch(value):
        raise ValueError(f"got {str(value)[:40]!r}, want 1 to 20 characters of GS1 set 82")
    return value


def expiry_date(value: object) -> str:
    """Return the ISO date (YYYY-MM-DD) of a GS1 AI (17) expiry YYMMDD; day 00 means the
    month's last day. YY is read as 20YY: GS1's sliding century (General Specifications
    7.12) needs today's date, and a contract reads no clock. Raises ValueError."""
    if type(value) is not str or not _YYMMDD.fullmatch(value):
        raise ValueError(f"got {str(value)[:40]!r}, want YYMMDD (6 digits)")
    year, month, day = 2000 + int(value[:2]), int(value[2:4]), int(value[4:])
    if not 1 <= month <= 12:
        raise ValueError(f"month {month:02d}, want 01 to 12")
    last = calendar.monthrange(year, month)[1]
    if day == 0:
        day = last
    if day > last:
        raise ValueError(f"day {day:02d}, want 00 to {last:02d} for {year}-{month:02d}")
    return datetime.date(year, month, day).isoformat()


def storage_profile(value: object) -> dict[str, Any]:
    """Return the storage profile `value` if it is an object of exactly PROFILE_MEMBERS:
    integers low_cc < high_cc (centi-°C, ±100 °C), delays and max_gap_s in seconds (0 to a
    year; cumulative > 0), 0 <= hysteresis_cc < half the range, needs_licence a bool. Raises
    ValueError naming the member."""
    if not isinstance(value, Mapping) or set(value) != PROFILE_MEMBERS:
        got = sorted(value) if isinstance(value, Mapping) else type(value).__name__
        raise ValueError(f"got {str(got)[:200]}, want an object of {sorted(PROFILE_MEMBERS)}")
    for name in PROFILE_INTS:
        number = value[name]
        if type(number) is not int:
            raise ValueError(f"{name}: got {type(number).__name__}, want an integer")
    low, high = value["low_cc"], value["high_cc"]
    if not -_MAX_CC <= low < high <= _MAX_CC:
        raise ValueError(f"low_cc {low}, high_cc {high}: want -10000 <= low < high <= 10000")
    for name in ("delay_consecutive_s", "delay_cumulative_s", "max_gap_s"):
        if not 0 <= value[name] <= _MAX_S:
            raise ValueError(f"{name}: got {value[name]}, want 0 to {_MAX_S}")
    if value["delay_cumulative_s"] == 0:
        raise ValueError("delay_cumulative_s: got 0, want > 0")
    if not 0 <= 2 * value["hysteresis_cc"] < high - low:
        raise ValueError(f"hysteresis_cc: got {value['hysteresis_cc']}, want 0 to < half the range")
    if type(value["needs_licence"]) is not bool:
        raise ValueError("needs_licence: want true or false")
    return dict(value)
