"""did:key identifiers for secp256k1 keys: how participants are named in contract
transactions (the W3C CCG did:key method, https://w3c-ccg.github.io/did-method-key/).

    did:key:z<base58btc(0xe7 0x01 || 33-byte compressed point)>

    "did:key:"  the method prefix
    "z"         the multibase prefix of base58btc (Bitcoin's alphabet)
    0xe7 0x01   the multicodec secp256k1-pub (0xe7) as an unsigned varint
    point       SEC 1 compressed: 0x02 (even y) or 0x03 (odd y) || x, 32 bytes big-endian

A BIP-340 signature is checked with the x-only key, the point's bytes 1..33 (BIP-340 drops
the parity). So the two DIDs 0x02||x and 0x03||x share one x-only key, and a signature
proves control of that key, not which of the two DIDs was meant: whoever keeps participants
must treat the x-only key (`to_xonly`) as the identity and refuse a second DID with it.
"""

from __future__ import annotations

import functools
from typing import Final

import coincurve

from gateway.refusal import Refused

PREFIX: Final = "did:key:z"
MULTICODEC: Final = b"\xe7\x01"  # secp256k1-pub, varint-encoded
POINT_SIZE: Final = 33
MAX_LENGTH: Final = 64  # characters; a secp256k1 did:key has 57 (35 bytes are <= 48 in base58)
REASON: Final = "did:key"

# Bitcoin's base58 alphabet (no 0, O, I, l), as multibase's base58btc ("z") names it.
ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_DIGITS: Final = {c: i for i, c in enumerate(ALPHABET)}


class DidKeyError(Refused, ValueError):
    """A string that is not a secp256k1 did:key, or bytes that are no compressed point.
    `why` is one of "prefix", "base58", "multicodec", "length", "point"; `detail` says what
    was got and what is wanted."""

    def __init__(self, why: str, detail: str) -> None:
        super().__init__(REASON, f"{why}: {detail}")
        self.why = why


def b58encode(data: bytes) -> str:
    """Return `data` in base58btc: each leading zero byte as "1", the rest as a base-58
    number, most significant digit first."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    digits = []
    while n:
        n, r = divmod(n, 58)
        digits.append(ALPHABET[r])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Return the bytes of base58btc `text` (b58encode's inverse: one string per byte
    string). Raises DidKeyError "base58" for a character outside the alphabet."""
    n = 0
    for i, c in enumerate(text):
        digit = _DIGITS.get(c)
        if digit is None:
            raise DidKeyError("base58", f"got {c!r} at {i}, want a base58btc character")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + n.to_bytes((n.bit_length() + 7) // 8, "big")


def from_point(point: bytes) -> str:
    """Return the did:key of a compressed secp256k1 point (33 bytes). Raises DidKeyError
    "length" or "point" if it is not one."""
    _check_point(point)
    return PREFIX + b58encode(MULTICODEC + point)


def from_secret(secret: bytes) -> str:
    """Return the did:key of a 32-byte secret key's public point. Raises ValueError if the
    secret is not 32 bytes in 1..n-1."""
    if len(secret) != 32:
        raise ValueError(f"secret key length: got {len(secret)} bytes, want 32")
    return from_point(coincurve.PrivateKey(secret).public_key.format(compressed=True))


def to_point(did: str) -> bytes:
    """Return the 33-byte compressed point a secp256k1 did:key names. Raises DidKeyError:
    "prefix" (not did:key:z...), "length" (too long a string, or not 35 bytes), "base58",
    "multicodec" (not 0xe7 0x01: another key type), "point" (not on the curve)."""
    if type(did) is not str or not did.startswith(PREFIX):  # exactly str: it keys a cache
        shown = repr(did[:20]) if type(did) is str else type(did).__name__
        raise DidKeyError("prefix", f"got {shown}, want {PREFIX!r} (base58btc did:key)")
    return _decode(did)


# Participants sign many transactions each: remembering the last few thousand decoded
# DIDs saves a base58 decode and a curve check (about 10 us) per transaction. Refusals
# raise, so they are never cached.
@functools.lru_cache(maxsize=4096)
def _decode(did: str) -> bytes:
    if len(did) > MAX_LENGTH:
        raise DidKeyError("length", f"got {len(did)} characters, want at most {MAX_LENGTH}")
    data = b58decode(did[len(PREFIX) :])
    if data[:2] != MULTICODEC:
        raise DidKeyError(
            "multicodec", f"got 0x{data[:2].hex() or 'nothing'}, want 0xe701 (secp256k1-pub)"
        )
    point = data[2:]
    if len(point) != POINT_SIZE:
        raise DidKeyError("length", f"got a key of {len(point)} bytes, want {POINT_SIZE}")
    _check_point(point)
    return point


def to_xonly(did: str) -> bytes:
    """Return the 32-byte BIP-340 x-only key of a secp256k1 did:key (the point's x), the key
    its signatures verify under. Raises DidKeyError as to_point does."""
    return to_point(did)[1:]


def _check_point(point: bytes) -> None:
    if len(point) != POINT_SIZE:
        raise DidKeyError("length", f"got a key of {len(point)} bytes, want {POINT_SIZE}")
    if point[0] not in (2, 3):
        raise DidKeyError("point", f"got prefix byte 0x{point[0]:02x}, want 0x02 or 0x03")
    try:
        coincurve.PublicKey(bytes(point))
    except ValueError:  # x >= p, or x^3 + 7 has no square root mod p
        raise DidKeyError("point", "got an x that is not on secp256k1") from None
