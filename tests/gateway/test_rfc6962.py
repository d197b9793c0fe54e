"""Tests for gateway.rfc6962: the RFC 6962 leaf and node hash rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from gateway import rfc6962
from gateway.rfc6962 import EMPTY_ROOT, LEAF_PREFIX, NODE_PREFIX, leaf_hash, node_hash


def test_prefixes_are_the_rfc_6962_domain_separators() -> None:
    # RFC 6962 section 2.1: 0x00 before leaf data, 0x01 before two child hashes.
    assert LEAF_PREFIX == 0x00
    assert NODE_PREFIX == 0x01
    assert rfc6962.LEAF_PREFIX_BYTES == b"\x00"
    assert rfc6962.NODE_PREFIX_BYTES == b"\x01"
    assert rfc6962.HASH_SIZE == 32


def test_known_answers() -> None:
    # echo -n | sha256sum
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # printf '\x00' | sha256sum
    assert (
        leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    # printf '\x00data' | sha256sum
    assert leaf_hash(b"data").hex() == (
        "0d3aed023148ffd2a259fbd0cdc7fb3cf975658760d3775b82af6f90aacc2dfc"
    )
    # printf '\x01' | sha256sum: a node over two empty children is SHA-256(0x01) alone.
    assert node_hash(b"", b"").hex() == (
        "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a"
    )


def test_hashes_are_prefix_then_concatenation() -> None:
    left, right = hashlib.sha256(b"l").digest(), hashlib.sha256(b"r").digest()
    assert leaf_hash(b"reading") == hashlib.sha256(b"\x00reading").digest()
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != node_hash(right, left)


def test_domain_separation_between_leaves_and_nodes() -> None:
    # A 64-byte leaf that looks like two child hashes must not hash like their parent.
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(left + right) != node_hash(left, right)
    assert leaf_hash(b"") != EMPTY_ROOT


@pytest.fixture(scope="module")
def hasher_vectors(shared_vectors: Path) -> list[dict[str, Any]]:
    data = json.loads((shared_vectors / "rfc6962-vectors.json").read_text())
    vectors: list[dict[str, Any]] = data["hasher_vectors"]
    return vectors


def test_every_hasher_vector(hasher_vectors: list[dict[str, Any]]) -> None:
    # transparency-dev/merkle rfc6962/rfc6962_test.go, transcribed in the shared vectors.
    assert len(hasher_vectors) == 4
    for vector in hasher_vectors:
        what = vector["what"]
        if "left_hex" in vector:
            got = node_hash(bytes.fromhex(vector["left_hex"]), bytes.fromhex(vector["right_hex"]))
        elif what.startswith("empty tree root"):
            assert vector["input_hex"] == ""
            got = EMPTY_ROOT
        elif what.startswith("leaf hash"):
            got = leaf_hash(bytes.fromhex(vector["input_hex"]))
        else:
            pytest.fail(f"unknown hasher vector kind {what!r} ({vector['source']})")
        assert got.hex() == vector["want"], vector["source"]
