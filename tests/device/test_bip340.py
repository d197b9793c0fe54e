"""The pure-Python BIP-340 implementation and its secp256k1 arithmetic (device/bip340.py,
device/secp256k1.py), on CPython. The behaviour both backends share is in test_schnorr.py;
the same code under MicroPython is in test_bip340_micropython.py.

Expected values come from the public BIP-340 vectors (../shared/vectors/bip340-test-vectors.csv,
bitcoin/bips bip-0340/test-vectors.csv) and from a textbook affine reference written below.
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from device import bip340, secp256k1

RNG = random.Random(340)  # seeded: a failing random case reproduces
P = secp256k1.P
N = secp256k1.N
G = (secp256k1.GX, secp256k1.GY)

VECTOR_FILE = "bip340-test-vectors.csv"
VECTOR_COUNT = 19  # rows 0-18; 15-18 are the variable-length messages added in 2022-12


@dataclass(frozen=True)
class Vector:
    """One row of the BIP-340 test-vector CSV (secret and aux are None for verify-only rows)."""

    index: int
    secret: bytes | None
    pubkey: bytes
    aux: bytes | None
    msg: bytes
    sig: bytes
    valid: bool
    comment: str


def load_vectors(folder: Path) -> list[Vector]:
    """Parse the CSV (CRLF line endings, as upstream writes it) into Vectors, in file order."""
    with (folder / VECTOR_FILE).open(newline="") as f:
        rows = list(csv.DictReader(f))
    vectors = [
        Vector(
            index=int(row["index"]),
            secret=bytes.fromhex(row["secret key"]) or None,
            pubkey=bytes.fromhex(row["public key"]),
            aux=bytes.fromhex(row["aux_rand"]) or None,
            msg=bytes.fromhex(row["message"]),
            sig=bytes.fromhex(row["signature"]),
            valid={"TRUE": True, "FALSE": False}[row["verification result"]],
            comment=row["comment"],
        )
        for row in rows
    ]
    assert [v.index for v in vectors] == list(range(VECTOR_COUNT))
    return vectors


@pytest.fixture(scope="module")
def vectors(shared_vectors: Path) -> list[Vector]:
    return load_vectors(shared_vectors)


# --- A textbook affine reference, independent of the Jacobian code under test -----------------


def ref_add(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % P == 0:
        return None
    if a == b:
        lam = 3 * a[0] * a[0] * pow(2 * a[1], -1, P) % P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, P) % P
    x = (lam * lam - a[0] - b[0]) % P
    return x, (lam * (a[0] - x) - a[1]) % P


def ref_mul(k: int, pt: tuple[int, int] | None = G) -> tuple[int, int] | None:
    acc = None
    while k:
        if k & 1:
            acc = ref_add(acc, pt)
        pt = ref_add(pt, pt)
        k >>= 1
    return acc


EDGE_SCALARS = [
    1, 2, 7, 8, 9, 15, 16, 17, 255, 256,
    int("8" * 63, 16),  # every digit 8: the largest digit, never recoded
    int("9" * 63, 16),  # every digit 9 -> -7 with a carry into the next window
    int("f" * 63, 16),  # every digit -1 with carries all the way up
    2**252, 2**255 - 1, 2**255, 2**255 + 1,  # around the negation threshold
    N // 2, N // 2 + 1, N - 2, N - 1,
]  # fmt: skip


@pytest.mark.parametrize("k", EDGE_SCALARS)
def test_mul_g_and_mul_match_the_affine_reference(k: int) -> None:
    want = ref_mul(k)
    assert secp256k1.to_affine(secp256k1.mul_g(k)) == want
    assert secp256k1.to_affine(secp256k1.mul(k, *G)) == want


def test_mul_random_scalars_and_points_match_the_reference() -> None:
    for _ in range(10):
        a, k = RNG.randrange(1, N), RNG.randrange(1, N)
        pt = ref_mul(a)
        assert pt is not None
        assert secp256k1.to_affine(secp256k1.mul(k, *pt)) == ref_mul(k, pt)
        assert secp256k1.to_affine(secp256k1.mul_g(k)) == ref_mul(k)


def test_zero_scalar_gives_infinity() -> None:
    assert secp256k1.mul_g(0) is None
    assert secp256k1.mul_g(N) is None
    assert secp256k1.mul(0, *G) is None
    assert secp256k1.to_affine(None) is None


@pytest.mark.parametrize("k", EDGE_SCALARS)
def test_recoding_gives_digits_in_range_summing_to_k(k: int) -> None:
    negated, digits = secp256k1._recode(k)
    signed = [d - 8 for d in digits]
    assert all(-7 <= d <= 8 for d in signed)
    assert sum(d * 16**w for w, d in enumerate(signed)) == (N - k if negated else k)


# --- The signed comb behind mul_g ---------------------------------------------------------------

COMB_ALL_ONES = 2**256 - 1  # all 256 comb bits set; as a d it is >= n, so never produced


def comb_d(k: int) -> int:
    """The comb's d for k, straight from the definition: 2*d - (2^256 - 1) = k (mod n)."""
    return (k + COMB_ALL_ONES) * pow(2, -1, N) % N


def comb_k(d: int) -> int:
    """The scalar whose comb bits are those of d (0 <= d < 2^256)."""
    return (2 * d - COMB_ALL_ONES) % N


def column_index(d: int, c: int) -> int:
    """Column c's index for comb bits d: bit j is bit 32j + c of d."""
    return sum(((d >> (32 * j + c)) & 1) << j for j in range(8))


def comb_entry(e: int) -> tuple[int, int] | None:
    """Table entry e from its definition: 2^224*G + sum_{j<7} (2*bit_j(e) - 1) * 2^(32j)*G."""
    scalar = 2**224 + sum((1 if e >> j & 1 else -1) * 2 ** (32 * j) for j in range(7))
    return ref_mul(scalar % N)


def column0_exceptions() -> list[int]:
    """The two scalars whose last comb addition is a doubling (acc = T_0), built by hand.

    N and -N have one +-1 representation over bits 0..255 each (d = (+-N + 2^256 - 1) / 2);
    flipping the signs of column 0 in it (the teeth at bits 32j) gives a d whose partial sum
    before column 0 equals column 0's point, since A - B = +-N.
    """
    col0 = sum(1 << (32 * j) for j in range(8))
    return [comb_k(((sign * N + COMB_ALL_ONES) // 2) ^ col0) for sign in (1, -1)]


COMB_SCALARS = [
    comb_k(0),  # every column index 0: all teeth -1, the negation of entry 127
    comb_k(2**224 - 1),  # index 0x7F in every column: entry 0, negated
    comb_k(2**256 - 2**224),  # index 0x80 in every column: entry 0
    comb_k(N - 1), comb_k(N - 2),  # the largest d: top columns nearly all ones
    comb_k(COMB_ALL_ONES - N),  # d = (2^256 - 1) mod n, what all-ones wraps to
    comb_k(1), comb_k(2**31), comb_k(2**32), comb_k(2**255),  # a single comb bit set
    comb_k(sum(1 << (32 * j) for j in range(8))),  # column 0 all ones, the rest all -1
    comb_k(sum(1 << (32 * j + 31) for j in range(8))),  # column 31 (the first) all ones
    *[2**i for i in (0, 1, 31, 32, 33, 63, 64, 127, 128, 223, 224, 225, 254, 255)],
    *[N - 2**i for i in (0, 1, 32, 224, 255)],
    *column0_exceptions(),
]  # fmt: skip


def test_comb_offset_is_2_pow_256_minus_1_mod_n() -> None:
    assert secp256k1._COMB_OFFSET == COMB_ALL_ONES % N


@pytest.mark.parametrize("k", EDGE_SCALARS + COMB_SCALARS)
def test_comb_columns_transpose_the_bits_of_d(k: int) -> None:
    d = comb_d(k)
    cols = secp256k1._comb_columns(k)
    assert len(cols) == 32
    for c in range(32):
        assert cols[4 * (c % 8) + c // 8] == column_index(d, c), c
    # The signed digits sum back to k.
    bits = [(d >> i) & 1 for i in range(256)]
    assert sum((2 * b - 1) << i for i, b in enumerate(bits)) % N == k % N


@pytest.mark.parametrize("k", COMB_SCALARS)
def test_mul_g_comb_edge_scalars_match_the_reference(k: int) -> None:
    assert 1 <= k < N
    assert secp256k1.to_affine(secp256k1.mul_g(k)) == ref_mul(k)


def test_the_last_addition_doubles_for_exactly_the_constructed_scalars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Doubling is inline in the comb's loop: secp256k1.double runs only in the exceptional
    # branch (acc = T_0 in column 0), so counting its calls shows which path ran.
    calls = []
    real_double = secp256k1.double
    monkeypatch.setattr(secp256k1, "double", lambda pt: calls.append(pt) or real_double(pt))
    table = secp256k1.g_table()
    ks = column0_exceptions()
    assert len(set(ks)) == 2 and all(1 <= k < N for k in ks)
    for k in ks:
        calls.clear()
        assert secp256k1.to_affine(secp256k1._mul_g_comb(table, k)) == ref_mul(k)
        assert len(calls) == 1, k
        # The sum was 2 * T_0: T_0 is column 0's point, negated or not by tooth 7.
        x, y = secp256k1._comb_point(table, secp256k1._comb_columns(k)[0])
        assert ref_mul(k) == ref_add((x, y), (x, y))
    others = [k for k in EDGE_SCALARS + COMB_SCALARS if k not in ks]
    for k in others + [RNG.randrange(1, N) for _ in range(20)]:
        calls.clear()
        secp256k1._mul_g_comb(table, k)
        assert calls == [], k


def test_the_comb_returns_infinity_for_k_0() -> None:
    # k = 0 (or n) leaves acc = -T_0 before column 0; mul_g never passes it, and the comb
    # returns infinity for it rather than a point with Z = 0.
    table = secp256k1.g_table()
    assert secp256k1._mul_g_comb(table, 0) is None
    assert secp256k1._mul_g_comb(table, N) is None


def test_comb_table_holds_its_definition() -> None:
    table = secp256k1.g_table()
    assert secp256k1.g_table() is table  # built once
    assert [len(chunk) for chunk in table] == [2048] * 4  # no allocation above 2 KiB
    for e in (0, 1, 2, 31, 32, 33, 63, 64, 95, 96, 100, 126, 127):
        chunk, o = table[e // 32], (e % 32) * 64
        got = (
            int.from_bytes(chunk[o : o + 32], "big"),
            int.from_bytes(chunk[o + 32 : o + 64], "big"),
        )
        assert got == comb_entry(e), e


@pytest.mark.parametrize("index", [0, 1, 0x7E, 0x7F, 0x80, 0x81, 0xFE, 0xFF, 0x5A, 0xA5])
def test_comb_point_negates_indexes_without_the_top_tooth(index: int) -> None:
    scalar = sum((1 if index >> j & 1 else -1) * 2 ** (32 * j) for j in range(8))
    assert secp256k1._comb_point(secp256k1.g_table(), index) == ref_mul(scalar % N)


def test_mul_g_many_random_scalars_match_mul() -> None:
    # mul (4-bit windows) is checked against the reference above and is fast enough to
    # cross-check the comb on many scalars: uniform ones, and ones with the top 64 bits set.
    scalars = [RNG.randrange(1, N) for _ in range(200)]
    scalars += [RNG.randrange(N - 2**192, N) for _ in range(100)]
    for k in scalars:
        assert secp256k1.to_affine(secp256k1.mul_g(k)) == secp256k1.to_affine(secp256k1.mul(k, *G))


def test_add_handles_equal_and_opposite_points() -> None:
    pt = secp256k1.mul_g(5)
    neg = (pt[0], P - pt[1], pt[2])
    assert secp256k1.add(pt, neg) is None
    assert secp256k1.to_affine(secp256k1.add(pt, pt)) == ref_mul(10)
    assert secp256k1.add(None, pt) is pt
    assert secp256k1.add(pt, None) is pt


def test_inverse() -> None:
    for m in (P, N):
        for a in (1, 2, m - 1, RNG.randrange(1, m)):
            assert a * secp256k1.inverse(a, m) % m == 1
    assert secp256k1.inverse(0) == 0


def test_lift_x() -> None:
    y = secp256k1.lift_x(secp256k1.GX)
    assert y == secp256k1.GY  # G's y happens to be even
    assert secp256k1.lift_x(P) is None
    assert secp256k1.lift_x(2**256 - 1) is None
    # BIP-340 vector 5's key: "public key not on the curve".
    x = 0xEEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34
    assert secp256k1.lift_x(x) is None
    for _ in range(20):
        x = RNG.randrange(P)
        y = secp256k1.lift_x(x)
        if y is not None:
            assert y % 2 == 0 and (y * y - x**3 - 7) % P == 0


# --- BIP-340 on top ------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["BIP0340/challenge", "PharmaSync/reading/v1", "", "naïve/utf-8"])
@pytest.mark.parametrize("data", [b"", b"\x00", bytes(range(200))])
def test_tagged_hash_is_the_bip340_formula(tag: str, data: bytes) -> None:
    # BIP-340 "Design": hash_tag(x) = SHA256(SHA256(tag) || SHA256(tag) || x).
    t = hashlib.sha256(tag.encode()).digest()
    want = hashlib.sha256(t + t + data).digest()
    assert bip340.tagged_hash(tag, data) == want
    assert bip340.tagged_hash(tag.encode(), bytearray(data)) == want


def test_tagged_hash_known_answers() -> None:
    # t=$(printf 'BIP0340/challenge' | sha256sum | cut -c1-64)
    # printf "$t$t" | xxd -r -p | sha256sum
    assert (
        bip340.tagged_hash("BIP0340/challenge", b"").hex()
        == "c216d352f5818b7b4beacd4ae0a26fe888080823d2a598856661bcd54f1b3713"
    )
    # t=$(printf 'BIP0340/aux' | sha256sum | cut -c1-64)
    # (printf "$t$t"; printf '00%.0s' $(seq 32)) | xxd -r -p | sha256sum
    # (also libsecp256k1's ZERO_MASK in src/modules/schnorrsig/main_impl.h: 84, 241, 105, ...)
    assert (
        bip340.tagged_hash(b"BIP0340/aux", bytes(32)).hex()
        == "54f169cfc9e2e5727480441f90ba25c488f461c70b5ea5dcaaf7af69270aa514"
    )


def test_tagged_hash_rejects_a_non_bytes_message() -> None:
    with pytest.raises(TypeError):
        bip340.tagged_hash("tag", "not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("index", range(VECTOR_COUNT))
def test_vector_row(vectors: list[Vector], index: int) -> None:
    v = vectors[index]
    if v.secret is not None:
        assert bip340.pubkey(v.secret) == v.pubkey
        assert bip340.sign(v.secret, v.msg, v.aux) == v.sig
    assert bip340.verify(v.pubkey, v.msg, v.sig) is v.valid, v.comment


def test_key_cache_follows_the_secret(vectors: list[Vector]) -> None:
    signing = [v for v in vectors if v.secret is not None]
    # Alternate keys so every call misses or hits the one-entry cache in turn.
    for v in signing + signing[::-1] + signing:
        assert v.secret is not None
        assert bip340.sign(v.secret, v.msg, v.aux) == v.sig
    # The cache keeps a copy: mutating the caller's buffer changes the key used.
    a, b = signing[0], signing[1]
    assert a.secret is not None and b.secret is not None
    secret = bytearray(a.secret)
    assert bip340.pubkey(secret) == a.pubkey
    secret[:] = b.secret
    assert bip340.pubkey(secret) == b.pubkey
    assert bip340.sign(secret, b.msg, b.aux) == b.sig


def test_signing_with_an_odd_y_key_negates_the_secret() -> None:
    # Find a secret whose point has odd y: the x-only key is that of n - d as well.
    d = next(d for d in range(1, 50) if ref_mul(d)[1] % 2)  # type: ignore[index]
    secret, negated = d.to_bytes(32, "big"), (N - d).to_bytes(32, "big")
    assert bip340.pubkey(secret) == bip340.pubkey(negated)
    msg, aux = b"cold chain", bytes(32)
    assert bip340.sign(secret, msg, aux) == bip340.sign(negated, msg, aux)
    assert bip340.verify(bip340.pubkey(secret), msg, bip340.sign(secret, msg, aux))
