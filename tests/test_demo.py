"""`pharmasync demo`, run as a new user runs it: an installed command in a subprocess.
It must bring up the cloud, the broker, the gateway and the boxes on its own, store proven
readings, stop cleanly on Ctrl-C, and continue the same log when run again."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloud.checkpoint import open_checkpoint
from cloud.note import Verifier
from gateway import merkle
from tests.conftest import free_port

EXE = Path(sys.executable).parent / "pharmasync"


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read()
        return json.loads(body) if r.headers.get_content_type() == "application/json" else body


def wait_for(check: Any, timeout: float, proc: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the demo exited early: {proc.communicate()}"
        try:
            if result := check():
                return result
        except OSError:
            pass
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    pytest.fail(f"not reached within {timeout} s; demo output: {proc.communicate(timeout=30)}")


def run_demo(data: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(EXE), "demo", "--data-dir", str(data), "--port", str(port), "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


def test_the_demo_proves_readings_and_a_second_run_continues(tmp_path: Path) -> None:
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    data, port = tmp_path / "demo", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = run_demo(data, port)
    devices = wait_for(
        lambda: (d := get(f"{url}/v1/devices")) and all(x["last_seq"] >= 3 for x in d) and d,
        90,
        proc,
    )
    assert len(devices) == 4
    bundle = get(f"{url}/v1/readings/{devices[2]['key']}/2/proof")
    cp = open_checkpoint(bundle["checkpoint"], Verifier.parse(get_vkey(url, proc)))
    entry = bytes.fromhex(bundle["log"]["entry"])
    proof = [bytes.fromhex(h) for h in bundle["log"]["proof"]]
    merkle.verify_inclusion(entry, bundle["log"]["index"], cp.size, proof, cp.root_hash)
    first = get(f"{url}/v1/checkpoint").decode()
    out = stop(proc)
    assert f"cloud ledger     {url}" in out and "stopped:" in out
    assert "MQTT broker      127.0.0.1:" in out

    proc = run_demo(data, port)  # again, on the same data
    old = open_checkpoint(first, Verifier.parse(get_vkey(url, proc)))
    grown = wait_for(
        lambda: (s := int(get(f"{url}/healthz")["log_size"])) > old.size and s, 60, proc
    )
    cons = get(f"{url}/v1/log/proof/consistency?old={old.size}&new={grown}")
    new = open_checkpoint(get(f"{url}/v1/checkpoint").decode(), Verifier.parse(get_vkey(url, proc)))
    cons = get(f"{url}/v1/log/proof/consistency?old={old.size}&new={new.size}")
    merkle.verify_consistency(
        old.size, new.size, old.root_hash, new.root_hash, [bytes.fromhex(h) for h in cons["proof"]]
    )
    assert len(get(f"{url}/v1/devices")) == 4  # the same boxes, not new ones
    stop(proc)


def get_vkey(url: str, proc: subprocess.Popen[str]) -> str:
    return str(wait_for(lambda: get(f"{url}/v1/log/vkey").decode().strip(), 60, proc))


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [str(EXE), "demo", "--data-dir", str(tmp_path / "d"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert f"port {port} is in use" in proc.stderr and "--port" in proc.stderr
