"""The reading format under the real MicroPython interpreter, as the firmware runs it.

The golden vectors are handed to a MicroPython process, which signs, decodes and
verifies them with the pure BIP-340 implementation; CPython checks what it printed.
"""

from __future__ import annotations

import json

from tests.conftest import GOLDEN

VECTORS = json.loads((GOLDEN / "reading-v1.json").read_text())

SCRIPT = """
import json
from device import reading, schnorr
from binascii import unhexlify, hexlify
v = json.loads(%r)
out = {"backend": schnorr.BACKEND, "signed": [], "decoded": [], "errors": [], "forged": []}
for case in v["valid"]:
    f = case["fields"]
    w = reading.sign(unhexlify(case["secret"]), f["seq"], f["time"], f["temperature"],
                     f["humidity"], f["flags"], unhexlify(case["aux"]))
    out["signed"].append(hexlify(w).decode())
    r = reading.decode(unhexlify(case["wire"]))
    out["decoded"].append([hexlify(r.key).decode(), r.seq, r.time, r.temperature, r.humidity,
                           r.flags, reading.verify(unhexlify(case["wire"]))])
for case in v["invalid"]:
    try:
        reading.decode(unhexlify(case["wire"]))
        out["errors"].append(None)
    except reading.ReadingError as e:
        out["errors"].append(e.field)
for case in v["forged"]:
    out["forged"].append(reading.verify(unhexlify(case["wire"])))
print(json.dumps(out))
"""


def test_golden_vectors_under_micropython(run_micropython) -> None:
    out = json.loads(run_micropython(SCRIPT % json.dumps(VECTORS)))
    assert out["backend"] == "pure"
    assert out["signed"] == [case["wire"] for case in VECTORS["valid"]]
    for case, got in zip(VECTORS["valid"], out["decoded"], strict=True):
        f = case["fields"]
        want = [case["key"], f["seq"], f["time"], f["temperature"], f["humidity"], f["flags"]]
        assert got == [*want, True]
    assert out["errors"] == [case["field"] for case in VECTORS["invalid"]]
    assert out["forged"] == [False] * len(VECTORS["forged"])
