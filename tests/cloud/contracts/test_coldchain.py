"""A lot's cold chain: aggregates that do not depend on how readings are batched or ordered,
excursions by the gateway's own rules (cross-checked against its AlarmEngine), gaps final only
on a closed leg, MKT beside the integers, calibration flags, and refusals."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.contracts.coldchain import (
    ColdChainError,
    Excursion,
    Gap,
    LotColdChain,
    Reading,
)
from gateway.alarms import AlarmEngine, AlarmProfile, LotProfile
from gateway.mkt import mkt

# 2..8 °C, 900 s consecutive, 3600 s cumulative, 0.5 °C hysteresis; gaps over 600 s.
PROFILE = LotProfile(AlarmProfile(), max_gap_s=600, needs_licence=True)


def trace(*runs: tuple[int, int | None], start: int = 0, step: int = 60) -> list[Reading]:
    """Readings every `step` s from `start`: runs of (count, centi-°C); None: sensor error."""
    out: list[Reading] = []
    for count, cc in runs:
        for _ in range(count):
            out.append((start + step * len(out), cc))
    return out


def chain(profile: LotProfile = PROFILE, **legs: int) -> LotColdChain:
    lot = LotColdChain(profile)
    for name, start in legs.items():
        lot.open_leg(name, start)
    return lot


def state(lot: LotColdChain) -> dict[str, Any]:
    """Everything a replayer compares: integer records, excursions, gaps, the summary."""
    return {
        "records": {name: leg.record() for name, leg in lot.legs.items()},
        "summary": lot.summary({"box-b": 3000}).to_json(),
    }


# --- determinism -------------------------------------------------------------------------

temperatures = st.one_of(
    st.integers(100, 1000),  # around the 2..8 °C range, often out of it
    st.sampled_from([150, 199, 200, 250, 251, 749, 750, 800, 801, 850]),  # the thresholds
    st.none(),  # sensor errors
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[str, str, Reading]], dict[str, int]]:
    """Readings of up to 3 boxes on up to 2 legs, at distinct times per (leg, box)."""
    readings: list[tuple[str, str, Reading]] = []
    ends = {}
    for leg, start in (("ship-1", 0), ("store-1", 20_000)):
        for box in draw(st.sets(st.sampled_from(["box-a", "box-b", "box-c"]), max_size=3)):
            times = draw(st.sets(st.integers(start, start + 15_000), max_size=40))
            readings += [(leg, box, (t, draw(temperatures))) for t in sorted(times)]
        ends[leg] = start + 15_000 + draw(st.integers(0, 2000))
    return readings, ends


def apply_in_batches(
    readings: list[tuple[str, str, Reading]], ends: dict[str, int], rnd: random.Random
) -> LotColdChain:
    lot = chain(**{"ship-1": 0, "store-1": 20_000})
    shuffled = readings[:]
    rnd.shuffle(shuffled)
    i = 0
    while i < len(shuffled):
        size = rnd.randint(1, 12)
        batch = shuffled[i : i + size]
        i += size
        by_target: dict[tuple[str, str], list[Reading]] = {}
        for leg, box, reading in batch:
            by_target.setdefault((leg, box), []).append(reading)
        for (leg, box), part in by_target.items():
            lot.apply(leg, box, part)
    for leg, end in ends.items():
        lot.close_leg(leg, end)
    return lot


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_any_batching_and_order_gives_the_same_aggregates_and_verdicts(
    scenario: tuple[list[tuple[str, str, Reading]], dict[str, int]], rnd: random.Random
) -> None:
    readings, ends = scenario
    in_order = chain(**{"ship-1": 0, "store-1": 20_000})
    for leg, box, reading in readings:
        in_order.apply(leg, box, [reading])
    for leg, end in ends.items():
        in_order.close_leg(leg, end)
    want = state(in_order)
    for _ in range(3):
        assert state(apply_in_batches(readings, ends, rnd)) == want


# --- the gateway's rules -----------------------------------------------------------------

cross_profiles = st.builds(
    lambda low, width, h, d1, d2, gap: LotProfile(
        AlarmProfile(
            low_c=low,
            high_c=low + width,
            hysteresis_c=h,
            delay_consecutive_s=d1,
            delay_cumulative_s=d2,
        ),
        gap,
        False,
    ),
    st.integers(-2, 4),
    st.integers(3, 8),
    st.sampled_from([0.0, 0.25, 0.5, 1.0]),  # thresholds exact in floats and centi-°C alike
    st.sampled_from([0, 60, 300, 900]),
    st.integers(1, 4000),
    st.integers(30, 900),
)


@settings(max_examples=200, deadline=None)
@given(
    cross_profiles,
    st.lists(st.tuples(st.integers(1, 400), st.one_of(st.integers(-600, 1400), st.none()))),
)
def test_excursions_and_time_out_of_range_are_the_gateway_engines(
    profile: LotProfile, steps: list[tuple[int, int | None]]
) -> None:
    """The same readings through gateway/alarms.py's AlarmEngine (silence = max_gap_s) raise
    and clear at the times this module records, and charge the same time out of range."""
    readings, t = [], 0
    for gap, cc in steps:
        t += gap
        readings.append((t, cc))
    lot = chain(profile, leg=0)
    lot.apply("leg", "box", readings)
    alarm = profile.alarm
    site = AlarmProfile(
        low_c=alarm.low_c,
        high_c=alarm.high_c,
        hysteresis_c=alarm.hysteresis_c,
        delay_consecutive_s=alarm.delay_consecutive_s,
        delay_cumulative_s=10**9,  # the lot's cumulative rule is over its legs; compare TOR
        silent_after_intervals=1,
        interval_s=profile.max_gap_s,
    )
    engine = AlarmEngine({"box": site})
    events = []
    for time_s, cc in readings:
        celsius = None if cc is None else cc / 100
        events += engine.observe("box", time_s, celsius, cc is None)
    limits = [e for e in events if e.kind in ("high", "low")]
    raised = sorted((e.kind, e.time_s) for e in limits if e.state == "raised")
    cleared = sorted((e.kind, e.time_s) for e in limits if e.state == "cleared")
    found = lot.legs["leg"].excursions()
    assert sorted((e.kind, e.raised_s) for e in found) == raised
    assert sorted((e.kind, e.end_s) for e in found if e.end_s is not None) == cleared
    zones = engine.snapshot()["zones"]
    cumulative_s = zones["box"]["cumulative_s"] if zones else 0
    assert lot.legs["leg"].time_out_of_range_s() == cumulative_s


def test_an_excursion_shorter_than_the_delay_is_none_and_one_longer_is_recorded() -> None:
    lot = chain(leg=0)
    # 900 s delay: 15 readings above 8 °C span 840 s, 16 span 900 s.
    lot.apply("leg", "box", trace((5, 500), (15, 900), (5, 500), (16, 950), (5, 500)))
    (e,) = lot.excursions()
    assert e == Excursion("leg", "box", "high", 25 * 60, 40 * 60, 41 * 60, 950)
    assert lot.time_out_of_range_s() == 31 * 60


def test_hysteresis_keeps_an_excursion_on_until_the_clear_threshold() -> None:
    lot = chain(leg=0)
    # Above 8 °C for 16 readings, then 7.6 °C (in the band: still on), then 7.5 °C clears.
    lot.apply("leg", "box", trace((16, 900), (3, 760), (1, 750), (2, 500)))
    (e,) = lot.excursions()
    assert (e.kind, e.start_s, e.raised_s, e.end_s) == ("high", 0, 900, 19 * 60)


def test_a_late_batch_inside_an_excursion_splits_it() -> None:
    """A calm reading delivered late (backlog) in the middle of what looked like one
    excursion: the window around it is re-run, and the excursion is no longer raised."""
    readings = trace((10, 500), (20, 900), (10, 500))
    lot = chain(leg=0)
    lot.apply("leg", "box", [r for r in readings if r[0] != 20 * 60])
    assert [e.raised_s for e in lot.excursions()] == [25 * 60]
    lot.apply("leg", "box", [(20 * 60, 500)])  # 20 min: a calm reading
    assert lot.excursions() == []
    assert lot.quarantine() is None


def test_sensor_errors_neither_end_nor_extend_an_excursion() -> None:
    lot = chain(leg=0)
    lot.apply("leg", "box", trace((8, 900), (5, None), (8, 900), (2, 500)))
    (e,) = lot.excursions()
    assert (e.start_s, e.raised_s, e.end_s) == (0, 900, 21 * 60)
    assert lot.summary().overall.sensor_errors == 5


def test_a_low_excursion_and_its_worst_reading() -> None:
    lot = chain(leg=0)
    lot.apply("leg", "box", trace((2, 500), (20, 150), (1, 90), (2, 300)))
    (e,) = lot.excursions()
    assert (e.kind, e.start_s, e.worst_cc, e.end_s) == ("low", 120, 90, 23 * 60)


def test_an_ongoing_excursion_has_no_end_until_a_reading_clears_it() -> None:
    lot = chain(leg=0)
    lot.apply("leg", "box", trace((20, 900)))
    assert lot.excursions()[0].end_s is None
    lot.apply("leg", "box", [(20 * 60, 500)])
    assert lot.excursions()[0].end_s == 20 * 60


def test_cumulative_time_out_of_range_over_legs_raises_at_the_budget() -> None:
    lot = chain(a=0, b=100_000)
    # Short excursions (10 min each, below the 15 min delay) on two legs: 6 x 10 min = 3600 s.
    for leg, start in (("a", 0), ("b", 100_000)):
        for k in range(3):
            t0 = start + k * 3600
            lot.apply(leg, "box", trace((10, 900), (2, 500), start=t0))
    assert lot.time_out_of_range_s() == 3600
    (e,) = lot.excursions()
    # The budget runs out at the end of the sixth 600-s stretch: b's third, at 100000+7200.
    assert (e.kind, e.start_s, e.raised_s, e.worst_cc) == ("cumulative", 0, 107_800, 3600)
    assert lot.quarantine() is not None


def test_time_out_of_range_is_capped_at_max_gap_and_counted_once_for_two_boxes() -> None:
    lot = chain(leg=0)
    lot.apply("leg", "a", [(0, 900), (3000, 500)])  # charged 600 s (max_gap_s), not 3000
    assert lot.time_out_of_range_s() == 600
    lot.apply("leg", "b", [(300, 900), (1200, 500)])  # overlaps a's [0, 600): adds 300..900
    assert lot.legs["leg"].time_out_of_range_s() == 900
    assert lot.legs["leg"].boxes["b"].tor_s == 600


# --- gaps ---------------------------------------------------------------------------------


def test_gaps_are_provisional_until_the_leg_closes_and_late_readings_fill_them() -> None:
    lot = chain(leg=1000)
    lot.apply("leg", "box", [(1700, 500), (1800, 500), (3000, 500)])
    assert lot.gaps() == [Gap("leg", 1000, 1700, False), Gap("leg", 1800, 3000, False)]
    assert lot.quarantine() is None  # open: a late batch may still fill them
    lot.apply("leg", "box", [(2400, 500)])  # fills 1800..3000 (two gaps of 600: not over)
    assert lot.gaps() == [Gap("leg", 1000, 1700, False)]
    lot.close_leg("leg", 4000)
    assert lot.gaps() == [Gap("leg", 1000, 1700, True), Gap("leg", 3000, 4000, True)]
    q = lot.quarantine()
    assert q is not None and q.gap == Gap("leg", 1000, 1700, True)
    assert q.reason == "gap: leg leg has no reading from 1000 to 1700 (700 s > max_gap_s 600)"
    lot.apply("leg", "other-box", [(1300, 500), (3500, 500)])  # late, after the close
    assert lot.gaps() == []
    assert lot.quarantine() is None


def test_a_closed_leg_without_readings_is_one_gap() -> None:
    lot = chain(leg=0)
    lot.close_leg("leg", 5000)
    assert lot.gaps() == [Gap("leg", 0, 5000, True)]
    summary = lot.summary()
    assert summary.overall.count == 0 and summary.overall.mkt_c is None
    assert summary.overall.mean_c is None


def test_sensor_errors_do_not_fill_a_gap() -> None:
    lot = chain(leg=0)
    lot.apply("leg", "box", [(0, 500), (500, None), (1000, 500)])
    assert lot.gaps() == [Gap("leg", 0, 1000, False)]


# --- summary ------------------------------------------------------------------------------


def test_summary_per_leg_and_overall() -> None:
    lot = chain(ship=0, store=10_000)
    lot.apply("ship", "box-a", trace((10, 400), (10, 600)))
    lot.apply("store", "box-b", trace((5, 300), (5, None), start=10_000))
    lot.close_leg("ship", 20 * 60)
    s = lot.summary({"box-a": 15 * 60, "box-b": 0})
    ship, store = s.legs
    assert (ship.leg, ship.start_s, ship.end_s, ship.boxes) == ("ship", 0, 1200, ("box-a",))
    assert (ship.stats.count, ship.stats.min_c, ship.stats.max_c) == (20, 4.0, 6.0)
    assert ship.stats.mean_c == 5.0
    assert ship.stats.calibration_flagged == 5  # 15, 16, ..., 19 min
    assert store.stats.calibration_flagged == 10  # every reading, errors included
    assert store.end_s is None
    assert s.overall.count == 25 and s.overall.sensor_errors == 5
    assert s.overall.mean_c == pytest.approx((10 * 400 + 10 * 600 + 5 * 300) / 25 / 100)
    assert s.overall.calibration_flagged == 15
    assert s.quarantine is None and s.excursions == () and s.gaps == ()
    assert s.to_json()["overall"]["count"] == 25


def test_mkt_is_the_gateways_time_weighted_mkt() -> None:
    rnd = random.Random(7)
    times = sorted(rnd.sample(range(0, 50_000), 300))
    readings = [(t, rnd.randint(200, 1200)) for t in times]
    lot = chain(leg=0)
    for i in range(0, 300, 17):
        lot.apply("leg", "box", readings[i : i + 17][::-1])
    want = mkt([(t, cc / 100) for t, cc in readings])
    assert lot.summary().overall.mkt_c == pytest.approx(want, abs=1e-9)
    single = chain(leg=0)
    single.apply("leg", "box", [(5, 500)])
    assert single.summary().overall.mkt_c == pytest.approx(5.0, abs=1e-9)


def test_records_hold_integers_only() -> None:
    lot = chain(leg=0)
    lot.apply("leg", "box", trace((20, 900), (3, None), (2, 500)))
    lot.close_leg("leg", 25 * 60)
    record = lot.legs["leg"].record()
    assert all(type(v) is int for v in record.values())
    assert record == {
        "start_s": 0,
        "end_s": 1500,
        "count": 22,
        "sensor_errors": 3,
        "sum_cc": 20 * 900 + 2 * 500,
        "min_cc": 500,
        "max_cc": 900,
        "time_out_of_range_s": 20 * 60,
        "excursions": 1,
        "gaps": 0,
    }


# --- refusals -----------------------------------------------------------------------------


def test_a_batch_applied_twice_changes_nothing() -> None:
    lot = chain(leg=0)
    batch = trace((20, 900))
    assert lot.apply("leg", "box", batch) == 20
    before = state(lot)
    assert lot.apply("leg", "box", batch + batch) == 0
    assert state(lot) == before


@pytest.mark.parametrize(
    ("readings", "want"),
    [
        ([(60, 501)], r"^reading: got \(60, 501\), want the value held, 500$"),
        ([(60, None)], r"^reading: got \(60, None\), want the value held, 500$"),
        ([(9000, 500), (9000, 600)], r"^reading: got \(9000, 600\), want the value held, 500$"),
        ([(-1, 500)], r"^time_s: got -1, want an integer 0..4294967295$"),
        ([(99, 500)], r"^time_s: got 99, want within leg 'leg'.s 100..$"),
        ([(600, 2.5)], r"^centi_c: got 2.5, want an integer -10000..15000 or None$"),
        ([(600, 15001)], r"^centi_c: got 15001"),
        ([(600, True)], r"^centi_c: got True"),
        ([(600.0, 500)], r"^time_s: got 600.0"),
        ([[600, 500]], r"^reading: got \[600, 500\], want \(time_s, centi-°C or None\[, "),
    ],
)
def test_bad_readings_are_refused_and_change_nothing(readings: list[Any], want: str) -> None:
    lot = chain(leg=100)
    lot.apply("leg", "box", [(100, 500)])
    held = chain(leg=0)
    held.apply("leg", "box", [(60, 500), (9000, 500)])
    target = held if "held" in want else lot
    before = state(target)
    with pytest.raises(ColdChainError, match=want):
        target.apply("leg", "box", readings)
    assert state(target) == before


def test_leg_operations_are_checked() -> None:
    lot = chain(leg=100)
    with pytest.raises(ColdChainError, match=r"^leg: got 'other', want an open leg: leg$"):
        lot.apply("other", "box", [(200, 500)])
    with pytest.raises(ColdChainError, match=r"^leg: got 'leg', want a leg not yet opened$"):
        lot.open_leg("leg", 0)
    with pytest.raises(ColdChainError, match=r"^box: got '', want a non-empty string$"):
        lot.apply("leg", "", [(200, 500)])
    lot.apply("leg", "box", [(500, 500)])
    with pytest.raises(ColdChainError, match=r"^end_s: got 499, want an integer >= 500"):
        lot.close_leg("leg", 499)
    lot.close_leg("leg", 900)
    lot.close_leg("leg", 900)  # the same close again: nothing changes
    with pytest.raises(ColdChainError, match=r"^end_s: got 1000, want 900 \(leg 'leg' closed\)$"):
        lot.close_leg("leg", 1000)
    with pytest.raises(
        ColdChainError, match=r"^time_s: got 901, want within leg 'leg'.s 100..900$"
    ):
        lot.apply("leg", "box", [(901, 500)])
    with pytest.raises(ColdChainError, match=r"^profile: got 'AlarmProfile', want a LotProfile$"):
        LotColdChain(AlarmProfile())  # type: ignore[arg-type]


def test_quarantine_names_the_earliest_excursion() -> None:
    lot = chain(leg=0)
    lot.apply("leg", "box", trace((5, 500), (16, 950), (5, 500)))
    q = lot.quarantine()
    assert q is not None and q.excursion is not None
    assert q.reason == (
        "excursion: high on box box in leg leg, above high limit from 300 (raised 1200), "
        "worst 9.5 °C"
    )


def test_humidity_is_aggregated_beside_the_temperature() -> None:
    lot = LotColdChain(PROFILE)
    lot.open_leg("leg", 0)
    lot.apply("leg", "a", [(0, 500, 4000), (60, 500, 6000), (120, None, None)])
    lot.apply("leg", "b", [(30, 500, 5500)])
    lot.apply("leg", "b", [(90, 500)])  # handed over without humidity: not in its figures
    stats = lot.summary().overall
    assert (stats.count, stats.sensor_errors) == (4, 1)
    assert (stats.min_rh, stats.max_rh) == (40.0, 60.0)
    assert stats.mean_rh == pytest.approx((40 + 60 + 55) / 3)
    record = lot.legs["leg"].record()
    assert (record["rh_count"], record["sum_rh"], record["min_rh"], record["max_rh"]) == (
        3, 15500, 4000, 6000,
    )  # fmt: skip
    assert lot.apply("leg", "a", [(60, 500, 6000)]) == 0  # held with the same value
    with pytest.raises(ColdChainError, match="the value held"):
        lot.apply("leg", "a", [(60, 500, 6100)])  # another humidity at a held time
    for bad, field in (
        ((200, 500, 10001), "centi_rh"),  # over 100.00 %
        ((200, 500, -1), "centi_rh"),
        ((200, None, 5000), "centi_rh"),  # a sensor error carries no humidity
        ((200, 500, 50.0), "centi_rh"),  # not an integer
    ):
        with pytest.raises(ColdChainError) as refused:
            lot.apply("leg", "a", [bad])
        assert refused.value.field == field
    assert lot.summary().overall.count == 4  # nothing applied
    empty = LotColdChain(PROFILE)
    empty.open_leg("leg", 0)
    empty.apply("leg", "a", [(0, 500)])
    assert empty.summary().overall.mean_rh is None
