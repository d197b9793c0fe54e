"""Mean Kinetic Temperature (MKT): the one constant temperature that would degrade a product as
much as the temperatures it actually saw (USP <1160> and <1079.2>, WHO TRS 961 annex 9).

    MKT = (ΔH/R) / -ln( Σ wᵢ·exp(-ΔH/(R·Tᵢ)) / Σ wᵢ )      Tᵢ in kelvin, result in °C

ΔH/R is 10,000 K unless a product's own activation energy is known (ΔH = 83.144 kJ/mol,
R = 8.3144 J/(mol·K); DESIGN.md "Cold-chain conventions"). The weights wᵢ are the time each
sample stands for (sample_weights), so uneven intervals and gaps count by duration, and evenly
spaced samples weigh the same: the formula then reduces to the textbook (1/n) Σ.

Numerics: the terms are not shifted by a reference temperature because none underflows.
With ΔH/R = 10,000 K, exp(-ΔH/(R·T)) stays a normal double down to T = 14.3 K (-259 °C);
readings span -100..+150 °C (device/reading.py), where the terms lie between 8e-26 and 5e-11,
and a double keeps 53 bits of relative precision at any exponent, so sums over a year of
readings lose nothing. Inputs whose term would underflow (only absurdly cold ones, or a huge
ΔH/R) are rejected rather than silently dropped. What a rolling sum can lose is precision to
repeated subtraction; RollingMKT bounds that by rebuilding its sum.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from itertools import pairwise

DELTA_H_OVER_R_K = 10_000.0  # 83_144 J/mol / 8.3144 J/(mol·K)
KELVIN_OFFSET = 273.15
# exp(-x) is a normal double (full precision) for x up to 708.4; keep a margin.
EXPONENT_MAX = 700.0


def arrhenius_term(celsius: float, delta_h_over_r_k: float = DELTA_H_OVER_R_K) -> float:
    """Return exp(-ΔH/(R·T)) for `celsius`; raises ValueError unless it is a normal double.

    Public so that a store of sums (the cloud's per-lot cold chain) keeps the same terms and
    inverts their mean with mkt_from_mean_term."""
    coldest = delta_h_over_r_k / EXPONENT_MAX - KELVIN_OFFSET
    if not (math.isfinite(celsius) and celsius >= coldest):
        raise ValueError(f"celsius: got {celsius}, want a finite value >= {coldest:.6g}")
    return math.exp(-delta_h_over_r_k / (celsius + KELVIN_OFFSET))


def mkt_from_mean_term(mean_term: float, delta_h_over_r_k: float = DELTA_H_OVER_R_K) -> float:
    """Invert the Arrhenius term: the temperature in °C whose term is `mean_term` (> 0)."""
    return delta_h_over_r_k / -math.log(mean_term) - KELVIN_OFFSET


def _check_activation(delta_h_over_r_k: float) -> None:
    if not (math.isfinite(delta_h_over_r_k) and delta_h_over_r_k > 0):
        raise ValueError(f"delta_h_over_r_k: got {delta_h_over_r_k}, want > 0 kelvin")


def weighted_mkt(
    pairs: Sequence[tuple[float, float]], *, delta_h_over_r_k: float = DELTA_H_OVER_R_K
) -> float:
    """Return the MKT in °C of (weight, celsius) pairs.

    Requires at least one pair, finite weights >= 0 with a positive sum, and every celsius
    finite with ΔH/(R·T) <= EXPONENT_MAX (above -258.8 °C by default). Raises ValueError
    otherwise.
    """
    _check_activation(delta_h_over_r_k)
    if not pairs:
        raise ValueError("pairs: got 0, want at least 1")
    for weight, _ in pairs:
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight: got {weight}, want a finite value >= 0")
    total = math.fsum(w for w, _ in pairs)
    if total <= 0:
        raise ValueError(f"sum of weights: got {total}, want > 0")
    terms = math.fsum(w * arrhenius_term(c, delta_h_over_r_k) for w, c in pairs)
    return mkt_from_mean_term(terms / total, delta_h_over_r_k)


def sample_weights(times: Sequence[float]) -> list[float]:
    """Return the duration each sample taken at `times` stands for.

    A sample stands for half the gap to each neighbour; the first and last, which have one
    neighbour, for that whole gap, so evenly spaced samples weigh the same. One sample weighs 1.
    Requires at least one time, all finite and strictly increasing; raises ValueError otherwise.
    """
    if not times:
        raise ValueError("times: got 0, want at least 1")
    for i, t in enumerate(times):
        if not math.isfinite(t):
            raise ValueError(f"time_s[{i}]: got {t}, want a finite value")
        if i and t <= times[i - 1]:
            raise ValueError(f"time_s[{i}]: got {t}, want > {times[i - 1]} (strictly increasing)")
    if len(times) == 1:
        return [1.0]
    gaps = [b - a for a, b in pairwise(times)]
    # Each gap is split between the two samples around it; the ends get their gap twice.
    halves = [gaps[0], *gaps, gaps[-1]]
    return [(halves[i] + halves[i + 1]) / 2 for i in range(len(times))]


def mkt(
    samples: Sequence[tuple[float, float]], *, delta_h_over_r_k: float = DELTA_H_OVER_R_K
) -> float:
    """Return the time-weighted MKT in °C of (time_s, celsius) samples (see sample_weights).

    Requires at least one sample, times strictly increasing, celsius as for weighted_mkt.
    Raises ValueError otherwise.
    """
    weights = sample_weights([t for t, _ in samples])
    return weighted_mkt(
        [(w, c) for w, (_, c) in zip(weights, samples, strict=True)],
        delta_h_over_r_k=delta_h_over_r_k,
    )


class RollingMKT:
    """The time-weighted MKT of the samples in the last `window_s` seconds before the newest.

    Equal to mkt(self.samples()) up to rounding, in O(1) amortized time per add(): it keeps
    Σ gap·(termₗ + termᵣ)/2 over the gaps between its samples and adds the two end corrections
    of sample_weights when asked for value().
    """

    def __init__(self, window_s: float, *, delta_h_over_r_k: float = DELTA_H_OVER_R_K) -> None:
        """Requires window_s finite and > 0; raises ValueError otherwise."""
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s: got {window_s}, want a finite value > 0")
        _check_activation(delta_h_over_r_k)
        self.window_s = window_s
        self.delta_h_over_r_k = delta_h_over_r_k
        # The window's samples, oldest first, from index _head on: times, °C and each one's
        # exp(-ΔH/(R·T)) (kept so that evicting it costs no exp()), as C doubles, 24 bytes a
        # sample: a gateway draining 1,000 boxes' backlogs holds a day of minute readings
        # per box, 1.44 M samples (as tuples of floats they cost ~200 MB, issue 13 part 3).
        # Evicted samples are cut off the front in bulk, once they are a fifth of the arrays
        # (so these hold at most 1.25 x the window: at half, 2 x, ~69 MB at 1,000 boxes;
        # each cut moves 4 x what it frees, a few bytes a sample).
        self._t = array("d")
        self._c = array("d")
        self._k = array("d")
        self._head = 0
        self._gap_sum = 0.0
        self._evicted = 0  # evictions since the sum was last rebuilt

    def __len__(self) -> int:
        return len(self._t) - self._head

    def _trapezoid(self, i: int, j: int) -> float:
        """The gap between samples i and j (array indexes) times their mean term."""
        t, k = self._t, self._k
        return (t[j] - t[i]) * (k[i] + k[j]) / 2

    def add(self, time_s: float, celsius: float) -> None:
        """Add a sample and drop those older than time_s - window_s.

        Requires time_s finite and later than the previous sample's, and celsius as for
        weighted_mkt. Raises ValueError otherwise, leaving the window unchanged.
        """
        if not math.isfinite(time_s):
            raise ValueError(f"time_s: got {time_s}, want a finite value")
        t, k = self._t, self._k
        had = len(t) - self._head  # len(self), without a method call: once per reading
        if had and time_s <= t[-1]:
            raise ValueError(f"time_s: got {time_s}, want > {t[-1]} (the previous sample)")
        term = arrhenius_term(celsius, self.delta_h_over_r_k)
        t.append(time_s)
        self._c.append(celsius)
        k.append(term)
        if had:
            self._gap_sum += (time_s - t[-2]) * (k[-2] + term) / 2  # _trapezoid of the last gap
        # The newest sample is never older than the window, so the window never empties here.
        while t[self._head] < time_s - self.window_s:
            self._gap_sum -= self._trapezoid(self._head, self._head + 1)
            self._head += 1
            self._evicted += 1
        if self._head > 64 and 5 * self._head > len(t):
            for a in (t, self._c, self._k):
                del a[: self._head]
            self._head = 0
        if self._evicted > len(t) - self._head:
            self._rebuild()

    def _rebuild(self) -> None:
        """Recompute the gap sum afresh with fsum, dropping the rounding that each subtraction
        leaves behind. Done after as many evictions as there are samples, so it costs O(1)
        amortized per add and the drift stays bounded however long the gateway runs."""
        self._gap_sum = self._own_sum()
        self._evicted = 0

    def _own_sum(self) -> float:
        """The gap sum of the window's samples, computed afresh with fsum."""
        return math.fsum(self._trapezoid(i, i + 1) for i in range(self._head, len(self._t) - 1))

    def value(self) -> float | None:
        """Return the MKT in °C of the samples in the window, or None before the first add()."""
        mean = self.mean_term()
        return None if mean is None else mkt_from_mean_term(mean, self.delta_h_over_r_k)

    def mean_term(self) -> float | None:
        """The window's time-weighted mean Arrhenius term (what value() inverts), or None
        before the first add(). It grows with the MKT, so comparing it with a limit's
        term tells whether the MKT is above the limit without inverting it."""
        n, h, t, k = len(self._t) - self._head, self._head, self._t, self._k
        if not n:
            return None
        if n == 1:
            return k[h]
        first_gap = t[h + 1] - t[h]
        last_gap = t[-1] - t[-2]
        # End corrections: the first and last samples stand for a whole gap, not half of it.
        terms = self._gap_sum + (first_gap * k[h] + last_gap * k[-1]) / 2
        total = t[-1] - t[h] + (first_gap + last_gap) / 2
        return terms / total

    def samples(self) -> list[tuple[float, float]]:
        """Return the (time_s, celsius) samples in the window, oldest first."""
        h = self._head
        return list(zip(self._t[h:], self._c[h:], strict=True))

    def times(self) -> array:
        """The window's sample times, oldest first (a copy, as C doubles)."""
        return self._t[self._head :]

    def celsius(self) -> array:
        """The window's sample temperatures in °C, in the order of times() (a copy)."""
        return self._c[self._head :]

    def sum_state(self) -> tuple[float, int]:
        """Return the running gap sum and the evictions since its last rebuild: with samples(),
        all a restored window needs to give bit-identical values (the sum's rounding depends on
        which samples were subtracted, so re-adding the samples alone could differ in the last
        bit and move an MKT alarm that sits exactly at its limit)."""
        return self._gap_sum, self._evicted

    def restore_sum(self, gap_sum: float, evicted: int) -> None:
        """Take sum_state() after re-adding the same samples. Raises ValueError if the values
        are not a finite float within rounding of this window's own sum, or a count >= 0."""
        own = self._own_sum()
        if not (isinstance(gap_sum, float) and math.isfinite(gap_sum)):
            raise ValueError(f"gap_sum: got {gap_sum!r}, want a finite float")
        if abs(gap_sum - own) > 1e-9 * max(abs(own), 1e-300) + 1e-300:
            raise ValueError(f"gap_sum: got {gap_sum!r}, want about {own!r} (this window's sum)")
        if not (isinstance(evicted, int) and not isinstance(evicted, bool) and evicted >= 0):
            raise ValueError(f"evicted: got {evicted!r}, want an int >= 0")
        self._gap_sum, self._evicted = gap_sum, evicted
