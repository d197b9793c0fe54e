"""Benchmark BIP-340 signatures: coincurve and pure Python on CPython, pure under MicroPython.

Run: .venv/bin/python bench/crypto.py [--repeat R] [--heap SIZE]

Measures, signing a 32-byte tagged hash (what a reading's signature covers) with fresh aux
randomness and one key, as a sensor does:
- signatures and verifications per second on CPython with coincurve (libsecp256k1) and with
  the pure implementation (device.bip340);
- milliseconds per signature and per verification of the pure implementation under the real
  `micropython` interpreter (timed inside it with time.ticks_us), with an ESP32-sized heap;
  the k*G comb table's heap cost (gc.mem_alloc before/after building it) and build time;
  and the ratio of ms/sign to the 3 ms target;
- the smallest MicroPython heap (-X heapsize, to 1 KiB) in which importing device.bip340
  from .mpy (compiled with mpy-cross, as a flashed box loads it), building the table and
  signing succeed.

Prints human-readable lines, then ends with exactly one line of JSON holding every figure.
Timings take the best of R runs (the least disturbed by the rest of the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/device.py would shadow the package.
sys.path.insert(0, str(REPO))

from device import bip340, schnorr  # noqa: E402

SIGN_TARGET_MS = 3.0  # MicroPython signing budget on this machine (DESIGN.md: sensor signing)
SECRET = bytes.fromhex("B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF")
MESSAGE = bip340.tagged_hash("PharmaSync/bench", b"one reading")

# Iterations per timed run: each run takes roughly 0.1-0.3 s on this machine.
COINCURVE_SIGNS, COINCURVE_VERIFIES = 20_000, 10_000
PURE_SIGNS, PURE_VERIFIES = 500, 100
MICROPYTHON_SIGNS, MICROPYTHON_VERIFIES = 300, 40

MICROPYTHON_SCRIPT = """
import gc, json, time
from device import bip340, secp256k1
gc.collect()
before = gc.mem_alloc()
t = time.ticks_us()
secp256k1.g_table()
build_us = time.ticks_diff(time.ticks_us(), t)
gc.collect()
table_bytes = gc.mem_alloc() - before
secret, msg = bytes.fromhex(%(secret)r), bytes.fromhex(%(msg)r)
key = bip340.pubkey(secret)
sig = bip340.sign(secret, msg)
sign_us = verify_us = None
for _ in range(%(repeat)d):
    t = time.ticks_us()
    for _ in range(%(signs)d):
        sig = bip340.sign(secret, msg)
    us = time.ticks_diff(time.ticks_us(), t) / %(signs)d
    sign_us = us if sign_us is None else min(sign_us, us)
    t = time.ticks_us()
    for _ in range(%(verifies)d):
        ok = bip340.verify(key, msg, sig)
    us = time.ticks_diff(time.ticks_us(), t) / %(verifies)d
    verify_us = us if verify_us is None else min(verify_us, us)
    assert ok
print(json.dumps({"sign_us": sign_us, "verify_us": verify_us, "table_bytes": table_bytes,
                  "build_us": build_us}))
"""


def per_second(repeat: int, count: int, run: Callable[[], object]) -> float:
    """Return calls per second of `run`, from the fastest of `repeat` runs of `count` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(count):
            run()
        best = min(best, time.perf_counter() - start)
    return count / best


def raw_verify_rate(repeat: int, count: int = COINCURVE_VERIFIES) -> float:
    """Return one core's raw BIP-340 verifications per second (coincurve, best of `repeat`
    runs of `count`): the same-run ceiling of every benchmark of a verifying path
    (bench/lots.py, bench/counter_*.py)."""
    key = bip340.pubkey(SECRET)
    sig = bip340.sign(SECRET, MESSAGE)
    return per_second(repeat, count, lambda: schnorr.coincurve_verify(key, MESSAGE, sig))


def raw_ed25519_verify_rate(repeat: int, count: int = COINCURVE_VERIFIES) -> float:
    """Return raw Ed25519 verifications per second (the `cryptography` package that
    gateway/note.py uses for checkpoints and cosignatures), best of `repeat` runs of
    `count`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(SECRET)
    public, sig = private.public_key(), private.sign(MESSAGE)
    return per_second(repeat, count, lambda: public.verify(sig, MESSAGE))


def micropython_binary() -> str | None:
    """Path of the `micropython` interpreter beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "micropython"
    return str(beside) if beside.exists() else shutil.which("micropython")


def bench_micropython(repeat: int, heap: str) -> dict[str, Any] | None:
    """Time the pure implementation inside a MicroPython process; None without micropython."""
    binary = micropython_binary()
    if binary is None:
        return None
    script = MICROPYTHON_SCRIPT % {
        "secret": SECRET.hex(),
        "msg": MESSAGE.hex(),
        "repeat": repeat,
        "signs": MICROPYTHON_SIGNS,
        "verifies": MICROPYTHON_VERIFIES,
    }
    proc = subprocess.run(
        [binary, "-X", f"heapsize={heap}", "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ, MICROPYPATH=str(REPO)),
        cwd=REPO,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


# Imports only device.bip340, from .mpy files in the working directory (not the repo).
MIN_HEAP_SCRIPT = """
import sys
sys.path[:] = ['', '.frozen']
from device import bip340
bip340.sign(bytes.fromhex(%(secret)r), bytes.fromhex(%(msg)r))
print("signed")
"""


def min_sign_heap_kib(binary: str) -> int | None:
    """Smallest -X heapsize in KiB that imports device.bip340 from .mpy and signs; None
    without mpy-cross."""
    beside = Path(binary).parent / "mpy-cross"
    compiler = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if compiler is None:
        return None
    script = MIN_HEAP_SCRIPT % {"secret": SECRET.hex(), "msg": MESSAGE.hex()}
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "device"
        pkg.mkdir()
        for name in ("__init__", "bip340", "secp256k1"):
            target = pkg / (name + ".mpy")
            source = REPO / "device" / (name + ".py")
            subprocess.run([compiler, "-o", str(target), str(source)], check=True)

        def signs(kib: int) -> bool:
            proc = subprocess.run(
                [binary, "-X", f"heapsize={kib}K", "-c", script],
                capture_output=True,
                text=True,
                cwd=tmp,
                timeout=60,
            )
            return proc.returncode == 0 and proc.stdout.strip() == "signed"

        low, high = 8, 256  # signing fails in `low` KiB and succeeds in `high`
        if not signs(high):
            return None
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if signs(mid) else (mid, high)
        return high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--heap", default="96k", help="MicroPython heap (an ESP32 without PSRAM has ~110 KB)"
    )
    args = parser.parse_args()
    repeat: int = args.repeat

    key = bip340.pubkey(SECRET)
    sig = bip340.sign(SECRET, MESSAGE)
    assert schnorr.coincurve_verify(key, MESSAGE, sig)
    figures: dict[str, Any] = {
        "python": platform.python_version(),
        "dispatch_backend": schnorr.BACKEND,
        "coincurve_sign_per_s": per_second(
            repeat, COINCURVE_SIGNS, lambda: schnorr.coincurve_sign(SECRET, MESSAGE)
        ),
        "coincurve_verify_per_s": raw_verify_rate(repeat),
        "pure_cpython_sign_per_s": per_second(
            repeat, PURE_SIGNS, lambda: bip340.sign(SECRET, MESSAGE)
        ),
        "pure_cpython_verify_per_s": per_second(
            repeat, PURE_VERIFIES, lambda: bip340.verify(key, MESSAGE, sig)
        ),
    }
    print(f"CPython {figures['python']}, schnorr.BACKEND = {schnorr.BACKEND!r}")
    for name in ("coincurve", "pure_cpython"):
        print(
            f"  {name:13} {figures[name + '_sign_per_s']:>10,.0f} sign/s"
            f"  {figures[name + '_verify_per_s']:>10,.0f} verify/s"
        )

    mp = bench_micropython(repeat, args.heap)
    if mp is None:
        print("micropython not found (beside sys.executable or on PATH): skipped")
        figures.update(micropython_ms_per_sign=None, micropython_ms_per_verify=None)
    else:
        ms_sign = mp["sign_us"] / 1000
        figures.update(
            micropython_heap=args.heap,
            micropython_ms_per_sign=ms_sign,
            micropython_ms_per_verify=mp["verify_us"] / 1000,
            micropython_table_heap_bytes=mp["table_bytes"],
            micropython_table_build_ms=mp["build_us"] / 1000,
            micropython_sign_target_ms=SIGN_TARGET_MS,
            micropython_sign_vs_target=ms_sign / SIGN_TARGET_MS,
        )
        print(f"MicroPython (pure, heap {args.heap})")
        print(
            f"  {ms_sign:.3f} ms/sign = {ms_sign / SIGN_TARGET_MS:.2f} x the"
            f" {SIGN_TARGET_MS:g} ms target; {mp['verify_us'] / 1000:.3f} ms/verify"
        )
        print(
            f"  k*G comb table: {mp['table_bytes']:,} heap bytes,"
            f" built in {mp['build_us'] / 1000:.1f} ms"
        )
        binary = micropython_binary()
        assert binary is not None
        kib = min_sign_heap_kib(binary)
        figures.update(micropython_min_sign_heap_kib=kib)
        if kib is None:
            print("  smallest heap for signing: skipped (mpy-cross not found)")
        else:
            print(f"  smallest heap that imports device.bip340 (.mpy) and signs: {kib} KiB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
