"""The gateway's local cold-chain alarms: per-zone profiles and an engine that turns readings
into raised and cleared events, so a warehouse is alarmed even while the cloud is down.

Pure logic: no I/O and no clock. Durations are measured between reading times (time_s), so the
engine raises the same events live and when replaying a backlog; tick(now_s) is the only input
from the gateway's clock, and it only raises "silent". A zone has at most one alarm of each kind
at a time, and its events per kind alternate raised, cleared, raised, ...

  high        every valid reading above high_c for at least delay_consecutive_s, measured from
              the first such reading to the current one: an excursion that ends sooner raises
              nothing. Clears at the first reading <= high_c - hysteresis_c; readings in the
              band between keep it raised, so a zone hovering at the limit cannot flap.
  low         the mirror image: below low_c; clears at the first reading >= low_c + hysteresis_c.
  cumulative  time out of range (below low_c or above high_c; no hysteresis: this is measured
              time, not a switch) since the zone was last reset() reaches delay_cumulative_s.
              An out-of-range reading is charged the time until the zone's next reading, at
              most silent_after_s (a longer gap is silence: its temperature is unknown), so a
              one-reading door opening counts too. Clears only by reset().
  sensor      every reading a sensor error for at least delay_consecutive_s; clears at the next
              valid reading.
  silent      tick(now_s) finds no reading for silent_after_s (silent_after_intervals x
              interval_s) after the zone's last one; clears at its next reading, valid or not.
  mkt         the zone's rolling MKT over mkt_window_s (gateway/mkt.py) above mkt_high_c, if set;
              clears at <= mkt_high_c - hysteresis_c. No delay: MKT is already a time average.

Sensor-error readings are unknown temperatures: they neither start, extend, end nor clear a
high/low excursion, are not charged to the cumulative budget and do not enter the MKT.

The high/low/cumulative rules are the functions limit_conditions, advance and charged, so the
cloud's per-lot cold chain (cloud/contracts/coldchain.py) evaluates a lot's readings by the same
definition, in integers. A profile has a signed form (to_signed / from_signed: centi-°C and
seconds, integers only, as everything signed); LotProfile adds what a lot's storage profile
needs beyond a zone's, and strictest() is the one profile a site alarms on when several apply.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeVar, get_args

from device.reading import TEMP_MAX, TEMP_MIN
from gateway.mkt import RollingMKT, arrhenius_term

Kind = Literal["silent", "cumulative", "sensor", "high", "low", "mkt"]
KINDS: tuple[Kind, ...] = get_args(Kind)  # also the order of the events of one call
EventState = Literal["raised", "cleared"]
SNAPSHOT_VERSION = 1


class AlarmError(ValueError):
    """A profile, event, reading or snapshot is invalid; `field` names it, str() says got/want."""

    def __init__(self, field: str, got: object, want: str) -> None:
        super().__init__(f"{field}: got {got!r}, want {want}")
        self.field = field


def _finite(name: str, value: float, *, above: float = -math.inf, least: float = -math.inf) -> None:
    """Raise AlarmError unless `value` is a finite number > above and >= least."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value > above and value >= least):
        bound = f" > {above}" if above > -math.inf else f" >= {least}" if least > -math.inf else ""
        raise AlarmError(name, value, "a finite number" + bound)


N = TypeVar("N", int, float)
_PLAIN = (int, float)  # exactly these types (not bool) pass _finite's type check at once
# Bounds of a signed profile: temperatures within a reading's range (device/reading.py),
# durations up to a year.
SIGNED_TEMP_MIN_CC = TEMP_MIN
SIGNED_TEMP_MAX_CC = TEMP_MAX
SIGNED_DURATION_MAX_S = 366 * 86400
CENTI = 100
ALARM_SIGNED_FIELDS = (
    "low_cc",
    "high_cc",
    "delay_consecutive_s",
    "delay_cumulative_s",
    "hysteresis_cc",
)
LOT_SIGNED_FIELDS = (*ALARM_SIGNED_FIELDS, "max_gap_s", "needs_licence")


def limit_conditions(value: N, low: N, high: N, hysteresis: N) -> tuple[bool, bool, bool, bool]:
    """Return (high on, high off, low on, low off) for one valid reading of `value`.

    "on": the reading is beyond the limit; "off": it is past the clear threshold (the limit
    moved inward by the hysteresis). Works in °C floats (the gateway) and in centi-°C integers
    (the cloud's lot cold chain, exact) alike.
    """
    return value > high, value <= high - hysteresis, value < low, value >= low + hysteresis


def out_of_range(value: N, low: N, high: N) -> bool:
    """Return whether a valid reading is charged to the cumulative budget (no hysteresis)."""
    return not low <= value <= high


def charged(gap: N, silence: N) -> N:
    """Return the time an out-of-range reading is charged: until the next reading of the same
    zone, at most `silence` (a longer gap is silence: its temperature is unknown)."""
    return min(gap, silence)


Transition = Literal["raised", "cleared"] | None


def advance(
    active: bool, since: N | None, time_s: N, *, on: bool, off: bool, delay: N
) -> tuple[Transition, N | None]:
    """Advance one alarm by one input; return (transition, since).

    `active`: the alarm is raised; `since`: when its condition began holding (None: it does
    not hold). Raised once `on` has held at every input for `delay`; cleared on `off`; an
    excursion shorter than the delay raises nothing.
    """
    if active:
        return ("cleared", None) if off else (None, since)
    if not on:
        return None, None
    start = time_s if since is None else since
    return ("raised" if time_s - start >= delay else None), start


def _signed_int(data: Mapping[str, object], name: str, least: int, most: int) -> int:
    """Return data[name], an int (not bool) in least..most; raises AlarmError naming it."""
    value = data.get(name)
    if not (type(value) is int and least <= value <= most):
        raise AlarmError(name, value, f"an integer {least}..{most}")
    return value


def _exact_fields(data: object, names: tuple[str, ...]) -> Mapping[str, object]:
    """Return `data` if it is a mapping with exactly `names` as keys; raises AlarmError."""
    if not isinstance(data, Mapping):
        raise AlarmError("profile", type(data).__name__, "an object")
    if missing := [n for n in names if n not in data]:
        raise AlarmError(missing[0], "absent", "present")
    if extra := sorted(str(k) for k in data if k not in names):
        raise AlarmError("profile", extra, "only " + ", ".join(names))
    return data


def _centi(name: str, celsius: float) -> int:
    """Return `celsius` in centi-°C; raises AlarmError unless it is a whole number of them."""
    cc = round(celsius * CENTI)
    if cc / CENTI != celsius:
        raise AlarmError(name, celsius, "a multiple of 0.01 °C (the signed form is centi-°C)")
    return cc


def _seconds(name: str, seconds: float) -> int:
    """Return `seconds` as an int; raises AlarmError unless it is whole."""
    if int(seconds) != seconds:
        raise AlarmError(name, seconds, "a whole number of seconds (the signed form)")
    return int(seconds)


@dataclass(frozen=True)
class AlarmProfile:
    """Limits and delays for one zone (typical pharma range 2-8 °C); times in seconds."""

    low_c: float = 2.0
    high_c: float = 8.0
    delay_consecutive_s: float = 900
    delay_cumulative_s: float = 3600
    hysteresis_c: float = 0.5
    silent_after_intervals: int = 3
    interval_s: float = 60
    mkt_window_s: float = 86400
    mkt_high_c: float | None = None

    def __post_init__(self) -> None:
        """Raises AlarmError naming the first field out of range."""
        _finite("low_c", self.low_c)
        _finite("high_c", self.high_c, above=self.low_c)
        _finite("delay_consecutive_s", self.delay_consecutive_s, least=0)
        # > 0: a zero budget would be spent before any excursion.
        _finite("delay_cumulative_s", self.delay_cumulative_s, above=0)
        # Below half the range, so the clear thresholds high_c - h and low_c + h cannot cross.
        _finite("hysteresis_c", self.hysteresis_c, least=0)
        if self.hysteresis_c >= (half := (self.high_c - self.low_c) / 2):
            raise AlarmError("hysteresis_c", self.hysteresis_c, f"< {half} (half the range)")
        n = self.silent_after_intervals
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise AlarmError("silent_after_intervals", n, "an int >= 1")
        _finite("interval_s", self.interval_s, above=0)
        _finite("mkt_window_s", self.mkt_window_s, above=0)
        if self.mkt_high_c is not None:
            _finite("mkt_high_c", self.mkt_high_c)

    @property
    def silent_after_s(self) -> float:
        return self.silent_after_intervals * self.interval_s

    def to_signed(self) -> dict[str, int]:
        """Return the signed form: ALARM_SIGNED_FIELDS, centi-°C and seconds, integers.

        The site fields (silence, interval, MKT) are the gateway's own and not in it. Raises
        AlarmError for a limit that is not a whole centi-°C, a delay not whole seconds, or a
        value outside the signed bounds.
        """
        signed = {
            "low_cc": _centi("low_c", self.low_c),
            "high_cc": _centi("high_c", self.high_c),
            "delay_consecutive_s": _seconds("delay_consecutive_s", self.delay_consecutive_s),
            "delay_cumulative_s": _seconds("delay_cumulative_s", self.delay_cumulative_s),
            "hysteresis_cc": _centi("hysteresis_c", self.hysteresis_c),
        }
        AlarmProfile.from_signed(signed)  # the bounds are checked in one place
        return signed

    @classmethod
    def from_signed(cls, data: Mapping[str, object]) -> AlarmProfile:
        """Return the profile of a signed form (exactly ALARM_SIGNED_FIELDS; site fields take
        their defaults). Raises AlarmError naming the first absent, extra, non-integer or
        out-of-range field, or the rule it breaks (high > low, hysteresis < half the range).
        """
        return cls(**_alarm_fields(_exact_fields(data, ALARM_SIGNED_FIELDS)))


def _alarm_fields(data: Mapping[str, object]) -> dict[str, Any]:
    """Check the signed alarm fields of `data` and return them as AlarmProfile arguments."""
    low = _signed_int(data, "low_cc", SIGNED_TEMP_MIN_CC, SIGNED_TEMP_MAX_CC)
    high = _signed_int(data, "high_cc", SIGNED_TEMP_MIN_CC, SIGNED_TEMP_MAX_CC)
    if high <= low:
        raise AlarmError("high_cc", high, f"> low_cc {low}")
    consecutive = _signed_int(data, "delay_consecutive_s", 0, SIGNED_DURATION_MAX_S)
    cumulative = _signed_int(data, "delay_cumulative_s", 1, SIGNED_DURATION_MAX_S)
    # Below half the range, so the clear thresholds cannot cross (as AlarmProfile requires).
    hysteresis = _signed_int(data, "hysteresis_cc", 0, SIGNED_TEMP_MAX_CC - SIGNED_TEMP_MIN_CC)
    if 2 * hysteresis >= high - low:
        raise AlarmError("hysteresis_cc", hysteresis, f"< {(high - low) / 2} (half the range)")
    return {
        "low_c": low / CENTI,
        "high_c": high / CENTI,
        "delay_consecutive_s": consecutive,
        "delay_cumulative_s": cumulative,
        "hysteresis_c": hysteresis / CENTI,
    }


@dataclass(frozen=True)
class LotProfile:
    """A lot's storage profile (issue 11 §3, printed on the pack): a zone's alarm profile plus
    what a lot needs beyond it. Its signed form is LOT_SIGNED_FIELDS, integers only.

    max_gap_s: a gap longer than this between consecutive readings of a leg is a data gap
    (the lot is quarantined once the leg closes); needs_licence: receiving the lot requires a
    valid cold-storage licence. Construct with from_signed (validates) or directly (validates
    in __post_init__, raising AlarmError naming the field).
    """

    alarm: AlarmProfile
    max_gap_s: int
    needs_licence: bool

    def __post_init__(self) -> None:
        """Raises AlarmError naming the first field that is invalid or has no signed form."""
        if not isinstance(self.alarm, AlarmProfile):
            raise AlarmError("alarm", type(self.alarm).__name__, "an AlarmProfile")
        self.alarm.to_signed()
        _signed_int({"max_gap_s": self.max_gap_s}, "max_gap_s", 1, SIGNED_DURATION_MAX_S)
        if not isinstance(self.needs_licence, bool):
            raise AlarmError("needs_licence", self.needs_licence, "a bool")

    def to_signed(self) -> dict[str, int]:
        """Return the signed form: the alarm's fields, max_gap_s, needs_licence as 0 or 1."""
        return self.alarm.to_signed() | {
            "max_gap_s": self.max_gap_s,
            "needs_licence": int(self.needs_licence),
        }

    @classmethod
    def from_signed(cls, data: Mapping[str, object]) -> LotProfile:
        """Return the lot profile of a signed form (exactly LOT_SIGNED_FIELDS, integers;
        needs_licence 0 or 1, not a JSON boolean). Raises AlarmError naming the field."""
        fields = _exact_fields(data, LOT_SIGNED_FIELDS)
        alarm = AlarmProfile(**_alarm_fields(fields))
        gap = _signed_int(fields, "max_gap_s", 1, SIGNED_DURATION_MAX_S)
        licence = _signed_int(fields, "needs_licence", 0, 1)
        return cls(alarm, gap, licence == 1)


def strictest(profiles: Iterable[AlarmProfile]) -> AlarmProfile:
    """Return the one profile that alarms whenever any of `profiles` would: the highest low,
    the lowest high, the shortest delays, the shortest silence, the lowest MKT limit.

    The hysteresis is the smallest given, reduced if needed to the largest whole centi-°C
    below half the combined range (AlarmProfile's constraint). Site fields come from the
    profile with the shortest silence (its interval), and the MKT window from the one with the
    lowest MKT limit. Raises AlarmError for no profiles, or ranges with nothing in common.
    """
    given = list(profiles)
    if not given:
        raise AlarmError("profiles", 0, "at least one")
    low, high = max(p.low_c for p in given), min(p.high_c for p in given)
    if not high > low:
        raise AlarmError("profiles", f"low {low} °C, high {high} °C", "overlapping ranges")
    hysteresis = min(p.hysteresis_c for p in given)
    if hysteresis >= (half := (high - low) / 2):
        hysteresis = max(0, math.ceil(half * CENTI) - 1) / CENTI
    silent = min(given, key=lambda p: p.silent_after_s)
    limits = [p for p in given if p.mkt_high_c is not None]
    mkt = min(limits, key=lambda p: p.mkt_high_c or 0.0) if limits else None
    return AlarmProfile(
        low_c=low,
        high_c=high,
        delay_consecutive_s=min(p.delay_consecutive_s for p in given),
        delay_cumulative_s=min(p.delay_cumulative_s for p in given),
        hysteresis_c=hysteresis,
        silent_after_intervals=silent.silent_after_intervals,
        interval_s=silent.interval_s,
        mkt_window_s=mkt.mkt_window_s if mkt else silent.mkt_window_s,
        mkt_high_c=mkt.mkt_high_c if mkt else None,
    )


def with_lots(zone: AlarmProfile, lots: Iterable[LotProfile]) -> AlarmProfile:
    """Return the profile a box's zone alarms on while the box is on `lots`: the strictest
    of its own profile and the lots' storage profiles (issue 11 §4), field by field:

        low_c, high_c          the highest low, the lowest high
        delay_consecutive_s    the shortest (high, low and sensor alarms)
        delay_cumulative_s     the shortest
        hysteresis_c           the smallest, narrowed to fit the common range (strictest)
        max_gap_s              the zone is "silent" after at most the shortest max_gap_s:
                               silent_after_s = min(the zone's, every lot's max_gap_s), by
                               shortening interval_s (silent_after_intervals is the zone's)
        needs_licence          no alarm: it concerns receiving the lot, not keeping it
        silent_after_intervals, mkt_window_s, mkt_high_c   the zone's (a lot has none)

    With no lots it is `zone` itself. Raises AlarmError "profiles" if the ranges have nothing
    in common (a box cannot keep two lots whose ranges are disjoint)."""
    given = list(lots)
    if not given:
        return zone
    intervals = zone.silent_after_intervals
    as_zones = [
        replace(
            lot.alarm,
            silent_after_intervals=intervals,
            interval_s=min(zone.interval_s, lot.max_gap_s / intervals),
            mkt_window_s=zone.mkt_window_s,
            mkt_high_c=None,
        )
        for lot in given
    ]
    return strictest([zone, *as_zones])


# What sets each alarm kind's limit or delay: the AlarmProfile field a lot can tighten.
GOVERNED_BY: dict[Kind, str] = {
    "high": "high_c",
    "low": "low_c",
    "cumulative": "delay_cumulative_s",
    "sensor": "delay_consecutive_s",
    "silent": "silent_after_s",
}


def set_by(
    kind: Kind, zone: AlarmProfile, applied: AlarmProfile, lots: Mapping[str, LotProfile]
) -> str | None:
    """Return the name (a key of `lots`) of the lot whose profile set the limit or delay
    that `kind` alarms on in `applied` (with_lots(zone, lots.values())), or None when the
    zone's own profile sets it (a lot no stricter than the zone sets nothing; the first
    name in sorted order wins a tie between lots). Only for naming it in an alarm event."""
    name = GOVERNED_BY.get(kind)
    if name is None or getattr(applied, name) == getattr(zone, name):
        return None
    for lot_name in sorted(lots):
        one = with_lots(zone, [lots[lot_name]])
        if getattr(one, name) == getattr(applied, name):
            return lot_name
    return None


Profiles = Mapping[str, AlarmProfile] | Callable[[str], AlarmProfile]


def _check_alarm(zone: str, kind: str, time_s: float, value_c: float | None) -> None:
    if not (isinstance(zone, str) and zone):
        raise AlarmError("zone", zone, "a non-empty string")
    if kind not in KINDS:
        raise AlarmError("kind", kind, " | ".join(KINDS))
    _finite("time_s", time_s)
    if value_c is not None:
        _finite("value_c", value_c)


@dataclass(frozen=True)
class AlarmEvent:
    """An alarm raised or cleared at time_s; value_c is the reading or MKT that did it."""

    zone: str
    kind: Kind
    state: EventState
    time_s: float
    value_c: float | None
    detail: str

    def __post_init__(self) -> None:
        """Raises AlarmError for an empty zone, unknown kind or state, or non-finite number."""
        _check_alarm(self.zone, self.kind, self.time_s, self.value_c)
        if self.state not in get_args(EventState):
            raise AlarmError("state", self.state, "raised | cleared")

    def to_json(self) -> dict[str, Any]:
        """Return the event as a JSON-serialisable dict, one key per field."""
        return asdict(self)


@dataclass(frozen=True)
class AlarmState:
    """An alarm raised now: since when, with the value and detail it was raised with."""

    zone: str
    kind: Kind
    since_s: float
    value_c: float | None
    detail: str

    def __post_init__(self) -> None:
        """Raises AlarmError for an empty zone, unknown kind or non-finite number."""
        _check_alarm(self.zone, self.kind, self.since_s, self.value_c)

    def to_json(self) -> dict[str, Any]:
        """Return the alarm as a JSON-serialisable dict, one key per field (the status page)."""
        return asdict(self)


def _pack(values: array) -> str:
    """An array('d') as base64 of little-endian doubles."""
    if sys.byteorder != "little":
        values = array("d", values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode()


def _unpack(text: str) -> array:
    """The array('d') _pack wrote. Raises TypeError or ValueError if it is not one."""
    if not isinstance(text, str):
        raise TypeError(f"packed samples: got {type(text).__name__}, want base64 text")
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 8:
        raise ValueError(f"packed samples: got {len(raw)} bytes, want a multiple of 8")
    values = array("d")
    values.frombytes(raw)
    if sys.byteorder != "little":
        values.byteswap()
    return values


@dataclass
class _Zone:
    """One zone's alarm state machine; snapshot() writes all of it but the profile."""

    name: str
    profile: AlarmProfile
    mkt: RollingMKT
    last_time: float | None = None  # of the last reading, valid or not
    # When the gateway last received one: "silent" means nothing arrives, not old readings
    # arriving (a box draining its backlog after an outage is not silent).
    last_received: float | None = None
    last_out: bool = False  # the last reading was valid and out of range: charge its gap
    cumulative_s: float = 0.0  # time out of range since the last reset()
    since: dict[Kind, float] = field(default_factory=dict)  # when each condition began
    active: dict[Kind, AlarmState] = field(default_factory=dict)
    # (mkt_high_c, its Arrhenius term less a rounding margin): _mkt_may_exceed's threshold
    _limit_term: tuple[float, float] | None = field(default=None, repr=False, compare=False)

    def observe(self, time_s: float, celsius: float | None) -> list[AlarmEvent]:
        """Advance every alarm with a reading later than the last; celsius None: sensor error."""
        p = self.profile
        out: list[AlarmEvent] = []  # (list[AlarmEvent]() costs a failed setattr per call)
        if (
            celsius is not None
            and not self.last_out
            and not self.active
            and not self.since
            and p.low_c <= celsius <= p.high_c
            and self.cumulative_s < p.delay_cumulative_s
        ):
            # Nothing raised or under way and a valid reading within the limits: every
            # step below would find its condition off and do nothing (the state changes
            # only in its clock and MKT), so they are skipped: most readings come here.
            self.last_time = time_s
            self.mkt.add(time_s, celsius)
            if p.mkt_high_c is not None and self._mkt_may_exceed(p.mkt_high_c):
                self._mkt(out, time_s)  # the exact check, and the alarm if it holds
            return out
        if self.last_out and self.last_time is not None:
            self.cumulative_s += charged(time_s - self.last_time, p.silent_after_s)
        self.last_time, self.last_out = time_s, False
        self.step(out, "silent", time_s, celsius, "reading received", on=False, off=True)
        spent, budget = self.cumulative_s >= p.delay_cumulative_s, p.delay_cumulative_s
        self.step(
            out,
            "cumulative",
            time_s,
            celsius,
            lambda: f"{self.cumulative_s:.0f} s out of range since reset; budget {budget:.0f} s",
            on=spent,
            off=False,
        )
        if celsius is None:
            delay = p.delay_consecutive_s
            self.step(out, "sensor", time_s, None, "sensor error", on=True, off=False, delay=delay)
        else:
            self.step(out, "sensor", time_s, celsius, "valid reading", on=False, off=True)
            self.temperature(out, time_s, celsius)
        return out

    def temperature(self, out: list[AlarmEvent], time_s: float, c: float) -> None:
        """Advance the high, low and mkt alarms with a valid reading of `c` °C."""
        p, delay = self.profile, self.profile.delay_consecutive_s
        hi, lo = p.high_c - p.hysteresis_c, p.low_c + p.hysteresis_c
        # Details are lambdas: formatted only for the rare reading that raises or clears.
        high_on, high_off, low_on, low_off = limit_conditions(c, p.low_c, p.high_c, p.hysteresis_c)
        high = lambda: f"{c:g} °C; high limit {p.high_c:g} °C, clears at {hi:g} °C"  # noqa: E731
        self.step(out, "high", time_s, c, high, on=high_on, off=high_off, delay=delay)
        low = lambda: f"{c:g} °C; low limit {p.low_c:g} °C, clears at {lo:g} °C"  # noqa: E731
        self.step(out, "low", time_s, c, low, on=low_on, off=low_off, delay=delay)
        self.last_out = out_of_range(c, p.low_c, p.high_c)
        self.mkt.add(time_s, c)
        self._mkt(out, time_s)

    def _mkt_may_exceed(self, limit: float) -> bool:
        """Whether the rolling MKT may be above `limit`, from its mean term and without the
        logarithm (the quiet path's check, once per reading): False means it is not above;
        True, within a rounding margin of the limit or beyond, leaves it to `_mkt`."""
        if self._limit_term is None or self._limit_term[0] != limit:
            term = arrhenius_term(limit, self.mkt.delta_h_over_r_k) * (1 - 1e-9)
            self._limit_term = (limit, term)
        mean = self.mkt.mean_term()
        return mean is not None and mean > self._limit_term[1]

    def _mkt(self, out: list[AlarmEvent], time_s: float) -> None:
        """Advance the mkt alarm with the rolling MKT (its newest sample just added)."""
        p = self.profile
        if (limit := p.mkt_high_c) is not None and (m := self.mkt.value()) is not None:
            clear, window = limit - p.hysteresis_c, p.mkt_window_s
            detail = (  # noqa: E731 (as above: formatted only if it raises or clears)
                lambda: (
                    f"MKT {m:.2f} °C over {window:.0f} s; limit {limit:g} °C, "
                    f"clears at {clear:g} °C"
                )
            )
            self.step(out, "mkt", time_s, m, detail, on=m > limit, off=m <= clear)

    def step(
        self,
        out: list[AlarmEvent],
        kind: Kind,
        time_s: float,
        value: float | None,
        detail: str | Callable[[], str],
        *,
        on: bool,
        off: bool,
        delay: float = 0.0,
    ) -> None:
        """Advance one alarm: `on`: its condition holds; `off`: past its clear threshold.

        Raises the alarm once `on` has held at every input for `delay`; clears it on `off`.
        """
        active = kind in self.active
        transition, start = advance(
            active, self.since.get(kind), time_s, on=on, off=off, delay=delay
        )
        if start is None:
            self.since.pop(kind, None)  # cleared, or shorter than the delay: nothing raised
        else:
            self.since[kind] = start
        if transition == "cleared":
            del self.active[kind]
            text = detail() if callable(detail) else detail
            out.append(AlarmEvent(self.name, kind, "cleared", time_s, value, text))
        elif transition == "raised" and start is not None:
            text = detail() if callable(detail) else detail
            text += f"; held {time_s - start:.0f} s" if delay else ""
            self.active[kind] = AlarmState(self.name, kind, time_s, value, text)
            out.append(AlarmEvent(self.name, kind, "raised", time_s, value, text))

    def to_json(self) -> dict[str, Any]:
        """Return the zone's state (all but the profile) as JSON-serialisable data."""
        return {
            "last_time": self.last_time,
            "last_received": self.last_received,
            "last_out": self.last_out,
            "cumulative_s": self.cumulative_s,
            "since": dict(self.since),
            "active": [a.to_json() for a in self.active.values()],
            # The window as two arrays of little-endian doubles (base64), not one JSON list
            # per sample: a site draining 1,000 boxes holds 1.44 M samples, whose lists
            # cost ~270 MB and seconds of the event loop at every save (bench/RESULTS.md,
            # issue 13 part 3). load() still reads an older file's "mkt_samples".
            "mkt_times": _pack(self.mkt.times()),
            "mkt_celsius": _pack(self.mkt.celsius()),
            "mkt_sum": list(self.mkt.sum_state()),
        }

    def load(self, data: Mapping[str, Any]) -> None:
        """Take the state to_json() wrote. Raises KeyError, TypeError or ValueError if damaged."""
        if data["last_time"] is not None:
            _finite("last_time", data["last_time"])
        _finite("cumulative_s", data["cumulative_s"], least=0)
        self.last_time, self.cumulative_s = data["last_time"], data["cumulative_s"]
        if (received := data.get("last_received")) is not None:  # absent in older state files
            _finite("last_received", received)
            self.last_received = received
        self.last_out = data["last_out"] is True
        for kind, t in data["since"].items():
            _check_alarm(self.name, kind, t, None)
            self.since[kind] = t
        for alarm in data["active"]:
            self.active[alarm["kind"]] = AlarmState(**(alarm | {"zone": self.name}))
        if "mkt_samples" in data:  # written before the packed arrays
            samples = data["mkt_samples"]
        else:
            samples = zip(_unpack(data["mkt_times"]), _unpack(data["mkt_celsius"]), strict=True)
        for t, c in samples:
            self.mkt.add(t, c)
        if (mkt_sum := data.get("mkt_sum")) is not None:  # absent in older state files
            self.mkt.restore_sum(*mkt_sum)


class AlarmEngine:
    """Alarm state of every zone seen so far; the module docstring says what each kind means.

    `profiles` maps a zone id to its AlarmProfile, or is a function doing so; a zone keeps the
    profile it had when first seen (or restored).
    """

    def __init__(self, profiles: Profiles) -> None:
        self._profiles = profiles
        self._zones: dict[str, _Zone] = {}

    def _zone(self, zone: str) -> _Zone:
        """Return the zone's state, creating it. Raises KeyError if `profiles` lacks `zone`."""
        if zone not in self._zones:
            if not (isinstance(zone, str) and zone):
                raise AlarmError("zone", zone, "a non-empty string")
            profiles = self._profiles
            p = profiles[zone] if isinstance(profiles, Mapping) else profiles(zone)
            if not isinstance(p, AlarmProfile):
                raise AlarmError(f"profile of zone {zone!r}", p, "an AlarmProfile")
            self._zones[zone] = _Zone(zone, p, RollingMKT(p.mkt_window_s))
        return self._zones[zone]

    def observe(
        self,
        zone: str,
        time_s: float,
        celsius: float | None,
        sensor_error: bool,
        received_s: float | None = None,
    ) -> list[AlarmEvent]:
        """Feed one reading of `zone` and return the events it causes, in KINDS order.

        Requires time_s finite, and celsius finite unless sensor_error (then it is ignored);
        raises AlarmError otherwise, and KeyError for a zone without a profile. A reading not
        later than the zone's previous one (duplicate, out of order) is ignored: returns [].
        """
        if not (type(time_s) in _PLAIN and math.isfinite(time_s)):
            _finite("time_s", time_s)  # the full check (and its error) off the common path
        if not sensor_error:
            if celsius is None:
                raise AlarmError("celsius", celsius, "a temperature unless sensor_error")
            if not (type(celsius) in _PLAIN and math.isfinite(celsius)):
                _finite("celsius", celsius)
        z = self._zones.get(zone) or self._zone(zone)
        received = time_s if received_s is None else received_s
        z.last_received = max(received, z.last_received or received)
        if z.last_time is not None and time_s <= z.last_time:
            return []
        return z.observe(time_s, None if sensor_error else celsius)

    def tick(self, now_s: float) -> list[AlarmEvent]:
        """Raise "silent" for every zone whose last reading is silent_after_s or more before
        now_s. Requires now_s finite; raises AlarmError otherwise. Only readings clear it."""
        _finite("now_s", now_s)
        out: list[AlarmEvent] = []
        for _, z in sorted(self._zones.items()):
            last = z.last_received if z.last_received is not None else z.last_time
            if last is not None and now_s - last >= z.profile.silent_after_s:
                detail = f"no reading for {now_s - last:.0f} s"
                z.step(out, "silent", now_s, None, detail, on=True, off=False)
        return out

    def reset(self, zone: str, time_s: float) -> list[AlarmEvent]:
        """Start a new cumulative budget for `zone` (after QA has reviewed it) and clear its
        "cumulative" alarm. Requires time_s finite. A zone never seen is left alone: [].

        The gap from the zone's last reading to its next is charged to the new budget whole.
        """
        _finite("time_s", time_s)
        out: list[AlarmEvent] = []
        if (z := self._zones.get(zone)) is not None:
            z.cumulative_s = 0.0
            z.step(out, "cumulative", time_s, None, "reset", on=False, off=True)
        return out

    def set_profile(self, zone: str, profile: AlarmProfile) -> None:
        """Alarm on `profile` from the zone's next reading or tick on (a box put on a lot,
        or taken off one: gateway/lots_follow.py), keeping its state: an excursion under
        way keeps its start, a raised alarm clears at the new profile's threshold, the
        cumulative time stays charged. A zone not seen yet takes `profiles` when it is."""
        z = self._zones.get(zone)
        if z is None or z.profile == profile:
            return
        if profile.mkt_window_s != z.profile.mkt_window_s:
            mkt = RollingMKT(profile.mkt_window_s)
            for t, c in z.mkt.samples():
                mkt.add(t, c)
            z.mkt = mkt
        z.profile = profile

    def profile(self, zone: str) -> AlarmProfile | None:
        """Return the profile the zone alarms on now, or None before it is first seen."""
        z = self._zones.get(zone)
        return None if z is None else z.profile

    def active(self) -> list[AlarmState]:
        """Return the alarms raised now, by zone and then in KINDS order."""
        zones = sorted(self._zones.items())
        return [z.active[k] for _, z in zones for k in KINDS if k in z.active]

    def mkt(self, zone: str) -> float | None:
        """Return the zone's rolling MKT in °C, or None before its first valid reading."""
        z = self._zones.get(zone)
        return None if z is None else z.mkt.value()

    def snapshot(self) -> dict[str, Any]:
        """Return the engine's whole state as JSON-serialisable data, for restore()."""
        zones = {name: z.to_json() for name, z in self._zones.items()}
        return {"version": SNAPSHOT_VERSION, "zones": zones}

    def snapshot_text(self) -> Iterator[str]:
        """json.dumps(snapshot()) in pieces, one zone at a time: what the gateway writes
        to disk, holding one zone's state as JSON at once, not all of them."""
        yield f'{{"version": {SNAPSHOT_VERSION}, "zones": {{'
        for i, (name, z) in enumerate(self._zones.items()):
            yield f"{', ' if i else ''}{json.dumps(name)}: {json.dumps(z.to_json())}"
        yield "}}"

    @classmethod
    def restore(cls, profiles: Profiles, snapshot: Mapping[str, Any]) -> AlarmEngine:
        """Return an engine that continues from `snapshot` (made by snapshot()) with `profiles`.

        Raises AlarmError for a snapshot of another version or shape, KeyError for a zone
        without a profile.
        """
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise AlarmError("snapshot version", snapshot.get("version"), str(SNAPSHOT_VERSION))
        engine = cls(profiles)
        for name, data in snapshot.get("zones", {}).items():
            z = engine._zone(name)
            try:
                z.load(data)
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                got = f"{type(e).__name__}: {e}"
                raise AlarmError(f"snapshot zone {name!r}", got, "what snapshot() writes") from e
        return engine
