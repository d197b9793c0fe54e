"""`pharmasync device simulate`: N simulated sensor boxes in one process, for demos and
load tests. Each box runs the real firmware loop (device/firmware.py) with a simulated
DHT22 (device/simsensor.py), real signatures, real state files and a real MQTT session.
Box identities live under the data folder, so a second run continues the same boxes.
CPython only.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from device import board_pi, config, firmware, keyfile, simsensor
from device.board_sim import Board


@dataclass(frozen=True)
class SimSettings:
    """What to simulate: how many boxes, where they publish, how fast."""

    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    site: str = "demo"
    boxes: int = 4
    interval_s: float = 60.0
    profiles: Sequence[str] = simsensor.PROFILES
    data_dir: Path = Path("sim-boxes")
    readings: int | None = None  # per box; None runs until cancelled
    link: str = "native"  # "native": device/mqtt.py as on an ESP32; "aiomqtt": as on a Pi
    owner_key: str | None = None  # hex: trust acks of gateways this owner certified
    insecure_acks: bool = False  # accept acks nobody can verify (needs no owner key)
    failure_after_min: float = 60.0  # when the "failing" profile's compressor stops
    # Simulated time per reading (default: interval_s); the demo takes a minute per
    # reading every few seconds, so a cold room's afternoon passes in minutes.
    sensor_step_s: float | None = None


class AiomqttSimBoard(Board):
    """A simulated box that talks MQTT through aiomqtt, as a Raspberry Pi box does."""

    mqtt_client = board_pi.Board.mqtt_client


def make_box(settings: SimSettings, index: int) -> firmware.Box:
    """Create (or reopen) simulated box number `index`."""
    folder = settings.data_dir / f"box-{index:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "secret.key"
    if not key_file.exists():
        keyfile.create_secret_text(key_file, os.urandom(32).hex())
    profile = settings.profiles[index % len(settings.profiles)]
    raw = {
        "site": settings.site,
        "label": f"simulated {profile} #{index}",
        "mqtt": {"host": settings.broker_host, "port": settings.broker_port},
        "ack_timeout_s": 10,
        "max_backoff_s": 10,
        "owner_key": settings.owner_key,
        "insecure_acks": settings.insecure_acks,
    }
    cfg = config.validate(raw)
    board_type = AiomqttSimBoard if settings.link == "aiomqtt" else Board
    board = board_type(
        str(folder / "state"),
        profile=profile,
        seed=index + 1,
        interval_s=max(1, int(settings.sensor_step_s or settings.interval_s)),
        failure_after=settings.failure_after_min,
        quiet=True,
    )
    return firmware.Box(board, cfg, config.load_secret(str(key_file)), settings.interval_s)


async def simulate(
    settings: SimSettings, progress: Callable[[str], None] = print, every_s: float = 5.0
) -> list[firmware.Box]:
    """Run the boxes until each has taken settings.readings (and had them acknowledged, for
    up to 10 s), or until cancelled. Reports progress every `every_s` seconds."""
    boxes = [make_box(settings, i) for i in range(settings.boxes)]
    for box in boxes:
        progress(f"box {box.id}  {box.cfg['label']:<24} -> {box.topic_reading}")
    started = time.monotonic()

    async def report() -> None:
        while True:
            await asyncio.sleep(every_s)
            progress(summary(boxes, time.monotonic() - started))

    reporter = asyncio.create_task(report())
    try:
        await asyncio.gather(*(box.run(settings.readings, drain_s=10) for box in boxes))
    finally:
        reporter.cancel()
        with suppress(asyncio.CancelledError):
            await reporter
        progress(summary(boxes, time.monotonic() - started))
    return boxes


def summary(boxes: Sequence[firmware.Box], elapsed: float) -> str:
    """One progress line: readings taken, acknowledged, pending and dropped."""
    taken = sum(b.taken for b in boxes)
    pending = sum(len(b.backlog) for b in boxes)
    online = sum(b.online for b in boxes)
    dropped = sum(b.backlog.dropped for b in boxes)
    rate = taken / elapsed if elapsed > 0 else 0.0
    return (
        f"{elapsed:6.1f} s  {online}/{len(boxes)} online  {taken:,} readings ({rate:,.0f}/s)  "
        f"{pending:,} awaiting ack  {dropped:,} dropped"
    )
