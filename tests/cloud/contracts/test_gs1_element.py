"""GS1 element strings as a pharmacy scanner reads them: the raw form (FNC1 sent as GS, with
or without a symbology identifier) and the human-readable form, parsed into a Scan, refused
with the AI named for every malformed class, built in the EU FMD order and read back; and
the expiry comparison (AI 17 day 00 against a registered ISO date)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cloud.contracts import gs1
from cloud.contracts.gs1 import Gs1Date, Gs1Error
from cloud.contracts.gs1_element import (
    AI_TABLE,
    GS,
    PREDEFINED_LENGTH,
    Scan,
    build_element_string,
    elements_to_scan,
    parse_element_string,
    parse_hri,
    parse_raw,
)
from tests.cloud.contracts.gs1_strategies import gtins, set82

TODAY = datetime.date(2026, 12, 6)
GTIN = "09506000134352"  # GS1's example GTIN-14 (prefix 950: GS1 Global Office)
PACK = Scan(GTIN, "ABC123", Gs1Date("270300", datetime.date(2027, 3, 31)), "XYZ")
# The same pack as a GS1 DataMatrix transmits it (General Specifications §7.8: FNC1 in first
# position is the ]d2 identifier; 01 and 17 are predefined-length, so the one GS falls
# between the variable-length 10 and 21) and as its human-readable interpretation (§4.15).
RAW = "01095060001343521727030010ABC123" + GS + "21XYZ"
HRI = "(01)09506000134352(17)270300(10)ABC123(21)XYZ"


@pytest.mark.parametrize(
    "text",
    [
        RAW,
        "]d2" + RAW,  # GS1 DataMatrix
        "]C1" + RAW,  # GS1-128
        "]Q3" + RAW,  # GS1 QR Code
        "]e0" + RAW,  # GS1 DataBar
        GS + RAW,  # FNC1 in first position sent as GS (no identifier)
        "]d2" + GS + RAW,
        RAW + GS,  # a trailing separator: nothing follows it
        "0109506000134352" + GS + "17270300" + GS + "10ABC123" + GS + "21XYZ",  # spare GSs
        "10ABC123" + GS + "21XYZ" + GS + "010950600013435217270300",  # any order
        HRI,
        "(21)XYZ(10)ABC123(17)270300(01)09506000134352",
    ],
)
def test_every_form_of_one_pack_reads_the_same(text: str) -> None:
    assert parse_element_string(text, TODAY) == PACK


def test_gtin_13_and_other_ais_are_read() -> None:
    # A pack for Germany: its PZN (AI 710) beside the GTIN, plus a count and a CPV.
    text = "]d2" + "0104150123456782" + "10L-7/2" + GS + "7101234567" + GS + "21S1" + GS + "3712"
    scan = parse_element_string(text, TODAY)
    assert scan.gtin == "04150123456782" and scan.lot == "L-7/2" and scan.serial == "S1"
    assert scan.expiry is None and scan.other == (("710", "1234567"), ("37", "12"))
    assert scan.value("710") == "1234567" and scan.value("17") is None
    # A logistic unit's SSCC (the one GS1's Digital Link examples use) and a GLN of company
    # prefix 0614141 (GS1 US's example prefix, as in the EPC Tag Data Standard's examples).
    sscc = parse_element_string("0010614141123456789701095060001343524140614141000005", TODAY)
    assert sscc.other == (("00", "106141411234567897"), ("414", "0614141000005"))


def test_expiry_keeps_what_the_pack_carries_and_resolves_day_00() -> None:
    scan = parse_element_string(HRI, TODAY)
    assert scan.expiry_yymmdd == "270300" and scan.expiry is not None
    assert scan.expiry.date == datetime.date(2027, 3, 31)
    leap = parse_element_string("(01)09506000134352(17)280200", TODAY)
    assert leap.expiry == Gs1Date("280200", datetime.date(2028, 2, 29))


# -- every refusal names its AI with got/want ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "ai", "message"),
    [
        # bad check digits: GTIN, SSCC, GLN
        ("0109506000134353", "01", "check digit 2, not 3"),
        ("(01)09506000134353", "01", "check digit 2, not 3"),
        ("010950600013435200106141411234567898", "00", "SSCC's check digit 7, not 8"),
        ("01095060001343524140614141000006", "414", "GLN's check digit 5, not 6"),
        # unknown AIs, named
        ("010950600013435299ABC", "99", "an AI among 00, 01, 02, 10"),
        ("(01)09506000134352(8006)123", "8006", "an AI among"),
        ("0109506000134352ABC", "AB", "an AI (2 to 4 digits) here"),
        # serial too long, or outside set 82
        ("010950600013435221" + "S" * 21, "21", "at most 20 characters; a GS/FNC1"),
        ("(01)09506000134352(21)" + "S" * 21, "21", "1..20 characters, not 21"),
        ("010950600013435221AB CD", "21", "' ' at 2 is not one"),
        ("010950600013435221AB#", "21", "'#' at 2 is not one"),
        ("(01)09506000134352(21)caf\u00e9", "21", "'\u00e9' at 3 is not one"),
        ("010950600013435210L\x0021S", "10", "'\\x00' at 1 is not one"),
        # a missing separator after a variable-length value, where it shows
        ("010950600013435210ABC12321XYZ172703007101234", "10", "separator missing"),
        ("0109506000134352371210ABC", "37", "1..8 digits); a GS/FNC1 separator missing"),
        # bad dates (§7.12)
        ("010950600013435217271300", "17", "month 01..12, not 13"),
        ("010950600013435217270230", "17", "day 00..28 of 2027-02, not 30"),
        ("01095060001343521727033", "17", "6 characters (a fixed length)"),
        ("01095060001343521727A300", "17", "YYMMDD, six digits"),
        ("010950600013435211261301", "11", "month 01..12"),
        # truncated, empty, duplicated, missing the GTIN, an invalid pair
        ("01095060001343", "01", "14 characters (a fixed length)"),
        ("010950600013435210" + GS + "21X", "10", "1..20 characters, not none"),
        ("010950600013435210A" + GS + "10B", "10", "one value per scan; it already read 'A'"),
        ("01095060001343520109506000134369", "01", "already read '09506000134352'"),
        ("10ABC" + GS + "21XYZ", "01", "a GTIN (AI 01)"),
        ("01095060001343520209506000134352371", "02", "invalid pair"),
        ("", "01", "an element string"),
        ("]d1" + RAW, "symbology", "a GS1 symbology identifier"),
        (RAW + GS + "21" + "S" * 5000, "scan", "at most 4096"),
        ("010950600013435221" + "S" * 3000, "21", "SSSSSSSS... (3000 characters)"),
        ("(01", "01", "'(' AI ')' value"),
        ("x(01)09506000134352", "x(", "an AI (2 to 4 digits) here"),
    ],
)
def test_malformed_scans_are_refused_naming_the_ai(text: str, ai: str, message: str) -> None:
    with pytest.raises(Gs1Error, match="want") as refused:
        parse_element_string(text, TODAY)
    assert refused.value.ai == ai
    assert message in str(refused.value)


def test_a_repeated_ai_with_the_same_value_is_read_once() -> None:
    scan = parse_element_string(RAW + GS + "21XYZ" + GS + "3712" + GS + "3712", TODAY)
    assert scan.serial == "XYZ" and scan.other == (("37", "12"),)


def test_the_ai_table_agrees_with_the_predefined_length_table() -> None:
    """Figure 7.8.5-2 decides which elements need FNC1: every fixed-length AI accepted has
    exactly its predefined length, every other accepted AI is variable."""
    for ai, spec in AI_TABLE.items():
        if ai[:2] in PREDEFINED_LENGTH:
            assert spec.fixed and spec.min_len == spec.max_len
            assert len(ai) + spec.max_len == PREDEFINED_LENGTH[ai[:2]]
        else:
            assert not spec.fixed and spec.min_len == 1
    assert {"710", "711", "712", "713", "714", "715", "00", "01", "10", "17", "21"} <= set(AI_TABLE)
    # GS1 AIs are prefix-free: no accepted AI starts another (the parser relies on it).
    assert not [(a, b) for a in AI_TABLE for b in AI_TABLE if a != b and b.startswith(a)]


# -- building ------------------------------------------------------------------------------


def test_build_writes_the_eu_fmd_order_with_one_separator() -> None:
    built = build_element_string("9506000134352", TODAY, "270300", "ABC123", "XYZ")
    assert built.raw == RAW and built.hri == HRI
    assert built.elements == (("01", GTIN), ("17", "270300"), ("10", "ABC123"), ("21", "XYZ"))
    lot_only = build_element_string(GTIN, TODAY, lot="L1")
    assert lot_only.raw == "010950600013435210L1"  # no GS after the last element
    with_pzn = build_element_string(GTIN, TODAY, lot="L1", other=(("710", "1234567"),))
    assert with_pzn.raw == "010950600013435210L1" + GS + "7101234567"


@pytest.mark.parametrize(
    ("kwargs", "ai"),
    [
        ({"gtin": "09506000134353"}, "01"),
        ({"serial": "S" * 21}, "21"),
        ({"lot": "A B"}, "10"),
        ({"expiry": "271301"}, "17"),
        ({"lot": "A(21)B"}, "10"),  # its printed form would read as two AIs
        ({"other": (("99", "X"),)}, "99"),
        ({"other": (("21", "OTHER"),)}, "21"),
    ],
)
def test_build_refuses_what_a_parser_would(kwargs: dict, ai: str) -> None:
    args = {"gtin": GTIN, "lot": "L1", "serial": "S1"} | kwargs
    with pytest.raises(Gs1Error) as refused:
        build_element_string(today=TODAY, **args)
    assert refused.value.ai == ai


# -- expiry comparison ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pack", "registered", "agree"),
    [
        ("270300", "2027-03-31", True),  # day 00: the month's last day
        ("270331", "2027-03-31", True),
        ("270300", "2027-03-30", False),
        ("280200", "2028-02-29", True),  # a leap year's February
        ("270200", "2027-02-28", True),
        ("270300", datetime.date(2027, 3, 31), True),
        ("270315", "2027-03-16", False),
        ("770300", "1977-03-31", True),  # read on 2026: 77 is 49 years back or less
    ],
)
def test_expiry_on_the_pack_agrees_with_the_registered_date(
    pack: str, registered: str | datetime.date, agree: bool
) -> None:
    assert gs1.expiry_agrees(pack, registered, TODAY) is agree


def test_expiry_comparison_refuses_malformed_dates() -> None:
    with pytest.raises(Gs1Error, match=r"month 01\.\.12"):
        gs1.expiry_agrees("271300", "2027-03-31", TODAY)
    for bad in ("20270331", "2027-3-31", "2027-02-30", "2027-W13-3"):
        with pytest.raises(ValueError):
            gs1.expiry_agrees("270300", bad, TODAY)


# -- properties ----------------------------------------------------------------------------


@st.composite
def yymmdds(draw: st.DrawFn) -> str:
    day = draw(st.dates(datetime.date(1977, 1, 1), datetime.date(2076, 12, 31)))
    end_of_month = draw(st.booleans())
    return day.strftime("%y%m") + ("00" if end_of_month else day.strftime("%d"))


@given(
    gtin=gtins(),
    expiry=st.none() | yymmdds(),
    lot=st.none() | set82,
    serial=st.none() | set82,
    pzn=st.none() | set82,
)
def test_build_then_parse_is_the_identity(
    gtin: str, expiry: str | None, lot: str | None, serial: str | None, pzn: str | None
) -> None:
    other = () if pzn is None else (("710", pzn),)
    try:
        built = build_element_string(gtin, TODAY, expiry, lot, serial, other)
    except Gs1Error as e:  # only a value holding "(" digits ")" is refused
        assume(False)
        raise AssertionError("unreachable") from e
    raw = parse_element_string(built.raw, TODAY)
    assert raw == parse_element_string(built.hri, TODAY)
    assert raw == parse_element_string("]d2" + built.raw, TODAY)
    assert (raw.gtin, raw.expiry_yymmdd, raw.lot, raw.serial, raw.other) == (
        gtin,
        expiry,
        lot,
        serial,
        other,
    )
    assert tuple(raw.elements()) == built.elements


def test_only_values_holding_an_ai_in_parentheses_are_refused_by_the_builder() -> None:
    build_element_string(GTIN, TODAY, lot="A(B)", serial="(1)")  # no 2-4 digit group
    with pytest.raises(Gs1Error):
        build_element_string(GTIN, TODAY, lot="A(10)")


scanner_alphabet = st.sampled_from(
    [*"0123456789", GS, "(", ")", "]", "d", "2", "A", " ", "\u00e9", "\x00", *"%/?#"]
)
tokens = st.sampled_from(
    ["01", "0109506000134352", "10", "17", "17270300", "21", "22", "37", "710", "00", "414"]
)


@given(
    st.text()
    | st.binary().map(lambda b: b.decode("latin-1"))
    | st.text(alphabet=scanner_alphabet, max_size=60)
    | st.lists(tokens | st.text(alphabet=scanner_alphabet, max_size=4), max_size=12).map("".join)
)
def test_arbitrary_input_raises_nothing_but_gs1_error(text: str) -> None:
    try:
        scan = parse_element_string(text, TODAY)
    except Gs1Error:
        return
    assert len(scan.gtin) == 14 and gs1.gtin14(scan.gtin) == scan.gtin


def test_a_non_string_is_refused() -> None:
    with pytest.raises(Gs1Error):
        parse_element_string(b"0109506000134352", TODAY)  # type: ignore[arg-type]


def _generic(text: str) -> Scan | str:
    """The general loop's reading of a raw element string (no fast path), or its refusal."""
    parse = parse_hri if text.startswith("(") else parse_raw
    try:
        return elements_to_scan(parse(text, TODAY), TODAY)
    except Gs1Error as e:
        return str(e)


def _parsed(text: str) -> Scan | str:
    try:
        return parse_element_string(text, TODAY)
    except Gs1Error as e:
        return str(e)


pack_like = st.builds(
    lambda prefix, gtin, date, lot, sep, serial, tail: (
        prefix + "01" + gtin + "17" + date + "10" + lot + sep + "21" + serial + tail
    ),
    st.sampled_from(["", "]d2", "]C1", "]Q3", "]e0", GS, "]d2" + GS, "]d1"]),
    gtins() | st.text(alphabet="0123456789", min_size=14, max_size=14),
    yymmdds() | st.text(alphabet="0123456789", min_size=6, max_size=6),
    set82 | st.text(min_size=0, max_size=22),
    st.sampled_from([GS, "", GS + GS]),
    set82 | st.text(min_size=0, max_size=22),
    st.sampled_from(["", GS, GS + "3712", "17270300"]),
)


hri_like = st.builds(
    lambda gtin, date, lot, serial, tail: (
        "(01)" + gtin + "(17)" + date + "(10)" + lot + "(21)" + serial + tail
    ),
    gtins() | st.text(alphabet="0123456789", min_size=14, max_size=14),
    yymmdds() | st.text(alphabet="0123456789", min_size=6, max_size=6),
    set82 | st.text(min_size=0, max_size=22),
    set82 | st.text(min_size=0, max_size=22),
    st.sampled_from(["", "(37)12", "(21)X", "(17)270300"]),
)


@settings(max_examples=500)
@given(pack_like | hri_like | set82)
def test_the_usual_pack_fast_path_reads_as_the_general_loop(text: str) -> None:
    """parse_element_string matches the usual 01 17 10 GS 21 with one regular expression;
    it must answer exactly as the general loop does, refusals included."""
    assert _parsed(text) == _generic(text)


@pytest.mark.parametrize(
    "text",
    [
        RAW,
        "(21)XYZ(10)ABC123(17)270300(01)09506000134352",
        "]d2" + "0104150123456782" + "10L-7/2" + GS + "7101234567" + GS + "21S1" + GS + "3712",
        "0010614141123456789701095060001343524140614141000005",
    ],
)
def test_parse_then_build_then_parse_is_the_identity(text: str) -> None:
    """The other way round: what a scanner read, written again in the pack order, reads the
    same (the raw form written needs only the separators the pack order needs)."""
    scan = parse_element_string(text, TODAY)
    built = build_element_string(
        scan.gtin, TODAY, scan.expiry_yymmdd, scan.lot, scan.serial, scan.other
    )
    assert parse_element_string(built.raw, TODAY) == scan
    assert parse_element_string(built.hri, TODAY) == scan
    assert list(built.elements) == scan.elements()
