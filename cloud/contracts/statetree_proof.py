"""State tree proofs: what they hold, how they verify, their bytes and their JSON.

A proof follows a key's path from the root until it ends, at a leaf or at an empty slot, and
carries the sibling hash at each depth passed (root side first), as Diem's SparseMerkleProof:

- inclusion: it ends at the key's own leaf, whose value hash is SHA-256 of the value;
- non-inclusion: it ends at an empty slot, or at another key's leaf sitting at a prefix the
  key shares (that leaf is alone in the subtree the key would be in, so the key is absent).

Bytes (docs/protocol.md, "State tree proof"):

    u8  version = 1
    u8  end: 0 = an empty slot, 1 = a leaf
    [32 leaf key ‖ 32 leaf value hash]       only when end = 1
    u16 depth: siblings on the path, 0..256
    ceil(depth / 8) bytes bitmap: bit i (most significant first) set iff the sibling at
        depth i is not EMPTY; spare low bits zero
    32 bytes per set bit: the non-empty siblings, root side first

The encoding is canonical: in a tree built by the collapse rule the sibling just above where
a path ends is never empty (else the parent would hold one leaf and collapse), so a proof of
depth > 0 whose last bitmap bit is clear is refused. JSON carries the same fields, in hex.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from cloud.contracts.statetree_hash import (
    EMPTY,
    HASH_SIZE,
    KEY_BITS,
    bit,
    check_hash,
    leaf_hash,
    node_hash,
    value_hash,
)
from gateway.merkle_verify import ProofError, RootMismatchError

VERSION = 1
END_EMPTY = 0
END_LEAF = 1


# The errors are those of every Merkle proof PharmaSync checks (gateway/merkle_verify.py),
# so an auditor catches one ProofError for log, batch and state proofs alike.
__all__ = [
    "Proof",
    "ProofError",
    "ProofFormatError",
    "ProofLeaf",
    "ProofMismatchError",
    "RootMismatchError",
    "common_prefix_bits",
    "proof_from_bytes",
    "proof_from_json",
    "proof_root",
    "verify_proof",
]


class ProofFormatError(ProofError):
    """Proof bytes or JSON that are malformed or not canonical; the message says got/want."""


class ProofMismatchError(ProofError):
    """A well-formed proof about another key or value than the one asked about."""


@dataclass(frozen=True)
class ProofLeaf:
    """The leaf a proof ends at: its 32-byte key and SHA-256 of its value."""

    key: bytes
    value_digest: bytes

    def __post_init__(self) -> None:
        check_hash("leaf key", self.key, ProofFormatError)
        check_hash("leaf value hash", self.value_digest, ProofFormatError)


@dataclass(frozen=True)
class Proof:
    """A path from the root: the leaf it ends at (None: an empty slot) and every sibling
    hash passed, root side first, EMPTY where that side is empty.

    Raises ProofFormatError for more than 256 siblings, a sibling that is not 32 bytes, or a
    non-canonical last sibling (EMPTY; see the module docstring).
    """

    leaf: ProofLeaf | None
    siblings: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.siblings) > KEY_BITS:
            raise ProofFormatError(f"proof has {len(self.siblings)} siblings, want 0..{KEY_BITS}")
        for depth, sibling in enumerate(self.siblings):
            check_hash(f"sibling at depth {depth}", sibling, ProofFormatError)
        if self.siblings and self.siblings[-1] == EMPTY:
            raise ProofFormatError(
                f"sibling at depth {len(self.siblings) - 1} is empty, want non-empty: a path"
                " never ends beside an empty subtree"
            )

    @property
    def depth(self) -> int:
        """Depth of the leaf or empty slot the proof ends at."""
        return len(self.siblings)

    def bitmap(self) -> bytes:
        """Return the bitmap of non-empty siblings (see the module docstring)."""
        bits = bytearray((self.depth + 7) // 8)
        for depth, sibling in enumerate(self.siblings):
            if sibling != EMPTY:
                bits[depth >> 3] |= 0x80 >> (depth & 7)
        return bytes(bits)

    def to_bytes(self) -> bytes:
        """Return the proof's canonical bytes (module docstring)."""
        out = bytearray((VERSION, END_EMPTY if self.leaf is None else END_LEAF))
        if self.leaf is not None:
            out += self.leaf.key + self.leaf.value_digest
        out += struct.pack(">H", self.depth) + self.bitmap()
        for sibling in self.siblings:
            if sibling != EMPTY:
                out += sibling
        return bytes(out)

    def to_json(self) -> dict[str, Any]:
        """Return the proof as a JSON object: the byte fields in lowercase hex."""
        leaf = None
        if self.leaf is not None:
            leaf = {"key": self.leaf.key.hex(), "value_hash": self.leaf.value_digest.hex()}
        return {
            "version": VERSION,
            "leaf": leaf,
            "depth": self.depth,
            "bitmap": self.bitmap().hex(),
            "siblings": [s.hex() for s in self.siblings if s != EMPTY],
        }


def proof_from_bytes(data: bytes) -> Proof:
    """Parse a proof's canonical bytes. Raises ProofFormatError saying what is wrong."""
    if len(data) < 4:
        raise ProofFormatError(f"proof is {len(data)} bytes, want at least 4")
    if data[0] != VERSION:
        raise ProofFormatError(f"proof version {data[0]}, want {VERSION}")
    end, offset = data[1], 2
    leaf = None
    if end == END_LEAF:
        if len(data) < 2 + 2 * HASH_SIZE + 2:
            raise ProofFormatError(f"proof is {len(data)} bytes, want at least {2 + 64 + 2}")
        leaf = ProofLeaf(data[2:34], data[34:66])
        offset = 66
    elif end != END_EMPTY:
        raise ProofFormatError(f"proof end {end}, want {END_EMPTY} (empty) or {END_LEAF} (leaf)")
    (depth,) = struct.unpack_from(">H", data, offset)
    offset += 2
    if depth > KEY_BITS:
        raise ProofFormatError(f"proof depth {depth}, want 0..{KEY_BITS}")
    bitmap = data[offset : offset + (depth + 7) // 8]
    siblings_at = offset + len(bitmap)
    present = _present(depth, bitmap)
    want = siblings_at + HASH_SIZE * sum(present)
    if len(bitmap) != (depth + 7) // 8 or len(data) != want:
        raise ProofFormatError(f"proof is {len(data)} bytes, want {want} for depth {depth}")
    siblings = []
    for here in present:
        if here:
            siblings.append(data[siblings_at : siblings_at + HASH_SIZE])
            siblings_at += HASH_SIZE
        else:
            siblings.append(EMPTY)
    return Proof(leaf, tuple(siblings))


def proof_from_json(value: Any) -> Proof:
    """Parse a proof from decoded JSON (read it with gateway.jsonbound.loads first).

    Raises ProofFormatError naming the field that is missing, mistyped or malformed.
    """
    if not isinstance(value, dict):
        raise ProofFormatError(f"proof is {type(value).__name__}, want an object")
    want = {"version", "leaf", "depth", "bitmap", "siblings"}
    if set(value) != want:
        raise ProofFormatError(f"proof fields {sorted(value)}, want {sorted(want)}")
    if type(value["version"]) is not int or value["version"] != VERSION:
        raise ProofFormatError(f"version {value['version']!r}, want {VERSION}")
    leaf = value["leaf"]
    if leaf is not None:
        if not isinstance(leaf, dict) or set(leaf) != {"key", "value_hash"}:
            raise ProofFormatError("leaf: want null or an object with key and value_hash")
        leaf = ProofLeaf(_hex("leaf.key", leaf["key"]), _hex("leaf.value_hash", leaf["value_hash"]))
    depth = value["depth"]
    if not isinstance(depth, int) or isinstance(depth, bool) or not 0 <= depth <= KEY_BITS:
        raise ProofFormatError(f"depth {depth!r}, want an integer 0..{KEY_BITS}")
    bitmap = _hex("bitmap", value["bitmap"], None)
    siblings = value["siblings"]
    if not isinstance(siblings, list):
        raise ProofFormatError(f"siblings is {type(siblings).__name__}, want a list")
    if len(bitmap) != (depth + 7) // 8:
        raise ProofFormatError(f"bitmap is {len(bitmap)} bytes, want {(depth + 7) // 8}")
    present = _present(depth, bitmap)
    if len(siblings) != sum(present):
        raise ProofFormatError(f"{len(siblings)} siblings, want {sum(present)} (bits set)")
    given = iter(siblings)
    path = tuple(
        _hex(f"siblings[{i}]", next(given)) if here else EMPTY for i, here in enumerate(present)
    )
    return Proof(leaf, path)


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> None:
    """Check that `proof` shows `key` holding `value` (None: absent) under `root`.

    Requires a 32-byte root and key (ValueError otherwise). Raises ProofMismatchError when
    the proof is about another key or value, RootMismatchError (computed, expected) when it
    leads to another root; returns None when the proof holds.
    """
    check_hash("root", root)
    check_hash("key", key)
    leaf = proof.leaf
    if value is not None:
        if leaf is None:
            raise ProofMismatchError(f"proof ends at an empty slot, want the leaf of {key.hex()}")
        if leaf.key != key:
            raise ProofMismatchError(f"proof ends at leaf {leaf.key.hex()}, want {key.hex()}")
        digest = value_hash(value)
        if leaf.value_digest != digest:
            raise ProofMismatchError(
                f"value hash computed {digest.hex()}, leaf has {leaf.value_digest.hex()}"
            )
    elif leaf is not None:
        if leaf.key == key:
            raise ProofMismatchError(f"proof includes {key.hex()}, want it absent")
        # The other leaf must sit on the key's own path, or it says nothing about the key.
        shared = common_prefix_bits(leaf.key, key)
        if shared < proof.depth:
            raise ProofMismatchError(
                f"leaf {leaf.key.hex()} shares {shared} bits with {key.hex()}, want at least"
                f" {proof.depth} (its depth)"
            )
    computed = proof_root(key, proof)
    if computed != root:
        raise RootMismatchError(computed, root, "state root")


def proof_root(key: bytes, proof: Proof) -> bytes:
    """Return the root `proof` leads to along `key`'s path (no check of what it proves)."""
    leaf = proof.leaf
    current = EMPTY if leaf is None else leaf_hash(leaf.key, leaf.value_digest)
    for depth in range(proof.depth - 1, -1, -1):
        sibling = proof.siblings[depth]
        left, right = (sibling, current) if bit(key, depth) else (current, sibling)
        current = node_hash(left, right)
    return current


def common_prefix_bits(a: bytes, b: bytes) -> int:
    """Return how many leading bits two 32-byte keys share (256 if equal)."""
    diff = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return KEY_BITS - diff.bit_length()


def _present(depth: int, bitmap: bytes) -> list[bool]:
    """Return, per depth, whether the bitmap marks its sibling non-empty; raise
    ProofFormatError for set spare bits or a clear last bit (non-canonical)."""
    present = [bool(bitmap[i >> 3] & (0x80 >> (i & 7))) for i in range(min(depth, 8 * len(bitmap)))]
    spare = int.from_bytes(bitmap, "big") & ((1 << (8 * len(bitmap) - depth)) - 1) if bitmap else 0
    if spare:
        raise ProofFormatError(f"bitmap has bits set beyond depth {depth}, want zero")
    if depth and len(present) == depth and not present[-1]:
        raise ProofFormatError(
            f"bitmap bit {depth - 1} is clear, want set: a path never ends beside an empty subtree"
        )
    return present


def _hex(field: str, text: Any, size: int | None = HASH_SIZE) -> bytes:
    """Decode a lowercase-hex JSON string of `size` bytes (any size if None)."""
    if not isinstance(text, str):
        raise ProofFormatError(f"{field} is {type(text).__name__}, want a hex string")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise ProofFormatError(f"{field} is not hex") from None
    if text != data.hex():
        raise ProofFormatError(f"{field} is not lowercase hex without spaces")
    if size is not None and len(data) != size:
        raise ProofFormatError(f"{field} is {len(data)} bytes, want {size}")
    return data
