"""The lots contract's field adapter (cloud/contracts/lots_fields.py) reads each field by its
one definition — GS1 values by cloud/contracts/gs1.py (tested in test_gs1.py), the storage
profile by gateway/alarms.py's LotProfile (tests/gateway/test_alarm_profile.py) — and refuses
what they refuse as a ValueError, which lots.py turns into a 400 naming the argument."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from cloud.contracts import lots_fields
from tests.cloud.contracts.world import GTIN, PROFILE

TODAY = datetime.date(2026, 12, 6)


def test_gtin14_check_digit_and_padding() -> None:
    # By hand for 0950600013435?: digits from the right weighted 3,1,3,...:
    # 5*3+3*1+4*3+3*1+1*3+0*1+0*3+0*1+6*3+0*1+5*3+9*1+0*3 = 78, so the check digit is 2.
    assert lots_fields.gtin14(GTIN) == GTIN
    assert lots_fields.gtin14("012345600012") == "00012345600012"  # a GTIN-12, padded
    with pytest.raises(ValueError, match="check digit"):
        lots_fields.gtin14(GTIN[:13] + "3")


@pytest.mark.parametrize("bad", ["095060001343520", "0950600013435x", 9506, None])
def test_gtin14_refuses_what_is_not_a_gtin(bad: object) -> None:
    with pytest.raises(ValueError):
        lots_fields.gtin14(bad)


@pytest.mark.parametrize("good", ["A", "LOT-2026/07", "a" * 20, "!\"%&'()*+,-./:;<=>?_"])
def test_lot_number_accepts_set_82(good: str) -> None:
    assert lots_fields.lot_number(good) == good


@pytest.mark.parametrize("bad", ["", "a" * 21, "LOT 1", "LOT#1", "lot\u00e9", "@", 12])
def test_lot_number_refuses_outside_set_82(bad: object) -> None:
    with pytest.raises(ValueError):
        lots_fields.lot_number(bad)


@pytest.mark.parametrize(
    ("yymmdd", "iso"),
    [
        ("271231", "2027-12-31"),
        ("270300", "2027-03-31"),  # day 00: the month's last day (the example)
        ("280200", "2028-02-29"),  # a leap year's February
        ("270200", "2027-02-28"),
        ("991200", "1999-12-31"),  # GS1's sliding century: 99 is more than 50 years ahead
    ],
)
def test_expiry_date(yymmdd: str, iso: str) -> None:
    assert lots_fields.expiry_date(yymmdd, TODAY) == iso


@pytest.mark.parametrize("bad", ["270231", "271301", "2712", 271231])
def test_expiry_date_refusals(bad: object) -> None:
    with pytest.raises(ValueError):
        lots_fields.expiry_date(bad, TODAY)


def test_profile_round_trips_its_signed_form() -> None:
    assert lots_fields.storage_profile(PROFILE) == PROFILE


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"low_cc": 2.0}, "low_cc"),
        ({"high_cc": -1000}, "high"),
        ({"hysteresis_cc": 300}, "hysteresis"),
        ({"delay_cumulative_s": 0}, "delay_cumulative_s"),
        ({"max_gap_s": -1}, "max_gap_s"),
        ({"needs_licence": True}, "needs_licence"),
        ({"extra": 1}, "extra"),
    ],
)
def test_profile_refusals(change: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        lots_fields.storage_profile({**PROFILE, **change})


def test_profile_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="want an object"):
        lots_fields.storage_profile([1, 2])
