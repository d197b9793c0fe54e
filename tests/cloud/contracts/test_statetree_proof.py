"""State tree proofs: bytes, JSON, and what verification refuses (statetree_proof.py)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.contracts.statetree import StateTree
from cloud.contracts.statetree_hash import EMPTY
from cloud.contracts.statetree_proof import (
    Proof,
    ProofFormatError,
    ProofLeaf,
    ProofMismatchError,
    RootMismatchError,
    proof_from_bytes,
    proof_from_json,
    verify_proof,
)
from gateway import jsonbound

A = bytes.fromhex("abc0") + bytes(30)
B = bytes.fromhex("abc8") + bytes(30)
C = bytes.fromhex("40") + bytes(31)


def small_tree() -> StateTree:
    tree = StateTree()
    tree.update({A: b"a", B: b"b", C: b"c"})
    return tree


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.binary(min_size=32, max_size=32), st.binary(max_size=4), max_size=20),
    st.binary(min_size=32, max_size=32),
)
def test_bytes_and_json_round_trip(records: dict[bytes, bytes], key: bytes) -> None:
    tree = StateTree()
    tree.update(records)
    for k in [*records, key]:
        proof = tree.prove(k)
        assert proof_from_bytes(proof.to_bytes()) == proof
        text = json.dumps(proof.to_json())
        assert proof_from_json(jsonbound.loads(text.encode(), max_bytes=100_000)) == proof


def test_bytes_layout() -> None:
    proof = small_tree().prove(A)
    data = proof.to_bytes()
    # version 1, ends at a leaf, key, value hash, depth 13, bitmap 1000_0000 0000_1000,
    # then the two non-empty siblings (depths 0 and 12): 2 + 64 + 2 + 2 + 64 bytes.
    assert data[:2] == b"\x01\x01" and data[2:34] == A
    assert data[66:68] == (13).to_bytes(2, "big") and data[68:70] == b"\x80\x08"
    assert len(data) == 134
    assert proof.siblings[1:12] == (EMPTY,) * 11
    assert proof.to_json()["bitmap"] == "8008" and len(proof.to_json()["siblings"]) == 2


def mutate(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes([value]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: b"", "proof is 0 bytes, want at least 4"),
        (lambda d: mutate(d, 0, 2), "proof version 2, want 1"),
        (lambda d: mutate(d, 1, 7), "proof end 7, want 0 \\(empty\\) or 1 \\(leaf\\)"),
        (lambda d: d[:-1], "proof is 133 bytes, want 134 for depth 13"),
        (lambda d: d + b"\x00", "proof is 135 bytes, want 134"),
        (lambda d: mutate(d, 69, 0x00), "bitmap bit 12 is clear, want set"),
        (lambda d: mutate(d, 69, 0x0C), "bitmap has bits set beyond depth 13"),
        (lambda d: d[:66] + b"\x01\x01" + d[68:], "proof depth 257, want 0..256"),
    ],
)
def test_malformed_bytes_are_refused(make: Any, message: str) -> None:
    with pytest.raises(ProofFormatError, match=message):
        proof_from_bytes(make(small_tree().prove(A).to_bytes()))


def test_too_deep_is_refused() -> None:
    data = b"\x01\x00" + (257).to_bytes(2, "big") + b"\xff" * 33 + bytes(32 * 257)
    with pytest.raises(ProofFormatError, match=r"proof depth 257, want 0..256"):
        proof_from_bytes(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version 2, want 1"),
        ({"version": True}, "version True, want 1"),
        ({"version": 1.0}, "version 1.0, want 1"),
        ({"depth": -1}, "depth -1, want an integer 0..256"),
        ({"depth": "13"}, "depth '13'"),
        ({"bitmap": "80"}, "bitmap is 1 bytes, want 2"),
        ({"bitmap": "80x8"}, "bitmap is not hex"),
        ({"bitmap": "80 08"}, "bitmap is not lowercase hex without spaces"),
        ({"bitmap": "800C"}, "bitmap is not lowercase hex"),
        ({"siblings": "00"}, "siblings is str, want a list"),
        ({"siblings": []}, "0 siblings, want 2"),
        ({"siblings": ["00", "00"]}, "siblings\\[0\\] is 1 bytes, want 32"),
        ({"leaf": {"key": "00"}}, "leaf: want null or an object with key and value_hash"),
        ({"leaf": {"key": 1, "value_hash": "00"}}, "leaf.key is int, want a hex string"),
        ({"extra": 1}, "proof fields"),
    ],
)
def test_malformed_json_is_refused(change: dict[str, Any], message: str) -> None:
    value = {**small_tree().prove(A).to_json(), **change}
    with pytest.raises(ProofFormatError, match=message):
        proof_from_json(value)
    with pytest.raises(ProofFormatError, match="proof is list, want an object"):
        proof_from_json([])


def test_proof_objects_validate() -> None:
    with pytest.raises(ProofFormatError, match="leaf key is 31 bytes, want 32"):
        ProofLeaf(bytes(31), bytes(32))
    with pytest.raises(ProofFormatError, match="sibling at depth 0 is empty, want non-empty"):
        Proof(None, (EMPTY,))
    with pytest.raises(ProofFormatError, match=r"257 siblings, want 0..256"):
        Proof(None, (b"\x01" * 32,) * 257)


def test_verification_errors_say_what_and_why() -> None:
    tree = small_tree()
    root = tree.root
    with pytest.raises(ProofMismatchError, match=f"proof ends at leaf {A.hex()}, want {B.hex()}"):
        verify_proof(root, B, b"b", tree.prove(A))
    with pytest.raises(ProofMismatchError, match=r"value hash computed .*, leaf has"):
        verify_proof(root, A, b"not a", tree.prove(A))
    with pytest.raises(ProofMismatchError, match=f"proof includes {A.hex()}, want it absent"):
        verify_proof(root, A, None, tree.prove(A))
    absent = bytes.fromhex("ab00") + bytes(30)
    with pytest.raises(ProofMismatchError, match="proof ends at an empty slot, want the leaf"):
        verify_proof(root, absent, b"x", tree.prove(absent))
    # C's leaf (depth 1) offered as proof that a key under 0xab… is absent: not on its path.
    with pytest.raises(ProofMismatchError, match=r"shares 0 bits with .*, want at least 1"):
        verify_proof(root, bytes.fromhex("ab") + bytes(31), None, tree.prove(bytes(32)))
    other = StateTree()
    other.update({A: b"a", B: b"b", C: b"changed"})
    with pytest.raises(RootMismatchError) as caught:
        verify_proof(root, A, b"a", other.prove(A))
    assert caught.value.expected == root and caught.value.computed == other.root
    assert f"computed {other.root.hex()}, expected {root.hex()}" in str(caught.value)
    with pytest.raises(ValueError, match="root is 31 bytes, want 32"):
        verify_proof(root[1:], A, b"a", tree.prove(A))


def test_a_proof_of_absence_survives_its_neighbours_moving() -> None:
    # Many records: an absent key's proof ends at an empty slot or at a neighbour's leaf.
    rnd = random.Random(5)
    tree = StateTree()
    tree.update({rnd.randbytes(32): b"x" for _ in range(500)})
    ends = set()
    for _ in range(200):
        key = rnd.randbytes(32)
        proof = tree.prove(key)
        ends.add(proof.leaf is None)
        verify_proof(tree.root, key, None, proof)
    assert ends == {True, False}
