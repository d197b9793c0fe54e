"""Many readings' BIP-340 checks per call, the GIL released once per chunk.

Through coincurve every check is one cffi call that releases the GIL and takes it back;
while the event loop holds the GIL in long stretches, a verification thread that finished a
check waits for it before starting the next, and two threads kept ~1.5 of 2 cores busy
(bench/RESULTS.md, issue 13). gateway/_batchverify.c loops over a whole chunk in C: the
same libsecp256k1 (coincurve's copy, reached through its cffi function pointers), the same
tagged hash of the same 46 body bytes, the same verdicts.

The extension is optional (setup.py builds it where a C compiler is found); `available`
says whether it was, and `signatures_valid` falls back to one coincurve call per reading
where it was not, with the same parsed keys.
"""

from __future__ import annotations

import functools
import struct
from array import array
from collections.abc import Sequence
from typing import Any

import coincurve

from device import reading

try:
    from coincurve._libsecp256k1 import ffi, lib
    from coincurve.context import GLOBAL_CONTEXT

    from gateway import _batchverify  # type: ignore[attr-defined]
except (ImportError, AttributeError):  # not built here, or a coincurve without these
    _batchverify = None
else:

    def _address(pointer: Any) -> int:
        return int(ffi.cast("uintptr_t", pointer))

    _batchverify.bind(
        _address(ffi.addressof(lib, "secp256k1_schnorrsig_verify")),
        _address(ffi.addressof(lib, "secp256k1_tagged_sha256")),
        _address(GLOBAL_CONTEXT.ctx),
    )

available = _batchverify is not None
# The array type of native pointers (what check() reads the keys' addresses as).
_POINTERS = next(code for code in "QL" if array(code).itemsize == struct.calcsize("P"))


@functools.lru_cache(maxsize=1 << 16)
def parsed_key(key: bytes) -> tuple[Any, int]:
    """(the parsed x-only key, its address for check()) for a box key, parsed once (with
    libsecp256k1, parsing costs about a seventh of a check); (None, 0) if `key` is not the
    x of a curve point; the address is 0 where the extension is not built. The first item
    owns the memory the address points to: keep it while the address is used. Keys reach
    this only after the registry check, so the cache holds registered boxes."""
    try:
        parsed = coincurve.PublicKeyXOnly(key)
    except ValueError:
        return None, 0
    address = int(ffi.cast("uintptr_t", parsed.public_key)) if _batchverify is not None else 0
    return parsed, address


def signatures_valid(wires: Sequence[bytes]) -> list[bool]:
    """Whether each reading's BIP-340 signature verifies for the key it carries. Pure and
    thread-safe, so the gateway runs it on a pool of threads; `wires` must have passed
    `Verifier.precheck` (110 bytes each). Where `available`, the whole chunk in one call
    without the GIL; else one coincurve call per reading (each releasing the GIL)."""
    keys = [parsed_key(w[1:33]) for w in wires]  # held until the checks return
    if not available:
        message = reading.message
        return [
            parsed is not None and parsed.verify(w[46:110], message(w))
            for w, (parsed, _) in zip(wires, keys, strict=True)
        ]
    assert _batchverify is not None
    valid = _batchverify.check(reading.TAG, b"".join(wires), array(_POINTERS, [a for _, a in keys]))
    return list(map(bool, valid))
