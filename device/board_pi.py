"""The Raspberry Pi board: a DHT22 through Adafruit's CircuitPython driver (Blinka),
the system clock, files under a data folder, and aiomqtt. CPython only.

Install with the `pi` extra: pip install 'pharmasync[pi]' (adafruit-circuitpython-dht,
adafruit-blinka); on Raspberry Pi OS also `sudo apt-get install libgpiod2`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from device.aiomqtt_link import AiomqttLink

# systemd-timesyncd creates this file once the clock is synchronised (Raspberry Pi OS).
TIMESYNC_FLAG = "/run/systemd/timesync/synchronized"
# Without systemd-timesyncd, trust a clock that is at least past this build's date.
PLAUSIBLE_SINCE = 1767225600  # 2026-01-01T00:00:00Z


class AdafruitDHT22:
    """read() -> (celsius, percent) over adafruit_dht, which raises RuntimeError on a bad read."""

    def __init__(self, pin: Any) -> None:
        import adafruit_dht

        # Bit-banged through libgpiod: pulseio needs a helper binary that is not always there.
        self.device = adafruit_dht.DHT22(pin, use_pulseio=False)

    @classmethod
    def on_gpio(cls, gpio: int) -> AdafruitDHT22:
        """Return the driver for the DHT22 on BCM GPIO `gpio`. Raises ValueError if absent."""
        import board

        try:
            pin = getattr(board, f"D{gpio}")
        except AttributeError:
            raise ValueError(f"dht_pin: GPIO {gpio} does not exist on this board") from None
        return cls(pin)

    def read(self) -> tuple[Any, Any]:
        return self.device.temperature, self.device.humidity


class Board:
    def __init__(self, data_dir: str, quiet: bool = False) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        self.quiet = quiet

    def dht(self, pin: int) -> AdafruitDHT22:
        return AdafruitDHT22.on_gpio(pin)

    def clock(self) -> tuple[int, bool]:
        now = int(time.time())
        if os.path.exists(os.path.dirname(TIMESYNC_FLAG)):
            return now, os.path.exists(TIMESYNC_FLAG)
        return now, now >= PLAUSIBLE_SINCE

    def monotonic(self) -> float:
        return time.monotonic()

    def battery_low(self) -> bool:
        return False  # a Pi box runs on mains power

    async def network_up(self) -> bool:
        return True  # the OS manages the network

    def network_down(self) -> None:
        pass

    def mqtt_client(self, client_id, host, port, user, password, keepalive, will) -> AiomqttLink:
        return AiomqttLink(
            client_id, host, port, user=user, password=password, keepalive=keepalive, will=will
        )

    def load_retained(self) -> None:
        return None  # no deep sleep on a Pi: the seq store's file is enough

    def save_retained(self, d: dict) -> None:
        pass

    def deep_sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def log(self, text: str) -> None:
        if not self.quiet:
            print(f"[box] {text}", flush=True)
