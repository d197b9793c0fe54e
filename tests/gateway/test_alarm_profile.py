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
    set_by,
    strictest,
    with_lots,
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


# -- a box's zone on lots (with_lots, set_by, AlarmEngine.set_profile)

ZONE = AlarmProfile(
    low_c=2.0,
    high_c=8.0,
    delay_consecutive_s=600,
    delay_cumulative_s=3600,
    hysteresis_c=0.5,
    silent_after_intervals=4,
    interval_s=300,  # silent after 20 minutes
    mkt_window_s=7200,
    mkt_high_c=7.5,
)


def lot(**over: int) -> LotProfile:
    return LotProfile.from_signed(LOT | over)


def test_with_lots_takes_the_strictest_of_each_field_and_the_zones_site_fields() -> None:
    a = lot(high_cc=500, delay_cumulative_s=7200, max_gap_s=600, hysteresis_cc=20)
    b = lot(low_cc=300, delay_consecutive_s=300, delay_cumulative_s=1800, max_gap_s=3600)
    got = with_lots(ZONE, [a, b])
    assert (got.low_c, got.high_c) == (3.0, 5.0)  # the highest low, the lowest high
    assert (got.delay_consecutive_s, got.delay_cumulative_s) == (300, 1800)  # the shortest
    assert got.hysteresis_c == 0.2  # the smallest
    # Silent after the shortest max_gap_s (a's 600 s < the zone's 1,200 s), in the zone's
    # count of intervals.
    assert (got.silent_after_s, got.silent_after_intervals) == (600, 4)
    assert (got.mkt_window_s, got.mkt_high_c) == (7200, 7.5)  # the zone's: lots have none
    assert with_lots(ZONE, []) == ZONE
    # needs_licence has no alarm meaning; a lot no stricter than the zone changes nothing.
    assert with_lots(ZONE, [lot(needs_licence=0, max_gap_s=86400)]) == ZONE
    assert with_lots(ZONE, [lot(needs_licence=1, max_gap_s=86400)]) == ZONE


def test_with_lots_refuses_ranges_with_nothing_in_common() -> None:
    with pytest.raises(AlarmError, match=r"^profiles: got 'low 15.0 °C, high 8.0 °C'"):
        with_lots(ZONE, [lot(low_cc=1500, high_cc=2500)])


def test_set_by_names_the_lot_that_set_the_limit_an_alarm_kind_uses() -> None:
    lots = {"G/A": lot(high_cc=500, max_gap_s=86400), "G/B": lot(delay_cumulative_s=60)}
    applied = with_lots(ZONE, lots.values())
    assert set_by("high", ZONE, applied, lots) == "G/A"
    assert set_by("cumulative", ZONE, applied, lots) == "G/B"
    assert set_by("low", ZONE, applied, lots) is None  # 2 °C: the zone's own
    assert set_by("silent", ZONE, applied, lots) is None  # B's 1,800 s gap > the zone's
    assert set_by("mkt", ZONE, applied, lots) is None  # lots have no MKT limit
    tie = {"G/C": lot(high_cc=500), "G/A": lot(high_cc=500)}
    assert set_by("high", ZONE, with_lots(ZONE, tie.values()), tie) == "G/A"


def test_a_zone_put_on_a_stricter_profile_alarms_at_once_keeping_its_state() -> None:
    engine = AlarmEngine({"z": ZONE})
    events = [e for t in range(0, 600, 60) for e in engine.observe("z", t, 6.0, False)]
    assert events == [] and engine.profile("z") == ZONE
    strict = with_lots(ZONE, [lot(high_cc=500, delay_consecutive_s=300)])
    engine.set_profile("z", strict)
    assert engine.profile("z") == strict
    # 6 °C was within the zone's 8 °C; under the lot's 5 °C the excursion starts at the
    # first reading judged by it (t=600) and is raised once it has lasted 300 s.
    events = [e for t in range(600, 1200, 60) for e in engine.observe("z", t, 6.0, False)]
    assert [(e.kind, e.state, e.time_s) for e in events] == [("high", "raised", 900)]
    engine.set_profile("z", ZONE)  # off the lot: clears at the zone's threshold
    (cleared,) = engine.observe("z", 1200, 6.0, False)
    assert (cleared.kind, cleared.state) == ("high", "cleared")
    engine.set_profile("unseen", strict)  # a zone not seen yet takes its profile when seen
    assert engine.profile("unseen") is None
