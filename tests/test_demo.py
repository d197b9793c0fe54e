"""`pharmasync demo`, run as a new user runs it: an installed command in a subprocess.
It must bring up the cloud, the broker, the gateway and the boxes on its own, store proven
readings, stop cleanly on Ctrl-C, and continue the same log when run again."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway import merkle
from gateway.checkpoint import open_checkpoint
from gateway.note import Verifier
from tests.conftest import free_port

EXE = Path(sys.executable).parent / "pharmasync"


def get(url: str, accept: str | None = None) -> Any:
    headers = {} if accept is None else {"Accept": accept}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
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


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C the demo; return its standard output and error, having checked it exits 0."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out, err


def read_banner(proc: subprocess.Popen[str]) -> tuple[str, list[str]]:
    """The demo's banner, and the commands it suggests trying (its indented lines after
    "Try, in another terminal")."""
    assert proc.stdout is not None
    lines: list[str] = []
    while not (lines and lines[-1].startswith("Ctrl-C stops")):
        line = proc.stdout.readline()
        assert line, f"the demo ended before its banner: {''.join(lines)}{proc.communicate()}"
        lines.append(line)
    text = "".join(lines)
    tried = text.split("Try, in another terminal", 1)[1].splitlines()[1:-1]
    return text, [line.strip() for line in tried if line.startswith("  ")]


def test_the_demo_proves_readings_and_a_second_run_continues(tmp_path: Path) -> None:
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    data, port = tmp_path / "demo", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = run_demo(data, port)
    banner, commands = read_banner(proc)
    devices = wait_for(
        lambda: (d := get(f"{url}/v1/devices")) and all(x["last_seq"] >= 3 for x in d) and d,
        90,
        proc,
    )
    assert len(devices) == 4
    assert f"{url}/ " in banner and b"PharmaSync ledger" in get(f"{url}/")  # the landing page
    run_the_printed_commands(commands, data, tmp_path / "elsewhere")
    bundle = get(f"{url}/v1/readings/{devices[2]['key']}/2/proof")
    cp = open_checkpoint(bundle["checkpoint"], Verifier.parse(get_vkey(url, proc)))
    entry = bytes.fromhex(bundle["log"]["entry"])
    proof = [bytes.fromhex(h) for h in bundle["log"]["proof"]]
    merkle.verify_inclusion(entry, bundle["log"]["index"], cp.size, proof, cp.root_hash)
    first = get(f"{url}/v1/checkpoint").decode()
    seen = read_until(proc, "!! ALARM raised: high in", 60)  # the failing compressor's room
    # The lots: the failing box's lot is quarantined by its readings, the door's recalled,
    # each change printed once, and the commands to follow them run as printed.
    failing, door = lot_named(banner, "FAILING"), lot_named(banner, "DOOR")
    quarantined = f"** lot {failing} QUARANTINED: cold chain: high excursion"
    recalled = f"** lot {door} RECALLED: class II"
    suspect = "!! SUSPECT PACK "  # the pack dispensed twice, in the manufacturer's feed
    seen += read_until_all(proc, [quarantined, recalled, suspect], 120, seen)
    run_the_lot_commands(lot_commands(banner), tmp_path / "elsewhere-lots")
    check_the_counter(counter_lines(banner), data, tmp_path / "elsewhere-counter")
    out, err = stop(proc)
    out = banner + seen + out
    assert out.count(quarantined) == 1 and out.count(recalled) == 1, out
    assert out.count(suspect) == 1 and ": decommissioned, scanned at Demo Pharmacy" in out, out
    assert f"** lot {lot_named(banner, 'DROPOUT')} RELEASED: inspected" in out
    assert f"cloud ledger     {url}" in out and "stopped:" in out
    assert "MQTT broker      127.0.0.1:" in out
    # Each alarm is shown once: the demo's own "!! ALARM" line, not the gateway's log line too.
    assert "pharmasync.gateway: alarm " not in err, "an alarm shown twice"

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
    out, err = stop(proc)
    # New lots, by the participants admitted the first time (not admitted again).
    assert lot_named(out, "FAILING").endswith("/DEMO2-FAILING"), out
    assert "refused: admitted" not in err, err


def read_until(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    """Read the demo's output until a line holds `text`; return what was read."""
    assert proc.stdout is not None
    deadline, lines = time.monotonic() + timeout, []
    while not (lines and text in lines[-1]):
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s: {lines}"
        line = proc.stdout.readline()
        assert line, f"the demo ended: {''.join(lines)}{proc.communicate()}"
        lines.append(line)
    return "".join(lines)


def read_until_all(proc: subprocess.Popen[str], texts: list[str], timeout: float, seen: str) -> str:
    """Read the demo's output until it (with `seen`, read before) holds each of `texts`."""
    assert proc.stdout is not None
    deadline, lines = time.monotonic() + timeout, [seen]
    while not all(text in "".join(lines) for text in texts):
        assert time.monotonic() < deadline, f"not all of {texts} within {timeout} s: {lines}"
        line = proc.stdout.readline()
        assert line, f"the demo ended: {''.join(lines)}{proc.communicate()}"
        lines.append(line)
    return "".join(lines[1:])


def lot_named(text: str, suffix: str) -> str:
    """The GTIN/lot the demo printed for its lot ending in `suffix` (the box's profile)."""
    found = re.search(rf"\b(\d{{14}}/DEMO\d+-{suffix})\b", text)
    assert found, f"no lot …-{suffix} in {text}"
    return found.group(1)


def lot_commands(banner: str) -> list[str]:
    """The commands the banner suggests to follow the lots (its indented lines after
    "Follow the lots", up to "At the pharmacy counter")."""
    part = banner.split("Follow the lots", 1)[1].split("At the pharmacy counter", 1)[0]
    return [line.strip() for line in part.splitlines()[1:] if line.startswith("  ")]


def run_the_lot_commands(commands: list[str], elsewhere: Path) -> None:
    """Run the lots' commands as printed, from a folder of no importance: the failing box's
    lot's history shows the cold chain's quarantine, the recalled lot's trace the recall,
    the pharmacy's check of a good pack says it is authentic, the retailer's feed the
    shipments to it and the recall, the auditor's replay matches every state root; none
    writes where it was run."""
    assert [c.split()[:3] for c in commands] == [
        [str(EXE), "lots", "history"],
        [str(EXE), "lots", "trace"],
        [str(EXE), "packs", "verify"],
        [str(EXE), "feed", "--key"],
        [str(EXE), "verify", "--replay"],
    ], commands
    elsewhere.mkdir()
    expected = [
        ["status: quarantined (cold-chain: cold chain: high excursion", " high: from "],
        ["recalled (class II)", "held by did:key:"],
        ["verdict: authentic", "dispensable: yes"],
        [" shipment: ", " recall: "],
        ["ok: ", "transactions replayed", "state roots match"],
    ]
    for command, words in zip(commands, expected, strict=True):
        done = subprocess.run(
            command, shell=True, cwd=elsewhere, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        for word in words:
            assert word in done.stdout, f"{command}: no {word!r} in\n{done.stdout}"
    assert list(elsewhere.iterdir()) == []


def counter_lines(banner: str) -> list[str]:
    """The banner's lines under "At the pharmacy counter", up to "Try, in another terminal"."""
    part = banner.split("At the pharmacy counter", 1)[1].split("Try, in another terminal", 1)[0]
    return [line.strip() for line in part.splitlines()[1:] if line.startswith("  ")]


def check_the_counter(lines: list[str], data: Path, elsewhere: Path) -> None:
    """The counter's Digital Links answer as a phone and a program read them (the pack on
    the shelf authentic, the recalled lot recalled), and its commands, run as printed, fetch
    the pack's proof into the data folder and check it offline from the log's key."""
    pack = lines[0].split("a pack on the shelf:", 1)[1].strip()
    lot = lines[1].split("the recalled lot:", 1)[1].strip()
    assert "/01/" in pack and "/10/" in pack and "/21/" in pack and "?17=" in pack, pack
    facts = get(pack, "application/json")
    assert facts["facts"]["authentic"] is True, facts
    assert b"recalled" in get(lot, "text/html").lower()
    commands = lines[2:]
    assert [c.split()[0] for c in commands] == ["curl", "curl", str(EXE)], commands
    elsewhere.mkdir()
    for command in commands:
        done = subprocess.run(
            command, shell=True, cwd=elsewhere, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    assert "✓ verified:" in done.stdout and "as of " in done.stdout, done.stdout
    assert list(elsewhere.iterdir()) == []
    assert (data / "pack-proof.bin").exists()


def run_the_printed_commands(commands: list[str], data: Path, elsewhere: Path) -> None:
    """Run the commands the banner suggests, as printed, from a folder of no importance:
    they succeed, check the proof pinned to the log's key, and write only in the data
    folder."""
    assert [c.split()[0] for c in commands] == ["curl", "curl", str(EXE), str(EXE)], commands
    assert "--log-vkey @" in commands[2] and "--device " in commands[2]
    elsewhere.mkdir()
    before = {p for p in data.rglob("*")}
    for command in commands:
        done = subprocess.run(
            command, shell=True, cwd=elsewhere, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        if "verify" in command and "--cloud" not in command:
            assert "verified reading:" in done.stdout and "UNPINNED" not in done.stdout
            assert "✓ device key" in done.stdout  # the short box id it printed, checked
    assert list(elsewhere.iterdir()) == []  # nothing written where they were run
    written = {p.name for p in set(data.rglob("*")) - before if p.is_file()}
    assert {"ledger.vkey", "bundle.json", "verify-state.json"} <= written


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
    assert proc.stderr == (
        f"pharmasync demo: error: the cloud cannot listen on 127.0.0.1:{port}: Address already "
        "in use (another process listens there: stop it or choose another port)\n"
    )


def test_the_demo_brokers_topic_table_can_change_while_it_is_walked() -> None:
    """The demo's amqtt broker walks its topic table across awaits; a subscription made
    meanwhile must not end the walk (amqtt 0.12.1 raised "dictionary changed size during
    iteration" and dropped the connecting client: cloud/demo.py iterates copies)."""
    from cloud.demo import _Snapshots

    table = _Snapshots({"a": [], "b": []})
    walked = []
    for topic in table:
        table[f"{topic}/new"] = []  # what a client subscribing meanwhile does
        walked.append(topic)
    for topic, _ in table.items():
        table.pop(topic)
    assert walked == ["a", "b"] and table == {}
