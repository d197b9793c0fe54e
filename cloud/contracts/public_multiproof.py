"""The state tree proofs of a public check bundle, written together (bundle versions 2 and
3, docs/protocol.md "Public check proof"): each record's proof leaves out what the verifier
already holds. Version 3's grouped keys (statetree_hash.grouped_key) put a lot's records
in one subtree, so all but the first of them leave out nearly their whole path.

- Its own leaf: a present record's proof ends at the leaf of the key the verifier recomputes
  and the hash of the value it reads (end byte 2: 64 bytes saved).
- The top siblings it shares with an earlier record's proof: two keys whose paths share
  their first p bits pass through the same nodes down to depth p, so their siblings at
  depths 0 .. p - 1 are the same hashes. Record j takes its first `s` siblings from the
  earlier record i with the largest s = min(common prefix bits of the two keys, depth of
  i's proof, depth of j's proof) (the first such i on a tie; s ≤ 255), and writes only the
  rest. When both paths go on below the depth s where they part (s is their common prefix
  and both proofs are deeper), j's sibling at depth s is the node at depth s + 1 on i's
  path, which the verifier hashes up from i's proof: it is left out too. The verifier
  derives what was left out itself from the keys and depths, and refuses a written count
  that differs (one encoding per bundle), then checks every rebuilt proof against the state
  root as if it had come whole: a wrong shared sibling only leads to another root.

Per record (after its value):

    u8  end: 0 = an empty slot, 1 = another key's leaf, 2 = its own leaf (left out)
    [32 leaf key ‖ 32 leaf value hash]      only when end = 1
    u16 depth (0..256)        u8 m: leading siblings left out (s, or s + 1 with the node
                              where the paths part)
    ceil((depth - m) / 8) bytes bitmap: bit k (most significant first) set iff the sibling
        at depth m + k is not EMPTY; spare low bits zero
    32 bytes per set bit

Pure; errors are PublicProofFormatError (the caller's), raised through `fail`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, NoReturn

from cloud.contracts.statetree_hash import EMPTY, bit, leaf_hash, node_hash, value_hash
from cloud.contracts.statetree_proof import Proof, ProofLeaf, common_prefix_bits

END_EMPTY: Final = 0
END_OTHER_LEAF: Final = 1
END_OWN_LEAF: Final = 2
MAX_SHARED: Final = 255


@dataclass(frozen=True)
class RawProof:
    """One record's proof as read, before the keys are known: its end, the other leaf (64
    bytes, end 1 only), depth, shared count and the written siblings by depth s .. depth-1
    (EMPTY where the bitmap is clear)."""

    end: int
    leaf: bytes
    depth: int
    shared: int
    rest: tuple[bytes, ...]


def shared_with(keys: Sequence[bytes], depths: Sequence[int], j: int) -> tuple[int, int, bool]:
    """(i, s, parts): the earlier record whose top siblings record j takes, how many, and
    whether j's sibling at depth s is the node where their paths part (hashed from i's
    proof); (-1, 0, False) for the first record."""
    best, source, parts = 0, -1, False
    for i in range(j):
        common = common_prefix_bits(keys[i], keys[j])
        s = min(common, depths[i], depths[j], MAX_SHARED)
        split = s == common and s < min(depths[i], depths[j], MAX_SHARED)
        if (s, split) > (best, parts):
            best, source, parts = s, i, split
    return source, best, parts


def node_at(key: bytes, proof: Proof, depth: int) -> bytes:
    """The node at `depth` on `key`'s path, hashed up from the end of `proof`."""
    leaf = proof.leaf
    current = EMPTY if leaf is None else leaf_hash(leaf.key, leaf.value_digest)
    for d in range(proof.depth - 1, depth - 1, -1):
        sibling = proof.siblings[d]
        current = node_hash(sibling, current) if bit(key, d) else node_hash(current, sibling)
    return current


def write(
    keys: Sequence[bytes], values: Sequence[bytes | None], proofs: Sequence[Proof]
) -> list[bytes]:
    """Each record's proof bytes (module docstring), in order."""
    depths = [p.depth for p in proofs]
    out = []
    for j, (key, value, proof) in enumerate(zip(keys, values, proofs, strict=True)):
        leaf = proof.leaf
        if leaf is None:
            head = bytes((END_EMPTY,))
        elif value is not None and (leaf.key, leaf.value_digest) == (key, value_hash(value)):
            head = bytes((END_OWN_LEAF,))
        else:
            head = bytes((END_OTHER_LEAF,)) + leaf.key + leaf.value_digest
        _, s, parts = shared_with(keys, depths, j)
        left_out = s + parts
        rest = proof.siblings[left_out:]
        bitmap = bytearray((len(rest) + 7) // 8)
        for k, sibling in enumerate(rest):
            if sibling != EMPTY:
                bitmap[k >> 3] |= 0x80 >> (k & 7)
        body = b"".join(h for h in rest if h != EMPTY)
        out.append(head + struct.pack(">HB", proof.depth, left_out) + bytes(bitmap) + body)
    return out


def read(take: Callable[[int], bytes], fail: Callable[[str], NoReturn]) -> RawProof:
    """Read one record's proof with `take(n)` (n bytes or `fail`)."""
    end = take(1)[0]
    if end not in (END_EMPTY, END_OTHER_LEAF, END_OWN_LEAF):
        fail(f"proof end {end}, want 0 (empty), 1 (another leaf) or 2 (its own leaf)")
    leaf = take(64) if end == END_OTHER_LEAF else b""
    depth, shared = struct.unpack(">HB", take(3))
    if depth > 256 or shared > depth:
        fail(f"proof of depth {depth} sharing {shared}, want depth <= 256, shared <= depth")
    n = depth - shared
    bitmap = int.from_bytes(take((n + 7) // 8), "big")
    spare = (-n) % 8
    if bitmap & ((1 << spare) - 1):
        fail(f"bitmap has bits set beyond depth {depth}, want zero")
    bits = bitmap >> spare
    rest = tuple(take(32) if bits >> (n - 1 - k) & 1 else EMPTY for k in range(n))
    return RawProof(end, leaf, depth, shared, rest)


def expand(
    raws: Sequence[RawProof],
    keys: Sequence[bytes],
    values: Sequence[bytes | None],
    fail: Callable[[str], NoReturn],
) -> list[Proof]:
    """Rebuild every record's whole proof from what was read and the recomputed `keys`."""
    depths = [r.depth for r in raws]
    proofs: list[Proof] = []
    for j, raw in enumerate(raws):
        source, s, parts = shared_with(keys, depths, j)
        if raw.shared != s + parts:
            want = s + parts
            fail(f"record {j} leaves out {raw.shared} siblings, want {want} (from the keys)")
        top = proofs[source].siblings[:s] if s else ()
        if parts:
            top = (*top, node_at(keys[source], proofs[source], s + 1))
        leaf = None
        if raw.end == END_OTHER_LEAF:
            leaf = ProofLeaf(raw.leaf[:32], raw.leaf[32:])
        elif raw.end == END_OWN_LEAF:
            value = values[j]
            if value is None:
                fail("a proof of its own leaf for an absent record")
            leaf = ProofLeaf(keys[j], value_hash(value))
        proofs.append(Proof(leaf, (*top, *raw.rest)))
    return proofs


__all__ = ["RawProof", "expand", "node_at", "read", "shared_with", "write"]
