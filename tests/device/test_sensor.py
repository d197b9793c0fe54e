"""Sensor readings are retried, range-checked and never invented.

The DHT22 itself cannot exist here: these tests drive Sensor with scripted drivers that
behave as the MicroPython and Adafruit drivers do (return numbers or raise OSError /
RuntimeError), the thinnest boundary there is.
"""

from __future__ import annotations

import pytest

from device.sensor import Sensor
from device.simsensor import SimulatedDHT22


class Scripted:
    """A DHT22 driver replaying a script of values and exceptions."""

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.reads = 0

    def read(self) -> tuple[float, float]:
        self.reads += 1
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]


async def test_a_failed_read_is_retried_then_reported() -> None:
    driver = Scripted(OSError(110, "ETIMEDOUT"), RuntimeError("checksum"), (4.9, 61.3))
    sensor = Sensor(driver, retries=3, retry_delay_ms=0)
    assert await sensor.measure() == (490, 6130, True)
    assert driver.reads == 3
    assert sensor.errors == 0


async def test_after_the_retries_it_is_a_sensor_error_with_no_value() -> None:
    driver = Scripted(*[OSError(110, "ETIMEDOUT")] * 4)
    sensor = Sensor(driver, retries=3, retry_delay_ms=0)
    assert await sensor.measure() == (0, 0, False)
    assert driver.reads == 4
    assert sensor.errors == 1


@pytest.mark.parametrize(
    "raw",
    [(0.0, 0.0), (None, 50.0), (float("nan"), 50.0), (-40.1, 50.0), (80.1, 50.0), (5.0, 100.1)],
    ids=["phantom-zero", "none", "nan", "too-cold", "too-hot", "humidity"],
)
async def test_impossible_values_are_errors(raw: tuple) -> None:
    sensor = Sensor(Scripted(raw), retries=0, retry_delay_ms=0)
    assert await sensor.measure() == (0, 0, False)


async def test_a_stuck_sensor_becomes_an_error_until_it_changes() -> None:
    driver = Scripted(*[(5.0, 60.0)] * 5, (5.1, 60.0))
    sensor = Sensor(driver, retries=0, retry_delay_ms=0, stuck_after=4)
    results = [await sensor.measure() for _ in range(6)]
    assert [ok for _, _, ok in results] == [True, True, True, False, False, True]


async def test_simulated_profiles_behave_as_documented() -> None:
    def series(profile: str, n: int) -> list:
        d = SimulatedDHT22(profile, seed=3, failure_after=60)
        out = []
        for _ in range(n):
            try:
                out.append(d.read())
            except OSError:
                out.append(None)
        return out

    cold = series("coldroom", 600)
    assert all(2.0 <= t <= 8.0 for t, _ in cold)
    failing = series("failing", 600)
    assert failing[30][0] < 8.0 and failing[-1][0] > 14.0  # drifts to ~15 C
    door = series("door", 600)
    assert max(t for t, _ in door) > 8.0  # door openings make excursions
    dropout = series("dropout", 600)
    assert dropout.count(None) > 30 and (0.0, 0.0) in dropout
    with pytest.raises(ValueError, match="profile"):
        SimulatedDHT22("volcano")
