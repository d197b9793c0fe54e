"""Content identifiers for certificate documents (issue 11 §6): a CIDv1 of the document's bytes
with the raw codec and a sha2-256 multihash, written in multibase base32 lower case.

Byte layout (multiformats: github.com/multiformats/cid, multicodec, multihash, multibase):

    cid bytes = 0x01 (CID version 1, varint)
              ‖ 0x55 (multicodec "raw", varint)
              ‖ 0x12 (multihash "sha2-256", varint) ‖ 0x20 (digest length 32, varint)
              ‖ SHA-256(document)                                         36 bytes in all
    text      = "b" (multibase base32, RFC 4648 §6 alphabet, lower case, no padding)
              ‖ base32(cid bytes)                                         59 characters

Every code here is below 0x80, so each varint is its one byte. Only this one form is
accepted: a CID of another version, codec, hash or base is refused, so one document has one
name. Known answers (tests/cloud/contracts/test_cid.py): the empty document is
bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

VERSION: Final = 0x01
RAW: Final = 0x55
SHA2_256: Final = 0x12
DIGEST_SIZE: Final = 32
PREFIX: Final = bytes((VERSION, RAW, SHA2_256, DIGEST_SIZE))
BASE32: Final = "b"
LENGTH: Final = 1 + (8 * (len(PREFIX) + DIGEST_SIZE) + 4) // 5  # 59 characters
_ALPHABET: Final = frozenset("abcdefghijklmnopqrstuvwxyz234567")


class CidError(ValueError):
    """A CID that is not this form, or a document that does not match it; str() says got/want."""


def cid_of(data: bytes) -> str:
    """Return the CIDv1 (raw, sha2-256, base32) of `data`. Raises TypeError for non-bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"got {type(data).__name__}, want bytes")
    raw = PREFIX + hashlib.sha256(data).digest()
    return BASE32 + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def parse(cid: object) -> bytes:
    """Return the 32-byte SHA-256 digest a CID names. Raises CidError saying which part is
    wrong: type or length, multibase prefix, base32 alphabet, version, codec, hash, length."""
    if type(cid) is not str:
        raise CidError(f"cid: got {type(cid).__name__}, want a string")
    if len(cid) != LENGTH:
        raise CidError(f"cid: got {len(cid)} characters, want {LENGTH}")
    if cid[0] != BASE32:
        raise CidError(f"cid multibase: got {cid[0]!r}, want 'b' (base32 lower case)")
    body = cid[1:]
    if not set(body) <= _ALPHABET:
        bad = sorted(set(body) - _ALPHABET)[0]
        raise CidError(f"cid base32: got {bad!r}, want a-z or 2-7")
    raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    if base64.b32encode(raw).decode("ascii").rstrip("=").lower() != body:
        raise CidError("cid base32: trailing bits are not zero (not the canonical encoding)")
    for name, got, want in zip(
        ("version", "codec", "hash", "digest length"), raw[:4], PREFIX, strict=True
    ):
        if got != want:
            raise CidError(f"cid {name}: got 0x{got:02x}, want 0x{want:02x}")
    return raw[4:]


def verify(cid: str, data: bytes) -> None:
    """Require `data` to be the document `cid` names (what fetching by CID re-checks). Raises
    CidError for a malformed CID or a document whose hash differs."""
    digest = parse(cid)
    if not hmac.compare_digest(digest, hashlib.sha256(data).digest()):
        raise CidError(f"document: its CID is {cid_of(data)}, want {cid}")
