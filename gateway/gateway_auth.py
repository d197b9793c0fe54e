"""A gateway's signed read (docs/protocol.md, "Lots of a gateway's boxes"): how a gateway
proves to the cloud that it holds its registered key, on routes only it may read.

    1. POST /v1/auth/challenge               the cloud's sign-in challenge (32 random
                                             bytes, valid 60 s, single use, stored in the
                                             database: any worker takes it once)
    2. GET <path> with two headers:
       PharmaSync-Challenge: <64 hex>        that challenge
       PharmaSync-Signature: <128 hex>       BIP-340 under the gateway's key over
           digest = tagged_hash(TAG, challenge (32) ‖ gateway key (32) ‖ "GET " ‖ path)
           path as sent, UTF-8, without a query (e.g. "/v1/gateways/<key hex>/lots")

The digest binds the challenge to this gateway and this route, under a tag of its own, so
a participant's sign-in signature (cloud/contracts/auth.py) or a signature for another
route is no use here. A challenge rather than the gateway's own timestamp and nonce: the
cloud's single-use challenge store already gives freshness and replay protection across
workers, and a gateway with a wrong clock still authenticates.
"""

from __future__ import annotations

from typing import Final

from device import schnorr
from gateway.refusal import Refused, hex_field

TAG: Final = b"PharmaSync/gateway-read/v1"
CHALLENGE_HEADER: Final = "PharmaSync-Challenge"
SIGNATURE_HEADER: Final = "PharmaSync-Signature"
CHALLENGE_BYTES: Final = 32


class GatewayAuthError(Refused):
    """A signed read refused: `reason` "auth" (headers absent, 401), "challenge" or
    "signature" (malformed 400, or not verifying 401)."""


def digest(challenge: bytes, gateway: bytes, method: str, path: str) -> bytes:
    """Return the 32 bytes a gateway signs: tagged_hash(TAG, challenge ‖ key ‖ method ‖
    " " ‖ path). Requires a 32-byte challenge and key."""
    assert len(challenge) == CHALLENGE_BYTES and len(gateway) == 32
    return schnorr.tagged_hash(TAG, challenge + gateway + f"{method} {path}".encode())


def headers(secret: bytes, challenge: bytes, method: str, path: str) -> dict[str, str]:
    """Return the two headers of a read of `path` signed with the gateway's `secret`."""
    sig = schnorr.sign(secret, digest(challenge, schnorr.pubkey(secret), method, path))
    return {CHALLENGE_HEADER: challenge.hex(), SIGNATURE_HEADER: sig.hex()}


def read_headers(challenge: str | None, signature: str | None) -> tuple[bytes, bytes]:
    """Return (challenge, signature) from the two headers' values. Raises GatewayAuthError
    401 "auth" if either is absent, 400 "challenge"/"signature" if malformed."""
    if challenge is None or signature is None:
        want = f"{CHALLENGE_HEADER} and {SIGNATURE_HEADER} headers (a signed gateway read)"
        raise GatewayAuthError("auth", f"want {want}", 401)
    found = hex_field(challenge, "challenge", CHALLENGE_BYTES, GatewayAuthError)
    return found, hex_field(signature, "signature", 64, GatewayAuthError)


def check(gateway: bytes, challenge: bytes, sig: bytes, method: str, path: str) -> None:
    """Raise GatewayAuthError 401 "signature" unless `sig` is `gateway`'s BIP-340 signature
    of digest(challenge, gateway, method, path)."""
    if not schnorr.verify(gateway, digest(challenge, gateway, method, path), sig):
        raise GatewayAuthError(
            "signature", f"does not verify under gateway key {gateway.hex()} for {path}", 401
        )
