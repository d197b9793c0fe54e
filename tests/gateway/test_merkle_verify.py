"""Tests for gateway.merkle_verify: every malformed proof is rejected, with the right error.

Proofs come from gateway.merkle (checked against RFC 6962 in test_merkle.py) and are then
mutated as transparency-dev/merkle `proof/verify_test.go` does (wrong index or size,
truncation, extra or inserted elements, bit flips in proof, root and leaf). Accept/reject
decisions are also compared with a second verifier written literally from the RFC 9162
text (sections 2.1.3.2 and 2.1.4.2).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gateway.merkle_verify
from gateway import merkle
from gateway.merkle import MerkleTree
from gateway.merkle_verify import (
    HashSizeError,
    ProofError,
    ProofSizeError,
    RootMismatchError,
    TreeRangeError,
    consistency_proof_size,
    inclusion_proof_size,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
    verify_leaf_hash_inclusion,
)
from gateway.rfc6962 import EMPTY_ROOT, leaf_hash

# --- Reference verifiers: RFC 9162, step by step --------------------------------------------


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def rfc9162_inclusion_ok(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2, steps 1-5."""
    if index >= size:  # 1.
        return False
    fn, sn = index, size - 1  # 2.
    r = hashlib.sha256(b"\x00" + leaf).digest()  # 3.
    for p in path:  # 4.
        if sn == 0:  # 4a.
            return False
        if fn & 1 or fn == sn:  # 4b.
            r = _node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c.
    return sn == 0 and r == root  # 5.


def rfc9162_consistency_ok(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 for 0 < first < second; the trivial cases as documented."""
    if first > second:
        return False
    if first == second:
        return not path and first_hash == second_hash
    if first == 0:
        return not path
    path = list(path)
    if not path:  # 1.
        return False
    if first & (first - 1) == 0:  # 2.
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1  # 3.
    while fn & 1:  # 4.
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # 5.
    for c in path[1:]:  # 6.
        if sn == 0:  # 6a.
            return False
        if fn & 1 or fn == sn:  # 6b.
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1  # 6c.
    return fr == first_hash and sr == second_hash and sn == 0  # 7.


LEAVES = [b"reading %d" % i for i in range(130)]
TREE = MerkleTree(LEAVES)
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _flip(value: bytes, bit: int = 3, position: int = 0) -> bytes:
    """`value` with one bit flipped (bit 3 of byte 0, as verify_test.go does, by default)."""
    out = bytearray(value)
    out[position] ^= 1 << bit
    return bytes(out)


def _outcome(verify: Callable[..., None], *args: Any) -> type[ProofError] | None:
    """The ProofError type that verify(*args) raises, or None if it accepts."""
    try:
        verify(*args)
    except ProofError as err:
        return type(err)
    return None


# --- Inclusion: mutations ------------------------------------------------------------------


def inclusion_mutations(
    index: int, size: int, proof: list[bytes], root: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    """(description, index, size, proof, root, leaf) probes, all of which must fail."""
    leaf = LEAVES[index]
    probes = [
        ("size * 2", index, size * 2, proof, root, leaf),
        ("wrong leaf", index, size, proof, root, b"WrongLeaf"),
        ("leaf + byte", index, size, proof, root, leaf + b"\x00"),
        ("empty root", index, size, proof, EMPTY_ROOT, leaf),
        ("random root", index, size, proof, SOME_HASH, leaf),
        ("short root", index, size, proof, root[:31], leaf),
        ("flipped root", index, size, proof, _flip(root), leaf),
        ("trailing root", index, size, [*proof, root], root, leaf),
        ("preceding root", index, size, [root, *proof], root, leaf),
        ("trailing garbage", index, size, [*proof, b""], root, leaf),
        ("flipped leaf", index, size, proof, root, _flip(leaf, 0, -1)),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = _flip(proof[i])
        probes.append((f"proof[{i}] bit 3", index, size, flipped, root, leaf))
        flipped = list(proof)
        flipped[i] = _flip(proof[i], 7, 31)
        probes.append((f"proof[{i}] last bit", index, size, flipped, root, leaf))
        short = list(proof)
        short[i] = proof[i][:31]
        probes.append((f"proof[{i}] 31 bytes", index, size, short, root, leaf))
    if proof:
        probes.append(("removed component", index, size, proof[:-1], root, leaf))
        probes.append(("removed first", index, size, proof[1:], root, leaf))
    if len(proof) > 1:
        probes.append(
            ("inserted component", index, size, [proof[0], SOME_HASH, *proof[1:]], root, leaf)
        )
        if proof[0] != proof[1]:
            probes.append(("swapped", index, size, [proof[1], proof[0], *proof[2:]], root, leaf))
    return probes


def expected_inclusion_error(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> type[ProofError] | None:
    """The error a wrong (index, size, proof, root, leaf) must raise, given the true tree."""
    if size <= 0 or not 0 <= index < size:
        return TreeRangeError
    if len(proof) != inclusion_proof_size(index, size):
        return ProofSizeError
    if any(len(h) != 32 for h in proof):
        return HashSizeError
    return RootMismatchError


def check_inclusion_mutations(index: int, size: int) -> None:
    proof = TREE.inclusion_proof(index, size)
    root = TREE.root(size)
    verify_inclusion(LEAVES[index], index, size, proof, root)
    for desc, i, n, p, r, leaf in inclusion_mutations(index, size, proof, root):
        want = expected_inclusion_error(i, n, p, r, leaf)
        got = _outcome(verify_inclusion, leaf, i, n, p, r)
        assert got is want, (desc, index, size)
        assert not rfc9162_inclusion_ok(leaf, i, n, p, r), (desc, index, size)

    # Wrong index (with this leaf, or with the leaf really there) or wrong size: must fail
    # unless the RFC 9162 verifier accepts too. It does only for a size with the same path
    # shape (leaf 0 of 3 and of 4, say), never for another index: that is why (size, root)
    # must come together from a signed checkpoint, where the root binds the size.
    wrong = [(index - 1, size), (index + 1, size), (index ^ 2, size), (index, size // 2)]
    wrong += [(index, other) for other in range(1, 2 * size + 2) if other != size]
    for i, n in wrong:
        for leaf in {LEAVES[index], LEAVES[i % size]}:
            got = _outcome(verify_inclusion, leaf, i, n, proof, root)
            if 0 <= i < n and rfc9162_inclusion_ok(leaf, i, n, proof, root):
                assert (got, i) == (None, index), (index, size, i, n)
            else:
                want = expected_inclusion_error(i, n, proof, root, leaf)
                assert got is want, (index, size, i, n)


def test_inclusion_mutations_exhaustive_small() -> None:
    for size in range(1, 34):
        for index in range(size):
            check_inclusion_mutations(index, size)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=1, max_value=len(LEAVES)).flatmap(
        lambda n: st.tuples(st.integers(min_value=0, max_value=n - 1), st.just(n))
    )
)
def test_inclusion_mutations(pair: tuple[int, int]) -> None:
    check_inclusion_mutations(*pair)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_single_bit_flip_is_rejected(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=2, max_value=len(LEAVES)), "size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), "index")
    proof = TREE.inclusion_proof(index, size)
    root = TREE.root(size)
    element = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), "element")
    bit = data.draw(st.integers(min_value=0, max_value=255), "bit")
    flipped = list(proof)
    flipped[element] = _flip(proof[element], bit % 8, bit // 8)
    with pytest.raises(RootMismatchError) as err:
        verify_inclusion(LEAVES[index], index, size, flipped, root)
    assert err.value.expected == root
    assert err.value.computed != root
    with pytest.raises(RootMismatchError) as err:
        verify_inclusion(LEAVES[index], index, size, proof, _flip(root, bit % 8, bit // 8))
    assert err.value.computed == root


# --- Consistency: mutations ----------------------------------------------------------------


def expected_consistency_error(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> type[ProofError] | None:
    if old < 0 or old > new:
        return TreeRangeError
    if len(proof) != consistency_proof_size(old, new):
        return ProofSizeError
    if any(len(h) != 32 for h in proof):
        return HashSizeError
    if rfc9162_consistency_ok(old, new, old_root, new_root, proof):
        return None
    return RootMismatchError


CHANGED_ROOTS = {"flipped old root", "flipped new root", "empty old root", "random new root"}


def check_consistency_mutations(old: int, new: int) -> None:
    proof = TREE.consistency_proof(old, new)
    old_root, new_root = TREE.root(old), TREE.root(new)
    verify_consistency(old, new, old_root, new_root, proof)
    assert rfc9162_consistency_ok(old, new, old_root, new_root, proof)

    probes: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
        ("old - 1", old - 1, new, old_root, new_root, proof),
        ("old + 1", old + 1, new, old_root, new_root, proof),
        ("new - 1", old, new - 1, old_root, new_root, proof),
        ("new + 1", old, new + 1, old_root, new_root, proof),
        ("new * 2", old, new * 2, old_root, new_root, proof),
        ("old * 2", old * 2, new, old_root, new_root, proof),
        ("swapped sizes", new, old, new_root, old_root, proof),
        ("flipped old root", old, new, _flip(old_root), new_root, proof),
        ("flipped new root", old, new, old_root, _flip(new_root), proof),
        ("empty old root", old, new, EMPTY_ROOT, new_root, proof),
        ("random new root", old, new, old_root, SOME_HASH, proof),
        ("trailing garbage", old, new, old_root, new_root, [*proof, b""]),
        ("trailing root", old, new, old_root, new_root, [*proof, new_root]),
        ("preceding root", old, new, old_root, new_root, [old_root, *proof]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = _flip(proof[i])
        probes.append((f"proof[{i}] bit 3", old, new, old_root, new_root, flipped))
        short = list(proof)
        short[i] = proof[i][:31]
        probes.append((f"proof[{i}] 31 bytes", old, new, old_root, new_root, short))
    if proof:
        probes.append(("removed component", old, new, old_root, new_root, proof[:-1]))
    if len(proof) > 1:
        probes.append(("inserted", old, new, old_root, new_root, [proof[0], SOME_HASH, *proof[1:]]))

    for desc, m, n, r1, r2, p in probes:
        want = expected_consistency_error(m, n, r1, r2, p)
        got = _outcome(verify_consistency, m, n, r1, r2, p)
        assert got is want, (desc, old, new)
        if got is None:
            # Accepted: only a claim that is true of the tree anyway (same roots, a size with
            # the same proof shape, or old size 0), never a changed proof or root.
            assert (r1, r2, p) == (old_root, new_root, proof) or m == 0, desc
        if "bit 3" in desc or desc in CHANGED_ROOTS:
            if m == 0 and (n > 0 or r1 == r2):
                assert got is None, desc  # The empty tree is a prefix of any tree: no roots used.
            else:
                assert got is RootMismatchError, desc


def test_consistency_mutations_exhaustive_small() -> None:
    for new in range(0, 34):
        for old in range(0, new + 1):
            check_consistency_mutations(old, new)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(LEAVES)).flatmap(
        lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
    )
)
def test_consistency_mutations(pair: tuple[int, int]) -> None:
    check_consistency_mutations(*pair)


def test_consistency_bit_flips_name_the_root_that_differs() -> None:
    old, new = 6, 8
    proof = TREE.consistency_proof(old, new)
    old_root, new_root = TREE.root(old), TREE.root(new)
    with pytest.raises(RootMismatchError, match=r"^old root mismatch") as err:
        verify_consistency(old, new, _flip(old_root), new_root, proof)
    assert (err.value.computed, err.value.expected, err.value.what) == (
        old_root,
        _flip(old_root),
        "old root",
    )
    with pytest.raises(RootMismatchError, match=r"^new root mismatch") as err:
        verify_consistency(old, new, old_root, _flip(new_root), proof)
    assert (err.value.computed, err.value.expected) == (new_root, _flip(new_root))


# --- Preconditions and messages ------------------------------------------------------------


def test_error_messages() -> None:
    proof = TREE.inclusion_proof(2, 8)
    with pytest.raises(ProofSizeError, match=r"^incorrect proof size: got 2, want 3$") as err:
        verify_inclusion(LEAVES[2], 2, 8, proof[:2], TREE.root(8))
    assert (err.value.got, err.value.want) == (2, 3)
    with pytest.raises(TreeRangeError, match=r"^index 9 out of range for size 8$"):
        verify_inclusion(LEAVES[2], 9, 8, proof, TREE.root(8))
    with pytest.raises(TreeRangeError, match=r"^index -1 out of range for size 8$"):
        verify_inclusion(LEAVES[2], -1, 8, proof, TREE.root(8))
    with pytest.raises(TreeRangeError, match=r"^size 0 tree has no inclusion proofs$"):
        verify_inclusion(LEAVES[2], 0, 0, [], EMPTY_ROOT)
    with pytest.raises(TreeRangeError, match=r"^size -4 is negative$"):
        verify_inclusion(LEAVES[2], 0, -4, [], EMPTY_ROOT)
    with pytest.raises(TreeRangeError, match=r"^old_size 5 > new_size 3$"):
        verify_consistency(5, 3, TREE.root(5), TREE.root(3), [])
    with pytest.raises(TreeRangeError, match=r"^old_size -1 is negative$"):
        verify_consistency(-1, 3, EMPTY_ROOT, TREE.root(3), [])
    with pytest.raises(HashSizeError, match=r"^proof\[1\]: got 33 bytes, want 32$"):
        verify_inclusion(LEAVES[2], 2, 8, [proof[0], proof[1] + b"\x00", proof[2]], TREE.root(8))
    with pytest.raises(HashSizeError, match=r"^leaf_hash: got 0 bytes, want 32$"):
        verify_leaf_hash_inclusion(b"", 0, 1, [], TREE.root(1))
    with pytest.raises(
        RootMismatchError, match=r"^root mismatch: computed [0-9a-f]{64}, expected 00$"
    ):
        verify_inclusion(LEAVES[2], 2, 8, proof, b"\x00")


@pytest.mark.parametrize(
    ("old", "new", "proof_len", "roots_equal", "error"),
    [
        (3, 3, 1, True, ProofSizeError),  # Equal sizes: the proof must be empty...
        (3, 3, 0, False, RootMismatchError),  # ...and the roots equal.
        (0, 5, 1, True, ProofSizeError),  # Old size 0: the proof must be empty.
        (0, 0, 1, True, ProofSizeError),
        (3, 5, 0, False, ProofSizeError),  # 0 < old < new: never an empty proof.
        (4, 5, 0, False, ProofSizeError),  # Also when old is a power of two.
    ],
)
def test_consistency_size_rules(
    old: int, new: int, proof_len: int, roots_equal: bool, error: type[ProofError]
) -> None:
    new_root = TREE.root(new)
    old_root = new_root if roots_equal else SOME_HASH
    with pytest.raises(error):
        verify_consistency(old, new, old_root, new_root, [SOME_HASH] * proof_len)


def test_trivial_consistency_accepted() -> None:
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 9, EMPTY_ROOT, TREE.root(9), [])
    verify_consistency(9, 9, TREE.root(9), TREE.root(9), [])


def test_proof_sizes_reject_bad_preconditions() -> None:
    with pytest.raises(TreeRangeError):
        inclusion_proof_size(3, 3)
    with pytest.raises(TreeRangeError):
        consistency_proof_size(4, 3)
    assert inclusion_proof_size(0, 1) == 0
    assert consistency_proof_size(3, 3) == consistency_proof_size(0, 7) == 0
    assert consistency_proof_size(4, 8) == 1  # The old root is known: only its sibling.


def test_root_from_inclusion_proof() -> None:
    assert root_from_inclusion_proof(leaf_hash(LEAVES[5]), 5, 9, TREE.inclusion_proof(5, 9)) == (
        TREE.root(9)
    )


def test_errors_are_value_errors() -> None:
    for error in (RootMismatchError, ProofSizeError, HashSizeError, TreeRangeError):
        assert issubclass(error, ProofError)
    assert issubclass(ProofError, ValueError)
    # gateway.merkle re-exports the verification API under the same objects.
    assert merkle.verify_inclusion is verify_inclusion
    assert merkle.verify_consistency is verify_consistency
    assert merkle.RootMismatchError is RootMismatchError


# --- Shared vectors: the edge cases of proof/verify_test.go --------------------------------


@pytest.fixture(scope="module")
def edge_cases(shared_vectors: Path) -> dict[str, Any]:
    data = json.loads((shared_vectors / "rfc6962-vectors.json").read_text())
    cases: dict[str, Any] = data["edge_cases"]
    return cases


def test_vector_edge_case_constants(edge_cases: dict[str, Any]) -> None:
    constants = edge_cases["constants"]
    assert bytes.fromhex(constants["sha256EmptyTreeHash"]["hex"]) == EMPTY_ROOT
    assert bytes.fromhex(constants["sha256SomeHash"]["hex"]) == SOME_HASH


def test_vector_edge_case_consistency(edge_cases: dict[str, Any]) -> None:
    # Includes "don't care" 12-byte roots: with old size 0 roots are not consulted, with
    # equal sizes they must be equal (verify_test.go:331-360).
    assert len(edge_cases["consistency"]) == 13
    for case in edge_cases["consistency"]:
        args = (
            case["size1"],
            case["size2"],
            bytes.fromhex(case["root1"]),
            bytes.fromhex(case["root2"]),
            [bytes.fromhex(h) for h in case["proof"]],
        )
        if case["want_error"]:
            with pytest.raises(ProofError):
                verify_consistency(*args)
        else:
            verify_consistency(*args)


def test_vector_edge_case_inclusion_empty_proof(edge_cases: dict[str, Any]) -> None:
    spec = edge_cases["inclusion_empty_proof_must_fail"]
    assert spec["proof"] == []
    for index, size in spec["index_size_pairs"]:
        for case in spec["cases_each_must_fail"]:
            hashed, expected = bytes.fromhex(case["leaf_hash"]), bytes.fromhex(case["root"])
            with pytest.raises(ProofError):
                verify_leaf_hash_inclusion(hashed, index, size, [], expected)


def test_vector_edge_case_single_entry(edge_cases: dict[str, Any]) -> None:
    spec = edge_cases["inclusion_single_entry"]
    data = bytes.fromhex(spec["leaf_input_hex"])
    assert data == spec["leaf_input_ascii"].encode()
    h = leaf_hash(data)
    assert len(spec["cases"]) == 4
    for case in spec["cases"]:
        values = {"H": h, "": b""}
        hashed, expected = values[case["leaf_hash"]], values[case["root"]]
        if case["want_error"]:
            with pytest.raises(ProofError):
                verify_leaf_hash_inclusion(hashed, 0, 1, [], expected)
        else:
            verify_leaf_hash_inclusion(hashed, 0, 1, [], expected)
            verify_inclusion(data, 0, 1, [], expected)


# --- An auditor's offline verifier needs only rfc6962.py and merkle_verify.py -----------------


def test_verifier_runs_from_two_files(tmp_path: Path) -> None:
    package = tmp_path / "gateway"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = Path(gateway.merkle_verify.__file__).parent
    for name in ("rfc6962.py", "merkle_verify.py"):
        (package / name).write_bytes((source / name).read_bytes())
    proof = TREE.inclusion_proof(7, 100)
    script = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from gateway.merkle_verify import verify_inclusion, verify_consistency
import gateway
assert gateway.__file__.startswith({str(tmp_path)!r}), gateway.__file__
verify_inclusion({LEAVES[7]!r}, 7, 100, {proof!r}, {TREE.root(100)!r})
verify_consistency(5, 100, {TREE.root(5)!r}, {TREE.root(100)!r}, {TREE.consistency_proof(5, 100)!r})
project = sorted(m for m in sys.modules if m.split(".")[0] in ("gateway", "device", "cloud"))
print(" ".join(project))
"""
    # -S: no site-packages, so not even the editable install of this project is importable.
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["gateway", "gateway.merkle_verify", "gateway.rfc6962"]
