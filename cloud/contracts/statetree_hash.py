"""State tree hashes and record keys, byte by byte (docs/protocol.md, "State tree").

The state root (DESIGN.md, "State root") is one sparse Merkle tree over every contract's
records with 256-bit keys and leaves at their shortest unique prefix, as Diem's Jellyfish
Merkle tree. This module is its hash format, the one definition the tree, its proofs, the
ledger and every auditor import:

    record key  = SHA-256(u8 len(contract) ‖ contract ‖ u8 record type
                          ‖ for each field: u32 len(field) ‖ field)
    grouped key = the first GROUP_BYTES bytes of SHA-256("PharmaSync/state/group/v1"
                          ‖ u32 len(field 1) ‖ field 1 ‖ u32 len(field 2) ‖ field 2)
                  ‖ the record key's bytes GROUP_BYTES..31
    value hash  = SHA-256(value)
    leaf hash   = tagged_hash("PharmaSync/state/leaf", key ‖ value hash)
    node hash   = tagged_hash("PharmaSync/state/node", left ‖ right)
    empty       = 32 zero bytes

tagged_hash is BIP-340's (docs/protocol.md, "Signatures"). SHA-256 of the two tags begins
0xbf and 0xaa, so no leaf or node input is an RFC 6962 input (those begin 0x00 or 0x01) and
the two never share an input with each other.

A grouped key (record types that ask for it: a lot's public records and registrations, keyed
by GTIN and lot first) places every record of one (GTIN, lot) under the same 24-bit prefix,
so up to ~16M records they sit together in one small subtree and a proof of all of them
shares one path from the root (public_multiproof.py): a pack's public check proves two
paths, not six. The other 232 bits are the record key's, so two records still collide only
if their record keys' last 29 bytes do. The empty subtree is a constant, not a hash:
finding a leaf or node whose hash is 32 zero bytes is a SHA-256 preimage, and a verifier
needs no hashing to recognise it (Diem's placeholder plays the same part).
"""

from __future__ import annotations

import hashlib
import struct

LEAF_TAG = "PharmaSync/state/leaf"
NODE_TAG = "PharmaSync/state/node"
EMPTY = bytes(32)  # the hash of an empty subtree, and the root of an empty tree
KEY_BITS = 256  # keys are SHA-256 outputs; a leaf sits at depth 0..256
HASH_SIZE = 32
MAX_CONTRACT_NAME = 0xFF  # UTF-8 bytes, framed by one length byte
MAX_FIELD = 0xFFFF_FFFF  # bytes, framed by a u32
GROUP_TAG = b"PharmaSync/state/group/v1"
GROUP_BYTES = 3  # a grouped key's prefix: 24 bits, one subtree per lot up to ~2**24 records

# Fast path: SHA-256 objects already fed with SHA256(tag) ‖ SHA256(tag); copying one saves
# hashing the 64-byte prefix on every node of every update (see bench/statetree.py).
_LEAF_MIDSTATE = hashlib.sha256(hashlib.sha256(LEAF_TAG.encode()).digest() * 2)
_NODE_MIDSTATE = hashlib.sha256(hashlib.sha256(NODE_TAG.encode()).digest() * 2)


def record_key(contract: str, record_type: int, *fields: bytes | str) -> bytes:
    """Return the 32-byte tree key of one record: SHA-256 of its length-framed parts.

    Every variable part carries its length, so ("ab", "c") and ("a", "bc") differ, and the
    record type keeps a lot and a serial with equal strings apart. A str field is its UTF-8;
    a record type fixes which fields are str and which bytes, so the type is not framed.
    Requires a contract name of 1..255 UTF-8 bytes, 0 <= record_type <= 255 and fields of at
    most 2**32 - 1 bytes; raises ValueError otherwise (UnicodeEncodeError for lone
    surrogates).
    """
    name = contract.encode()
    if not 1 <= len(name) <= MAX_CONTRACT_NAME:
        raise ValueError(f"contract name is {len(name)} bytes, want 1..{MAX_CONTRACT_NAME}")
    if not 0 <= record_type <= 0xFF:
        raise ValueError(f"record type {record_type}, want 0..255")
    h = hashlib.sha256(bytes((len(name),)) + name + bytes((record_type,)))
    for field in fields:
        data = field.encode() if isinstance(field, str) else bytes(field)
        if len(data) > MAX_FIELD:
            raise ValueError(f"field is {len(data)} bytes, want at most {MAX_FIELD}")
        h.update(struct.pack(">I", len(data)))
        h.update(data)
    return h.digest()


def grouped_key(contract: str, record_type: int, *fields: bytes | str) -> bytes:
    """Return the grouped tree key of one record (module docstring): its first two fields'
    group prefix, then the record key's last 29 bytes. Requires at least two fields; raises
    ValueError as record_key does."""
    if len(fields) < 2:
        raise ValueError(f"a grouped key of {len(fields)} fields, want at least 2")
    h = hashlib.sha256(GROUP_TAG)
    for field in fields[:2]:
        data = field.encode() if isinstance(field, str) else bytes(field)
        h.update(struct.pack(">I", len(data)))
        h.update(data)
    return h.digest()[:GROUP_BYTES] + record_key(contract, record_type, *fields)[GROUP_BYTES:]


def value_hash(value: bytes) -> bytes:
    """Return SHA-256(value), what a leaf commits to (the value itself stays off the proof)."""
    return hashlib.sha256(value).digest()


def leaf_hash(key: bytes, value_digest: bytes) -> bytes:
    """Return tagged_hash("PharmaSync/state/leaf", key ‖ value_digest).

    Requires 32-byte key and value_digest (value_hash of the value); not checked here, on
    the hot path: callers check where bytes enter (proof parsing, the tree's put).
    """
    h = _LEAF_MIDSTATE.copy()
    h.update(key)
    h.update(value_digest)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return tagged_hash("PharmaSync/state/node", left ‖ right); requires 32-byte hashes."""
    h = _NODE_MIDSTATE.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def bit(key: bytes, depth: int) -> int:
    """Return bit `depth` of key, most significant first: 0 goes left, 1 right.

    Requires 0 <= depth < 8 * len(key).
    """
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


def check_hash(name: str, value: object, error: type[ValueError] = ValueError) -> None:
    """Raise `error` unless value is 32 bytes (a key or a hash), saying what it got."""
    if not isinstance(value, bytes):
        raise error(f"{name} is {type(value).__name__}, want {HASH_SIZE} bytes")
    if len(value) != HASH_SIZE:
        raise error(f"{name} is {len(value)} bytes, want {HASH_SIZE}")
