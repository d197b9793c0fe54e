"""The module reproduces tests/vectors/state-tree-v1.json, made from docs/protocol.md by
tests/vectors/make_state_tree.py with hashlib only (not through cloud.contracts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloud.contracts import stateroot
from cloud.contracts.statetree import StateTree
from cloud.contracts.statetree_hash import record_key
from cloud.contracts.statetree_proof import proof_from_bytes, proof_from_json, verify_proof

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "state-tree-v1.json").read_text())


@pytest.mark.parametrize("case", VECTORS["record_keys"], ids=lambda c: c["framed"][:24])
def test_record_keys(case: dict[str, Any]) -> None:
    fields = [bytes.fromhex(f) for f in case["fields_hex"]]
    key = record_key(case["contract"], case["record_type"], *fields)
    assert key.hex() == case["key"]


@pytest.mark.parametrize("case", VECTORS["trees"], ids=lambda c: c["name"])
def test_trees_and_proofs(case: dict[str, Any]) -> None:
    tree = StateTree()
    tree.update({bytes.fromhex(r["key"]): bytes.fromhex(r["value"]) for r in case["records"]})
    assert tree.root.hex() == case["root"]
    for want in case["proofs"]:
        key = bytes.fromhex(want["key"])
        value = None if want["value"] is None else bytes.fromhex(want["value"])
        proof = tree.prove(key)
        assert proof.to_bytes().hex() == want["proof"]
        assert proof.to_json() == want["json"]
        assert proof_from_bytes(bytes.fromhex(want["proof"])) == proof
        assert proof_from_json(want["json"]) == proof
        verify_proof(tree.root, key, value, proof)


def test_the_vectors_cover_every_kind_of_proof() -> None:
    kinds = {
        (p["value"] is None, p["json"]["leaf"] is None)
        for t in VECTORS["trees"]
        for p in t["proofs"]
    }
    # inclusion; absent at an empty slot; absent beside another leaf on the key's path
    assert kinds == {(False, False), (True, True), (True, False)}
    bitmaps = {p["json"]["bitmap"] for t in VECTORS["trees"] for p in t["proofs"]}
    assert "8008" in bitmaps  # a path past empty siblings (a chain of one-sided nodes)


@pytest.mark.parametrize("case", VECTORS["state_root_entries"], ids=lambda c: c["entry"][:20])
def test_state_root_entries(case: dict[str, Any]) -> None:
    entry = stateroot.StateRoot(case["records"], case["covers"], bytes.fromhex(case["root"]))
    assert entry.encode().hex() == case["entry"]
    assert stateroot.parse(bytes.fromhex(case["entry"])) == entry
