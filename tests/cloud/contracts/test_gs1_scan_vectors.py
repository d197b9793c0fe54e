"""cloud/contracts/gs1_element.py and digital_link.py reproduce tests/vectors/gs1-scan-v1.json,
made from docs/protocol.md ("GS1 scans: element strings and Digital Link") by
tests/vectors/make_golden.py with string joins only: each scan's fields, each URI's fields and
canonical form, the builders' output, and each refusal's AI or URI part."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from cloud.contracts.digital_link import lot_uri, pack_uri, parse_digital_link, scan_from_any
from cloud.contracts.gs1 import Gs1Error
from cloud.contracts.gs1_element import Scan, build_element_string, parse_element_string

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "gs1-scan-v1.json").read_text())
TODAY = datetime.date.fromisoformat(VECTORS["today"])


def fields_of(scan: Scan) -> dict[str, Any]:
    return {
        "gtin": scan.gtin,
        "lot": scan.lot,
        "expiry": scan.expiry_yymmdd,
        "expiry_date": None if scan.expiry is None else scan.expiry.date.isoformat(),
        "serial": scan.serial,
        "other": [list(pair) for pair in scan.other],
    }


@pytest.mark.parametrize("case", VECTORS["element_strings"], ids=lambda c: c["why"])
def test_element_strings(case: dict[str, Any]) -> None:
    assert fields_of(parse_element_string(case["scan"], TODAY)) == case["fields"]
    assert scan_from_any(case["scan"], TODAY) == parse_element_string(case["scan"], TODAY)


@pytest.mark.parametrize("case", VECTORS["digital_links"], ids=lambda c: c["why"])
def test_digital_links(case: dict[str, Any]) -> None:
    link = parse_digital_link(case["uri"], TODAY)
    got = fields_of(link.scan()) | {
        "cpv": link.cpv,
        "link_type": link.link_type,
        "extra": [list(pair) for pair in link.extra],
        "base": link.base,
    }
    assert got == case["fields"]
    assert link.uri() == case["canonical"]
    assert parse_digital_link(case["canonical"], TODAY).scan() == link.scan()
    assert scan_from_any(case["uri"], TODAY) == link.scan()


@pytest.mark.parametrize("case", VECTORS["builds"], ids=lambda c: c["lot"])
def test_builders(case: dict[str, Any]) -> None:
    gtin, lot, serial, expiry = case["gtin"], case["lot"], case["serial"], case["expiry"]
    built = build_element_string(gtin, TODAY, expiry=expiry, lot=lot, serial=serial)
    assert (built.raw, built.hri) == (case["raw"], case["hri"])
    assert pack_uri(gtin, lot, serial, TODAY, expiry=expiry) == case["pack_uri"]
    assert lot_uri(gtin, lot, TODAY) == case["lot_uri"]
    for text in (built.raw, built.hri, case["pack_uri"]):
        scan = scan_from_any(text, TODAY)
        assert (scan.gtin, scan.lot, scan.expiry_yymmdd, scan.serial) == (gtin, lot, expiry, serial)


@pytest.mark.parametrize("case", VECTORS["refused"], ids=lambda c: c["why"])
def test_refusals_name_the_part(case: dict[str, Any]) -> None:
    parse = parse_digital_link if case["form"] == "uri" else parse_element_string
    with pytest.raises(Gs1Error) as caught:
        parse(case["scan"], TODAY)
    assert caught.value.ai == case["part"], str(caught.value)
