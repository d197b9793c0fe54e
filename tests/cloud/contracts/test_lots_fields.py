"""The lots contract's field checks (cloud/contracts/lots_fields.py): GTIN-14 check digits,
AI (10) lot numbers, AI (17) expiry dates with day 00, and the storage profile."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.contracts import lots_fields
from tests.cloud.contracts.world import GTIN, PROFILE


def test_gtin14_check_digit() -> None:
    # By hand for 0950600013435?: digits from the right weighted 3,1,3,...:
    # 5*3+3*1+4*3+3*1+1*3+0*1+0*3+0*1+6*3+0*1+5*3+9*1+0*3 = 78, so the check digit is 2.
    assert lots_fields.gtin14(GTIN) == GTIN
    assert lots_fields.gtin14("00012345600012") == "00012345600012"  # GS1 GTIN-12 padded
    with pytest.raises(ValueError, match="check digit 3, want 2"):
        lots_fields.gtin14(GTIN[:13] + "3")


@pytest.mark.parametrize("bad", ["0950600013435", "095060001343520", "0950600013435x", 9506, None])
def test_gtin14_shape(bad: object) -> None:
    with pytest.raises(ValueError, match="want 14 digits"):
        lots_fields.gtin14(bad)


@pytest.mark.parametrize("good", ["A", "LOT-2026/07", "a" * 20, "!\"%&'()*+,-./:;<=>?_"])
def test_lot_number_accepts_set_82(good: str) -> None:
    assert lots_fields.lot_number(good) == good


@pytest.mark.parametrize("bad", ["", "a" * 21, "LOT 1", "LOT#1", "lot\u00e9", "@", 12])
def test_lot_number_refuses_outside_set_82(bad: object) -> None:
    with pytest.raises(ValueError, match="set 82"):
        lots_fields.lot_number(bad)


@pytest.mark.parametrize(
    ("yymmdd", "iso"),
    [
        ("271231", "2027-12-31"),
        ("280200", "2028-02-29"),  # day 00: the month's last day, in a leap year
        ("270200", "2027-02-28"),
        ("270400", "2027-04-30"),
        ("991200", "2099-12-31"),
    ],
)
def test_expiry_date(yymmdd: str, iso: str) -> None:
    assert lots_fields.expiry_date(yymmdd) == iso


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("270231", "day 31, want 00 to 28"),
        ("271301", "month 13"),
        ("2712", "YYMMDD"),
        (271231, "YYMMDD"),
    ],
)
def test_expiry_date_refusals(bad: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        lots_fields.expiry_date(bad)


def test_profile_accepts_the_typical_range() -> None:
    assert lots_fields.storage_profile(PROFILE) == PROFILE


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"low_cc": 2.0}, "low_cc: got float"),
        ({"high_cc": 200}, "want -10000 <= low < high"),
        ({"hysteresis_cc": 300}, "hysteresis_cc"),
        ({"delay_cumulative_s": 0}, "delay_cumulative_s: got 0"),
        ({"max_gap_s": -1}, "max_gap_s"),
        ({"needs_licence": 1}, "needs_licence"),
        ({"extra": 1}, "want an object of"),
    ],
)
def test_profile_refusals(change: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        lots_fields.storage_profile({**PROFILE, **change})
