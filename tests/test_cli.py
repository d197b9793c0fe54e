"""`pharmasync` commands that cannot start say why in one line on stderr and exit non-zero:
no traceback, whatever the command (cloud.startup). Each case runs the installed command in
a subprocess, as a user would, against real things: a port another socket holds, the
PostgreSQL server (a database that does not exist, a role it does not know, a closed
port), an unreachable broker, a machine without the box's GPIO pin."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.cloud.conftest import PG_SERVER
from tests.conftest import Mosquitto, free_port, need_or_skip
from tests.device.receiver import OWNER, certify_gateway

EXE = Path(sys.executable).parent / "pharmasync"


def fails_in_one_line(*args: str, timeout: float = 60, cwd: Path | None = None) -> str:
    """Run `pharmasync ARGS`; assert it exits non-zero with exactly one line on stderr and
    no traceback; return that line."""
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    done = subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another socket listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def log_vkey(tmp_path: Path) -> Path:
    """A log verifier key file, as `curl .../v1/log/vkey -o ledger.vkey` saves it."""
    from cloud.keys import load_or_create_signer

    path = tmp_path / "ledger.vkey"
    signer = load_or_create_signer(tmp_path / "log.skey", "example.org/log")
    path.write_text(signer.verifier().to_vkey() + "\n")
    return path


# --- servers: ports, hosts and folders are checked when the command line is read ---------


@pytest.mark.parametrize(
    "command",
    [["cloud", "serve"], ["demo"], ["witness", "--name", "w.example/w1"]],
    ids=["cloud-serve", "demo", "witness"],
)
def test_servers_refuse_a_bad_port_host_or_folder(
    command: list[str], tmp_path: Path, busy_port: int, log_vkey: Path
) -> None:
    if command[0] == "witness":
        command = [*command, "--log-vkey", f"@{log_vkey}"]
    data = ["--data-dir", str(tmp_path / "data")]
    line = fails_in_one_line(*command, *data, "--port", "99999")
    assert "--port: got 99999, want a port number 1..65535" in line
    assert "--port: got 70000" in fails_in_one_line(*command, *data, "--port", "70000")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    line = fails_in_one_line(*command, "--data-dir", str(a_file), "--port", str(free_port()))
    assert f"{a_file} is a file, want a folder" in line
    line = fails_in_one_line(*command, "--data-dir", str(a_file / "sub"))
    assert f"{a_file} is a file" in line
    line = fails_in_one_line(*command, *data, "--port", str(busy_port))
    assert f"127.0.0.1:{busy_port}: Address already in use" in line
    if command[0] != "demo":  # the demo listens on 127.0.0.1 only
        line = fails_in_one_line(*command, *data, "--host", "no-such-host.invalid")
        assert "--host: got 'no-such-host.invalid'" in line


def test_the_gateway_with_a_busy_status_port_stops_cleanly(
    tmp_path: Path, busy_port: int, mosquitto: Mosquitto
) -> None:
    """The status page binds before anything else starts, so nothing is left half-running
    (no "Event loop is closed" from the MQTT client)."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nsite = "s1"\ndata_dir = "gw"\n[mqtt]\nport = {mosquitto.port}\n'
        f"[status]\nport = {busy_port}\n"
    )
    # Its key and the owner's certificate of it first, as a site sets it up (a first run
    # also logs "created key", and one without a certificate warns).
    subprocess.run([str(EXE), "gateway", "key", "--config", str(config)], check=True)
    cert = certify_gateway(tmp_path / "gw", "s1")
    config.write_text(config.read_text().replace(
        'data_dir = "gw"\n', f'data_dir = "gw"\ncertificate = "{cert}"\n'
    ))  # fmt: skip
    line = fails_in_one_line("gateway", "run", "--config", str(config))
    assert f"status page: cannot listen on 127.0.0.1:{busy_port}: Address already in use" in line


# --- the cloud's database --------------------------------------------------------------------


def _postgres(path: str = "", port: int | None = None, user: str | None = None) -> str:
    url = urlsplit(PG_SERVER)
    host = url.hostname or "127.0.0.1"
    try:
        socket.create_connection((host, url.port or 5432), timeout=2).close()
    except OSError as e:
        need_or_skip(f"PostgreSQL not reachable at {host}:{url.port or 5432}: {e}")
    netloc = f"{user or url.username}@{host}:{port or url.port or 5432}"
    return urlunsplit((url.scheme, netloc, path or url.path, "", ""))


@pytest.mark.parametrize(
    "case, message",
    [
        ("database", 'database "pharmasync_no_such_db" does not exist'),
        ("role", 'role "pharmasync_no_such_role" does not exist'),
        ("port", "nothing listens there"),
    ],
)
def test_cloud_serve_says_why_postgresql_refused(case: str, message: str, tmp_path: Path) -> None:
    database = {
        "database": lambda: _postgres(path="/pharmasync_no_such_db"),
        "role": lambda: _postgres(user="pharmasync_no_such_role"),
        "port": lambda: _postgres(port=free_port()),  # nothing listens there
    }[case]()
    line = fails_in_one_line(
        "cloud", "serve", "--data-dir", str(tmp_path), "--port", str(free_port()),
        "--database", database,
    )  # fmt: skip
    assert line.startswith("pharmasync cloud serve: error: cannot open the database"), line
    assert message in line


# --- boxes -----------------------------------------------------------------------------------


def test_device_run_without_the_sensor_pin_says_so(tmp_path: Path) -> None:
    """This machine has no DHT22 on GPIO 4 (Blinka's generic board has no such pin)."""
    from device import provision

    box = provision.provision(
        tmp_path / "boxes", "s1", "Cold room A", "127.0.0.1:1883", owner_key=OWNER
    )
    line = fails_in_one_line("device", "run", "--config", str(box.folder / "config.json"))
    assert "no DHT22 here" in line and "GPIO 4" in line


def test_device_simulate_against_no_broker_fails_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    line = fails_in_one_line(
        "device", "simulate", "--broker", f"127.0.0.1:{free_port()}", "--readings", "2",
        "--data-dir", str(tmp_path), "--owner-pub", OWNER,
    )  # fmt: skip
    assert "cannot reach the MQTT broker at 127.0.0.1:" in line and "refused" in line
    assert time.monotonic() - started < 10  # not after the boxes' 15 s of trying


# --- verify ----------------------------------------------------------------------------------


def test_verify_shows_the_servers_answer_saved_as_a_bundle(tmp_path: Path) -> None:
    answer = tmp_path / "bundle.json"  # `curl .../v1/readings/KEY/99999/proof > bundle.json`
    detail = f"no reading 99999 of box {'ab' * 32}"
    answer.write_text(
        json.dumps(
            {"type": "about:blank", "title": "Not Found", "status": 404, "detail": detail,
             "reason": "not_found"}
        )
    )  # fmt: skip
    line = fails_in_one_line("verify", str(answer))
    assert "is the server's answer, not a proof bundle: HTTP 404: " + detail in line
    assert "bundle shape" not in line


def test_verify_device_says_what_it_wants(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_text("{}")
    line = fails_in_one_line("verify", str(bundle), "--device", "abcd")
    assert "want a box's id (16 hex digits) or its key (64 hex digits)" in line
