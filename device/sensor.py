"""Turning a DHT22's raw reads into honest values: retried, range-checked, never invented.

A driver is any object whose read() returns (temperature_c, humidity_pct) as numbers or
raises OSError/RuntimeError on a timeout or checksum failure: MicroPython's `dht.DHT22`,
Adafruit's `adafruit_dht.DHT22` (through the board modules) or the simulated sensor.
"""

import asyncio

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# DHT22 / AM2302 datasheet: -40..80 C, 0..100 % RH, at most one read every 2 s.
T_MIN = const(-4000)
T_MAX = const(8000)
H_MAX = const(10000)
RETRIES = const(3)
RETRY_DELAY_MS = const(2100)
# A healthy DHT22's humidity wanders by a tenth or more within minutes; this many identical
# (temperature, humidity) pairs in a row means a dead sensor or a stale buffer.
STUCK_AFTER = const(30)


class Sensor:
    """Measure with retries; report a failure as a sensor error, never as a value."""

    def __init__(self, driver, retries=RETRIES, retry_delay_ms=None, stuck_after=STUCK_AFTER):
        self.driver = driver
        self.retries = retries
        if retry_delay_ms is None:
            # A driver may know better (a simulated one need not wait); a DHT22 needs 2 s.
            retry_delay_ms = getattr(driver, "retry_delay_ms", RETRY_DELAY_MS)
        self.retry_delay_ms = retry_delay_ms
        self.stuck_after = stuck_after
        self._last = None
        self._repeats = 0
        self.errors = 0  # failed measurements, reported in the box's status

    def _plausible(self, raw):
        """Return (temperature_centi, humidity_centi) or None for an impossible value."""
        try:
            t, h = raw
            if t is None or h is None or t != t or h != h:  # None or NaN
                return None
            t, h = int(round(t * 100)), int(round(h * 100))
        except (TypeError, ValueError, OverflowError):
            return None
        if t == 0 and h == 0:
            # A DHT whose data line floats (no sensor, no pull-up) reads as all-zero bits,
            # which decode to exactly 0.0 C and 0.0 %: a "valid" value that is not one.
            return None
        if not (T_MIN <= t <= T_MAX and 0 <= h <= H_MAX):
            return None
        return t, h

    async def measure(self):
        """Return (temperature_centi, humidity_centi, ok). ok False means sensor error and
        both values are 0, after `retries` further attempts RETRY_DELAY_MS apart."""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.retry_delay_ms / 1000)
            try:
                value = self._plausible(self.driver.read())
            except (OSError, RuntimeError):
                value = None
            if value is not None:
                break
        else:
            self.errors += 1
            return 0, 0, False
        if value == self._last:
            self._repeats += 1
        else:
            self._last, self._repeats = value, 1
        if self._repeats >= self.stuck_after:
            self.errors += 1
            return 0, 0, False
        return value[0], value[1], True
