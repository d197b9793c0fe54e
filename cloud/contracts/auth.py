"""Sign-in for reads (docs/contracts.md §3): a challenge, its signature, a bearer token.

The cloud hands out a random challenge (CHALLENGE_BYTES, valid CHALLENGE_TTL_S, single use);
the participant signs `digest(challenge, did)` = tagged_hash("PharmaSync/auth/v1",
challenge ‖ did as UTF-8) with BIP-340 under the did:key's x-only key, and gets a token
valid TOKEN_TTL_S naming its did and role. The token is

    "v1." ‖ base64url(canonical JSON {"did", "exp", "role"}) ‖ "." ‖ base64url(MAC)

MAC = HMAC-SHA256(secret, "PharmaSync/token/v1" ‖ the payload's JSON): the secret is
shared by the workers through the database (cloud/storage/auth.py), so any worker checks
what another issued, and nobody else can forge one. Pure: no clock or store here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Final

from device import schnorr
from gateway.refusal import Refused
from gateway.signed_change import canonical_json

TAG: Final = b"PharmaSync/auth/v1"
TOKEN_TAG: Final = b"PharmaSync/token/v1"
CHALLENGE_BYTES: Final = 32
CHALLENGE_TTL_S: Final = 60
TOKEN_TTL_S: Final = 15 * 60
MAX_TOKEN_CHARS: Final = 1024  # a did:key of secp256k1 is 57 characters: room to spare
_PREFIX: Final = "v1."


class AuthError(Refused, ValueError):
    """A refused sign-in or token: `reason` names the field or rule, `status` 400 (malformed),
    401 (not authenticated) or 403 (authenticated, not allowed)."""


@dataclass(frozen=True, slots=True)
class Token:
    """Who a bearer token names: its did, its role when issued, when it expires (Unix s)."""

    did: str
    role: str
    expires: int


def digest(challenge: bytes, did: str) -> bytes:
    """The 32 bytes a participant signs to sign in: tagged_hash(TAG, challenge ‖ did)."""
    return schnorr.tagged_hash(TAG, challenge + did.encode())


def check_signature(xonly: bytes, challenge: bytes, did: str, sig: bytes) -> None:
    """Raise AuthError 401 "sig" unless `sig` is the BIP-340 signature of digest(challenge,
    did) under `xonly`."""
    if not schnorr.verify(xonly, digest(challenge, did), sig):
        raise AuthError("sig", "the signature over the challenge does not verify", 401)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, TOKEN_TAG + payload, hashlib.sha256).digest()


def issue(secret: bytes, token: Token) -> str:
    """Return the bearer token's text for `token`, MACed under `secret`."""
    payload = canonical_json({"did": token.did, "exp": token.expires, "role": token.role})
    return _PREFIX + _b64(payload) + "." + _b64(_mac(secret, payload))


def open_token(secret: bytes, text: str, now: int) -> Token:
    """Check a bearer token's form, MAC and expiry at Unix time `now`; return what it names.
    Raises AuthError 401 "token" (malformed, forged or expired)."""
    if len(text) > MAX_TOKEN_CHARS or not text.startswith(_PREFIX) or text.count(".") != 2:
        raise AuthError("token", "want v1.<payload>.<mac> as POST /v1/auth/token issues", 401)
    body, mac = text[len(_PREFIX) :].split(".")
    try:
        payload, tag = _unb64(body), _unb64(mac)
    except (binascii.Error, ValueError):
        raise AuthError("token", "not base64url", 401) from None
    if not hmac.compare_digest(tag, _mac(secret, payload)):
        raise AuthError("token", "the token was not issued by this ledger", 401)
    fields = json.loads(payload)  # ours: the MAC held
    if fields["exp"] < now:
        raise AuthError("token", f"expired at {fields['exp']}; sign in again", 401)
    return Token(fields["did"], fields["role"], fields["exp"])
