"""Mean Kinetic Temperature: known answers, time weighting, the rolling window, numerics."""

from __future__ import annotations

import math
import random
from decimal import Decimal, getcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mkt import RollingMKT, mkt, sample_weights, weighted_mkt


def decimal_mkt(pairs: list[tuple[float, float]]) -> float:
    """An independent reference: the DESIGN.md formula in 40-digit decimal arithmetic."""
    getcontext().prec = 40
    total = sum((Decimal(w) for w, _ in pairs), Decimal(0))
    terms = sum(
        Decimal(w) * (Decimal(-10000) / (Decimal(c) + Decimal("273.15"))).exp() for w, c in pairs
    ) + Decimal(0)
    return float(Decimal(10000) / -(terms / total).ln() - Decimal("273.15"))


# --- known answers -------------------------------------------------------------------------


@pytest.mark.parametrize("celsius", [-20.0, 2.0, 5.0, 8.0, 25.0, 40.0])
def test_constant_temperature_is_its_own_mkt(celsius: float) -> None:
    samples = [(60.0 * i, celsius) for i in range(100)]
    assert mkt(samples) == pytest.approx(celsius, abs=1e-9)
    assert weighted_mkt([(1.0, celsius)]) == pytest.approx(celsius, abs=1e-9)


def test_half_at_2_half_at_8_is_5_54_not_5() -> None:
    # By hand: T = 275.15 K and 281.15 K; 10000/T = 36.343812 and 35.568202;
    # exp(-36.343812) = 1.6446852e-16, exp(-35.568202) = 3.5721207e-16; their mean is
    # 2.6084030e-16, -ln(2.6084030e-16) = 35.882623, 10000/35.882623 = 278.68642 K = 5.53642 °C.
    # (40-digit Decimal, see decimal_mkt: 5.536424508866343.) Warm time weighs more than cold.
    expected = 5.536424508866343
    assert weighted_mkt([(1.0, 2.0), (1.0, 8.0)]) == pytest.approx(expected, abs=1e-12)
    assert mkt([(0.0, 2.0), (60.0, 8.0)]) == pytest.approx(expected, abs=1e-12)
    assert mkt([(0.0, 2.0), (60.0, 2.0), (120.0, 8.0), (180.0, 8.0)]) == pytest.approx(expected)


def test_usp_1079_2_style_24_hours_with_a_one_hour_excursion() -> None:
    # USP <1079.2> evaluates an excursion of a refrigerated (CCT) product by the MKT over
    # 24 h including the excursion: 23 h at 5 °C and 1 h at 25 °C. By hand: exp(-10000/278.15)
    # = 2.4340023e-16, exp(-10000/298.15) = 2.7145116e-15; (23·2.4340023e-16 + 2.7145116e-15)/24
    # = 3.4636320e-16, -ln(...) = 35.599044, 10000/35.599044 - 273.15 = 7.75642 °C (Decimal:
    # 7.756421961545362). Above the 5.83 °C arithmetic mean, inside 2-8 °C.
    expected = 7.756421961545362
    assert weighted_mkt([(23 * 3600, 5.0), (3600, 25.0)]) == pytest.approx(expected, abs=1e-12)
    hourly = [(3600.0 * h, 25.0 if h == 12 else 5.0) for h in range(24)]
    assert mkt(hourly) == pytest.approx(expected, abs=1e-12)


def test_usp_1160_style_twelve_monthly_averages() -> None:
    # USP <1160>: a year of at least twelve equally spaced average storage temperatures.
    # Controlled room temperature, monthly means below; decimal_mkt gives 23.387356299972981,
    # against an arithmetic mean of 22.75 °C.
    months = [18, 19, 21, 23, 25, 27, 28, 27, 25, 22, 20, 18]
    assert weighted_mkt([(1.0, c) for c in months]) == pytest.approx(23.38735629997298, abs=1e-11)


def test_activation_energy_is_a_parameter() -> None:
    # ΔH/R -> 0 weighs temperatures alike: exp(-k/T) ~ 1 - k/T, so the MKT tends to the
    # harmonic mean in kelvin, 2/(1/275.15 + 1/281.15) = 278.118 K (4.968 °C) for 2 and 8 °C.
    # A larger ΔH/R weighs the warm half more, towards the maximum.
    split = [(1.0, 2.0), (1.0, 8.0)]
    harmonic = 2 / (1 / 275.15 + 1 / 281.15) - 273.15
    assert weighted_mkt(split, delta_h_over_r_k=1e-3) == pytest.approx(harmonic, abs=1e-6)
    values = [weighted_mkt(split, delta_h_over_r_k=k) for k in (1e-3, 5e3, 1e4, 2e4, 1e5)]
    assert values == sorted(values)
    assert values[2] == pytest.approx(5.536424508866343, abs=1e-12)  # the default, 10,000 K
    assert harmonic < values[1] and values[-1] < 8.0


@given(st.lists(st.tuples(st.floats(0.1, 1e5), st.floats(-100.0, 150.0)), min_size=1, max_size=30))
def test_matches_a_40_digit_decimal_reference(pairs: list[tuple[float, float]]) -> None:
    assert weighted_mkt(pairs) == pytest.approx(decimal_mkt(pairs), abs=1e-9)


@given(st.lists(st.floats(-40.0, 60.0), min_size=1, max_size=50))
def test_mkt_lies_between_the_mean_and_the_maximum(temps: list[float]) -> None:
    value = weighted_mkt([(1.0, c) for c in temps])
    assert sum(temps) / len(temps) - 1e-9 <= value <= max(temps) + 1e-9


# --- time weighting ------------------------------------------------------------------------


def test_sample_weights() -> None:
    assert sample_weights([5.0]) == [1.0]
    assert sample_weights([0.0, 60.0, 120.0]) == [60.0, 60.0, 60.0]  # even: equal
    # Inner samples get half of each neighbouring gap; the ends get their one gap whole.
    assert sample_weights([0.0, 60.0, 180.0]) == [60.0, 90.0, 120.0]
    assert sample_weights([0.0, 10.0, 20.0, 3620.0, 3630.0]) == [10.0, 10.0, 1805.0, 1805.0, 10.0]


def test_dense_sampling_does_not_outweigh_time() -> None:
    # One hour at 2 °C sampled every 10 min, then one hour at 8 °C sampled every minute.
    cold = [(600.0 * i, 2.0) for i in range(6)]  # t = 0..3000
    warm = [(3600.0 + 60.0 * i, 8.0) for i in range(60)]  # t = 3600..7140
    # Weights: cold 600 each (the last: (3600 - 2400)/2 = 600) = 3600 s; warm: the first
    # (3660 - 3000)/2 = 330, 58 inner x 60 = 3480, the last 60: 3870 s.
    expected = weighted_mkt([(3600.0, 2.0), (3870.0, 8.0)])
    assert mkt(cold + warm) == pytest.approx(expected, abs=1e-12)
    assert abs(mkt(cold + warm) - 5.536) < 0.2  # about the 50/50 split
    assert weighted_mkt([(1.0, c) for _, c in cold + warm]) > 7.5  # what counting samples gives


def test_zero_weights_are_allowed_but_not_all_of_them() -> None:
    assert weighted_mkt([(0.0, 30.0), (1.0, 5.0)]) == pytest.approx(5.0, abs=1e-9)
    with pytest.raises(ValueError, match=r"sum of weights: got 0.0, want > 0"):
        weighted_mkt([(0.0, 5.0)])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mkt([]), r"times: got 0, want at least 1"),
        (lambda: weighted_mkt([]), r"pairs: got 0, want at least 1"),
        (lambda: mkt([(0, 5.0), (0, 6.0)]), r"time_s\[1\]: got 0, want > 0"),
        (lambda: mkt([(60, 5.0), (0, 6.0)]), r"time_s\[1\]: got 0, want > 60"),
        (lambda: mkt([(math.nan, 5.0)]), r"time_s\[0\]: got nan"),
        (lambda: mkt([(0, math.nan)]), r"celsius: got nan, want a finite value >= -258.864"),
        (lambda: mkt([(0, -260.0)]), r"celsius: got -260.0, want a finite value >= -258.864"),
        # exp(-1e6/275.15) would underflow to 0: reject, rather than take ln(0).
        (lambda: mkt([(0, 2.0)], delta_h_over_r_k=1e6), r"celsius: got 2.0, want .* >= 1155.42"),
        (lambda: weighted_mkt([(-1.0, 5.0)]), r"weight: got -1.0, want a finite value >= 0"),
        (lambda: weighted_mkt([(1, 5.0)], delta_h_over_r_k=0), r"delta_h_over_r_k: got 0"),
        (lambda: RollingMKT(0), r"window_s: got 0, want a finite value > 0"),
        (lambda: RollingMKT(math.inf), r"window_s: got inf"),
    ],
)
def test_preconditions(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# --- the rolling window --------------------------------------------------------------------


def test_rolling_empty_and_single() -> None:
    r = RollingMKT(3600)
    assert r.value() is None
    assert len(r) == 0
    r.add(100.0, 6.0)
    assert r.value() == pytest.approx(6.0, abs=1e-12)
    assert r.samples() == [(100.0, 6.0)]


def test_rolling_window_expiry() -> None:
    r = RollingMKT(3600)
    r.add(0.0, 25.0)  # a warm first sample
    for i in range(1, 61):
        r.add(60.0 * i, 5.0)
    # t = 0 is exactly window_s before t = 3600: the boundary sample stays.
    assert r.samples()[0] == (0.0, 25.0)
    value = r.value()
    assert value == pytest.approx(mkt(r.samples()), abs=1e-12)
    assert value is not None and value > 5.5
    r.add(3660.0, 5.0)  # now t = 0 is older than the window
    assert r.samples()[0] == (60.0, 5.0)
    assert len(r) == 61
    assert r.value() == pytest.approx(5.0, abs=1e-9)


def test_rolling_gap_longer_than_the_window_keeps_only_the_newest() -> None:
    r = RollingMKT(600)
    for i in range(10):
        r.add(60.0 * i, 30.0)
    r.add(10_000.0, 4.0)
    assert r.samples() == [(10_000.0, 4.0)]
    assert r.value() == pytest.approx(4.0, abs=1e-12)


@pytest.mark.parametrize("time_s", [120.0, 60.0])
def test_rolling_rejects_out_of_order_and_duplicates_unchanged(time_s: float) -> None:
    r = RollingMKT(3600)
    r.add(60.0, 5.0)
    r.add(120.0, 7.0)
    before = (r.samples(), r.value())
    with pytest.raises(ValueError, match=rf"time_s: got {time_s}, want > 120.0"):
        r.add(time_s, 30.0)
    with pytest.raises(ValueError, match=r"celsius: got nan"):
        r.add(180.0, math.nan)
    assert (r.samples(), r.value()) == before


@given(
    st.floats(60.0, 7200.0),
    st.lists(st.tuples(st.floats(0.5, 900.0), st.floats(-30.0, 60.0)), min_size=1, max_size=80),
)
def test_rolling_equals_mkt_of_its_window(
    window_s: float, steps: list[tuple[float, float]]
) -> None:
    r = RollingMKT(window_s)
    t = 0.0
    everything = []
    for dt, celsius in steps:
        t += dt
        r.add(t, celsius)
        everything.append((t, celsius))
        inside = [(ts, c) for ts, c in everything if ts >= t - window_s]
        assert r.samples() == inside
        assert r.value() == pytest.approx(mkt(inside), abs=1e-9)


def test_rolling_long_run_does_not_drift() -> None:
    # 30 days of minute readings through a 7-day window (about 33,000 evictions, so several
    # rebuilds of the running sum), a 2..8 °C daily cycle with a 40 °C hour every 5th day:
    # the running sum, added to and subtracted from, still agrees with a fresh fsum.
    r = RollingMKT(7 * 86400)
    for i in range(30 * 1440):
        day, minute = divmod(i, 1440)
        celsius = 40.0 if day % 5 == 0 and minute < 60 else 5.0 + 3.0 * math.sin(minute / 229.2)
        r.add(60.0 * i, celsius)
    assert len(r) == 7 * 1440 + 1
    assert r.value() == pytest.approx(mkt(r.samples()), rel=1e-12)


def test_rolling_recovers_the_baseline_after_an_extreme_spike_leaves() -> None:
    # A 150 °C term is 3e5 times a 2 °C one; subtracting it must not leave a visible residue.
    r = RollingMKT(3600)
    r.add(0.0, 150.0)
    for i in range(1, 200):
        r.add(60.0 * i, 2.0)
    assert r.value() == pytest.approx(2.0, abs=1e-9)


def test_a_restored_window_gives_bit_identical_values() -> None:
    # After evictions the running sum carries the rounding of its subtractions; a window rebuilt
    # by re-adding its samples sums them afresh. Without sum_state()/restore_sum() the two
    # differ in the last bits (checked below), which could move an alarm sitting at its limit.
    rng = random.Random(1)  # a seed whose window has drifted by its last add
    live = RollingMKT(600.0)
    t = 0.0
    for _ in range(500):
        t += rng.uniform(1, 90)
        live.add(t, rng.uniform(-5, 30))
    readded = RollingMKT(600.0)
    for time_s, c in live.samples():
        readded.add(time_s, c)
    assert readded.sum_state()[0] != live.sum_state()[0]  # the drift this guards against
    readded.restore_sum(*live.sum_state())
    for _ in range(200):
        assert readded.value() == live.value()
        t += rng.uniform(1, 90)
        c = rng.uniform(-5, 30)
        live.add(t, c)
        readded.add(t, c)


def test_restore_sum_refuses_a_sum_that_is_not_this_windows() -> None:
    window = RollingMKT(600.0)
    for t in range(0, 300, 60):
        window.add(float(t), 5.0)
    good, evicted = window.sum_state()
    with pytest.raises(ValueError, match="gap_sum"):
        window.restore_sum(good * 2, evicted)
    with pytest.raises(ValueError, match="evicted"):
        window.restore_sum(good, -1)


def test_a_long_stream_keeps_only_its_window_and_its_value() -> None:
    """Samples leave the window's arrays in bulk (gateway/mkt.py): after days of minute
    readings the window holds an hour, its storage stays bounded, and its value is still
    the MKT of what it holds."""
    r = RollingMKT(3600)
    for k in range(5 * 1440):
        r.add(60.0 * k, 4.0 + (k % 97) / 20)
        assert len(r._t) <= 1.25 * len(r) + 65
    assert len(r) == 61 and r.samples()[0][0] == 60.0 * (5 * 1440 - 61)
    assert math.isclose(r.value(), mkt(r.samples()), rel_tol=1e-12)
