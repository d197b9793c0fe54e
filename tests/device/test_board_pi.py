"""The Raspberry Pi driver path through Adafruit's DHT driver and Blinka, as far as it goes
without a sensor: Blinka's OS-agnostic test board (BLINKA_OS_AGNOSTIC=1) gives pins that
read always high, always low, or toggling. No GPIO line with a real DHT22 exists here, so
a *successful* read through adafruit_dht stays untested; what is tested is that every
failure it produces becomes a sensor error, never a value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = """
import asyncio, json, board
from device.board_pi import AdafruitDHT22
from device.sensor import Sensor
out = {}
for name in ("Dx_INPUT_TRUE", "Dx_INPUT_FALSE", "Dx_INPUT_TOGGLE"):
    driver = AdafruitDHT22(getattr(board, name))
    try:
        raw = list(driver.read())
    except RuntimeError as e:
        raw = "RuntimeError: " + str(e)
    measured = asyncio.run(Sensor(driver, retries=1, retry_delay_ms=0).measure())
    out[name] = [raw, list(measured)]
try:
    AdafruitDHT22.on_gpio(4)
except ValueError as e:
    out["gpio4"] = str(e)
print(json.dumps(out))
"""


def test_adafruit_driver_failures_become_sensor_errors() -> None:
    pytest.importorskip(
        "adafruit_dht", reason="the pi/test extra installs adafruit-circuitpython-dht"
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=dict(os.environ, BLINKA_OS_AGNOSTIC="1"),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # A line stuck high or low: the driver sees no sensor and raises, after its retries.
    for stuck in ("Dx_INPUT_TRUE", "Dx_INPUT_FALSE"):
        raw, measured = out[stuck]
        assert raw.startswith("RuntimeError: DHT sensor not found")
        assert measured == [0, 0, False]
    # A toggling line decodes to exactly 0.0 C / 0.0 %: the phantom that looks valid.
    raw, measured = out["Dx_INPUT_TOGGLE"]
    assert raw == [0.0, 0.0]
    assert measured == [0, 0, False]
    assert out["gpio4"] == "dht_pin: GPIO 4 does not exist on this board"
