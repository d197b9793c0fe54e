"""Record keys and the state tree's hash rules (cloud/contracts/statetree_hash.py)."""

from __future__ import annotations

import hashlib
import struct

import pytest

from cloud.contracts.statetree_hash import (
    EMPTY,
    LEAF_TAG,
    NODE_TAG,
    bit,
    grouped_key,
    leaf_hash,
    node_hash,
    record_key,
    value_hash,
)
from device import schnorr


def test_record_key_is_sha256_of_the_length_framed_parts() -> None:
    framed = b"\x04lots\x01" + struct.pack(">I", 2) + b"ab" + struct.pack(">I", 1) + b"c"
    assert record_key("lots", 1, "ab", "c") == hashlib.sha256(framed).digest()
    assert record_key("lots", 1, b"ab", b"c") == record_key("lots", 1, "ab", "c")


def test_framing_keeps_distinct_records_apart() -> None:
    keys = {
        record_key("lots", 1, "ab", "c"),
        record_key("lots", 1, "a", "bc"),
        record_key("lots", 1, "abc"),
        record_key("lots", 1, "abc", ""),
        record_key("lots", 1),
        record_key("lots", 2, "ab", "c"),  # a serial with the same strings as a lot
        record_key("lot", 1, "sab", "c"),
        record_key("lotsx", 1, "ab", "c"),
    }
    assert len(keys) == 8


def test_record_key_refuses_what_it_cannot_frame() -> None:
    with pytest.raises(ValueError, match=r"contract name is 0 bytes, want 1..255"):
        record_key("", 1)
    with pytest.raises(ValueError, match="contract name is 256 bytes"):
        record_key("x" * 256, 1)
    with pytest.raises(ValueError, match=r"record type 256, want 0..255"):
        record_key("lots", 256)
    with pytest.raises(ValueError, match="record type -1"):
        record_key("lots", -1)
    with pytest.raises(UnicodeEncodeError):
        record_key("lots", 1, "\ud800")


def test_grouped_key_is_the_lots_prefix_then_the_record_key() -> None:
    gtin, lot = "09506000134352", "LOT-A1"
    framed = struct.pack(">I", 14) + gtin.encode() + struct.pack(">I", 6) + lot.encode()
    group = hashlib.sha256(b"PharmaSync/state/group/v1" + framed).digest()
    key = grouped_key("lots", 1, gtin, lot)
    assert key == group[:3] + record_key("lots", 1, gtin, lot)[3:]
    # docs/protocol.md "Record keys": the example, and one lot's records under one prefix
    assert key.hex() == "f40a7a0791195bbd889bad9549f263a954d02ba5b9b4f7b6f47399b9315e51f4"
    registration = grouped_key("lots", 14, gtin, lot, "1")
    assert registration.hex().startswith("f40a7a16") and registration.hex().endswith("e73b349f")
    assert grouped_key("lots", 2, gtin, lot).hex()[:8] == "f40a7ac9"
    assert grouped_key("lots", 1, gtin, "LOT-A2")[:3] != key[:3]
    with pytest.raises(ValueError, match="grouped key of 1 fields, want at least 2"):
        grouped_key("lots", 1, gtin)


def test_the_lots_public_records_are_grouped_and_no_others() -> None:
    from cloud.contracts import lots, pack_facts

    grouped = {t.name for t in (lots.LOT, lots.QUALITY, lots.RECALL, lots.COLDCHAIN)}
    grouped.add(pack_facts.REGISTRATION.name)
    kinds = [v for m in (lots, pack_facts) for v in vars(m).values() if hasattr(v, "grouped")]
    assert {t.name for t in kinds if t.grouped} == grouped
    assert lots.LOT.key("G", "L") == grouped_key("lots", 1, "G", "L")
    assert pack_facts.PACK.key("G", "S") == record_key("lots", 15, "G", "S")


def test_leaf_and_node_are_bip340_tagged_hashes() -> None:
    key, left, right = bytes(range(32)), b"\x11" * 32, b"\x22" * 32
    digest = value_hash(b"released")
    assert digest == hashlib.sha256(b"released").digest()
    assert leaf_hash(key, digest) == schnorr.tagged_hash(LEAF_TAG, key + digest)
    assert node_hash(left, right) == schnorr.tagged_hash(NODE_TAG, left + right)
    assert node_hash(left, right) != node_hash(right, left)
    # Leaf and node inputs are both 128 bytes: only the tag keeps them apart.
    assert leaf_hash(left, right) != node_hash(left, right)


def test_domain_separated_from_rfc6962() -> None:
    # RFC 6962 hashes 0x00 ‖ leaf and 0x01 ‖ left ‖ right; a tagged hash's input begins
    # with SHA-256(tag), whose first byte is neither, for both tags.
    for tag in (LEAF_TAG, NODE_TAG):
        assert hashlib.sha256(tag.encode()).digest()[0] not in (0x00, 0x01)
    assert bytes(32) == EMPTY


def test_bit_is_most_significant_first() -> None:
    key = bytes([0b1010_0000]) + bytes(30) + b"\x01"
    assert [bit(key, i) for i in range(4)] == [1, 0, 1, 0]
    assert bit(key, 255) == 1
    assert bit(key, 254) == 0
