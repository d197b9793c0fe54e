"""GS1 identifiers: GTIN check digits, AI 10/21 character set 82, AI 17 dates with day 00 and
the §7.12 century window, each refusal naming its AI with got/want."""

from __future__ import annotations

import datetime
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.contracts import gs1
from cloud.contracts.gs1 import Gs1Error

TODAY = datetime.date(2026, 12, 6)


def independent_check_digit(body: str) -> int:
    """The GS1 rule as the General Specifications' worked example states it, over a 17-digit
    field right-aligned with zeros: positions 1, 3, 5, ... from the left weigh 3."""
    field = body.rjust(17, "0")
    odd = sum(int(d) for d in field[0::2])
    even = sum(int(d) for d in field[1::2])
    return (10 - (odd * 3 + even) % 10) % 10


# Known answers: printed barcodes whose last digit is their check digit.
VALID = [
    "4006381333931",  # GTIN-13 (EAN-13 of a Stabilo pen, the usual textbook example)
    "036000291452",  # GTIN-12 (UPC-A)
    "96385074",  # GTIN-8
    "00012345600012",  # GTIN-14, the GS1 General Specifications' example
    "10614141000415",  # GTIN-14 with indicator digit 1
]


@pytest.mark.parametrize("gtin", VALID)
def test_known_gtins_verify_and_pad_to_14(gtin: str) -> None:
    assert gs1.check_digit(gtin[:-1]) == int(gtin[-1])
    assert gs1.gtin14(gtin) == gtin.rjust(14, "0")
    assert gs1.check_ai("01", gtin, TODAY) == gtin.rjust(14, "0")


@given(st.text(alphabet="0123456789", min_size=1, max_size=17))
def test_check_digit_matches_an_independent_formula(body: str) -> None:
    assert gs1.check_digit(body) == independent_check_digit(body)


@given(st.text(alphabet="0123456789", min_size=13, max_size=13), st.integers(1, 9))
def test_every_wrong_check_digit_is_refused(body: str, off: int) -> None:
    good = gs1.check_digit(body)
    bad = (good + off) % 10
    with pytest.raises(Gs1Error, match=rf"^AI 01: got '{body}{bad}', want check digit {good}"):
        gs1.gtin14(f"{body}{bad}")


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("123456789", "not 9"),
        ("123456789012345", "not 15"),
        ("", "8, 12, 13 or 14 digits"),
        ("4006381333931 ", "8, 12, 13 or 14 digits"),
        ("٤٠٠٦٣٨١٣٣٣٩٣١", "8, 12, 13 or 14 digits"),  # Arabic-Indic digits: isdigit(), not ASCII
        ("4006381333932", "check digit 1, not 2"),
    ],
)
def test_malformed_gtins_are_refused_with_the_reason(value: str, want: str) -> None:
    with pytest.raises(Gs1Error, match=want) as refused:
        gs1.gtin14(value)
    assert refused.value.ai == "01"


def test_gtin_of_another_type_is_refused() -> None:
    with pytest.raises(Gs1Error, match=r"^AI 01: got 4006381333931, want 8, 12, 13 or 14 digits"):
        gs1.gtin14(4006381333931)  # type: ignore[arg-type]


def test_character_set_82_is_exactly_the_figure() -> None:
    """§7.11 figure 7.11-1: printable ASCII without space # $ @ [ \\ ] ^ ` { | } ~."""
    printable = {chr(c) for c in range(0x21, 0x7F)}
    assert printable - set("#$@[\\]^`{|}~") == gs1.CSET82
    assert len(gs1.CSET82) == 82
    assert set(string.ascii_letters + string.digits + "_:;<=>?") <= gs1.CSET82


def test_lot_and_serial_take_1_to_20_characters_of_set_82() -> None:
    every = "".join(sorted(gs1.CSET82))
    for i in range(0, 82, 20):
        assert gs1.lot(every[i : i + 20]) == every[i : i + 20]
        assert gs1.serial(every[i : i + 20]) == every[i : i + 20]
    assert gs1.lot("A") == "A"
    assert gs1.check_ai("10", "LOT-2026/07", TODAY) == "LOT-2026/07"
    assert gs1.check_ai("21", "SN:0001", TODAY) == "SN:0001"


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("", "1..20 characters, not 0"),
        ("X" * 21, "1..20 characters, not 21"),
        ("LOT 1", "' ' at 3 is not one"),
        ("LOT#1", "'#' at 3 is not one"),
        ("LOTé", "'é' at 3 is not one"),
        ("A\x1dB", "'\\\\x1d' at 1 is not one"),  # GS, the element separator
    ],
)
@pytest.mark.parametrize(("ai", "check"), [("10", gs1.lot), ("21", gs1.serial)])
def test_bad_lots_and_serials_are_refused_naming_the_ai(
    ai: str, check: object, value: str, want: str
) -> None:
    with pytest.raises(Gs1Error, match=f"^AI {ai}: got .*want .*{want}") as refused:
        check(value)  # type: ignore[operator]
    assert refused.value.ai == ai


@pytest.mark.parametrize(
    ("value", "today", "date"),
    [
        ("270300", TODAY, datetime.date(2027, 3, 31)),  # day 00: the month's last day
        ("270315", TODAY, datetime.date(2027, 3, 15)),
        ("280200", TODAY, datetime.date(2028, 2, 29)),  # leap year
        ("270200", TODAY, datetime.date(2027, 2, 28)),
        ("261200", TODAY, datetime.date(2026, 12, 31)),
        ("000229", datetime.date(2026, 1, 1), datetime.date(2000, 2, 29)),
        # §7.12: from 49 years before to 50 years after the current year (2026).
        ("760101", TODAY, datetime.date(2076, 1, 1)),  # +50: this century
        ("770101", TODAY, datetime.date(1977, 1, 1)),  # +51: the previous one
        ("770101", datetime.date(2027, 1, 1), datetime.date(2077, 1, 1)),
        ("110101", datetime.date(2060, 6, 1), datetime.date(2011, 1, 1)),  # -49: this one
        ("100101", datetime.date(2060, 6, 1), datetime.date(2110, 1, 1)),  # -50: the next one
        ("990101", datetime.date(2000, 1, 1), datetime.date(1999, 1, 1)),
        ("490101", datetime.date(1999, 12, 31), datetime.date(2049, 1, 1)),
    ],
)
def test_expiry_dates_resolve_day_00_and_the_century(
    value: str, today: datetime.date, date: datetime.date
) -> None:
    assert gs1.expiry(value, today) == gs1.Gs1Date(value, date)
    assert gs1.check_ai("17", value, today) == value


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("2703", "YYMMDD, six digits"),
        ("27031a", "YYMMDD, six digits"),
        ("271301", "month 01..12, not 13"),
        ("270001", "month 01..12, not 00"),
        ("270230", "day 00..28 of 2027-02, not 30"),
        ("280230", "day 00..29 of 2028-02, not 30"),
        ("270431", "day 00..30 of 2027-04, not 31"),
    ],
)
def test_malformed_expiry_dates_are_refused(value: str, want: str) -> None:
    with pytest.raises(Gs1Error, match=f"^AI 17: got '{value}', want {want}$"):
        gs1.expiry(value, TODAY)


@given(st.integers(0, 99), st.dates(datetime.date(1950, 1, 1), datetime.date(2200, 12, 31)))
def test_century_window_is_49_back_to_50_ahead(yy: int, today: datetime.date) -> None:
    year = gs1.century_year(yy, today)
    assert year % 100 == yy
    assert today.year - 49 <= year <= today.year + 50


def test_today_of_a_transaction_time_is_its_utc_day() -> None:
    assert gs1.today_of_ms(0) == datetime.date(1970, 1, 1)
    assert gs1.today_of_ms(1_796_601_599_999) == datetime.date(2026, 12, 6)
    assert gs1.today_of_ms(1_796_601_600_000) == datetime.date(2026, 12, 7)
    with pytest.raises(ValueError, match="time_ms: got -1"):
        gs1.today_of_ms(-1)


def test_an_unknown_ai_is_refused() -> None:
    with pytest.raises(Gs1Error, match=r"^AI 99: got 'x', want an AI among 01, 10, 17, 21$"):
        gs1.check_ai("99", "x", TODAY)
