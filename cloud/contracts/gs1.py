"""GS1 identifiers a lot carries: GTIN (AI 01), batch/lot (AI 10), expiry date (AI 17) and
serial number (AI 21), checked as the GS1 General Specifications define them.

Pure and deterministic: no clock. A six-digit date's century depends on "today", which the
caller passes (a contract passes its transaction's time), so every replay reads a date the same.
These checks are per Application Identifier (AI) so that an element-string or GS1 Digital Link
parser can reuse them: check_ai(ai, value) dispatches on AI_CHECKS.

Errors are Gs1Error: `ai` names the Application Identifier, str() says got/want.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

AI_GTIN: Final = "01"
AI_BATCH_LOT: Final = "10"
AI_EXPIRY: Final = "17"
AI_SERIAL: Final = "21"
AI_SSCC: Final = "00"

GTIN_LENGTH: Final = 14
GTIN_SHORT_LENGTHS: Final = (8, 12, 13)  # GTIN-8, GTIN-12 (UPC-A), GTIN-13: padded to 14
LOT_MAX: Final = 20  # AI 10 format X..20
SERIAL_MAX: Final = 20  # AI 21 format X..20
SSCC_LENGTH: Final = 18  # AI 00 format N18, the last the check digit

# GS1 AI encodable character set 82 (GS1 General Specifications §7.11, figure 7.11-1): the
# 82 characters of ISO/IEC 646 that AIs of format X may hold (AI 10 and AI 21 among them):
#   ! " % & ' ( ) * + , - . /   0-9   : ; < = > ?   A-Z   _   a-z
# i.e. 0x21-0x22, 0x25-0x3F, 0x41-0x5A, 0x5F, 0x61-0x7A; not space, #, $, @, [ \ ] ^, `,
# { | } ~ nor anything outside ASCII. (Some toolkits' regular expressions omit : ; < = > ?;
# the figure lists them, which is what makes 82.)
CSET82: Final = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
assert len(CSET82) == 82

# GS1 General Specifications §7.12: a six-digit date YYMMDD is placed in the century that puts
# it from 49 years before to 50 years after the current year. Equivalently, with
# d = YY - (current year mod 100): d >= 51 (51..99) means the previous century, d <= -50
# (-50..-99) the next, otherwise the current one.
CENTURY_BEHIND: Final = 49
CENTURY_AHEAD: Final = 50


class Gs1Error(ValueError):
    """A GS1 element value is malformed; `ai` names its Application Identifier."""

    def __init__(self, ai: str, got: object, want: str) -> None:
        super().__init__(f"AI {ai}: got {got!r}, want {want}")
        self.ai = ai


def check_digit(digits: str) -> int:
    """Return the GS1 mod-10 check digit for `digits` (the identifier without it).

    Weights 3, 1, 3, ... from the rightmost digit (GS1 General Specifications §7.9.1): the
    check digit brings the weighted sum to a multiple of 10. Requires ASCII digits only;
    raises ValueError otherwise.
    """
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"digits: got {digits!r}, want ASCII digits")
    # The rightmost digit and every second one leftwards weigh 3, the others 1. Summed as
    # ASCII codes less 48 ("0") each: the counter parses scans by the hundred thousand.
    codes = digits.encode("ascii")
    thrice, once = codes[-1::-2], codes[-2::-2]
    total = 3 * (sum(thrice) - 48 * len(thrice)) + sum(once) - 48 * len(once)
    return -total % 10


def gtin14(value: str) -> str:
    """Return `value` as a GTIN-14: a GTIN-8, -12, -13 or -14 left-padded with zeros.

    Raises Gs1Error (AI 01) unless it is 8, 12, 13 or 14 ASCII digits whose last is the GS1
    check digit of the others.
    """
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise Gs1Error(AI_GTIN, value, "8, 12, 13 or 14 digits")
    if len(value) != GTIN_LENGTH and len(value) not in GTIN_SHORT_LENGTHS:
        raise Gs1Error(AI_GTIN, value, f"8, 12, 13 or 14 digits, not {len(value)}")
    padded = value if len(value) == GTIN_LENGTH else value.rjust(GTIN_LENGTH, "0")
    want = check_digit(padded[:-1])
    if int(padded[-1]) != want:
        raise Gs1Error(AI_GTIN, value, f"check digit {want}, not {padded[-1]}")
    return padded


def sscc(value: str) -> str:
    """Return a Serial Shipping Container Code (AI 00): 18 ASCII digits whose last is the GS1
    check digit of the others. Raises Gs1Error (AI 00) otherwise."""
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise Gs1Error(AI_SSCC, value, f"{SSCC_LENGTH} digits")
    if len(value) != SSCC_LENGTH:
        raise Gs1Error(AI_SSCC, value, f"{SSCC_LENGTH} digits, not {len(value)}")
    want = check_digit(value[:-1])
    if int(value[-1]) != want:
        raise Gs1Error(AI_SSCC, value, f"check digit {want}, not {value[-1]}")
    return value


def cset82(ai: str, value: str, most: int) -> str:
    """Return `value` if it is 1 to `most` characters of character set 82; raises Gs1Error
    naming `ai` and, for a bad character, its position."""
    if not isinstance(value, str):
        raise Gs1Error(ai, value, f"a string of 1..{most} characters of set 82")
    if not 1 <= len(value) <= most:
        raise Gs1Error(ai, value, f"1..{most} characters, not {len(value)}")
    if CSET82.issuperset(value):
        return value
    for i, char in enumerate(value):
        if char not in CSET82:
            raise Gs1Error(ai, value, f"characters of set 82; {char!r} at {i} is not one")
    return value


def lot(value: str) -> str:
    """Return a batch/lot number (AI 10: 1..20 characters of set 82); raises Gs1Error."""
    return cset82(AI_BATCH_LOT, value, LOT_MAX)


def serial(value: str) -> str:
    """Return a serial number (AI 21: 1..20 characters of set 82); raises Gs1Error."""
    return cset82(AI_SERIAL, value, SERIAL_MAX)


def century_year(yy: int, today: datetime.date) -> int:
    """Return the four-digit year of a two-digit `yy` (0..99) read on `today` (§7.12): the
    one from 49 years before to 50 years after today's year. Raises ValueError for yy."""
    if not (type(yy) is int and 0 <= yy <= 99):
        raise ValueError(f"yy: got {yy!r}, want 0..99")
    current = today.year
    difference = yy - current % 100
    if difference > CENTURY_AHEAD:
        difference -= 100  # 51..99 ahead: the previous century
    elif difference < -CENTURY_BEHIND:
        difference += 100  # -50..-99 behind: the next century
    return current + difference


@dataclass(frozen=True)
class Gs1Date:
    """A six-digit GS1 date (AI 11..17) and the calendar day it means."""

    yymmdd: str  # as encoded, day 00 kept: it is what the pack carries
    date: datetime.date  # day 00 resolved to the month's last day


def yymmdd(ai: str, value: str, today: datetime.date) -> Gs1Date:
    """Return the date a six-digit YYMMDD value means, read on `today`.

    DD 00 means the last day of the month (§7.12: only year and month known), so 270300 is
    2027-03-31 and 280200 is 2028-02-29. Raises Gs1Error naming `ai` unless the value is six
    ASCII digits of a month 01..12 and a day 00 or within that month.
    """
    if not (isinstance(value, str) and len(value) == 6 and value.isascii() and value.isdigit()):
        raise Gs1Error(ai, value, "YYMMDD, six digits")
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
    if not 1 <= mm <= 12:
        raise Gs1Error(ai, value, f"month 01..12, not {value[2:4]}")
    year = century_year(yy, today)
    last = calendar.monthrange(year, mm)[1]
    if dd > last:
        raise Gs1Error(ai, value, f"day 00..{last} of {year}-{mm:02d}, not {value[4:]}")
    return Gs1Date(value, datetime.date(year, mm, dd or last))


def expiry(value: str, today: datetime.date) -> Gs1Date:
    """Return an expiration date (AI 17, YYMMDD, day 00 = month's last); raises Gs1Error."""
    return yymmdd(AI_EXPIRY, value, today)


def expiry_agrees(pack: str, registered: str | datetime.date, today: datetime.date) -> bool:
    """True if a pack's AI 17 value (YYMMDD, read on `today`: day 00 is the month's last day)
    names the same day as the expiry the manufacturer registered (an ISO date YYYY-MM-DD or
    a date), so "270300" and "2027-03-31" agree and "270300" and "2027-03-30" do not.
    Raises Gs1Error for a malformed pack value, ValueError for a malformed registered date."""
    if isinstance(registered, str):
        text = registered
        if not (len(text) == 10 and text.isascii() and text[4] == text[7] == "-"):
            raise ValueError(f"registered: got {text!r}, want an ISO date YYYY-MM-DD")
        registered = datetime.date.fromisoformat(text)
    return expiry(pack, today).date == registered


def today_of_ms(time_ms: int) -> datetime.date:
    """Return the UTC calendar day of a transaction time (ms since the Unix epoch), the
    "today" a contract reads six-digit dates on. Raises ValueError for a negative time."""
    if not (type(time_ms) is int and time_ms >= 0):
        raise ValueError(f"time_ms: got {time_ms!r}, want an int >= 0")
    return datetime.date(1970, 1, 1) + datetime.timedelta(days=time_ms // 86_400_000)


# One check per AI, for element-string and Digital Link parsers; each returns the normalised
# value (a GTIN-14, the string itself, or the date as encoded) or raises Gs1Error.
AI_CHECKS: Final[dict[str, Callable[[str, datetime.date], str]]] = {
    AI_GTIN: lambda value, _today: gtin14(value),
    AI_BATCH_LOT: lambda value, _today: lot(value),
    AI_EXPIRY: lambda value, today: expiry(value, today).yymmdd,
    AI_SERIAL: lambda value, _today: serial(value),
}


def check_ai(ai: str, value: str, today: datetime.date) -> str:
    """Return `value` checked and normalised as AI `ai`'s; raises Gs1Error, also for an AI
    this module does not know."""
    check = AI_CHECKS.get(ai)
    if check is None:
        raise Gs1Error(ai, value, "an AI among " + ", ".join(sorted(AI_CHECKS)))
    return check(value, today)
