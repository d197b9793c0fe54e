"""One process per data folder (issue 10 §7): every long-running command locks its data
folder; a second one on the same folder exits non-zero naming the first's PID, and after
the first is killed with SIGKILL (no clean-up at all) a new one starts at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from device import datalock, flashing
from gateway.note import Signer
from tests.conftest import REPO, Mosquitto, free_port

EXE = Path(sys.executable).parent / "pharmasync"


def test_a_second_holder_is_refused_with_the_first_named(tmp_path: Path) -> None:
    first = datalock.acquire(tmp_path / "data")  # creates the folder
    with pytest.raises(datalock.FolderBusy) as busy:
        datalock.acquire(tmp_path / "data")
    assert f"PID {os.getpid()}" in str(busy.value) and str(tmp_path / "data") in str(busy.value)
    first.release()
    with datalock.acquire(tmp_path / "data"):  # released: free again
        pass
    datalock.acquire(tmp_path / "data").release()


def test_shared_holders_exclude_an_exclusive_one_and_back(tmp_path: Path) -> None:
    a = datalock.acquire(tmp_path, shared=True)
    b = datalock.acquire(tmp_path, shared=True)  # cloud workers on one PostgreSQL database
    with pytest.raises(datalock.FolderBusy) as busy:
        datalock.acquire(tmp_path)
    assert busy.value.holders == [busy.value.holders[0]] * 2  # both listed (this process)
    a.release()
    b.release()
    with datalock.acquire(tmp_path), pytest.raises(datalock.FolderBusy):
        datalock.acquire(tmp_path, shared=True)


def test_the_lock_module_never_goes_onto_a_box() -> None:
    assert "datalock.py" not in flashing.FIRMWARE
    for name in flashing.FIRMWARE:
        assert "datalock" not in (REPO / "device" / name).read_text(), name


# -- every long-running command, for real ---------------------------------------------

Command = Callable[[Path, int], list[str]]  # (data folder, a free port) -> argv


def gateway_run(data: Path, port: int) -> list[str]:
    toml = data.parent / "gateway.toml"
    toml.write_text(
        f'[gateway]\nsite = "lock"\ndata_dir = "{data}"\n'
        f"[mqtt]\nport = {port}\n[status]\nport = 0\n"  # no broker there: it keeps retrying
    )
    return ["gateway", "run", "--config", str(toml)]


def cloud_serve(data: Path, port: int) -> list[str]:
    return ["cloud", "serve", "--data-dir", str(data), "--port", str(port)]


def witness(data: Path, port: int) -> list[str]:
    vkey = Signer("example.com/log", bytes(range(32))).verifier().to_vkey()
    args = ["witness", "--data-dir", str(data), "--port", str(port), "--log-vkey", vkey]
    return [*args, "--name", "witness.example/w1"]


def demo(data: Path, port: int) -> list[str]:
    return ["demo", "--data-dir", str(data), "--port", str(port), "--interval", "5"]


COMMANDS: dict[str, Command] = {
    "gateway run": gateway_run,
    "cloud serve": cloud_serve,
    "witness": witness,
    "demo": demo,
}


def holder(data: Path) -> int | None:
    """The PID written in the folder's lock file, once a process holds it."""
    try:
        first = (data / datalock.LOCK_FILE).read_text().split("\t", 1)[0]
    except FileNotFoundError:
        return None
    return int(first) if first.isdigit() else None


def start_holding(argv: list[str], data: Path, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(EXE), *argv], stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=data.parent
    )
    deadline = time.monotonic() + 60
    while holder(data) != proc.pid:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{argv[0]} did not start: {log.read_text()}")
        time.sleep(0.05)
    return proc


def check_one_per_folder(argv: Callable[[int], list[str]], data: Path) -> None:
    """Start the command, refuse a second, SIGKILL the first, start a new one."""
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    first = start_holding(argv(free_port()), data, data.parent / "first.log")
    try:
        second = subprocess.run(
            [str(EXE), *argv(free_port())], capture_output=True, text=True, timeout=60
        )
        assert second.returncode != 0
        assert f"PID {first.pid}" in second.stderr and "in use" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None, "the first kept running"
    finally:
        first.send_signal(signal.SIGKILL)  # no clean-up: the kernel drops the lock
        first.wait()
    third = start_holding(argv(free_port()), data, data.parent / "third.log")
    third.terminate()
    third.wait(30)


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_runs_once_per_folder(name: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    check_one_per_folder(lambda port: COMMANDS[name](data, port), data)


def test_device_simulate_runs_once_per_folder(tmp_path: Path, mosquitto: Mosquitto) -> None:
    data = tmp_path / "boxes"
    broker = f"127.0.0.1:{mosquitto.port}"
    check_one_per_folder(
        lambda _: [
            "device",
            "simulate",
            "--boxes",
            "1",
            "--broker",
            broker,
            "--data-dir",
            str(data),
            "--insecure-acks",  # the folder lock is under test here, not the acks
        ],
        data,
    )


def test_device_run_runs_once_per_state_folder(tmp_path: Path, mosquitto: Mosquitto) -> None:
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    made = subprocess.run(
        [
            str(EXE),
            "device",
            "provision",
            "--site",
            "lock",
            "--out",
            str(tmp_path / "boxes"),
            "--broker",
            f"127.0.0.1:{mosquitto.port}",
            "--insecure-acks",  # the folder lock is under test here, not the acks
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    config = next((tmp_path / "boxes").glob("*/config.json"))
    assert made.returncode == 0
    check_one_per_folder(
        lambda _: ["device", "run", "--config", str(config), "--simulate", "coldroom"],
        config.parent / "state",
    )
