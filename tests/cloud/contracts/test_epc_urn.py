"""EPC pure identity URNs (cloud/contracts/epc_urn.py): the GS1 EPC Tag Data Standard's own
examples both ways, the escaping of set 82's reserved characters, and refusals naming what
is wrong."""

from __future__ import annotations

import pytest

from cloud.contracts import epc_urn

# GS1 EPC TDS 2.x §6.3.1: (01)80614141123458(21)6789 with a 7-digit company prefix 0614141.
SGTIN = ("80614141123458", 7, "6789", "urn:epc:id:sgtin:0614141.812345.6789")
# TDS §6.3.2: (00)106141412345678908, company prefix 0614141.
SSCC = ("106141412345678908", 7, "urn:epc:id:sscc:0614141.1234567890")
# TDS §6.4.1 (LGTIN): (01)04012345123456(10)998877, company prefix 4012345.
LGTIN = ("04012345123456", 7, "998877", "urn:epc:class:lgtin:4012345.012345.998877")


def test_the_standards_examples_both_ways() -> None:
    gtin, length, serial, urn = SGTIN
    assert epc_urn.sgtin(gtin, length, serial) == urn
    assert epc_urn.parse(urn) == epc_urn.Urn("sgtin", "0614141", gtin, serial)
    code, length, urn = SSCC
    assert epc_urn.sscc(code, length) == urn
    assert epc_urn.parse(urn) == epc_urn.Urn("sscc", "0614141", code, None)
    gtin, length, lot, urn = LGTIN
    assert epc_urn.lgtin(gtin, length, lot) == urn
    assert epc_urn.parse(urn) == epc_urn.Urn("lgtin", "4012345", gtin, lot)


@pytest.mark.parametrize("length", range(6, 13))
def test_every_prefix_length_round_trips_with_escaped_characters(length: int) -> None:
    gtin, serial = "09506000134352", 'A/B%1&"<>?z'
    urn = epc_urn.sgtin(gtin, length, serial)
    assert urn.endswith(".A%2FB%251%26%22%3C%3E%3Fz")
    back = epc_urn.parse(urn)
    assert (back.key, back.value, len(back.prefix)) == (gtin, serial, length)


@pytest.mark.parametrize(
    ("urn", "says"),
    [
        ("urn:epc:id:giai:0614141.1", "want urn:epc:id:sgtin:"),
        ("urn:epc:id:sgtin:0614141.812345", "want 3 parts"),
        ("urn:epc:id:sgtin:06141.81234567.1", "company prefix of 5 digits"),
        ("urn:epc:id:sgtin:0614141.8123456.1", "14 digits, want 13"),
        ("urn:epc:id:sgtin:0614141.81234x.1", "must be digits"),
        ("urn:epc:id:sgtin:0614141.812345.a%41", "want %22"),  # only the reserved escapes
        ("urn:epc:id:sgtin:0614141.812345.a b", "set 82"),
        ("urn:epc:class:lgtin:0614141.812345." + "L" * 21, "1..20 characters"),
    ],
)
def test_refusals_say_what_is_wrong(urn: str, says: str) -> None:
    with pytest.raises(epc_urn.UrnError, match=says):
        epc_urn.parse(urn)


def test_a_prefix_length_out_of_range_is_refused() -> None:
    with pytest.raises(epc_urn.UrnError, match=r"6\.\.12"):
        epc_urn.sgtin("09506000134352", 5, "1")
