"""GS1 Digital Link URIs for a GTIN: the path grammar (/01/ then 22, 10, 21 in order) on any
host or as a bare path, strict percent-decoding, data attributes and linkType in the query,
every refusal, canonical building read back, and scan_from_any taking either scan form."""

from __future__ import annotations

import datetime
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.contracts import gs1
from cloud.contracts.digital_link import (
    DigitalLink,
    DigitalLinkError,
    build_digital_link,
    lot_uri,
    pack_uri,
    parse_digital_link,
    scan_from_any,
)
from cloud.contracts.gs1 import Gs1Date, Gs1Error
from cloud.contracts.gs1_element import GS, Scan, build_element_string
from tests.cloud.contracts.gs1_strategies import gtins, set82

TODAY = datetime.date(2026, 12, 6)
GTIN = "09506000134352"


# The examples the GS1 Digital Link URI Syntax standard gives (as BWIPP's notes on GS1 Digital
# Link reproduce them): GTIN with batch and serial on id.gs1.org, an expiry as a data
# attribute, a brand's own domain with a path prefix, a CPV with percent-encoded characters.
@pytest.mark.parametrize(
    ("uri", "want"),
    [
        (
            "https://id.gs1.org/01/09521234543213/10/ABC123/21/12345",
            DigitalLink("09521234543213", lot="ABC123", serial="12345", base="https://id.gs1.org"),
        ),
        (
            "https://id.gs1.org/01/09521234543213/10/ABC123?17=261231",
            DigitalLink(
                "09521234543213",
                lot="ABC123",
                attributes=(("17", "261231"),),
                expiry=Gs1Date("261231", datetime.date(2026, 12, 31)),
                base="https://id.gs1.org",
            ),
        ),
        (
            "https://example.com/products/01/09521234543213",
            DigitalLink("09521234543213", base="https://example.com/products"),
        ),
        (
            "https://example.com/01/09521234543213/22/ABC%2D123/10/XYZ%2F987",
            DigitalLink("09521234543213", cpv="ABC-123", lot="XYZ/987", base="https://example.com"),
        ),
        ("/01/09506000134352", DigitalLink(GTIN)),
        ("/01/9506000134352/", DigitalLink(GTIN)),  # GTIN-13, a trailing slash
        ("/01/12345670/21/1", DigitalLink("00000012345670", serial="1")),  # GTIN-8
        ("/01/036000291452/10/1", DigitalLink("00036000291452", lot="1")),  # GTIN-12
        # The deprecated Digital Link 1.1 alphas, read as their numeric AIs
        ("/gtin/09506000134352/lot/L1/ser/S1", DigitalLink(GTIN, lot="L1", serial="S1")),
        # Host and scheme in any case; port; fragment dropped
        (
            "HTTPS://Res.Example:8443/01/09506000134352#x",
            DigitalLink(GTIN, base="https://res.example:8443"),
        ),
        (
            "http://127.0.0.1:8480/01/09506000134352",
            DigitalLink(GTIN, base="http://127.0.0.1:8480"),
        ),
        # A prefix of the host's own may itself hold what looks like a key
        ("https://e.com/01/x/01/09506000134352", DigitalLink(GTIN, base="https://e.com/01/x")),
    ],
)
def test_digital_links_parse(uri: str, want: DigitalLink) -> None:
    assert parse_digital_link(uri, TODAY) == want


def test_query_holds_attributes_link_type_and_other_parameters() -> None:
    link = parse_digital_link(
        "https://r.example/01/09506000134352/10/ABC123/21/XYZ"
        "?17=270300&linkType=gs1%3AcertificationInfo&utm_source=box&710=1234567&exp=271231",
        TODAY,
    )
    assert link.expiry == Gs1Date("270300", datetime.date(2027, 3, 31))
    assert link.attributes == (("17", "270300"), ("710", "1234567"))
    assert link.link_type == "gs1:certificationInfo"
    assert link.extra == (("utm_source", "box"), ("exp", "271231"))  # exp is no GS1 key
    assert link.scan() == Scan(GTIN, "ABC123", link.expiry, "XYZ", (("710", "1234567"),))
    # Written canonically: AI 17 first, linkType last, other parameters dropped.
    assert link.uri() == (
        "https://r.example/01/09506000134352/10/ABC123/21/XYZ"
        "?17=270300&710=1234567&linkType=gs1:certificationInfo"
    )


@pytest.mark.parametrize(
    ("uri", "part", "message"),
    [
        ("https://e.com/01/09506000134353", "01", "check digit 2, not 3"),
        ("/01/12345", "01", "8, 12, 13 or 14 digits, not 5"),
        ("/01/09506000134352/21/S/10/L", "path", "in the order 22, 10, 21"),
        ("/01/09506000134352/10/L/22/C", "path", "in the order 22, 10, 21"),
        ("/01/09506000134352/10/L/10/M", "path", "AI 10 once"),
        ("/01/09506000134352/10/L/lot/M", "path", "AI 10 once"),
        ("/01/09506000134352/99/X", "path", "a key qualifier of a GTIN"),
        ("/01/09506000134352/10/L/extra", "path", "a key qualifier of a GTIN"),
        ("/00/106141411234567897", "path", "a key qualifier of a GTIN"),
        ("/10/L", "path", "/01/{gtin} then"),
        ("/", "path", "/01/{gtin} then"),
        ("https://e.com", "path", "/01/{gtin} after the host"),
        ("https://e.com/01/09506000134352/21/" + "S" * 21, "21", "1..20 characters, not 21"),
        ("/01/09506000134352/21/A%20B", "21", "' ' at 1 is not one"),
        ("/01/09506000134352/21/A%23", "21", "'#' at 1 is not one"),
        ("/01/09506000134352/21/%C3%A9", "path", "escapes of ASCII characters only"),
        ("/01/09506000134352/21/A%2", "path", "a %XX escape"),
        ("/01/09506000134352/21/A%zz", "path", "a %XX escape"),
        ("/01/09506000134352?17=271301", "17", "month 01..12, not 13"),
        ("/01/09506000134352?17=270300&17=270301", "query", "17 once"),
        ("/01/09506000134352?10=L", "query", "in the path"),
        ("/01/09506000134352?00=106141411234567897", "00", "a data attribute of a GTIN"),
        ("/01/09506000134352?99=X", "99", "an AI among"),
        ("/01/09506000134352?17", "query", "key=value"),
        ("/01/09506000134352?linkType=a&linkType=b", "query", "linkType once"),
        ("/01/09506000134352?linkType=", "linkType", "1..256 printable"),
        ("ftp://e.com/01/09506000134352", "uri", "an http(s) URI or a path"),
        ("01/09506000134352", "uri", "an http(s) URI or a path"),
        ("https://us er@e.com/01/09506000134352", "host", "a host name"),
        ("https:///01/09506000134352", "host", "a host name"),
        ("//evil.example/01/09506000134352", "uri", "a single /"),
        ("https://e.com/a b/01/09506000134352", "path", "a path prefix of URI characters"),
        ("https://e.com/a%zz/01/09506000134352", "path", "a path prefix of URI characters"),
        ("/01/09506000134352/10/" + "A" * 3000, "uri", "at most 2048"),
    ],
)
def test_malformed_links_are_refused_naming_the_part(uri: str, part: str, message: str) -> None:
    with pytest.raises(Gs1Error) as refused:
        parse_digital_link(uri, TODAY)
    assert refused.value.ai == part
    assert message in str(refused.value)


def test_builders_write_canonical_links() -> None:
    assert lot_uri("9506000134352", "ABC123", TODAY, "https://ledger.example/") == (
        "https://ledger.example/01/09506000134352/10/ABC123"
    )
    assert pack_uri(GTIN, "A/B", "S&1", TODAY, "270300") == (
        "https://id.gs1.org/01/09506000134352/10/A%2FB/21/S%261?17=270300"
    )
    assert build_digital_link(GTIN, TODAY, cpv="V-1", base="") == "/01/09506000134352/22/V-1"
    assert build_digital_link(GTIN, TODAY, base="/dl", link_type="gs1:pip") == (
        "/dl/01/09506000134352?linkType=gs1:pip"
    )
    # Every set-82 character that is not unreserved in RFC 3986 is percent-encoded.
    tricky = "!\"%&'()*+,/:;<=>?"
    uri = build_digital_link(GTIN, TODAY, serial=tricky, base="")
    assert uri == "/01/09506000134352/21/" + "".join(f"%{ord(c):02X}" for c in tricky)
    assert parse_digital_link(uri, TODAY).serial == tricky


@pytest.mark.parametrize(
    ("kwargs", "part"),
    [
        ({"gtin": "09506000134353"}, "01"),
        ({"serial": "S" * 21}, "21"),
        ({"lot": "A B"}, "10"),
        ({"expiry": "270230"}, "17"),
        ({"cpv": ""}, "22"),
        ({"base": "ftp://x"}, "uri"),
        ({"base": "https://x/?q"}, "uri"),
        ({"base": "https://x/a b"}, "uri"),
        ({"base": "//evil.example"}, "uri"),
        ({"link_type": ""}, "linkType"),
    ],
)
def test_builders_refuse_what_a_parser_would(kwargs: dict, part: str) -> None:
    args = {"gtin": GTIN, "lot": "L1"} | kwargs
    with pytest.raises(Gs1Error) as refused:
        build_digital_link(today=TODAY, **args)
    assert refused.value.ai == part
    assert not isinstance(refused.value, DigitalLinkError) or part in (
        "uri",
        "linkType",
        "host",
    )


def test_scan_from_any_takes_either_form() -> None:
    expiry = Gs1Date("270300", datetime.date(2027, 3, 31))
    pack = Scan(GTIN, "ABC123", expiry, "XYZ")
    for text in (
        "https://id.gs1.org/01/09506000134352/10/ABC123/21/XYZ?17=270300",
        "]Q1https://id.gs1.org/01/09506000134352/10/ABC123/21/XYZ?17=270300",
        "/01/09506000134352/10/ABC123/21/XYZ?17=270300",
        "]d201095060001343521727030010ABC123" + GS + "21XYZ",
        "(01)09506000134352(17)270300(10)ABC123(21)XYZ",
    ):
        assert scan_from_any(text, TODAY) == pack
    with pytest.raises(Gs1Error):
        scan_from_any("https://e.com/01/09506000134353", TODAY)
    with pytest.raises(Gs1Error):
        scan_from_any(None, TODAY)  # type: ignore[arg-type]


# -- properties ----------------------------------------------------------------------------


@given(
    gtin=gtins(),
    cpv=st.none() | set82,
    lot=st.none() | set82,
    serial=st.none() | set82,
    expiry=st.none() | st.dates(datetime.date(1977, 1, 1), datetime.date(2076, 12, 31)),
    base=st.sampled_from(["", "https://id.gs1.org", "http://127.0.0.1:8480/dl", "/r"]),
)
def test_build_then_parse_is_the_identity(
    gtin: str,
    cpv: str | None,
    lot: str | None,
    serial: str | None,
    expiry: datetime.date | None,
    base: str,
) -> None:
    yymmdd = None if expiry is None else expiry.strftime("%y%m%d")
    uri = build_digital_link(gtin, TODAY, cpv=cpv, lot=lot, serial=serial, expiry=yymmdd, base=base)
    link = parse_digital_link(uri, TODAY)
    assert (link.gtin, link.cpv, link.lot, link.serial, link.base) == (
        gtin,
        cpv,
        lot,
        serial,
        base,
    )
    assert (None if link.expiry is None else link.expiry.date) == expiry
    assert link.uri() == uri  # canonical: writing what was read changes nothing


def test_a_parse_then_write_canonicalises_equivalent_spellings() -> None:
    loose = "HTTPS://E.COM/gtin/9506000134352/lot/A-1/ser/S%2a?17=270300&x=1"
    link = parse_digital_link(loose, TODAY)
    assert link.uri() == "https://e.com/01/09506000134352/10/A-1/21/S%2A?17=270300"
    assert parse_digital_link(link.uri(), TODAY).scan() == link.scan()


uri_pieces = st.lists(
    st.sampled_from([*"0123456789/?&=%#:.", "01", "10", "21", "22", "17", "A", "\u00e9"]),
    max_size=40,
).map("".join)


@given(
    st.text()
    | uri_pieces.map(lambda t: "/" + t)
    | uri_pieces.map(lambda t: "https://h.example/01/" + t)
    | st.lists(st.sampled_from(["01", "09506000134352", "10", "21", "22", "L%2F", "x", "lot"]))
    .map("/".join)
    .map(lambda t: "/" + t)
)
def test_arbitrary_input_raises_nothing_but_gs1_error(text: str) -> None:
    try:
        link = parse_digital_link(text, TODAY)
    except Gs1Error:
        return
    assert gs1.gtin14(link.gtin) == link.gtin
    assert parse_digital_link(link.uri(), TODAY).scan() == link.scan()


@given(st.text(alphabet=sorted(gs1.CSET82), min_size=1, max_size=20))
def test_percent_encoding_matches_the_standard_library(value: str) -> None:
    uri = build_digital_link(GTIN, TODAY, lot=value, base="")
    assert uri == "/01/09506000134352/10/" + quote(value, safe="")


@given(
    gtin=gtins(),
    lot=set82,
    serial=set82,
    expiry=st.dates(datetime.date(1977, 1, 1), datetime.date(2076, 12, 31)),
)
def test_a_pack_reads_the_same_from_its_link_and_from_its_datamatrix(
    gtin: str, lot: str, serial: str, expiry: datetime.date
) -> None:
    yymmdd = expiry.strftime("%y%m%d")
    link = pack_uri(gtin, lot, serial, TODAY, yymmdd)
    try:
        element = build_element_string(gtin, TODAY, yymmdd, lot, serial)
    except Gs1Error:  # a value holding "(" digits ")": no human-readable form
        return
    from_link = scan_from_any(link, TODAY)
    assert from_link == scan_from_any("]d2" + element.raw, TODAY)
    assert from_link == scan_from_any(element.hri, TODAY)
