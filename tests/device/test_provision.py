"""Provisioning and flashing a box from the host."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import segno

from device import config, flashing, provision, schnorr

OWNER = schnorr.pubkey(bytes(31) + b"\x0c").hex()


def test_provision_writes_a_bootable_box_folder(tmp_path: Path) -> None:
    box = provision.provision(
        tmp_path,
        "warehouse-1",
        "Cold room A",
        "10.0.0.5:1884",
        wifi_ssid="ColdNet",
        owner_key=OWNER.upper(),
    )
    assert box.folder == tmp_path / box.device_id
    secret = config.load_secret(str(box.folder / "secret.key"))
    assert schnorr.pubkey(secret) == box.key
    assert stat.S_IMODE((box.folder / "secret.key").stat().st_mode) == 0o600
    cfg = config.load(str(box.folder / "config.json"))  # what the box itself will load
    assert cfg["mqtt"]["host"] == "10.0.0.5" and cfg["mqtt"]["port"] == 1884
    assert cfg["wifi"] == {"ssid": "ColdNet", "password": ""}
    assert cfg["owner_key"] == OWNER and cfg["insecure_acks"] is False
    assert json.loads((box.folder / "config.json").read_text())["key"] == box.key.hex()
    svg = (box.folder / "label.svg").read_text()
    assert "Cold room A" in svg and box.device_id in svg
    assert (box.folder / "label.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_label_qr_code_carries_the_public_key(tmp_path: Path) -> None:
    box = provision.provision(tmp_path, "w1", "x", "h", owner_key=OWNER)
    payload = provision.qr_payload(box.key)
    assert payload == "pharmasync:box:v1:" + box.key.hex()
    qr = segno.make(payload, error="m")
    svg = (box.folder / "label.svg").read_text()
    dark = sum(row.count(1) for row in qr.matrix)
    cells = re.findall(r"M[\d.]+,[\d.]+h[\d.]+v[\d.]+h-[\d.]+z", svg)
    assert len(cells) == dark  # one path cell per dark module of exactly that QR code


def test_a_key_made_on_the_board_writes_no_secret_here(tmp_path: Path) -> None:
    key = schnorr.pubkey(bytes(31) + b"\x02")
    box = provision.provision(tmp_path, "w1", "x", "h", public_key=key, insecure_acks=True)
    assert box.key == key and not (box.folder / "secret.key").exists()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"site": "a/b"}, config.ConfigError, "site"),
        ({"broker": "h:0"}, provision.ProvisionError, "broker port: got '0'"),
        ({"broker": ":1883"}, provision.ProvisionError, "broker: got ':1883'"),
        ({"interval_s": 1}, config.ConfigError, "interval_s: got 1"),
        ({"owner_key": "zz"}, config.ConfigError, "owner_key: got 'zz'"),
        ({"owner_key": None}, config.ConfigError, "owner_key: missing"),
    ],
)
def test_bad_provisioning_input_is_refused_and_writes_nothing(
    tmp_path: Path, kwargs: dict, error: type, message: str
) -> None:
    args = {"site": "w1", "label": "x", "broker": "h", "owner_key": OWNER} | kwargs
    site, label, broker = args.pop("site"), args.pop("label"), args.pop("broker")
    with pytest.raises(error, match=message):
        provision.provision(tmp_path, site, label, broker, **args)
    assert list(tmp_path.iterdir()) == []


def test_flash_runs_the_mpremote_steps_in_order(tmp_path: Path) -> None:
    """mpremote needs a board on a serial port, which does not exist here: the runner that
    would execute each command line is replaced by one that records it."""
    box = provision.provision(tmp_path, "w1", "x", "h", owner_key=OWNER)
    calls: list[list[str]] = []
    flashing.flash(box.folder, "/dev/ttyUSB0", lambda args: calls.append(args) or "")
    verbs = [c[2:4] for c in calls]
    assert verbs == [
        ["exec", flashing.MKDIR],
        ["fs", "cp"],
        ["fs", "cp"],
        ["fs", "cp"],
        ["fs", "cp"],
        ["mip", "install"],
        ["reset"],
    ]
    copied = calls[1][4:-1]
    assert calls[1][-1] == ":device/"
    assert sorted(Path(p).name for p in copied) == sorted(
        name.replace(".py", ".mpy") for name in flashing.FIRMWARE
    )
    assert calls[3][-2:] == [str(box.folder / "config.json"), ":config.json"]
    assert calls[4][-2:] == [str(box.folder / "secret.key"), ":secret.key"]


def test_flash_refuses_a_folder_that_is_not_a_box(tmp_path: Path) -> None:
    with pytest.raises(flashing.FlashError, match="provision the box first"):
        flashing.flash(tmp_path, "/dev/ttyUSB0", lambda args: "")


def test_the_flashed_files_are_complete_and_import_under_micropython(
    tmp_path: Path, run_micropython
) -> None:
    """Compile exactly the flashed file set to .mpy, as flash does, into a bare folder and
    import every module from it under the real MicroPython (the ESP32-only modules need
    `machine`, and are skipped)."""
    pkg = tmp_path / "device"
    pkg.mkdir()
    compiled = flashing.compile_firmware(pkg)
    assert len(compiled) == len(flashing.FIRMWARE)
    hardware_only = {"board_esp32", "main"}
    modules = [
        p.stem for p in flashing.firmware_files() if p.stem not in hardware_only | {"__init__"}
    ]
    script = (
        "import sys\nsys.path[:] = ['', '.frozen']\n"
        + "".join(f"import device.{m}\n" for m in modules)
        + f"print('imported', {len(modules)})\n"
    )
    out = run_micropython(script, cwd=tmp_path)
    assert out.strip() == f"imported {len(modules)}"


def test_keygen_script_makes_a_key_once_and_reports_it(tmp_path: Path, run_micropython) -> None:
    """The script `provision --on-board` runs on the board, run here on the unix port."""
    pkg = tmp_path / "device"
    pkg.mkdir()
    for path in flashing.firmware_files():
        (pkg / path.name).write_bytes(path.read_bytes())
    first = run_micropython(
        "import sys\nsys.path[:] = ['', '.frozen']\n" + flashing.KEYGEN, cwd=tmp_path
    )
    again = run_micropython(
        "import sys\nsys.path[:] = ['', '.frozen']\n" + flashing.KEYGEN, cwd=tmp_path
    )
    assert first == again  # the key is kept, not replaced
    key = bytes.fromhex(first.split()[1])
    secret = config.load_secret(str(tmp_path / "secret.key"))
    assert schnorr.pubkey(secret) == key
