"""RFC 6962 Merkle tree hashing: the one definition of PharmaSync's leaf and node hash rules.

RFC 6962 section 2.1 (kept unchanged by RFC 9162 section 2.1.1) defines, with SHA-256:

    MTH({})      = SHA-256()                                  the empty tree
    leaf hash    = SHA-256(0x00 || d)                         one leaf input d
    node hash    = SHA-256(0x01 || left || right)             an interior node

The distinct one-byte prefixes are domain separation: no leaf input can be replayed as an
interior node and vice versa (RFC 6962 section 2.1, RFC 9162 section 2.1.1). Modelled on
transparency-dev/merkle `rfc6962/rfc6962.go` (`RFC6962LeafHashPrefix = 0`, `...NodeHashPrefix = 1`).

Tree building, proofs and their verification live in `gateway.merkle` and
`gateway.merkle_verify`; both import these rules rather than restating them.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Final

# RFC 6962 section 2.1: "0x00 || d(n)" for leaves, "0x01 || MTH(left) || MTH(right)" for nodes.
LEAF_PREFIX: Final = 0x00
NODE_PREFIX: Final = 0x01

# The same prefixes as one-byte strings, ready to concatenate on hot paths.
LEAF_PREFIX_BYTES: Final = bytes((LEAF_PREFIX,))
NODE_PREFIX_BYTES: Final = bytes((NODE_PREFIX,))

HASH_SIZE: Final = 32
"""Bytes in every leaf hash, node hash and root (SHA-256)."""

# RFC 6962 section 2.1: "The hash of an empty list is the hash of an empty string:
# MTH({}) = SHA-256()."
# echo -n | sha256sum -> e3b0c442...b855
EMPTY_ROOT: Final = sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """Return SHA-256(0x00 || data), the hash of one leaf input (RFC 6962 section 2.1)."""
    return sha256(LEAF_PREFIX_BYTES + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return SHA-256(0x01 || left || right), an interior node (RFC 6962 section 2.1).

    Hashes the bytes as given: callers that need 32-byte children check that themselves
    (the RFC 6962 test vector "N123"/"N456" hashes 4-byte children).
    """
    return sha256(NODE_PREFIX_BYTES + left + right).digest()
