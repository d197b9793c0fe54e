"""`pharmasync device simulate` and `device run` on CPython, against a real Mosquitto.

The boxes are the real firmware loop with simulated DHT22s; the receiver verifies every
signature with coincurve and acknowledges as the gateway does (tests/device/receiver.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from device import reading, simulate
from tests.conftest import Mosquitto
from tests.device.receiver import OWNER, Receiver, running, stop


@pytest.mark.parametrize("link", ["native", "aiomqtt"])
async def test_simulated_boxes_deliver_every_reading(
    mosquitto: Mosquitto, tmp_path: Path, link: str
) -> None:
    receiver = Receiver(mosquitto.port, "sim")
    task = await running(receiver)
    settings = simulate.SimSettings(
        broker_port=mosquitto.port,
        site="sim",
        boxes=4,
        interval_s=0.02,
        data_dir=tmp_path,
        readings=25,
        link=link,
        failure_after_min=0,
        owner_key=OWNER,
    )
    lines: list[str] = []
    try:
        boxes = await asyncio.wait_for(simulate.simulate(settings, lines.append, 0.5), 60)
    finally:
        await stop(task)
    assert receiver.bad_signatures == 0
    for box in boxes:
        assert receiver.seqs(box.key) == list(range(25)), box.cfg["label"]
        assert len(box.backlog) == 0  # all acknowledged
    assert "100 readings" in lines[-1] and "0 awaiting ack" in lines[-1]
    # The profiles differ as documented: the failing room drifts out of 2-8 C.
    failing = next(b for b in boxes if "failing" in b.cfg["label"])
    temps = [reading.decode(receiver.kept[(failing.key, s)]).temperature for s in range(25)]
    assert temps[-1] > temps[0]


async def test_a_second_run_continues_the_same_boxes(mosquitto: Mosquitto, tmp_path: Path) -> None:
    receiver = Receiver(mosquitto.port, "sim")
    task = await running(receiver)
    settings = simulate.SimSettings(
        broker_port=mosquitto.port,
        site="sim",
        boxes=2,
        interval_s=0.02,
        data_dir=tmp_path,
        readings=5,
        owner_key=OWNER,
    )
    try:
        first = await simulate.simulate(settings, lambda _: None)
        second = await simulate.simulate(settings, lambda _: None)
    finally:
        await stop(task)
    assert [b.key for b in first] == [b.key for b in second]
    seqs = receiver.seqs(first[0].key)
    assert len(seqs) == 10 and seqs[:5] == list(range(5)) and seqs[5] >= 5  # no reuse


async def test_device_run_simulated_box_from_a_provisioned_folder(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """As staff would try a box on a laptop: provision, then `device run --simulate`."""
    exe = Path(sys.executable).parent / "pharmasync"
    proc = await asyncio.create_subprocess_exec(
        str(exe),
        "device",
        "provision",
        "--site",
        "lab",
        "--label",
        "bench box",
        "--broker",
        f"127.0.0.1:{mosquitto.port}",
        "--interval",
        "2",
        "--out",
        str(tmp_path / "boxes"),
        "--owner-pub",
        OWNER,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    (folder,) = (tmp_path / "boxes").iterdir()  # the one box folder provision made
    receiver = Receiver(mosquitto.port, "lab")
    task = await running(receiver)
    try:
        box = await asyncio.create_subprocess_exec(
            str(exe),
            "device",
            "run",
            "--config",
            str(folder / "config.json"),
            "--simulate",
            "coldroom",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        for _ in range(100):  # up to 10 s for two readings at a 2 s interval
            await asyncio.sleep(0.1)
            if len(receiver.kept) >= 2:
                break
        box.send_signal(signal.SIGINT)
        log, _ = await asyncio.wait_for(box.communicate(), 10)
    finally:
        await stop(task)
    key = bytes.fromhex(json.loads((folder / "config.json").read_text())["key"])
    assert receiver.seqs(key)[:2] == [0, 1], log.decode()
    assert "connected to 127.0.0.1" in log.decode()
    assert box.returncode == 0


async def test_provision_and_simulate_refuse_to_run_without_signed_acks(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).parent / "pharmasync")
    for command in (
        ["device", "provision", "--site", "lab", "--out", str(tmp_path)],
        ["device", "simulate", "--data-dir", str(tmp_path)],
    ):
        proc = await asyncio.create_subprocess_exec(
            exe, *command, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        assert proc.returncode == 2
        assert "one of the arguments --owner-pub --insecure-acks is required" in err.decode()
    assert list(tmp_path.iterdir()) == []
