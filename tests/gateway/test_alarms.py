"""The local alarm engine: each kind over scripted traces, hysteresis, delays, restarts, and
properties that hold for any trace."""

from __future__ import annotations

import json
import math
import tracemalloc
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import alarms
from gateway.alarms import (
    KINDS,
    AlarmEngine,
    AlarmError,
    AlarmEvent,
    AlarmProfile,
    AlarmState,
)
from gateway.mkt import mkt

ZONE = "cold-room-1"
# 2..8 °C, 900 s delay, 3600 s cumulative budget, 0.5 °C hysteresis, silent after 3 x 60 s.
DEFAULT = AlarmProfile()

Trace = list[tuple[float, float | None]]


def trace(*runs: tuple[int, float | None], start: float = 0.0, step: float = 60.0) -> Trace:
    """Readings every `step` s from `start`: runs of (count, celsius); None: sensor error."""
    out: Trace = []
    for count, celsius in runs:
        for _ in range(count):
            out.append((start + step * len(out), celsius))
    return out


def feed(
    engine: AlarmEngine, readings: Iterable[tuple[float, float | None]], zone: str = ZONE
) -> list[AlarmEvent]:
    events: list[AlarmEvent] = []
    for t, c in readings:
        events += engine.observe(zone, t, c, c is None)
    return events


def brief(events: Iterable[AlarmEvent]) -> list[tuple[str, str, float]]:
    return [(e.kind, e.state, e.time_s) for e in events]


def engine_with(**profile: Any) -> AlarmEngine:
    return AlarmEngine({ZONE: AlarmProfile(**profile)})


# --- profiles and events -------------------------------------------------------------------


def test_profile_defaults() -> None:
    assert (DEFAULT.low_c, DEFAULT.high_c, DEFAULT.hysteresis_c) == (2.0, 8.0, 0.5)
    assert DEFAULT.silent_after_s == 180
    assert DEFAULT.mkt_high_c is None


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"high_c": 2.0}, "high_c", r"high_c: got 2.0, want a finite number > 2.0"),
        ({"low_c": math.nan}, "low_c", r"low_c: got nan, want a finite number"),
        ({"delay_consecutive_s": -1}, "delay_consecutive_s", r"got -1, want .* >= 0"),
        ({"delay_cumulative_s": 0}, "delay_cumulative_s", r"got 0, want a finite number > 0"),
        ({"hysteresis_c": -0.1}, "hysteresis_c", r"got -0.1, want a finite number >= 0"),
        ({"hysteresis_c": 3.0}, "hysteresis_c", r"got 3.0, want < 3.0 \(half the range\)"),
        ({"silent_after_intervals": 0}, "silent_after_intervals", r"got 0, want an int >= 1"),
        ({"silent_after_intervals": 2.5}, "silent_after_intervals", r"got 2.5, want an int"),
        ({"silent_after_intervals": True}, "silent_after_intervals", r"got True, want an int"),
        ({"interval_s": 0}, "interval_s", r"interval_s: got 0, want a finite number > 0"),
        ({"mkt_window_s": -5}, "mkt_window_s", r"got -5, want a finite number > 0"),
        ({"mkt_high_c": math.inf}, "mkt_high_c", r"mkt_high_c: got inf, want a finite number"),
        ({"high_c": "8"}, "high_c", r"high_c: got '8', want a finite number"),
    ],
)
def test_profile_rejects(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(AlarmError, match=message) as caught:
        AlarmProfile(**fields)
    assert caught.value.field == field


def test_event_validates_and_serialises() -> None:
    event = AlarmEvent(ZONE, "high", "raised", 900.0, 9.5, "9.5 °C; high limit 8 °C")
    assert json.loads(json.dumps(event.to_json())) == {
        "zone": ZONE,
        "kind": "high",
        "state": "raised",
        "time_s": 900.0,
        "value_c": 9.5,
        "detail": "9.5 °C; high limit 8 °C",
    }
    with pytest.raises(AlarmError, match=r"kind: got 'hot', want silent \| cumulative"):
        AlarmEvent(ZONE, "hot", "raised", 0.0, None, "")  # type: ignore[arg-type]
    with pytest.raises(AlarmError, match=r"state: got 'on', want raised \| cleared"):
        AlarmEvent(ZONE, "high", "on", 0.0, None, "")  # type: ignore[arg-type]
    with pytest.raises(AlarmError, match=r"zone: got '', want a non-empty string"):
        AlarmEvent("", "high", "raised", 0.0, None, "")
    with pytest.raises(AlarmError, match=r"value_c: got nan"):
        AlarmState(ZONE, "high", 0.0, math.nan, "")


# --- every kind, once ----------------------------------------------------------------------


def test_each_kind_raised_and_cleared_once_across_a_scripted_trace() -> None:
    engine = engine_with(delay_cumulative_s=2400, mkt_window_s=3600, mkt_high_c=8.0)
    readings = trace(
        (30, 5.0),  # t = 0..1740: in range
        (20, 12.0),  # 1800..2940: high from 1800, raised at 1800 + 900 = 2700
        (30, 5.0),  # 3000..4740: high clears at 3000
        (20, 0.0),  # 4800..5940: low from 4800, raised at 5700
        (60, 5.0),  # 6000..9540: low clears at 6000
    )
    events = feed(engine, readings)
    events += engine.reset(ZONE, 9600.0)
    events += feed(engine, trace((20, None), (5, 5.0), start=9600.0))  # errors 9600..10740
    events += engine.tick(11040.0 + 179)  # last reading at 11040: not yet silent
    events += engine.tick(11040.0 + 180)
    events += feed(engine, trace((3, 5.0), start=11340.0))
    assert brief(events) == [
        # The 12 °C third of the 1-hour MKT window lifts the MKT over 8 °C before the high
        # alarm's 15-minute delay is over; it falls back under 7.5 °C 45 minutes after.
        ("mkt", "raised", 2640.0),
        ("high", "raised", 2700.0),
        ("high", "cleared", 3000.0),
        ("mkt", "cleared", 5460.0),
        ("low", "raised", 5700.0),
        # 20 readings above and 20 below, each charged 60 s: 2400 s, complete when the gap
        # after the last 0 °C reading is charged, at the reading that also clears "low".
        ("cumulative", "raised", 6000.0),
        ("low", "cleared", 6000.0),
        ("cumulative", "cleared", 9600.0),
        ("sensor", "raised", 10500.0),  # errors since 9600, for 900 s
        ("sensor", "cleared", 10800.0),
        ("silent", "raised", 11220.0),  # the tick's time
        ("silent", "cleared", 11340.0),  # the next reading's time
    ]
    assert sorted((e.kind, e.state) for e in events) == sorted(
        (k, s) for k in KINDS for s in ("raised", "cleared")
    )
    assert engine.active() == []
    high = events[1]
    assert (high.zone, high.value_c) == (ZONE, 12.0)
    assert high.detail == "12 °C; high limit 8 °C, clears at 7.5 °C; held 900 s"


# --- high and low: delay and hysteresis ----------------------------------------------------


def test_a_door_opening_shorter_than_the_delay_raises_nothing() -> None:
    engine = engine_with()
    assert feed(engine, trace((10, 5.0), (5, 15.0), (30, 5.0))) == []
    # ...but its five readings were charged to the cumulative budget.
    assert engine.snapshot()["zones"][ZONE]["cumulative_s"] == 300.0


def test_high_raises_when_the_readings_span_the_delay() -> None:
    # 15 readings above 8 °C span 0..840 s: short of 900 s. A 16th, at 900 s, raises.
    assert feed(engine_with(), trace((15, 9.0), (5, 5.0))) == []
    events = feed(engine_with(), trace((16, 9.0), (5, 5.0)))
    assert brief(events) == [("high", "raised", 900.0), ("high", "cleared", 960.0)]


def test_zero_delay_raises_at_the_first_reading_out_of_range() -> None:
    events = feed(engine_with(delay_consecutive_s=0), trace((2, 5.0), (1, 1.5), (1, 5.0)))
    assert brief(events) == [("low", "raised", 120.0), ("low", "cleared", 180.0)]


def oscillation(around: float, n: int, start: float = 0.0) -> Trace:
    return [(start + 60.0 * i, around + (0.1 if i % 2 == 0 else -0.1)) for i in range(n)]


def test_hysteresis_stops_flapping_at_the_high_limit() -> None:
    # Two hours of 8.1, 7.9, 8.1, ... then 7.6 (still in the band) and 7.4 (below 7.5).
    # (The hour above 8 °C would spend the default cumulative budget: a bigger one here.)
    readings = [*oscillation(8.0, 120), (7200.0, 7.6), (7260.0, 7.4), (7320.0, 7.4)]
    events = feed(engine_with(delay_consecutive_s=0, delay_cumulative_s=86400), readings)
    assert brief(events) == [("high", "raised", 0.0), ("high", "cleared", 7260.0)]
    # Without hysteresis the same trace flaps at every reading.
    flapping = engine_with(delay_consecutive_s=0, delay_cumulative_s=86400, hysteresis_c=0.0)
    assert len(feed(flapping, readings)) == 120


def test_hysteresis_after_a_delayed_high_alarm() -> None:
    # Raised by 16 readings at 9 °C (0..900 s), the alarm stays up through an hour hovering at
    # 8 ± 0.1 °C, and clears at exactly 7.5 °C (the clear threshold is inclusive).
    readings = [*trace((16, 9.0)), *oscillation(8.0, 60, start=960.0), (4560.0, 7.5)]
    events = feed(engine_with(), readings)
    assert brief(events) == [("high", "raised", 900.0), ("high", "cleared", 4560.0)]
    assert events[1].detail == "7.5 °C; high limit 8 °C, clears at 7.5 °C"


def test_hysteresis_at_the_low_limit() -> None:
    readings = [*oscillation(2.0, 60), (3600.0, 2.4), (3660.0, 2.5)]
    events = feed(engine_with(delay_consecutive_s=0), readings)
    assert brief(events) == [("low", "raised", 60.0), ("low", "cleared", 3660.0)]


def test_the_delay_needs_every_reading_beyond_the_limit() -> None:
    # Hovering 7.9/8.1 is not "above 8 °C for 15 minutes": the delay restarts at each 7.9.
    # (That time is still charged to the cumulative budget.)
    engine = engine_with(delay_cumulative_s=86400)
    assert feed(engine, oscillation(8.0, 120)) == []
    assert engine.snapshot()["zones"][ZONE]["cumulative_s"] == 60 * 60.0


def test_a_drop_from_high_to_low_clears_high_and_starts_low() -> None:
    events = feed(engine_with(delay_consecutive_s=0), trace((2, 9.0), (2, 1.0)))
    assert brief(events) == [
        ("high", "raised", 0.0),
        ("high", "cleared", 120.0),
        ("low", "raised", 120.0),
    ]


# --- cumulative ----------------------------------------------------------------------------


def door_openings(count: int, start: float = 0.0) -> Trace:
    """`count` hours, each opening with 5 minutes at 12 °C and then 55 minutes at 5 °C."""
    return trace(*[(5, 12.0), (55, 5.0)] * count, start=start)


def test_cumulative_raises_after_many_short_excursions() -> None:
    engine = engine_with()
    # Each opening charges 5 x 60 s; the 12th completes the 3600 s budget at the first 5 °C
    # reading after it: hour 11 + 5 minutes = 39900 s. No opening is long enough for "high".
    events = feed(engine, door_openings(20))
    assert brief(events) == [("cumulative", "raised", 11 * 3600.0 + 300)]
    assert events[0].detail == "3600 s out of range since reset; budget 3600 s"
    # QA resets the zone: the alarm clears and a new budget starts.
    cleared = engine.reset(ZONE, 72_000.0)
    assert brief(cleared) == [("cumulative", "cleared", 72_000.0)]
    assert feed(engine, door_openings(11, start=72_000.0)) == []
    again = feed(engine, door_openings(2, start=72_000.0 + 11 * 3600))
    assert brief(again) == [("cumulative", "raised", 72_000.0 + 11 * 3600 + 300)]


def test_cumulative_counts_both_sides() -> None:
    # 30 minutes above and 30 below, in 10-minute excursions (each shorter than the delay).
    runs = [(10, 9.0), (20, 5.0), (10, 1.0), (20, 5.0)] * 3
    events = feed(engine_with(), trace(*runs))
    assert brief(events) == [("cumulative", "raised", 2 * 3600 + 40 * 60)]


def test_a_gap_is_charged_at_most_the_silence_threshold() -> None:
    engine = engine_with()
    feed(engine, [(0.0, 12.0), (7200.0, 5.0)])  # 2 h without readings after 12 °C
    assert engine.snapshot()["zones"][ZONE]["cumulative_s"] == DEFAULT.silent_after_s


def test_reset_of_a_quiet_zone() -> None:
    engine = engine_with()
    assert engine.reset("never-seen", 0.0) == []
    feed(engine, trace((3, 12.0), (1, 5.0)))
    assert engine.reset(ZONE, 300.0) == []  # nothing raised, but the budget starts again
    assert engine.snapshot()["zones"][ZONE]["cumulative_s"] == 0.0


# --- silent and sensor ---------------------------------------------------------------------


def test_silent_is_raised_by_tick_and_cleared_by_the_next_reading() -> None:
    engine = AlarmEngine({"a": DEFAULT, "b": AlarmProfile(interval_s=600)})
    assert engine.tick(1e9) == []  # zones never heard from are not silent
    feed(engine, trace((3, 5.0)), zone="a")  # last at 120
    feed(engine, trace((3, 5.0)), zone="b")
    assert engine.tick(120.0 + 179) == []
    assert engine.tick(120.0 + 180) == [
        AlarmEvent("a", "silent", "raised", 300.0, None, "no reading for 180 s")  # 3 x 60 s
    ]
    assert engine.tick(1000.0) == []  # still silent: no second event
    assert [a.zone for a in engine.active()] == ["a"]
    assert brief(engine.tick(120.0 + 1800)) == [("silent", "raised", 1920.0)]  # b: 3 x 600 s
    # Any reading clears it, a sensor-error reading too: the box is alive.
    assert brief(feed(engine, [(2000.0, None)], zone="a")) == [("silent", "cleared", 2000.0)]
    event = feed(engine, [(2000.0, 5.0)], zone="b")[0]
    assert (event.zone, event.state, event.value_c) == ("b", "cleared", 5.0)


def test_a_box_draining_an_old_backlog_is_not_silent() -> None:
    # Back after an outage, the box replays readings an hour old, one a second: it is not
    # silent while they arrive (raising and clearing "silent" at every tick would flood
    # operators and the broker), and becomes silent when they stop arriving.
    engine = AlarmEngine({"a": DEFAULT})
    now = 10_000.0
    for i in range(60):
        engine.observe("a", 3600.0 + 60 * i, 5.0, False, received_s=now + i)
        assert engine.tick(now + i + 0.5) == []
    assert brief(engine.tick(now + 59 + 180)) == [("silent", "raised", now + 239)]


def test_sensor_errors_raise_after_the_delay_and_clear_on_a_valid_reading() -> None:
    assert feed(engine_with(), trace((5, 5.0), (15, None), (5, 5.0))) == []  # 840 s of errors
    events = feed(engine_with(), trace((5, 5.0), (16, None), (5, 5.0)))
    assert brief(events) == [("sensor", "raised", 1200.0), ("sensor", "cleared", 1260.0)]
    assert events[0].value_c is None


def test_sensor_errors_neither_interrupt_nor_clear_a_high_excursion() -> None:
    # Above 8 °C with every other reading an error: "high" still raises after 900 s...
    flaky = [(60.0 * i, 9.0 if i % 2 == 0 else None) for i in range(17)]
    engine = engine_with()
    assert brief(feed(engine, flaky)) == [("high", "raised", 960.0)]
    # ...and errors alone do not clear it; only a valid reading at <= 7.5 °C does.
    assert feed(engine, trace((30, None), start=1020.0)) == [
        AlarmEvent(ZONE, "sensor", "raised", 1920.0, None, "sensor error; held 900 s")
    ]
    assert [a.kind for a in engine.active()] == ["sensor", "high"]
    events = feed(engine, [(2880.0, 5.0)])
    assert brief(events) == [("sensor", "cleared", 2880.0), ("high", "cleared", 2880.0)]
    # Only the gaps after valid readings above 8 °C were charged: 9 of them, 60 s each.
    assert engine.snapshot()["zones"][ZONE]["cumulative_s"] == 9 * 60.0


def test_reading_preconditions() -> None:
    engine = engine_with()
    with pytest.raises(AlarmError, match=r"celsius: got None, want a temperature"):
        engine.observe(ZONE, 0.0, None, False)
    with pytest.raises(AlarmError, match=r"celsius: got nan, want a finite number"):
        engine.observe(ZONE, 0.0, math.nan, False)
    with pytest.raises(AlarmError, match=r"time_s: got inf"):
        engine.observe(ZONE, math.inf, 5.0, False)
    with pytest.raises(AlarmError, match=r"now_s: got nan"):
        engine.tick(math.nan)
    assert engine.observe(ZONE, 0.0, math.nan, True) == []  # ignored for an error reading


def test_duplicate_and_out_of_order_readings_are_ignored() -> None:
    engine = engine_with(delay_consecutive_s=0)
    feed(engine, trace((3, 5.0)))  # 0..120
    assert engine.tick(400.0) != []  # silent
    before = engine.snapshot()
    assert engine.observe(ZONE, 120.0, 20.0, False) == []  # duplicate time
    assert engine.observe(ZONE, 60.0, 20.0, False) == []  # out of order
    assert engine.observe(ZONE, 30.0, None, True) == []
    assert engine.snapshot() == before  # still silent, no excursion, no MKT sample


# --- mkt -----------------------------------------------------------------------------------


def test_mkt_alarm_follows_the_rolling_mkt() -> None:
    engine = engine_with(delay_consecutive_s=86400, mkt_window_s=7200, mkt_high_c=6.0)
    readings = trace((120, 5.0), (10, 25.0), (240, 5.0))
    events = feed(engine, readings)
    assert [(e.kind, e.state) for e in events] == [("mkt", "raised"), ("mkt", "cleared")]
    # Independently: the first reading where the MKT of the last 2 h exceeds 6 °C, and the
    # first after it where that MKT is back at or under 5.5 °C.
    values = [
        (t, mkt([(s, c) for s, c in readings[: i + 1] if s >= t - 7200 and c is not None]))
        for i, (t, _) in enumerate(readings)
    ]
    raised = next(t for t, m in values if m > 6.0)
    cleared = next(t for t, m in values if t > raised and m <= 5.5)
    assert brief(events) == [("mkt", "raised", raised), ("mkt", "cleared", cleared)]
    assert events[0].value_c == pytest.approx(dict(values)[raised])
    assert engine.mkt(ZONE) == pytest.approx(values[-1][1])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(2.0, 30.0), st.sampled_from([6.0, 5.5, 6.0000001])),
        min_size=1,
        max_size=120,
    )
)
def test_quiet_readings_raise_the_mkt_alarm_as_the_full_check_does(temps: list[float]) -> None:
    """Readings within the limits skip the MKT's logarithm unless its mean term comes near
    the limit's (_mkt_may_exceed): the events and the state must be those of the full check
    at every reading, at the limit itself included."""
    readings = [(60.0 * i, c) for i, c in enumerate(temps)]
    profile = {"high_c": 30.0, "delay_consecutive_s": 86400, "mkt_window_s": 1800}
    quick = engine_with(mkt_high_c=6.0, **profile)
    quick_events = feed(quick, readings)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(alarms._Zone, "_mkt_may_exceed", lambda self, limit: True)
        full = engine_with(mkt_high_c=6.0, **profile)
        assert feed(full, readings) == quick_events
        assert full.snapshot() == quick.snapshot()


def test_no_mkt_alarm_without_a_limit() -> None:
    engine = engine_with(delay_consecutive_s=86400)
    assert feed(engine, trace((10, 30.0))) == []
    assert engine.mkt(ZONE) == pytest.approx(30.0)
    assert engine.mkt("never-seen") is None


# --- profiles, status page -----------------------------------------------------------------


def test_profiles_by_mapping_or_function() -> None:
    with pytest.raises(KeyError):
        AlarmEngine({}).observe("unknown", 0.0, 5.0, False)
    seen: list[str] = []

    def lookup(zone: str) -> AlarmProfile:
        seen.append(zone)
        return AlarmProfile(low_c=-25.0, high_c=-15.0) if zone.startswith("freezer") else DEFAULT

    engine = AlarmEngine(lookup)
    assert feed(engine, trace((20, -18.0)), zone="freezer-2") == []
    assert brief(feed(engine, trace((20, -18.0)), zone="fridge-1"))[0] == ("low", "raised", 900.0)
    assert seen == ["freezer-2", "fridge-1"]  # once per zone
    with pytest.raises(AlarmError, match=r"profile of zone 'x': got None, want an AlarmProfile"):
        AlarmEngine(lambda zone: None).observe("x", 0.0, 5.0, False)  # type: ignore[arg-type, return-value]


def test_active_lists_raised_alarms_by_zone_and_kind() -> None:
    engine = AlarmEngine(lambda zone: AlarmProfile(delay_consecutive_s=0))
    feed(engine, [(0.0, 9.0)], zone="b")
    feed(engine, [(0.0, 1.0), (60.0, None)], zone="a")
    engine.tick(1000.0)
    assert [(a.zone, a.kind, a.since_s, a.value_c) for a in engine.active()] == [
        ("a", "silent", 1000.0, None),
        ("a", "sensor", 60.0, None),
        ("a", "low", 0.0, 1.0),
        ("b", "silent", 1000.0, None),
        ("b", "high", 0.0, 9.0),
    ]
    assert json.loads(json.dumps(engine.active()[-1].to_json())) == {
        "zone": "b",
        "kind": "high",
        "since_s": 0.0,
        "value_c": 9.0,
        "detail": "9 °C; high limit 8 °C, clears at 7.5 °C",
    }


# --- restart -------------------------------------------------------------------------------

RESTART_PROFILE = AlarmProfile(
    delay_consecutive_s=300, delay_cumulative_s=1200, mkt_window_s=1800, mkt_high_c=7.0
)
RESTART_TRACE = trace((10, 5.0), (8, 11.0), (6, None), (12, 11.0), (40, 5.0), (25, 1.0), (5, 5.0))


def test_snapshot_restore_mid_excursion_continues_exactly() -> None:
    whole = feed(AlarmEngine({ZONE: RESTART_PROFILE}), RESTART_TRACE)
    assert {e.kind for e in whole} == {"high", "low", "cumulative", "sensor", "mkt"}
    for cut in range(len(RESTART_TRACE) + 1):
        first = AlarmEngine({ZONE: RESTART_PROFILE})
        before = feed(first, RESTART_TRACE[:cut])
        saved = json.loads(json.dumps(first.snapshot()))  # as the gateway persists it
        second = AlarmEngine.restore({ZONE: RESTART_PROFILE}, saved)
        assert second.snapshot() == first.snapshot()
        assert second.active() == first.active()
        assert before + feed(second, RESTART_TRACE[cut:]) == whole, f"cut at {cut}"


def test_restore_rejects_other_versions_and_damaged_snapshots() -> None:
    engine = AlarmEngine({ZONE: DEFAULT})
    feed(engine, trace((20, 9.0)))
    good = engine.snapshot()
    with pytest.raises(AlarmError, match=r"snapshot version: got 2, want 1"):
        AlarmEngine.restore({ZONE: DEFAULT}, {**good, "version": 2})
    with pytest.raises(KeyError):
        AlarmEngine.restore({}, good)
    damaged = json.loads(json.dumps(good))
    damaged["zones"][ZONE]["active"][0]["since_s"] = "yesterday"
    with pytest.raises(
        AlarmError, match=r"snapshot zone 'cold-room-1': got .AlarmError: time_s: got 'yesterday'"
    ):
        AlarmEngine.restore({ZONE: DEFAULT}, damaged)
    damaged = json.loads(json.dumps(good))
    del damaged["zones"][ZONE]["mkt_times"]
    with pytest.raises(AlarmError, match=r"got \"KeyError: 'mkt_times'\""):
        AlarmEngine.restore({ZONE: DEFAULT}, damaged)
    for bad, why in (("AAAA", "got 3 bytes, want a multiple of 8"), ("*", "Error"), (7, "want")):
        damaged = json.loads(json.dumps(good))
        damaged["zones"][ZONE]["mkt_celsius"] = bad
        with pytest.raises(AlarmError, match=why):
            AlarmEngine.restore({ZONE: DEFAULT}, damaged)


def test_a_snapshot_written_before_the_packed_samples_still_restores() -> None:
    """Files written before the MKT window was packed list each sample as [time, °C]."""
    engine = AlarmEngine({ZONE: DEFAULT})
    feed(engine, trace(*((60, 5.0 + k / 10) for k in range(30))))
    new = json.loads(json.dumps(engine.snapshot()))
    old = json.loads(json.dumps(new))
    zone = old["zones"][ZONE]
    times, celsius = zone.pop("mkt_times"), zone.pop("mkt_celsius")
    assert isinstance(times, str) and isinstance(celsius, str)
    zone["mkt_samples"] = [list(s) for s in engine._zones[ZONE].mkt.samples()]
    restored = AlarmEngine.restore({ZONE: DEFAULT}, old)
    assert restored.snapshot() == new
    assert restored.mkt(ZONE) == engine.mkt(ZONE)


def test_snapshot_text_is_the_snapshot_and_holds_one_zone_at_a_time() -> None:
    """What the gateway writes (snapshot_text, zone by zone) reads back as snapshot(), and
    writing it holds about one zone's state, not every zone's MKT window as JSON lists: a
    site draining 1,000 boxes holds a day of minute samples per zone (1.44 M), whose
    lists peaked at ~270 MB in one save (bench/RESULTS.md, issue 13 part 3)."""
    zones, day = 100, 1440
    engine = AlarmEngine(lambda _zone: DEFAULT)
    for z in range(zones):
        window = engine._zone(f"zone-{z}").mkt
        for k in range(day + 10):  # a day of minute readings, the oldest evicted
            window.add(1_700_000_000.0 + 60 * k, 5.0 + k % 7 / 10)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        text = "".join(piece for piece in engine.snapshot_text() if piece)
        pieces_peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for _ in engine.snapshot_text():
            pass
        streaming_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert json.loads(text) == json.loads(json.dumps(engine.snapshot()))
    one_zone = len(text) / zones
    assert one_zone < 40_000  # 1,441 samples as 16 bytes each in base64, and the rest
    assert streaming_peak < 10 * one_zone, (streaming_peak, one_zone)
    assert pieces_peak > 0.9 * len(text)  # (the test measures: the joined text is held)


# --- properties ----------------------------------------------------------------------------

PROPERTY_PROFILES = {
    "a": AlarmProfile(
        delay_consecutive_s=120, delay_cumulative_s=600, mkt_window_s=1800, mkt_high_c=7.0
    ),
    "b": AlarmProfile(delay_consecutive_s=0, delay_cumulative_s=300, hysteresis_c=0.0),
}
temperatures = st.one_of(
    st.none(),  # a sensor error
    st.sampled_from([1.4, 1.9, 2.0, 2.1, 2.5, 5.0, 7.5, 7.9, 8.0, 8.1, 8.6]),  # at the limits
    st.floats(-5.0, 20.0),
)
observe = st.tuples(st.just("observe"), st.sampled_from("ab"), st.floats(-30, 400), temperatures)
tick = st.tuples(st.just("tick"), st.just(""), st.floats(0.0, 1000.0), st.none())
reset = st.tuples(st.just("reset"), st.sampled_from("ab"), st.floats(0.0, 10.0), st.none())
# Mostly readings (dt < 0: out of order), now and then a tick or a QA reset.
operations = st.lists(st.one_of(*[observe] * 8, tick, reset), min_size=20, max_size=200)


Op = tuple[str, str, float, float | None]  # (operation, zone, dt, celsius)


def run(engine: AlarmEngine, ops: list[Op], clock: float = 0.0) -> list[AlarmEvent]:
    """Apply ops and return their events; each op first moves the clock by its dt (observe's
    dt may be negative: readings out of order). "wait" only moves the clock."""
    events: list[AlarmEvent] = []
    for op, zone, dt, celsius in ops:
        clock += dt
        if op == "observe":
            events += engine.observe(zone, clock, celsius, celsius is None)
        elif op == "tick":
            events += engine.tick(clock)
        elif op == "reset":
            events += engine.reset(zone, clock)
    return events


@settings(max_examples=300, deadline=None)
@given(operations)
def test_events_alternate_raised_cleared_and_match_active(ops: list[Op]) -> None:
    engine = AlarmEngine(PROPERTY_PROFILES)
    last: dict[tuple[str, str], str] = {}
    for event in run(engine, ops):
        key = (event.zone, event.kind)
        assert event.state == ("cleared" if last.get(key) == "raised" else "raised"), key
        last[key] = event.state
    raised = {key for key, state in last.items() if state == "raised"}
    assert {(a.zone, a.kind) for a in engine.active()} == raised


@settings(max_examples=200, deadline=None)
@given(operations, st.integers(0, 200))
def test_restore_anywhere_gives_the_same_events(ops: list[Op], cut: int) -> None:
    whole = run(AlarmEngine(PROPERTY_PROFILES), ops)
    first = AlarmEngine(PROPERTY_PROFILES)
    before = run(first, ops[:cut])
    clock = sum(dt for _, _, dt, _ in ops[:cut])
    second = AlarmEngine.restore(PROPERTY_PROFILES, json.loads(json.dumps(first.snapshot())))
    assert before + run(second, ops[cut:], clock) == whole


@settings(max_examples=200, deadline=None)
@given(operations)
def test_ticks_change_nothing_but_silent(ops: list[Op]) -> None:
    # Durations come from reading times: a backlog replayed without ticks raises what the
    # live run raised, apart from "silent", which only the gateway's clock can see.
    live = run(AlarmEngine(PROPERTY_PROFILES), ops)
    no_ticks = [("wait" if op == "tick" else op, z, dt, c) for op, z, dt, c in ops]
    replay = run(AlarmEngine(PROPERTY_PROFILES), no_ticks)
    assert [e for e in live if e.kind != "silent"] == replay
