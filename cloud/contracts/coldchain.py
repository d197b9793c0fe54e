"""A lot's cold chain: per-leg and per-lot aggregates of the readings of the boxes attached to
it, kept up to date as reading batches are applied, so a history reads them instead of
rescanning 100,000 readings (issue 11 §4).

Pure: no storage, no clock. The lots contract decides which readings belong to which leg (the
attachment windows) and when a leg closes; this module keeps, for each leg, and for each box on
it:

  count, min, max, sum   of valid readings, centi-°C integers (sensor errors counted apart)
  humidity               count, min, max, sum of the valid readings' relative humidity,
                         centi-% integers (device/reading.py; absent from a reading handed
                         over without it: the figures are then over those that have it)
  time out of range      seconds, integers: each out-of-range reading is charged the time to its
                         box's next reading, at most the profile's max_gap_s (gateway/alarms.py
                         `charged`, with max_gap_s as the silence); a leg's figure is the union
                         over its boxes (two boxes seeing one excursion count it once), the lot's
                         the sum over its legs
  excursions             per box, the high/low alarms of gateway/alarms.py (`limit_conditions`,
                         `advance`: the same functions, in integers) under the lot's profile;
                         for the lot, "cumulative" once its time out of range reaches the
                         profile's cumulative delay
  gaps                   per leg, a stretch longer than max_gap_s with no valid reading, from
                         the leg's start over its readings to its end; final once it is closed
  MKT sums               floats, kept beside the integers and never in a signed or rooted
                         record; MKT is computed on read (gateway/mkt.py)
  calibration flags      readings at or after a box's calibration due date, counted on read

Determinism: the result depends on the set of readings only, never on the batches they came in
or their order. The integer aggregates are sums, minima and maxima. Time out of range depends
on each reading's successor only, recomputed for the inserted readings and their predecessors.
Excursions need the readings in time order, so each box keeps its readings sorted, and the
alarm machine is re-run only over the window a batch can change: a "calm" reading (within both
clear thresholds: low + hysteresis <= c <= high - hysteresis) resets both machines whatever came
before, so the window runs from the last calm reading before the batch's earliest reading to
the first calm one after its latest. Readings appended after a box's last one (the usual case)
continue the machine saved at the end: O(batch). A late batch (boxes deliver up to 68 h of
backlog) re-runs from the calm reading before it: O(readings of the box in that window), which
is the whole excursion when it lands inside one. The MKT sums are Σ over consecutive valid
readings of a box of gap·(termₗ + termᵣ)/2 (the trapezoids of gateway/mkt.py's time
weighting), kept exactly (Shewchuk's partials, as math.fsum) so that adding a trapezoid and
removing the one a late reading splits leaves the same float whatever the order.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from device.reading import HUMIDITY_MAX, TEMP_MAX, TEMP_MIN, TIME_MAX
from gateway.alarms import LotProfile, advance, charged, limit_conditions, out_of_range
from gateway.mkt import arrhenius_term, mkt_from_mean_term

ExcursionKind = Literal["high", "low", "cumulative"]
CENTI = 100
# A reading as the lots contract hands it over: (time_s, centi-°C, centi-% relative
# humidity), or (time_s, None, None) for a sensor error (device/reading.py
# FLAG_SENSOR_ERROR: no valid measurement). The humidity may be left out: (time_s, centi-°C).
Reading = tuple[int, int | None] | tuple[int, int | None, int | None]
_Checked = tuple[int, int | None, int | None]
_ABSENT = object()  # no reading held at a time (None is a sensor error's value)


class ColdChainError(ValueError):
    """A reading or leg operation is refused; `field` names it, str() says got/want."""

    def __init__(self, field: str, got: object, want: str) -> None:
        super().__init__(f"{field}: got {got!r}, want {want}")
        self.field = field


@dataclass(frozen=True)
class Excursion:
    """An alarm raised under the lot's profile. high/low: on one box of one leg, from its first
    reading beyond the limit (start_s) through the reading that raised it (raised_s, after the
    consecutive delay) to the one that cleared it (end_s; None: still on). cumulative: the
    lot's time out of range reached the cumulative delay at raised_s (box and leg empty)."""

    leg: str
    box: str
    kind: ExcursionKind
    start_s: int
    raised_s: int
    end_s: int | None
    worst_cc: int  # the highest (high) or lowest (low) reading; cumulative: the lot's TOR, s

    def to_json(self) -> dict[str, Any]:
        """Return the excursion as a JSON-serialisable dict, one key per field."""
        return asdict(self)


@dataclass(frozen=True)
class Gap:
    """A stretch of a leg longer than its profile's max_gap_s with no valid reading."""

    leg: str
    start_s: int
    end_s: int
    final: bool  # the leg is closed: only a late reading inside it could still fill it

    def to_json(self) -> dict[str, Any]:
        """Return the gap as a JSON-serialisable dict, one key per field."""
        return asdict(self)


@dataclass(frozen=True)
class Quarantine:
    """Why a lot must be quarantined automatically: the earliest excursion or final gap."""

    reason: str
    excursion: Excursion | None
    gap: Gap | None


class _ExactSum:
    """A float sum kept exactly (Shewchuk's non-overlapping partials, the algorithm behind
    math.fsum): its value is the exactly rounded sum of everything added, in any order."""

    __slots__ = ("partials",)

    def __init__(self) -> None:
        self.partials: list[float] = []

    def add(self, x: float) -> None:
        partials, i = self.partials, 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def value(self) -> float:
        return math.fsum(self.partials)


@dataclass
class _Alarm:
    """One high or low alarm machine of one box (gateway/alarms.py's rule, in integers)."""

    since: int | None = None
    active: bool = False
    raised: int = 0
    worst: int = 0


@dataclass
class _Machine:
    """The high and low alarm machines of one box after some prefix of its readings."""

    high: _Alarm = field(default_factory=_Alarm)
    low: _Alarm = field(default_factory=_Alarm)

    def copy(self) -> _Machine:
        return _Machine(_Alarm(**asdict(self.high)), _Alarm(**asdict(self.low)))


@dataclass
class _Box:
    """One box's readings on one leg, sorted by time, and what is derived from them."""

    times: list[int] = field(default_factory=list)
    values: list[int | None] = field(default_factory=list)
    humidity: list[int | None] = field(default_factory=list)  # centi-%, beside values
    valid: list[int] = field(default_factory=list)  # times of valid readings, sorted
    terms: dict[int, float] = field(default_factory=dict)  # valid time -> Arrhenius term
    charges: dict[int, int] = field(default_factory=dict)  # out-of-range time -> seconds
    tor_s: int = 0
    trapezoids: _ExactSum = field(default_factory=_ExactSum)
    excursions: dict[tuple[str, int], Excursion] = field(default_factory=dict)
    tail: _Machine = field(default_factory=_Machine)  # after the last reading


@dataclass(frozen=True)
class Stats:
    """Cold-chain figures of a leg or a lot. Temperatures in °C (from centi-°C integers), None
    without valid readings; MKT time-weighted (gateway/mkt.py); relative humidity in % (from
    centi-% integers), None without valid readings that carry it."""

    count: int
    sensor_errors: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    time_out_of_range_s: int
    mkt_c: float | None
    calibration_flagged: int  # readings at or after their box's calibration due date
    min_rh: float | None = None
    max_rh: float | None = None
    mean_rh: float | None = None


@dataclass(frozen=True)
class LegSummary:
    """One leg's history: its window, figures, excursions and gaps."""

    leg: str
    start_s: int
    end_s: int | None  # None: still open
    boxes: tuple[str, ...]
    stats: Stats
    excursions: tuple[Excursion, ...]
    gaps: tuple[Gap, ...]


@dataclass(frozen=True)
class Summary:
    """A lot's cold-chain history: per leg and overall, and whether it must be quarantined."""

    legs: tuple[LegSummary, ...]
    overall: Stats
    excursions: tuple[Excursion, ...]  # every leg's, then the lot's cumulative one
    gaps: tuple[Gap, ...]
    quarantine: Quarantine | None

    def to_json(self) -> dict[str, Any]:
        """Return the summary as JSON-serialisable data."""
        return asdict(self)


class Leg:
    """The readings of one leg (a shipment or a storage) of a lot and their aggregates."""

    def __init__(self, name: str, profile: LotProfile, start_s: int) -> None:
        self.name = name
        signed = profile.to_signed()
        self._low, self._high = signed["low_cc"], signed["high_cc"]
        self._hysteresis = signed["hysteresis_cc"]
        self._delay = signed["delay_consecutive_s"]
        self._max_gap = profile.max_gap_s
        self.start_s = start_s
        self.end_s: int | None = None
        self.boxes: dict[str, _Box] = {}
        self.times: list[int] = []  # distinct times of valid readings of every box, sorted
        self.gaps: dict[int, int] = {}  # start -> end of each gap
        self.count = 0
        self.sensor_errors = 0
        self.sum_cc = 0
        self.min_cc: int | None = None
        self.max_cc: int | None = None
        self.rh_count = 0  # valid readings that carry a humidity, and its centi-% figures
        self.sum_rh = 0
        self.min_rh: int | None = None
        self.max_rh: int | None = None
        self._tor_cache: int | None = None

    # --- applying readings ------------------------------------------------------------------

    def apply(self, box: str, readings: Iterable[Reading]) -> int:
        """Add a batch of one box's readings in any order; return how many were new.

        A reading already held with the same value is skipped (a batch applied twice changes
        nothing). Raises ColdChainError, changing nothing, for a malformed reading, a time
        outside the leg's window, or a time held with another value.
        """
        if not (isinstance(box, str) and box):
            raise ColdChainError("box", box, "a non-empty string")
        state = self.boxes.get(box) or _Box()
        batch = self._checked(state, readings)
        if not batch:
            return 0
        self.boxes[box] = state
        appended = not state.times or batch[0][0] > state.times[-1]
        first = len(state.times) if appended else bisect.bisect_left(state.times, batch[0][0])
        for time_s, cc, rh in batch:
            self._insert(state, time_s, cc, rh)
        if appended:
            self._run(box, state, first, len(state.times), state.tail.copy(), to_end=True)
        else:
            self._rerun(box, state, batch[0][0], batch[-1][0])
        self._tor_cache = None
        return len(batch)

    def _checked(self, state: _Box, readings: Iterable[Reading]) -> list[_Checked]:
        """Return the new readings of a batch as (time_s, centi-°C, centi-%), sorted; raise
        ColdChainError for a bad one."""
        seen: dict[int, tuple[int | None, int | None]] = {}
        for reading in readings:
            if not (isinstance(reading, tuple) and len(reading) in (2, 3)):
                want = "(time_s, centi-°C or None[, centi-% or None])"
                raise ColdChainError("reading", reading, want)
            time_s, cc, rh = reading if len(reading) == 3 else (*reading, None)
            if not (type(time_s) is int and 0 <= time_s <= TIME_MAX):
                raise ColdChainError("time_s", time_s, f"an integer 0..{TIME_MAX}")
            if cc is not None and not (type(cc) is int and TEMP_MIN <= cc <= TEMP_MAX):
                raise ColdChainError("centi_c", cc, f"an integer {TEMP_MIN}..{TEMP_MAX} or None")
            if rh is not None and (cc is None or not (type(rh) is int and 0 <= rh <= HUMIDITY_MAX)):
                want = f"an integer 0..{HUMIDITY_MAX} beside a temperature, or None"
                raise ColdChainError("centi_rh", rh, want)
            if time_s < self.start_s or (self.end_s is not None and time_s > self.end_s):
                window = f"{self.start_s}..{'' if self.end_s is None else self.end_s}"
                raise ColdChainError("time_s", time_s, f"within leg {self.name!r}'s {window}")
            i = bisect.bisect_left(state.times, time_s)
            held: object = _ABSENT
            if i < len(state.times) and state.times[i] == time_s:
                held = (state.values[i], state.humidity[i])
            prior = seen.get(time_s, held)
            if prior is not _ABSENT and prior != (cc, rh):
                assert isinstance(prior, tuple)
                shown = prior[0] if prior[1] is None else prior  # as the reading was given
                raise ColdChainError("reading", reading, f"the value held, {shown!r}")
            if held is _ABSENT:
                seen[time_s] = (cc, rh)
        return [(t, cc, rh) for t, (cc, rh) in sorted(seen.items())]

    def _insert(self, state: _Box, time_s: int, cc: int | None, rh: int | None) -> None:
        """Insert one new reading and update everything but the excursions."""
        i = bisect.bisect_left(state.times, time_s)
        state.times.insert(i, time_s)
        state.values.insert(i, cc)
        state.humidity.insert(i, rh)
        self._charge(state, i)
        if i:
            self._charge(state, i - 1)
        if cc is None:
            self.sensor_errors += 1
            return
        self.count += 1
        self.sum_cc += cc
        self.min_cc = cc if self.min_cc is None else min(self.min_cc, cc)
        self.max_cc = cc if self.max_cc is None else max(self.max_cc, cc)
        if rh is not None:
            self.rh_count += 1
            self.sum_rh += rh
            self.min_rh = rh if self.min_rh is None else min(self.min_rh, rh)
            self.max_rh = rh if self.max_rh is None else max(self.max_rh, rh)
        self._trapezoids(state, time_s, arrhenius_term(cc / CENTI))
        self._cover(time_s)

    def _charge(self, state: _Box, i: int) -> None:
        """Recompute the time out of range charged to reading i of a box (alarms.charged)."""
        time_s, cc = state.times[i], state.values[i]
        old = state.charges.pop(time_s, 0)
        new = 0
        if cc is not None and i + 1 < len(state.times) and out_of_range(cc, self._low, self._high):
            new = charged(state.times[i + 1] - time_s, self._max_gap)
        if new:
            state.charges[time_s] = new
        state.tor_s += new - old

    def _trapezoids(self, state: _Box, time_s: int, term: float) -> None:
        """Insert a valid reading into the box's MKT sum: it splits the trapezoid between its
        valid neighbours into two."""
        j = bisect.bisect_left(state.valid, time_s)
        left = state.valid[j - 1] if j else None
        right = state.valid[j] if j < len(state.valid) else None
        terms, sums = state.terms, state.trapezoids
        if left is not None and right is not None:
            sums.add(-_trapezoid(left, terms[left], right, terms[right]))
        if left is not None:
            sums.add(_trapezoid(left, terms[left], time_s, term))
        if right is not None:
            sums.add(_trapezoid(time_s, term, right, terms[right]))
        state.valid.insert(j, time_s)
        terms[time_s] = term

    def _cover(self, time_s: int) -> None:
        """Insert a valid reading's time into the leg's gaps: it splits the gap around it."""
        j = bisect.bisect_left(self.times, time_s)
        if j < len(self.times) and self.times[j] == time_s:
            return  # another box read at the same second
        before = self.times[j - 1] if j else self.start_s
        after = self.times[j] if j < len(self.times) else self.end_s
        if after is not None:
            self.gaps.pop(before, None)
        self.times.insert(j, time_s)
        self._gap(before, time_s)
        if after is not None:
            self._gap(time_s, after)

    def _gap(self, start: int, end: int) -> None:
        if end - start > self._max_gap:
            self.gaps[start] = end

    # --- excursions --------------------------------------------------------------------------

    def _calm(self, cc: int | None) -> bool:
        """Whether a reading resets both alarm machines whatever their state (module doc)."""
        return (
            cc is not None and self._low + self._hysteresis <= cc <= self._high - self._hysteresis
        )

    def _rerun(self, box: str, state: _Box, earliest: int, latest: int) -> None:
        """Re-run the machines over the window a batch of readings from `earliest` to
        `latest` can change: from the last calm reading before it to the first after it."""
        times, values = state.times, state.values
        begin = bisect.bisect_left(times, earliest)
        while begin and not self._calm(values[begin - 1]):
            begin -= 1
        end = bisect.bisect_right(times, latest)
        while end < len(times) and not self._calm(values[end]):
            end += 1
        to_end = end == len(times)
        lo = times[begin - 1] if begin else -1
        hi = times[end] if not to_end else TIME_MAX + 1
        for key in [k for k in state.excursions if lo < k[1] < hi]:
            del state.excursions[key]
        # Up to and with the calm reading after the batch: it clears what is still on.
        stop = end if to_end else end + 1
        self._run(box, state, begin, stop, _Machine(), to_end=to_end)

    def _run(
        self, box: str, state: _Box, begin: int, end: int, m: _Machine, *, to_end: bool
    ) -> None:
        """Run the machines over readings begin..end-1 of a box from state `m`, recording the
        excursions they raise; with to_end, keep the final state as the box's tail."""
        low, high, hysteresis, delay = self._low, self._high, self._hysteresis, self._delay
        for i in range(begin, end):
            cc = state.values[i]
            if cc is None:
                continue  # a sensor error neither starts, extends, ends nor clears one
            t = state.times[i]
            high_on, high_off, low_on, low_off = limit_conditions(cc, low, high, hysteresis)
            self._step(box, state, "high", m.high, t, cc, high_on, high_off, delay)
            self._step(box, state, "low", m.low, t, cc, low_on, low_off, delay)
        if to_end:
            state.tail = m
            if m.high.active and m.high.since is not None:
                self._record(box, state, "high", m.high, None)
            if m.low.active and m.low.since is not None:
                self._record(box, state, "low", m.low, None)

    def _step(
        self,
        box: str,
        state: _Box,
        kind: Literal["high", "low"],
        alarm: _Alarm,
        t: int,
        cc: int,
        on: bool,
        off: bool,
        delay: int,
    ) -> None:
        """Advance one machine by one valid reading (gateway/alarms.py `advance`)."""
        was_active, start = alarm.active, alarm.since
        transition, alarm.since = advance(was_active, start, t, on=on, off=off, delay=delay)
        if alarm.since is not None and on:
            first = start is None
            worse = cc > alarm.worst if kind == "high" else cc < alarm.worst
            alarm.worst = cc if first or worse else alarm.worst
        if transition == "raised":
            alarm.active, alarm.raised = True, t
        elif transition == "cleared" and start is not None:
            alarm.active = False
            self._record(box, state, kind, alarm, t, since=start)

    def _record(
        self,
        box: str,
        state: _Box,
        kind: Literal["high", "low"],
        alarm: _Alarm,
        end: int | None,
        since: int | None = None,
    ) -> None:
        start = alarm.since if since is None else since
        assert start is not None
        excursion = Excursion(self.name, box, kind, start, alarm.raised, end, alarm.worst)
        state.excursions[(kind, start)] = excursion

    # --- closing and reading -----------------------------------------------------------------

    def close(self, end_s: int) -> None:
        """Close the leg at end_s: its trailing gap becomes known and every gap final.

        Raises ColdChainError if already closed at another time, or end_s is before its start
        or its latest reading.
        """
        if self.end_s is not None:
            if end_s != self.end_s:
                raise ColdChainError("end_s", end_s, f"{self.end_s} (leg {self.name!r} closed)")
            return
        latest = max((b.times[-1] for b in self.boxes.values() if b.times), default=self.start_s)
        if not (type(end_s) is int and latest <= end_s <= TIME_MAX):
            raise ColdChainError("end_s", end_s, f"an integer >= {latest} (start, readings)")
        self.end_s = end_s
        self._gap(self.times[-1] if self.times else self.start_s, end_s)

    @property
    def closed(self) -> bool:
        return self.end_s is not None

    def excursions(self) -> list[Excursion]:
        """Return the leg's high/low excursions, by start time, box and kind."""
        found = [e for b in self.boxes.values() for e in b.excursions.values()]
        return sorted(found, key=lambda e: (e.start_s, e.box, e.kind))

    def gap_list(self) -> list[Gap]:
        """Return the leg's gaps by start time; final when the leg is closed."""
        return [Gap(self.name, a, b, self.closed) for a, b in sorted(self.gaps.items())]

    def time_out_of_range_s(self) -> int:
        """Return the union over the leg's boxes of their out-of-range time, in seconds."""
        if self._tor_cache is None:
            boxes = [b for b in self.boxes.values() if b.charges]
            if len(boxes) <= 1:
                self._tor_cache = boxes[0].tor_s if boxes else 0
            else:
                intervals = sorted((t, t + c) for b in boxes for t, c in b.charges.items())
                self._tor_cache = _union(intervals)
        return self._tor_cache

    def intervals(self) -> list[tuple[int, int]]:
        """Return the out-of-range intervals [start, end) of every box, sorted."""
        return sorted((t, t + c) for b in self.boxes.values() for t, c in b.charges.items())

    def mkt_sums(self) -> tuple[float, float]:
        """Return (Σ weight·term, Σ weight) over the leg's boxes, mkt.sample_weights' time
        weighting: each box's trapezoids plus its two end corrections; one reading weighs 1."""
        terms, weights = _ExactSum(), _ExactSum()
        for b in self.boxes.values():
            v = b.valid
            if len(v) == 1:
                terms.add(b.terms[v[0]])
                weights.add(1.0)
            elif v:
                first, last = v[1] - v[0], v[-1] - v[-2]
                terms.add(b.trapezoids.value())
                terms.add(first * b.terms[v[0]] / 2)
                terms.add(last * b.terms[v[-1]] / 2)
                weights.add(float(v[-1] - v[0]) + (first + last) / 2)
        return terms.value(), weights.value()

    def flagged(self, calibration_due: Mapping[str, int]) -> int:
        """Return how many readings were taken at or after their box's calibration due time."""
        total = 0
        for name, b in self.boxes.items():
            if (due := calibration_due.get(name)) is not None:
                total += len(b.times) - bisect.bisect_left(b.times, due)
        return total

    def record(self) -> dict[str, int]:
        """Return the leg's integer aggregates (a state record may hold them: no floats).
        min_cc and max_cc are absent without valid readings, the humidity's rh_count, sum_rh,
        min_rh and max_rh (centi-%) without valid readings that carry it; end_s while open."""
        out = {
            "start_s": self.start_s,
            "count": self.count,
            "sensor_errors": self.sensor_errors,
            "sum_cc": self.sum_cc,
            "time_out_of_range_s": self.time_out_of_range_s(),
            "excursions": sum(len(b.excursions) for b in self.boxes.values()),
            "gaps": len(self.gaps),
        }
        if self.min_cc is not None and self.max_cc is not None:
            out |= {"min_cc": self.min_cc, "max_cc": self.max_cc}
        if self.min_rh is not None and self.max_rh is not None:
            out |= {"rh_count": self.rh_count, "sum_rh": self.sum_rh}
            out |= {"min_rh": self.min_rh, "max_rh": self.max_rh}
        if self.end_s is not None:
            out["end_s"] = self.end_s
        return out


def _trapezoid(left: int, left_term: float, right: int, right_term: float) -> float:
    return (right - left) * (left_term + right_term) / 2


def _union(intervals: list[tuple[int, int]]) -> int:
    """Return the total length of sorted half-open intervals, overlaps counted once."""
    total, reach = 0, -1
    for start, end in intervals:
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


class LotColdChain:
    """The cold chain of one lot: its legs by name, under the lot's storage profile."""

    def __init__(self, profile: LotProfile) -> None:
        """Raises ColdChainError unless `profile` is a LotProfile."""
        if not isinstance(profile, LotProfile):
            raise ColdChainError("profile", type(profile).__name__, "a LotProfile")
        self.profile = profile
        self.legs: dict[str, Leg] = {}
        self._budget = profile.to_signed()["delay_cumulative_s"]
        self._version = 0  # counts changes, keys the cumulative excursion's cache
        self._cumulative: tuple[int, Excursion | None] = (-1, None)

    def open_leg(self, leg: str, start_s: int) -> Leg:
        """Open a leg (a shipment or a storage) starting at start_s and return it.

        Raises ColdChainError for an empty name, a leg already open, or a bad start.
        """
        if not (isinstance(leg, str) and leg):
            raise ColdChainError("leg", leg, "a non-empty string")
        if leg in self.legs:
            raise ColdChainError("leg", leg, "a leg not yet opened")
        if not (type(start_s) is int and 0 <= start_s <= TIME_MAX):
            raise ColdChainError("start_s", start_s, f"an integer 0..{TIME_MAX}")
        self.legs[leg] = Leg(leg, self.profile, start_s)
        return self.legs[leg]

    def _leg(self, leg: str) -> Leg:
        if (found := self.legs.get(leg)) is None:
            raise ColdChainError("leg", leg, "an open leg: " + ", ".join(sorted(self.legs)))
        return found

    def apply(self, leg: str, box: str, readings: Iterable[Reading]) -> int:
        """Apply one box's batch of readings to a leg (Leg.apply); return how many were new.
        Raises ColdChainError for an unknown leg or a refused reading, changing nothing."""
        added = self._leg(leg).apply(box, readings)
        self._version += added > 0
        return added

    def close_leg(self, leg: str, end_s: int) -> None:
        """Close a leg (Leg.close). Raises ColdChainError."""
        self._leg(leg).close(end_s)
        self._version += 1

    def time_out_of_range_s(self) -> int:
        """Return the lot's time out of range: the sum of its legs'."""
        return sum(leg.time_out_of_range_s() for leg in self.legs.values())

    def cumulative(self) -> Excursion | None:
        """Return the lot's cumulative excursion, or None while its time out of range is below
        the profile's cumulative delay. raised_s is when the budget was reached, counting the
        out-of-range intervals of every leg in time order."""
        if self._cumulative[0] != self._version:
            self._cumulative = (self._version, self._find_cumulative())
        return self._cumulative[1]

    def _find_cumulative(self) -> Excursion | None:
        budget, total = self._budget, self.time_out_of_range_s()
        if total < budget:
            return None
        intervals = sorted(i for leg in self.legs.values() for i in leg.intervals())
        spent, reach, raised = 0, -1, intervals[-1][1]
        for start, end in intervals:
            if end > reach:
                begin = max(start, reach)
                if spent + end - begin >= budget:
                    raised = begin + budget - spent
                    break
                spent += end - begin
                reach = end
        return Excursion("", "", "cumulative", intervals[0][0], raised, None, total)

    def excursions(self) -> list[Excursion]:
        """Return every leg's excursions by start time, then the lot's cumulative one."""
        found = sorted(
            (e for leg in self.legs.values() for e in leg.excursions()),
            key=lambda e: (e.start_s, e.leg, e.box, e.kind),
        )
        cumulative = self.cumulative()
        return found + ([cumulative] if cumulative else [])

    def gaps(self) -> list[Gap]:
        """Return every leg's gaps by start time (then leg)."""
        found = [g for leg in self.legs.values() for g in leg.gap_list()]
        return sorted(found, key=lambda g: (g.start_s, g.leg))

    def quarantine(self) -> Quarantine | None:
        """Return why the lot must be quarantined automatically, or None.

        A lot is quarantined by an excursion raised under its profile (high, low or
        cumulative) or by a final gap (of a closed leg) longer than max_gap_s. The earliest
        of them gives the reason. A late batch can change the answer; the lots contract keeps
        a quarantine until a signed disposition lifts it.
        """
        excursion = min(self.excursions(), key=lambda e: (e.raised_s, e.leg, e.box), default=None)
        gap = min((g for g in self.gaps() if g.final), key=lambda g: g.end_s, default=None)
        if excursion is not None and (gap is None or excursion.raised_s <= gap.end_s):
            e = excursion
            if e.kind == "cumulative":
                reason = f"excursion: {e.worst_cc} s out of range, budget {self._budget} s"
            else:
                limit = "above high" if e.kind == "high" else "below low"
                reason = (
                    f"excursion: {e.kind} on box {e.box} in leg {e.leg}, {limit} limit from "
                    f"{e.start_s} (raised {e.raised_s}), worst {e.worst_cc / CENTI:g} °C"
                )
            return Quarantine(reason, e, None)
        if gap is not None:
            reason = (
                f"gap: leg {gap.leg} has no reading from {gap.start_s} to {gap.end_s} "
                f"({gap.end_s - gap.start_s} s > max_gap_s {self.profile.max_gap_s})"
            )
            return Quarantine(reason, None, gap)
        return None

    def summary(self, calibration_due: Mapping[str, int] | None = None) -> Summary:
        """Return the lot's history from the aggregates: per leg (by start, then name) and
        overall. calibration_due maps a box to the first second its calibration is no longer
        valid (its due date); readings at or after it are counted as flagged."""
        due = calibration_due or {}
        legs = sorted(self.legs.values(), key=lambda leg: (leg.start_s, leg.name))
        summaries = tuple(
            LegSummary(
                leg.name,
                leg.start_s,
                leg.end_s,
                tuple(sorted(leg.boxes)),
                _stats([leg], leg.time_out_of_range_s(), due),
                tuple(leg.excursions()),
                tuple(leg.gap_list()),
            )
            for leg in legs
        )
        overall = _stats(legs, self.time_out_of_range_s(), due)
        return Summary(
            summaries, overall, tuple(self.excursions()), tuple(self.gaps()), self.quarantine()
        )


def _stats(legs: list[Leg], tor_s: int, due: Mapping[str, int]) -> Stats:
    """Return the figures of `legs` taken together."""
    count = sum(leg.count for leg in legs)
    mins = [leg.min_cc for leg in legs if leg.min_cc is not None]
    maxs = [leg.max_cc for leg in legs if leg.max_cc is not None]
    terms, weights = _ExactSum(), _ExactSum()
    for leg in legs:
        t, w = leg.mkt_sums()
        terms.add(t)
        weights.add(w)
    total = weights.value()
    rh_count = sum(leg.rh_count for leg in legs)
    rh_mins = [leg.min_rh for leg in legs if leg.min_rh is not None]
    rh_maxs = [leg.max_rh for leg in legs if leg.max_rh is not None]
    return Stats(
        count=count,
        sensor_errors=sum(leg.sensor_errors for leg in legs),
        min_c=min(mins) / CENTI if mins else None,
        max_c=max(maxs) / CENTI if maxs else None,
        mean_c=sum(leg.sum_cc for leg in legs) / count / CENTI if count else None,
        time_out_of_range_s=tor_s,
        mkt_c=mkt_from_mean_term(terms.value() / total) if total > 0 else None,
        calibration_flagged=sum(leg.flagged(due) for leg in legs),
        min_rh=min(rh_mins) / CENTI if rh_mins else None,
        max_rh=max(rh_maxs) / CENTI if rh_maxs else None,
        mean_rh=sum(leg.sum_rh for leg in legs) / rh_count / CENTI if rh_count else None,
    )
