"""Many readings' signatures checked in one call without the GIL (gateway/batchverify.py,
gateway/_batchverify.c): the same verdicts as schnorr.verify reading by reading, on every
kind of bad reading, from several threads at once; and the fallback, one coincurve call
per reading, gives the same."""

from __future__ import annotations

import os
import random
from array import array
from concurrent.futures import ThreadPoolExecutor

import pytest

from device import reading, schnorr
from gateway import batchverify, verify

SECRETS = [bytes(31) + bytes([0x40 + i]) for i in range(5)]
NOW = 1_780_000_000

needs_extension = pytest.mark.skipif(
    not batchverify.available and os.environ.get("CI") != "true",
    reason="the optional C extension gateway/_batchverify.c was not built here "
    "(no C compiler or Python headers when the project was installed)",
)


def one_by_one(wires: list[bytes]) -> list[bool]:
    """The reference: schnorr.verify per reading, the key parsed each time."""
    return [schnorr.verify(w[1:33], reading.message(w), w[46:110]) for w in wires]


def mixed_readings(n: int, seed: int) -> list[bytes]:
    """Valid readings and every kind of invalid one a verification thread can be given:
    a flipped bit in the body or in the signature, another box's key, a key that is not a
    curve point, a signature with r or s out of range."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        wire = bytearray(reading.sign(SECRETS[i % 5], i, NOW + i, 400 + i % 200, 5000, 0))
        kind = rng.randrange(7)
        if kind == 1:
            bit = rng.randrange(46 * 8)
            wire[bit // 8] ^= 1 << bit % 8
        elif kind == 2:
            bit = rng.randrange(64 * 8)
            wire[46 + bit // 8] ^= 1 << bit % 8
        elif kind == 3:
            wire[1:33] = schnorr.pubkey(SECRETS[(i + 1) % 5])
        elif kind == 4:
            wire[1:33] = b"\xff" * 32  # x >= p
        elif kind == 5:
            wire[46:78] = b"\xff" * 32  # r >= p
        out.append(bytes(wire))
    return out


@needs_extension
def test_the_extension_is_built_where_a_compiler_is() -> None:
    # Under CI a build failure must not pass unnoticed as a silently slower gateway.
    assert batchverify.available


@needs_extension
def test_one_call_judges_as_schnorr_verify_does() -> None:
    wires = mixed_readings(400, seed=1)
    want = one_by_one(wires)
    assert 100 < sum(want) < 300  # both verdicts well represented
    assert batchverify.signatures_valid(wires) == want
    assert batchverify.signatures_valid(wires[:1]) == want[:1]
    assert batchverify.signatures_valid([]) == []


@needs_extension
def test_threads_checking_at_once_get_their_own_verdicts() -> None:
    chunks = [mixed_readings(150, seed=s) for s in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(batchverify.signatures_valid, chunks))
    assert got == [one_by_one(c) for c in chunks]


@needs_extension
def test_check_refuses_inputs_that_do_not_line_up() -> None:
    from gateway import _batchverify  # type: ignore[attr-defined]

    wire = reading.sign(SECRETS[0], 1, NOW, 450, 5000, 0)
    _, address = batchverify.parsed_key(wire[1:33])
    pointers = array(batchverify._POINTERS, [address])
    assert _batchverify.check(reading.TAG, wire, pointers) == b"\x01"
    with pytest.raises(ValueError, match="multiple of 110"):
        _batchverify.check(reading.TAG, wire + b"\x00", pointers)
    with pytest.raises(ValueError, match="want 2 pointers"):
        _batchverify.check(reading.TAG, wire * 2, pointers)


def test_without_the_extension_each_reading_is_checked_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fallback where the extension was not built: the same verdicts."""
    monkeypatch.setattr(batchverify, "available", False)
    wires = mixed_readings(120, seed=2)
    assert verify.signatures_valid(wires) == one_by_one(wires)
