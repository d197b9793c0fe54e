"""GS1 element strings as a pharmacy scanner reads them from a GS1 DataMatrix, parsed and built.

Two forms of the same data (GS1 General Specifications §7.8, "processing of data from a GS1
symbology using GS1 Application Identifiers"; §4.15 for the human-readable interpretation):

- raw, as a scanner transmits it: an optional symbology identifier (`]d2` GS1 DataMatrix,
  `]C1` GS1-128, `]Q3` GS1 QR Code, `]e0` GS1 DataBar), an optional leading GS (FNC1 in
  first position, where the identifier was not sent), then AI + value elements; after a
  variable-length value that is not the last, FNC1, transmitted as ASCII GS (0x1D);
- human-readable: `(01)09506000134352(17)270300(10)ABC123(21)XYZ`, the AIs in parentheses.

Which values need the separator is fixed by the first two digits of the AI alone (§7.8.5,
figure 7.8.5-2, the "predefined length" table, PREDEFINED_LENGTH below), not by whether an
AI happens to be fixed-length: AI 422 (N3) still needs one, because "42" is not in the table.

The AIs accepted are the few a medicine pack or its logistic unit carries (AI_TABLE); any
other AI is refused naming it, as a parser that cannot know an AI's length cannot know where
the next one starts. Values are checked with cloud/contracts/gs1.py's rules (GTIN check digit,
set 82, YYMMDD with day 00 and the §7.12 century window), which stays their one definition.

Pure: no clock (six-digit dates are read on the `today` the caller passes), no I/O. Every
refusal is a gs1.Gs1Error naming the AI with got/want.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple, NoReturn

from cloud.contracts import gs1
from cloud.contracts.gs1 import Gs1Date, Gs1Error

GS: Final = "\x1d"  # ASCII group separator: FNC1 as a scanner transmits it
# Characters in one scan: a GS1 DataMatrix holds at most 3,116 digits (144x144 modules).
MAX_SCAN: Final = 4096
# Symbology identifiers (ISO/IEC 15424) that announce GS1 AI data (§7.8.1, figure 7.8.1-2).
GS1_SYMBOLOGIES: Final = {
    "]d2": "GS1 DataMatrix",
    "]C1": "GS1-128",
    "]Q3": "GS1 QR Code",
    "]e0": "GS1 DataBar",
}
# Figure 7.8.5-2: element strings whose AI starts with these two digits have a predefined
# length (AI included) and need no FNC1 after them; every other one does, unless last.
PREDEFINED_LENGTH: Final = {
    "00": 20, "01": 16, "02": 16, "03": 16, "04": 18, "11": 8, "12": 8, "13": 8, "14": 8,
    "15": 8, "16": 8, "17": 8, "18": 8, "19": 8, "20": 4, "31": 10, "32": 10, "33": 10,
    "34": 10, "35": 10, "36": 10, "41": 16,
}  # fmt: skip

# Value formats: N digits, N13/N14/N18 with a GS1 check digit, a YYMMDD date, X set 82.
DIGITS: Final = "N"
CHECKED: Final = "N+check"
DATE: Final = "YYMMDD"
CSET82: Final = "X"


@dataclass(frozen=True, slots=True)
class AiSpec:
    """One Application Identifier: its title, value format and length (GS1 General
    Specifications §3.2); `fixed` is True for a predefined-length element (no FNC1 after)."""

    ai: str
    title: str
    kind: str  # DIGITS, CHECKED, DATE or CSET82
    min_len: int
    max_len: int
    fixed: bool


def _spec(ai: str, title: str, kind: str, length: int, variable: bool = False) -> AiSpec:
    fixed = ai[:2] in PREDEFINED_LENGTH
    assert fixed != variable and (not fixed or PREDEFINED_LENGTH[ai[:2]] == len(ai) + length)
    return AiSpec(ai, title, kind, 1 if variable else length, length, fixed)


# The AIs this parser accepts (GS1 General Specifications §3.2 and §3.3, "N..8" = up to 8).
AI_TABLE: Final[dict[str, AiSpec]] = {
    s.ai: s
    for s in (
        _spec("00", "SSCC", CHECKED, 18),
        _spec("01", "GTIN", CHECKED, 14),
        _spec("02", "CONTENT", CHECKED, 14),
        _spec("10", "BATCH/LOT", CSET82, 20, variable=True),
        _spec("11", "PROD DATE", DATE, 6),
        _spec("15", "BEST BEFORE", DATE, 6),
        _spec("16", "SELL BY", DATE, 6),
        _spec("17", "USE BY/EXPIRY", DATE, 6),
        _spec("21", "SERIAL", CSET82, 20, variable=True),
        _spec("22", "CPV", CSET82, 20, variable=True),
        _spec("30", "VAR. COUNT", DIGITS, 8, variable=True),
        _spec("37", "COUNT", DIGITS, 8, variable=True),
        _spec("240", "ADDITIONAL ID", CSET82, 30, variable=True),
        _spec("241", "CUST. PART No.", CSET82, 30, variable=True),
        _spec("250", "SECONDARY SERIAL", CSET82, 30, variable=True),
        _spec("251", "REF. TO SOURCE", CSET82, 30, variable=True),
        _spec("400", "ORDER NUMBER", CSET82, 30, variable=True),
        _spec("410", "SHIP TO LOC", CHECKED, 13),
        _spec("411", "BILL TO", CHECKED, 13),
        _spec("412", "PURCHASE FROM", CHECKED, 13),
        _spec("413", "SHIP FOR LOC", CHECKED, 13),
        _spec("414", "LOC No.", CHECKED, 13),
        _spec("415", "PAY TO", CHECKED, 13),
        _spec("416", "PROD/SERV LOC", CHECKED, 13),
        _spec("417", "PARTY", CHECKED, 13),
        # National Healthcare Reimbursement Numbers (§3.9.x): Germany PZN, France CIP,
        # Spain national code, Brazil DRN, Portugal AIM, USA NDC.
        _spec("710", "NHRN PZN", CSET82, 20, variable=True),
        _spec("711", "NHRN CIP", CSET82, 20, variable=True),
        _spec("712", "NHRN CN", CSET82, 20, variable=True),
        _spec("713", "NHRN DRN", CSET82, 20, variable=True),
        _spec("714", "NHRN AIM", CSET82, 20, variable=True),
        _spec("715", "NHRN NDC", CSET82, 20, variable=True),
    )
}
# GS1 AIs are prefix-free: no AI is the start of another, so the 2- then 3-digit candidate
# that is in the table is the AI (an AI has 2 to 4 digits; none of 4 is accepted here).
_ACCEPTED = ", ".join(AI_TABLE)
_CHECKED_AI = {"00": "SSCC", "01": "GTIN", "02": "GTIN"}  # the rest of CHECKED are GLNs


# gs1.yymmdd is pure: a counter sees few distinct dates, so their reading is kept.
read_date: Final = functools.lru_cache(maxsize=4096)(gs1.yymmdd)
"""gs1.yymmdd(ai, value, today), its answers kept: the date a six-digit value means."""


def check_value(ai: str, value: str, today: datetime.date) -> str:
    """Return `value` checked as AI `ai`'s (a GTIN-8/12/13 padded to 14 for 01); raises Gs1Error for
    an AI not in AI_TABLE or a value not of its format, naming the AI with got/want."""
    check = _CHECKS.get(ai)
    if check is None:
        raise Gs1Error(ai, value, "an AI among " + _ACCEPTED)
    return check(value, today)


def _checker(spec: AiSpec) -> Callable[[str, datetime.date], str]:
    """The check of one AI's values, chosen once (the parser calls it per element)."""
    ai, most = spec.ai, spec.max_len
    if spec.kind == CSET82:
        return lambda value, _today: gs1.cset82(ai, value, most)
    if spec.kind == DATE:
        return lambda value, today: read_date(ai, value, today).yymmdd
    if ai == gs1.AI_GTIN:
        return lambda value, _today: gs1.gtin14(value)

    def digits(value: str, _today: datetime.date) -> str:
        if not (value.isascii() and value.isdigit()):
            raise Gs1Error(ai, value, f"{_length_text(spec)} digits")
        if not spec.min_len <= len(value) <= most:
            raise Gs1Error(ai, value, f"{_length_text(spec)} digits, not {len(value)}")
        if spec.kind == CHECKED:
            want = gs1.check_digit(value[:-1])
            if int(value[-1]) != want:
                what = _CHECKED_AI.get(ai, "GLN")
                raise Gs1Error(ai, value, f"the {what}'s check digit {want}, not {value[-1]}")
        return value

    return digits


def _length_text(spec: AiSpec) -> str:
    if spec.min_len == spec.max_len:
        return str(spec.max_len)
    return f"{spec.min_len}..{spec.max_len}"


_CHECKS: Final = {ai: _checker(spec) for ai, spec in AI_TABLE.items()}
# The parser's view of the table, by AI length: (ai, fixed, length or maximum, check, spec).
_Entry = tuple[str, bool, int, Callable[[str, datetime.date], str], AiSpec]
_AI2: Final[dict[str, _Entry]] = {}
_AI3: Final[dict[str, _Entry]] = {}
assert all(len(ai) in (2, 3) for ai in AI_TABLE)
for _ai, _s in AI_TABLE.items():
    {2: _AI2, 3: _AI3}[len(_ai)][_ai] = (_ai, _s.fixed, _s.max_len, _CHECKS[_ai], _s)


class Scan(NamedTuple):
    """What one scan of a pack says: its GTIN (AI 01, normalised to 14 digits), and when
    present its lot (AI 10), expiry (AI 17, day 00 resolved; `expiry.yymmdd` as encoded) and
    serial (AI 21); `other` holds every other AI read, as (ai, value) in the order read.
    Immutable (a NamedTuple: the cheapest immutable record to make, once per scan)."""

    gtin: str
    lot: str | None = None
    expiry: Gs1Date | None = None
    serial: str | None = None
    other: tuple[tuple[str, str], ...] = ()

    @property
    def expiry_yymmdd(self) -> str | None:
        """AI 17 exactly as the pack carries it (day 00 kept), or None."""
        return None if self.expiry is None else self.expiry.yymmdd

    def value(self, ai: str) -> str | None:
        """The value of AI `ai` in this scan (01, 10, 17, 21 or any other read), or None."""
        if ai == gs1.AI_GTIN:
            return self.gtin
        if ai == gs1.AI_BATCH_LOT:
            return self.lot
        if ai == gs1.AI_EXPIRY:
            return self.expiry_yymmdd
        if ai == gs1.AI_SERIAL:
            return self.serial
        return next((v for a, v in self.other if a == ai), None)

    def elements(self) -> list[tuple[str, str]]:
        """Every (ai, value) of the scan, in the order PACK_ORDER then the others."""
        known = [
            (gs1.AI_GTIN, self.gtin),
            (gs1.AI_EXPIRY, self.expiry_yymmdd),
            (gs1.AI_BATCH_LOT, self.lot),
            (gs1.AI_SERIAL, self.serial),
        ]
        return [(ai, v) for ai, v in known if v is not None] + list(self.other)


def _unknown_ai(text: str, pos: int) -> NoReturn:
    """Raise the Gs1Error for what stands at `pos` where an AI should, no 2- or 3-digit
    prefix there being in the table: it names the first two digits (an AI's shortest form),
    or the two characters that are no digits."""
    head = text[pos : pos + 2]
    if not (len(head) == 2 and head.isascii() and head.isdigit()):
        raise Gs1Error(head or "?", text[pos : pos + 24], "an AI (2 to 4 digits) here")
    raise Gs1Error(head, text[pos : pos + 24], "an AI among " + _ACCEPTED)


def _strip_prefix(text: str) -> str:
    """The element string without its symbology identifier and leading FNC1."""
    if text[:1] not in ("]", GS):
        return text
    if text.startswith("]"):
        head = text[:3]
        if head not in GS1_SYMBOLOGIES:
            raise Gs1Error(
                "symbology", head, "a GS1 symbology identifier: " + ", ".join(GS1_SYMBOLOGIES)
            )
        text = text[3:]
    if text.startswith(GS):
        text = text[1:]
    return text


def parse_raw(text: str, today: datetime.date) -> list[tuple[str, str]]:
    """Return the (ai, value) elements of a raw element string (GS = FNC1), checked, in the
    order read. Raises Gs1Error: unknown AI, value too short or malformed, a variable-length
    value too long or malformed where a missing GS separator ran it into the next AI."""
    text = _strip_prefix(text)
    if not text:
        raise Gs1Error("01", text, "an element string, not an empty one")
    out: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    ai2, ai3, find = _AI2, _AI3, text.find  # locals: this loop is the counter's hot path
    while pos < end:
        entry = ai2.get(text[pos : pos + 2]) or ai3.get(text[pos : pos + 3])
        if entry is None:
            _unknown_ai(text, pos)
        ai, fixed, most, check, spec = entry
        pos += len(ai)
        if fixed:
            stop = pos + most
            value = text[pos:stop]
            if stop > end or GS in value:
                raise Gs1Error(ai, value, f"{most} characters (a fixed length)")
            if stop < end and text[stop] == GS:  # tolerated: an FNC1 no rule asks for
                stop += 1
            out.append((ai, check(value, today)))
            pos = stop
            continue
        stop = find(GS, pos)
        if stop < 0:
            stop = end
        value = text[pos:stop]
        if len(value) > most or not value:
            _refuse_variable(spec, value)
        try:
            out.append((ai, check(value, today)))
        except Gs1Error as e:
            _refuse_variable(spec, value, e)
        pos = stop + 1
    return out


def _refuse_variable(spec: AiSpec, value: str, cause: Gs1Error | None = None) -> NoReturn:
    """Raise the Gs1Error for a bad variable-length value (`cause`: its check's refusal);
    where a GS separator may be missing (too long, or a tail that reads as another AI) the
    message says so."""
    if not value:
        raise Gs1Error(spec.ai, value, f"{_length_text(spec)} characters, not none")
    joined = len(value) > spec.max_len or _looks_joined(value)
    hint = "; a GS/FNC1 separator missing after it?" if joined else ""
    if cause is None:
        got = value if len(value) <= 48 else f"{value[:40]}... ({len(value)} characters)"
        raise Gs1Error(spec.ai, got, f"at most {spec.max_len} characters{hint}")
    if not joined:
        raise cause
    raise Gs1Error(spec.ai, value, f"a valid value ({cause}){hint}") from cause


def _looks_joined(value: str) -> bool:
    """True if some tail of `value` starts with an accepted AI followed by data."""
    return any(
        value[i : i + n] in AI_TABLE and len(value) > i + n
        for i in range(1, len(value))
        for n in (2, 3)
    )


# The human-readable form: an AI is "(" 2-4 digits ")". A value runs to the next such group.
_HRI_AI = re.compile(r"\((\d{2,4})\)")


def parse_hri(text: str, today: datetime.date) -> list[tuple[str, str]]:
    """Return the (ai, value) elements of a human-readable element string such as
    `(01)09506000134352(17)270300(10)ABC123(21)XYZ`, checked, in order. A value ends where
    the next "(digits)" starts, so a value that itself holds "(" digits ")" cannot be read
    back from this form (the raw form has no such limit). Raises Gs1Error."""
    marks = list(_HRI_AI.finditer(text))
    if not marks or marks[0].start() != 0:
        raise Gs1Error("01", text[:24], "'(' AI ')' value ..., starting with an AI")
    out: list[tuple[str, str]] = []
    for i, mark in enumerate(marks):
        ai = mark.group(1)
        if ai not in AI_TABLE:
            raise Gs1Error(ai, text[mark.start() : mark.start() + 24], "an AI among " + _ACCEPTED)
        stop = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        value = text[mark.end() : stop]
        spec = AI_TABLE[ai]
        if spec.fixed and len(value) != spec.max_len:
            raise Gs1Error(ai, value, f"{spec.max_len} characters (a fixed length)")
        if not spec.fixed and not 1 <= len(value) <= spec.max_len:
            raise Gs1Error(ai, value, f"{_length_text(spec)} characters, not {len(value)}")
        out.append((ai, check_value(ai, value, today)))
    return out


def elements_to_scan(elements: list[tuple[str, str]], today: datetime.date) -> Scan:
    """Return the Scan of checked elements (AI 17 read on `today`): refuses (Gs1Error) a scan
    without AI 01, an AI repeated with a different value (one value per AI in a scan) and
    AI 02 beside AI 01 (an invalid pair in the General Specifications' §4.14)."""
    seen = dict(elements)  # a repeated AI keeps its first place (and its last value)
    if len(seen) != len(elements):
        first: dict[str, str] = {}
        for ai, value in elements:
            before = first.setdefault(ai, value)
            if before != value:
                raise Gs1Error(ai, value, f"one value per scan; it already read {before!r}")
    gtin = seen.get(gs1.AI_GTIN)
    if gtin is None:
        raise Gs1Error(gs1.AI_GTIN, "no AI 01", "a GTIN (AI 01) in a pack's scan")
    if "02" in seen:
        raise Gs1Error("02", seen["02"], "no AI 02 beside AI 01 (an invalid pair)")
    expiry = seen.get(gs1.AI_EXPIRY)
    return Scan(
        gtin,
        seen.get(gs1.AI_BATCH_LOT),
        None if expiry is None else read_date(gs1.AI_EXPIRY, expiry, today),
        seen.get(gs1.AI_SERIAL),
        tuple(item for item in seen.items() if item[0] not in _SCAN_FIELDS),
    )


_SCAN_FIELDS: Final = frozenset((gs1.AI_GTIN, gs1.AI_BATCH_LOT, gs1.AI_EXPIRY, gs1.AI_SERIAL))


def parse_element_string(text: str, today: datetime.date) -> Scan:
    """Parse what a scanner read from a pack (raw with GS separators, or human-readable in
    parentheses) into a Scan, six-digit dates read on `today`. Raises Gs1Error naming the AI
    (or "symbology", or "scan" for one longer than MAX_SCAN) with got/want; never anything
    else, whatever `text` holds."""
    if not isinstance(text, str):
        raise Gs1Error("01", type(text).__name__, "an element string (str)")
    if len(text) > MAX_SCAN:
        raise Gs1Error("scan", f"{len(text)} characters", f"at most {MAX_SCAN}")
    if text.startswith("("):
        pack = _PACK_HRI.match(text)
        if pack is None:
            return elements_to_scan(parse_hri(text, today), today)
    else:
        pack = _PACK.match(text)
    if pack is not None:  # the usual pack: one regular expression instead of the loop
        gtin, expiry, lot, serial = pack.groups()
        try:
            return Scan(
                gs1.gtin14(gtin),
                gs1.lot(lot),
                read_date(gs1.AI_EXPIRY, expiry, today),
                gs1.serial(serial),
            )
        except Gs1Error:
            pass  # the general parser below refuses it, in its own words
    parse = parse_hri if text.startswith("(") else parse_raw
    return elements_to_scan(parse(text, today), today)


# What nearly every pack's DataMatrix sends: 01 17 10 GS 21 (PACK_ORDER), with or without a
# symbology identifier or leading FNC1. A match is checked with the same rules as the general
# parsers (tests/cloud/contracts/test_gs1_element.py checks that both read any input alike).
_PACK = re.compile(
    "(?:" + "|".join(re.escape(s) for s in GS1_SYMBOLOGIES) + ")?" + GS + "?"
    r"01(\d{14})17(\d{6})10([^\x1d]{1,20})\x1d21([^\x1d]{1,20})\Z",
    re.ASCII,
)
# The same pack in the human-readable form, its lot and serial holding no "(" at all.
_PACK_HRI = re.compile(
    r"\(01\)(\d{14})\(17\)(\d{6})\(10\)([^(]{1,20})\(21\)([^(]{1,20})\Z", re.ASCII
)


# -- building ------------------------------------------------------------------------------

# The order EU FMD packs carry their data matrix (the EMVO/securPharm coding rules: product
# code, expiry, batch, serial), which is also what the predefined-length table makes
# shortest: 01 and 17 need no separator, so the one GS sits between the two variable ones.
PACK_ORDER: Final = (gs1.AI_GTIN, gs1.AI_EXPIRY, gs1.AI_BATCH_LOT, gs1.AI_SERIAL)


@dataclass(frozen=True)
class ElementStrings:
    """One pack's data in both forms: `raw` as a GS1 DataMatrix transmits it (GS after a
    variable-length value that is not last, no symbology identifier) and `hri` for people;
    `elements` the (ai, value) pairs in their order."""

    raw: str
    hri: str
    elements: tuple[tuple[str, str], ...]


def build_element_string(
    gtin: str,
    today: datetime.date,
    expiry: str | None = None,
    lot: str | None = None,
    serial: str | None = None,
    other: tuple[tuple[str, str], ...] = (),
) -> ElementStrings:
    """Return a pack's element string (raw and human-readable) in PACK_ORDER, then `other`
    (ai, value) pairs. Every value is checked as a parser checks it (GTIN-8/12/13 padded to
    14); raises Gs1Error, also for a value whose human-readable form would read as two AIs
    (one holding "(" digits ")"), which no reader could take apart again."""
    pairs = [(gs1.AI_GTIN, gtin), (gs1.AI_EXPIRY, expiry), (gs1.AI_BATCH_LOT, lot)]
    pairs += [(gs1.AI_SERIAL, serial), *other]
    elements = [(ai, check_value(ai, v, today)) for ai, v in pairs if v is not None]
    elements_to_scan(elements, today)  # the same refusals as a parse: duplicates, no 01, 01 + 02
    raw: list[str] = []
    for i, (ai, value) in enumerate(elements):
        if _HRI_AI.search(value):
            raise Gs1Error(ai, value, "no '(' digits ')' inside: the printed form would split")
        raw.append(ai + value)
        if not AI_TABLE[ai].fixed and i + 1 < len(elements):
            raw.append(GS)
    hri = "".join(f"({ai}){value}" for ai, value in elements)
    return ElementStrings("".join(raw), hri, tuple(elements))
