"""A profile's signed form (integers: centi-°C and seconds), the lot's storage profile built on
it, and the strictest of several profiles the gateway alarms on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.alarms import (
    LOT_SIGNED_FIELDS,
    AlarmEngine,
    AlarmError,
    AlarmProfile,
    LotProfile,
    limit_conditions,
    strictest,
)
from gateway.jcs import canonicalize

SIGNED = {
    "low_cc": 200,
    "high_cc": 800,
    "delay_consecutive_s": 900,
    "delay_cumulative_s": 3600,
    "hysteresis_cc": 50,
}
LOT = SIGNED | {"max_gap_s": 1800, "needs_licence": 1}


def test_the_default_profile_signs_as_integers_and_round_trips() -> None:
    assert AlarmProfile().to_signed() == SIGNED
    assert AlarmProfile.from_signed(SIGNED) == AlarmProfile()
    lot = LotProfile.from_signed(LOT)
    assert lot == LotProfile(AlarmProfile(), 1800, True)
    assert lot.to_signed() == LOT
    assert list(lot.to_signed()) == list(LOT_SIGNED_FIELDS)
    assert all(type(v) is int for v in lot.to_signed().values())


@given(
    st.integers(-10000, 14000),
    st.integers(1, 1000),
    st.integers(0, 86400),
    st.integers(1, 86400),
    st.data(),
)
def test_every_valid_signed_form_round_trips(
    low: int, width: int, consecutive: int, cumulative: int, data: st.DataObject
) -> None:
    high = min(low + width, 15000)
    hysteresis = data.draw(st.integers(0, (high - low - 1) // 2))
    signed = {
        "low_cc": low,
        "high_cc": high,
        "delay_consecutive_s": consecutive,
        "delay_cumulative_s": cumulative,
        "hysteresis_cc": hysteresis,
    }
    assert AlarmProfile.from_signed(signed).to_signed() == signed


@pytest.mark.parametrize(
    ("change", "want"),
    [
        ({"low_cc": 2.0}, r"^low_cc: got 2.0, want an integer -10000..15000$"),
        ({"low_cc": True}, r"^low_cc: got True, want an integer"),
        ({"low_cc": "200"}, r"^low_cc: got '200', want an integer"),
        ({"high_cc": 15001}, r"^high_cc: got 15001, want an integer -10000..15000$"),
        ({"high_cc": 200}, r"^high_cc: got 200, want > low_cc 200$"),
        (
            {"delay_consecutive_s": -1},
            r"^delay_consecutive_s: got -1, want an integer 0..31622400$",
        ),
        ({"delay_cumulative_s": 0}, r"^delay_cumulative_s: got 0, want an integer 1..31622400$"),
        ({"hysteresis_cc": 300}, r"^hysteresis_cc: got 300, want < 300.0 \(half the range\)$"),
        ({"hysteresis_cc": -1}, r"^hysteresis_cc: got -1, want an integer"),
        ({"mkt_high_c": 25}, r"^profile: got \['mkt_high_c'\], want only low_cc, high_cc"),
    ],
)
def test_malformed_signed_forms_are_refused_naming_the_field(
    change: dict[str, Any], want: str
) -> None:
    with pytest.raises(AlarmError, match=want):
        AlarmProfile.from_signed(SIGNED | change)


def test_absent_fields_and_non_objects_are_refused() -> None:
    with pytest.raises(AlarmError, match=r"^hysteresis_cc: got 'absent', want present$"):
        AlarmProfile.from_signed({k: v for k, v in SIGNED.items() if k != "hysteresis_cc"})
    with pytest.raises(AlarmError, match=r"^profile: got 'list', want an object$"):
        AlarmProfile.from_signed([])  # type: ignore[arg-type]
    with pytest.raises(AlarmError, match=r"^max_gap_s: got 'absent', want present$"):
        LotProfile.from_signed(SIGNED)


@pytest.mark.parametrize(
    ("change", "want"),
    [
        ({"needs_licence": True}, r"^needs_licence: got True, want an integer 0..1$"),
        ({"needs_licence": 2}, r"^needs_licence: got 2, want an integer 0..1$"),
        ({"max_gap_s": 0}, r"^max_gap_s: got 0, want an integer 1..31622400$"),
        ({"max_gap_s": 60.0}, r"^max_gap_s: got 60.0, want an integer"),
    ],
)
def test_lot_fields_are_integers(change: dict[str, Any], want: str) -> None:
    with pytest.raises(AlarmError, match=want):
        LotProfile.from_signed(LOT | change)


def test_a_profile_without_a_signed_form_is_refused_when_signing() -> None:
    with pytest.raises(AlarmError, match=r"^low_c: got 2.005, want a multiple of 0.01 °C"):
        AlarmProfile(low_c=2.005).to_signed()
    with pytest.raises(AlarmError, match=r"^delay_consecutive_s: got 900.5, want a whole"):
        AlarmProfile(delay_consecutive_s=900.5).to_signed()
    with pytest.raises(AlarmError, match=r"^low_c: got 2.005"):
        LotProfile(AlarmProfile(low_c=2.005), 600, False)
    with pytest.raises(AlarmError, match=r"^needs_licence: got 1, want a bool$"):
        LotProfile(AlarmProfile(), 600, 1)  # type: ignore[arg-type]
    with pytest.raises(AlarmError, match=r"^alarm: got 'dict', want an AlarmProfile$"):
        LotProfile(SIGNED, 600, False)  # type: ignore[arg-type]
    # A TOML value such as 2.35 is a whole number of centi-°C although 2.35 * 100 is not 235.
    assert AlarmProfile(low_c=2.35).to_signed()["low_cc"] == 235


def test_strictest_takes_the_tightest_of_each() -> None:
    fridge = AlarmProfile()
    lot = AlarmProfile(low_c=3.0, high_c=10.0, delay_consecutive_s=300, delay_cumulative_s=7200)
    site = AlarmProfile(interval_s=30, mkt_high_c=7.0, mkt_window_s=3600, hysteresis_c=1.0)
    got = strictest([fridge, lot, site])
    assert got == AlarmProfile(
        low_c=3.0,
        high_c=8.0,
        delay_consecutive_s=300,
        delay_cumulative_s=3600,
        hysteresis_c=0.5,
        interval_s=30,
        mkt_high_c=7.0,
        mkt_window_s=3600,
    )
    assert strictest([fridge]) == fridge


def test_strictest_narrows_the_hysteresis_to_fit_the_common_range() -> None:
    got = strictest([AlarmProfile(), AlarmProfile(low_c=7.5, high_c=20.0)])
    assert (got.low_c, got.high_c, got.hysteresis_c) == (7.5, 8.0, 0.24)
    tiny = strictest([AlarmProfile(), AlarmProfile(low_c=7.99, high_c=20.0)])
    assert tiny.hysteresis_c == 0.0


def test_strictest_refuses_nothing_and_disjoint_ranges() -> None:
    with pytest.raises(AlarmError, match=r"^profiles: got 0, want at least one$"):
        strictest([])
    with pytest.raises(AlarmError, match=r"^profiles: got 'low 10.0 °C, high 8.0 °C'"):
        strictest([AlarmProfile(), AlarmProfile(low_c=10.0, high_c=20.0)])


profiles = st.builds(
    lambda low, width, h, d1, d2: AlarmProfile(
        low_c=low / 100,
        high_c=(low + width) / 100,
        hysteresis_c=min(h, (width - 1) // 2) / 100,
        delay_consecutive_s=d1,
        delay_cumulative_s=d2,
    ),
    st.integers(-500, 500),
    st.integers(400, 1500),
    st.integers(0, 200),
    st.integers(0, 3600),
    st.integers(1, 7200),
)


@given(st.lists(profiles, min_size=1, max_size=4), st.integers(-1000, 2500))
def test_the_strictest_profile_is_beyond_a_limit_whenever_any_is(
    given_profiles: list[AlarmProfile], cc: int
) -> None:
    try:
        s = strictest(given_profiles)
    except AlarmError:
        return  # disjoint ranges
    c = cc / 100
    for p in given_profiles:
        high_on, _, low_on, _ = limit_conditions(c, p.low_c, p.high_c, p.hysteresis_c)
        strict_high, _, strict_low, _ = limit_conditions(c, s.low_c, s.high_c, s.hysteresis_c)
        assert strict_high or not high_on
        assert strict_low or not low_on
        assert s.delay_consecutive_s <= p.delay_consecutive_s
        assert s.delay_cumulative_s <= p.delay_cumulative_s


def test_the_engine_runs_on_a_profile_from_its_signed_form() -> None:
    engine = AlarmEngine({"z": LotProfile.from_signed(LOT).alarm})
    events = [e for t in range(0, 1000, 60) for e in engine.observe("z", t, 9.0, False)]
    assert [(e.kind, e.state, e.time_s) for e in events] == [("high", "raised", 900)]


def test_golden_canonical_bytes_as_docs_protocol_shows_them() -> None:
    """docs/protocol.md "Storage profile (signed form)": the canonical JSON of the default
    profile with a 30-minute gap and a licence required, written out by hand there."""
    golden = (
        b'{"delay_consecutive_s":900,"delay_cumulative_s":3600,"high_cc":800,'
        b'"hysteresis_cc":50,"low_cc":200,"max_gap_s":1800,"needs_licence":1}'
    )
    assert canonicalize(LotProfile(AlarmProfile(), 1800, True).to_signed()) == golden
    assert LotProfile.from_signed(json.loads(golden)) == LotProfile(AlarmProfile(), 1800, True)
