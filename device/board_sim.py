"""A simulated board: the real firmware loop with a simulated DHT22, on MicroPython's unix
port or CPython. Used by tests, `pharmasync device simulate` and the demo.

Only the sensor and the clock's sync state are simulated; files, sockets and MQTT are real.
"""

import os
import time

from device.simsensor import SimulatedDHT22

try:
    _ticks_ms = time.ticks_ms  # type: ignore[attr-defined]  # MicroPython

    def _monotonic():
        return _ticks_ms() / 1000

except AttributeError:  # CPython
    _monotonic = time.monotonic


def _mkdirs(path):
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        p = "/".join(parts[:i])
        if p:
            try:
                os.mkdir(p)
            except OSError:
                pass  # exists


class Board:
    def __init__(
        self,
        data_dir,
        profile="coldroom",
        seed=1,
        synced=True,
        battery_low=False,
        interval_s=60,
        failure_after=60,
        quiet=False,
    ):
        _mkdirs(data_dir)
        self.data_dir = data_dir
        self.driver = SimulatedDHT22(profile, seed, failure_after, interval_s)
        self.synced = synced
        self.low = battery_low
        self.quiet = quiet
        self._boot = _monotonic()
        self._retained = None
        self.network = True  # tests switch the simulated network off and on

    def dht(self, pin):
        return self.driver

    def clock(self):
        if self.synced:
            return int(time.time()), True
        return int(self.monotonic()), False

    def monotonic(self):
        return _monotonic() - self._boot

    def battery_low(self):
        return self.low

    async def network_up(self):
        return self.network

    def network_down(self):
        pass

    def mqtt_client(self, *args):
        from device.mqtt import box_client

        return box_client(*args)

    def load_retained(self):
        return self._retained

    def save_retained(self, d):
        self._retained = dict(d)

    def deep_sleep(self, seconds):
        # Deep sleep reboots the box, keeping only RTC memory: the caller builds a new Box
        # on this board, as boot does on an ESP32.
        raise SystemExit(0)

    def log(self, text):
        if not self.quiet:
            print("[box] " + text)
