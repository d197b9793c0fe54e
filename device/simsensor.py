"""A simulated DHT22 with realistic cold-chain profiles, for demos, tests and load runs.

Profiles (the value drifts with the simulated minute, one read per interval):
    coldroom   a healthy 2-8 C room: ~5 C, slow compressor cycling, sensor noise
    door       the same room with door openings: a warm spike of a few degrees that
               decays over ~10 minutes, every hour or so
    failing    a compressor failure: starts at ~5 C, then drifts up to ~15 C
    dropout    a flaky sensor: timeouts, checksum errors and phantom 0.0/0.0 reads
Deterministic for a given seed, so a test can predict excursions.
"""

import math
import random

PROFILES = ("coldroom", "door", "failing", "dropout")


class SimulatedDHT22:
    """A driver with the interface of the DHT22 drivers: read() -> (celsius, percent)."""

    retry_delay_ms = 0  # no 2 s settling time to respect, unlike a real DHT22

    def __init__(self, profile="coldroom", seed=1, failure_after=60, interval_s=60):
        if profile not in PROFILES:
            raise ValueError("profile: got %r, want one of %s" % (profile, ", ".join(PROFILES)))
        self.profile = profile
        self.rng = random.Random(seed) if hasattr(random, "Random") else random
        if self.rng is random:
            random.seed(seed)
        self.failure_after = failure_after  # minutes before the compressor fails
        self.step_minutes = interval_s / 60
        self.minute = 0.0
        self._door_left = 0.0

    def _noise(self, scale):
        # Sum of uniforms ~ a normal variate; MicroPython's random has no gauss().
        r = self.rng.random
        return (r() + r() + r() + r() - 2.0) * scale

    def read(self):
        """Return (temperature_c, humidity_pct), or raise OSError like a failing DHT22."""
        m = self.minute
        self.minute += self.step_minutes
        # Compressor cycling: +-0.6 C over a ~40 minute cycle, around 5 C.
        t = 5.0 + 0.6 * math.sin(m * 2 * math.pi / 40.0) + self._noise(0.1)
        h = 55.0 + 3.0 * math.sin(m * 2 * math.pi / 90.0) + self._noise(0.6)
        if self.profile == "door":
            if self.rng.random() < 1 / 60.0:
                self._door_left = 3.0 + 3.0 * self.rng.random()
            t += self._door_left
            h += 4.0 * self._door_left
            self._door_left *= 0.75
        elif self.profile == "failing" and m > self.failure_after:
            # Exponential approach to the room's ambient 15 C after the compressor stops.
            t += (15.0 - 5.0) * (1.0 - math.exp(-(m - self.failure_after) / 90.0))
        elif self.profile == "dropout":
            x = self.rng.random()
            if x < 0.08:
                raise OSError(110, "ETIMEDOUT")  # what MicroPython's dht raises
            if x < 0.12:
                raise OSError(5, "checksum")
            if x < 0.15:
                return 0.0, 0.0  # the floating-line phantom
        return round(t, 1), round(min(max(h, 0.0), 100.0), 1)
