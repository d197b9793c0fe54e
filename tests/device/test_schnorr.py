"""The project's signature API (device/schnorr.py) and the contract both backends meet.

Every test that names an implementation runs for the pure one (device.bip340) and for the
coincurve one (libsecp256k1) explicitly, whichever of them the dispatch picked.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device import bip340, schnorr, secp256k1
from tests.device.test_bip340 import VECTOR_COUNT, Vector, load_vectors

N = secp256k1.N


@dataclass(frozen=True)
class Implementation:
    name: str
    pubkey: Callable[[bytes], bytes]
    sign: Callable[..., bytes]
    verify: Callable[[bytes, bytes, bytes], bool]


PURE = Implementation("pure", bip340.pubkey, bip340.sign, bip340.verify)
COINCURVE = Implementation(
    "coincurve", schnorr.coincurve_pubkey, schnorr.coincurve_sign, schnorr.coincurve_verify
)
IMPLEMENTATIONS = [PURE, COINCURVE]
BOTH = pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda impl: impl.name)

# Pure-Python verification takes ~1 ms on CPython: 100 examples keep each test under a second.
PROPERTY = settings(max_examples=100, deadline=None)

SECRET = bytes(31) + b"\x03"  # BIP-340 vector 0's key
AUX = bytes(32)
# BIP-340 vector 5's key: "public key not on the curve".
OFF_CURVE_X = bytes.fromhex("EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34")


@pytest.fixture(scope="module")
def vectors(shared_vectors: Path) -> list[Vector]:
    return load_vectors(shared_vectors)


def test_dispatch_prefers_coincurve_on_cpython() -> None:
    assert schnorr.BACKEND == "coincurve"
    assert (schnorr.pubkey, schnorr.sign, schnorr.verify) == (
        COINCURVE.pubkey,
        COINCURVE.sign,
        COINCURVE.verify,
    )
    assert schnorr.tagged_hash is bip340.tagged_hash  # one definition, re-exported


def test_dispatch_falls_back_to_pure_without_coincurve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "coincurve", None)  # makes `import coincurve` fail
    spec = importlib.util.spec_from_file_location("schnorr_without_coincurve", schnorr.__file__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert fresh.BACKEND == "pure"
    assert (fresh.pubkey, fresh.sign, fresh.verify) == (bip340.pubkey, bip340.sign, bip340.verify)
    assert fresh.tagged_hash is bip340.tagged_hash


@BOTH
@pytest.mark.parametrize("index", range(VECTOR_COUNT))
def test_vector_row(impl: Implementation, vectors: list[Vector], index: int) -> None:
    v = vectors[index]
    if v.secret is not None:
        assert impl.pubkey(v.secret) == v.pubkey
        assert impl.sign(v.secret, v.msg, v.aux) == v.sig
    assert impl.verify(v.pubkey, v.msg, v.sig) is v.valid, v.comment


@BOTH
def test_aux_none_draws_fresh_randomness(impl: Implementation) -> None:
    msg = b"reading"
    a, b = impl.sign(SECRET, msg), impl.sign(SECRET, msg)
    assert a != b
    assert a[:32] != b[:32]
    assert impl.verify(impl.pubkey(SECRET), msg, a)
    assert impl.verify(impl.pubkey(SECRET), msg, b)


BAD_SECRETS = [
    (bytes(32), "secret key value: got 0, want 1 <= d <= n-1"),
    (N.to_bytes(32, "big"), "secret key value: got a value >= n, want 1 <= d <= n-1"),
    (b"\xff" * 32, "secret key value: got a value >= n, want 1 <= d <= n-1"),
    (bytes(31) + b"\x01" + b"\x00", "secret key length: got 33 bytes, want 32"),
    (b"\x01" * 31, "secret key length: got 31 bytes, want 32"),
    (b"", "secret key length: got 0 bytes, want 32"),
]


@BOTH
@pytest.mark.parametrize(("secret", "message"), BAD_SECRETS)
def test_invalid_secret_raises_precisely(impl: Implementation, secret: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        impl.pubkey(secret)
    assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        impl.sign(secret, b"m", AUX)
    assert str(info.value) == message


@BOTH
@pytest.mark.parametrize("aux_len", [0, 31, 33, 64])
def test_wrong_aux_length_raises_precisely(impl: Implementation, aux_len: int) -> None:
    with pytest.raises(ValueError) as info:
        impl.sign(SECRET, b"m", bytes(aux_len))
    assert str(info.value) == f"aux_rand length: got {aux_len} bytes, want 32"


@BOTH
def test_non_bytes_message_is_a_type_error(impl: Implementation) -> None:
    with pytest.raises(TypeError):
        impl.sign(SECRET, "text", AUX)
    with pytest.raises(TypeError):
        impl.sign(SECRET, 5, AUX)


@BOTH
def test_minimal_and_maximal_secrets_sign(impl: Implementation) -> None:
    for secret in ((1).to_bytes(32, "big"), (N - 1).to_bytes(32, "big")):
        sig = impl.sign(secret, b"m", AUX)
        assert impl.verify(impl.pubkey(secret), b"m", sig)


def _valid() -> tuple[bytes, bytes, bytes]:
    msg = b"cold chain"
    return bip340.pubkey(SECRET), msg, bip340.sign(SECRET, msg, AUX)


@BOTH
@pytest.mark.parametrize(
    ("what", "mangle"),
    [
        ("key too short", lambda k, m, s: (k[:31], m, s)),
        ("key too long", lambda k, m, s: (k + b"\x00", m, s)),
        ("signature too short", lambda k, m, s: (k, m, s[:63])),
        ("signature too long", lambda k, m, s: (k, m, s + b"\x00")),
        ("empty signature", lambda k, m, s: (k, m, b"")),
        ("key x >= p", lambda k, m, s: ((secp256k1.P).to_bytes(32, "big"), m, s)),
        ("key all ones", lambda k, m, s: (b"\xff" * 32, m, s)),
        ("key not on curve", lambda k, m, s: (OFF_CURVE_X, m, s)),
        ("r = p", lambda k, m, s: (k, m, secp256k1.P.to_bytes(32, "big") + s[32:])),
        ("s = n", lambda k, m, s: (k, m, s[:32] + N.to_bytes(32, "big"))),
        ("s all ones", lambda k, m, s: (k, m, s[:32] + b"\xff" * 32)),
        ("key is None", lambda k, m, s: (None, m, s)),
        ("signature is None", lambda k, m, s: (k, m, None)),
        ("message is None", lambda k, m, s: (k, None, s)),
        ("message is str", lambda k, m, s: (k, m.decode(), s)),
        ("key is str", lambda k, m, s: ("x" * 32, m, s)),
    ],
)
def test_malformed_input_verifies_false(
    impl: Implementation, what: str, mangle: Callable[..., tuple[bytes, bytes, bytes]]
) -> None:
    key, msg, sig = _valid()
    assert impl.verify(key, msg, sig) is True
    assert impl.verify(*mangle(key, msg, sig)) is False, what


@BOTH
def test_bytes_like_inputs_are_accepted(impl: Implementation) -> None:
    key, msg, sig = _valid()
    assert impl.verify(bytearray(key), memoryview(msg), bytearray(sig)) is True
    assert impl.sign(bytearray(SECRET), bytearray(msg), bytearray(AUX)) == sig


secret_keys = st.integers(min_value=1, max_value=N - 1).map(lambda d: d.to_bytes(32, "big"))
messages = st.binary(max_size=100)
aux_rands = st.binary(min_size=32, max_size=32)


@PROPERTY
@given(secret=secret_keys, msg=messages, aux=aux_rands)
def test_implementations_agree_and_verify_each_other(secret: bytes, msg: bytes, aux: bytes) -> None:
    key = PURE.pubkey(secret)
    assert COINCURVE.pubkey(secret) == key
    sig = PURE.sign(secret, msg, aux)
    # BIP-340 signing is deterministic given aux: the two must produce the same bytes.
    assert COINCURVE.sign(secret, msg, aux) == sig
    assert COINCURVE.verify(key, msg, sig)
    assert PURE.verify(key, msg, sig)
    # And with fresh randomness each verifies the other's signature.
    assert PURE.verify(key, msg, COINCURVE.sign(secret, msg))
    assert COINCURVE.verify(key, msg, PURE.sign(secret, msg))


@PROPERTY
@given(
    secret=secret_keys,
    msg=messages,
    aux=aux_rands,
    part=st.sampled_from(["key", "msg", "sig"]),
    data=st.data(),
)
def test_any_single_bit_flip_fails_verification(
    secret: bytes, msg: bytes, aux: bytes, part: str, data: st.DataObject
) -> None:
    fields = {"key": PURE.pubkey(secret), "msg": msg, "sig": PURE.sign(secret, msg, aux)}
    if not fields[part]:
        part = "sig"  # an empty message has no bit to flip
    target = bytearray(fields[part])
    bit = data.draw(st.integers(min_value=0, max_value=8 * len(target) - 1), label="bit")
    target[bit // 8] ^= 0x80 >> (bit % 8)
    fields[part] = bytes(target)
    for impl in IMPLEMENTATIONS:
        assert impl.verify(fields["key"], fields["msg"], fields["sig"]) is False, impl.name
