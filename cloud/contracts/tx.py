"""Contract transaction v1: what a participant signs to change a contract's state.
Documented byte by byte in docs/protocol.md, "Contract transaction v1".

The body is one JSON object with exactly these members:

    v         1
    contract  the contract's name: 1 to 32 of a-z 0-9 "-", starting with a letter ("lots")
    type      the transaction type within it, the same rule ("commission")
    signer    the signer's did:key (secp256k1; cloud/contracts/didkey.py)
    time      milliseconds since the Unix epoch, an integer 0 to 2**53 - 1
    nonce     16 random bytes as 32 lowercase hex characters
    args      an object: the type's arguments (the contract checks them); integers within
              +-(2**53 - 1) and no floats, as everything signed

Its canonical bytes are RFC 8785 (gateway/jcs.py). The signature is BIP-340 by the signer's
key over tagged_hash(TAG, canonical bytes). On the wire (an HTTP body, at most MAX_ENVELOPE
bytes of UTF-8 JSON):

    {"tx": {...the body...}, "sig": "<64-byte signature as 128 lowercase hex>"}

Refusals are TxError, a Refused whose `reason` names the member ("tx.nonce", "tx.args"; "tx"
for the body's shape, "envelope" for the envelope's, "sig" for a malformed signature): 400;
"signature" when the signature does not verify: 401. Oversized or invalid JSON is
gateway/jsonbound.py's JsonError (reason "json"; 413 for size).

A SignedTx's `id` names its bytes (SHA-256 of canonical || sig). It is no replay guard: a
signer can sign one body twice (BIP-340 signing is randomised), giving two ids; replays are
recognised by (signer's x-only key, nonce), which the contract store keeps unique.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cloud.contracts import didkey
from device import schnorr
from gateway import jsonbound
from gateway.jcs import MAX_SAFE_INTEGER, JcsError, canonicalize
from gateway.refusal import Refused, int_field

VERSION: Final = 1
TAG: Final = b"PharmaSync/tx/v1"
SIGNATURE_SIZE: Final = 64
NONCE_SIZE: Final = 16
# An HTTP body: a transaction's arguments are a few hundred bytes (a commission with its
# storage profile is under 1 KiB); 64 KiB leaves room for a split into many child lots while
# keeping every body one small, bounded parse.
MAX_ENVELOPE: Final = 64 * 1024
# The bulk types carry a lot's pack serials (cloud/contracts/packs.py: up to 100,000 AI 21
# values of up to 20 characters, ~2.3 MB as canonical JSON): their envelope may be up to
# MAX_BULK_ENVELOPE. A body over MAX_ENVELOPE is parsed (bounded by this size) only to find
# its type, and refused 413 unless it is one of these.
MAX_BULK_ENVELOPE: Final = 4 * 1024 * 1024
BULK_TYPES: Final = frozenset({("lots", "serialize"), ("lots", "split"), ("lots", "ship")})
MEMBERS: Final = frozenset({"v", "contract", "type", "signer", "time", "nonce", "args"})
NAME: Final = re.compile("[a-z][a-z0-9-]{0,31}")  # contract names and transaction types
MAX_NAME: Final = 32
_NONCE = re.compile("[0-9a-f]{32}")
_SIG = re.compile("[0-9a-f]{128}")


class TxError(Refused, ValueError):
    """A transaction refused: `reason` names the member (module docstring), `detail` says
    what was got and what is wanted; status 400, or 401 for a signature that fails."""


def check_name(value: object, member: str) -> str:
    """Return `value` if it is a contract or type name (NAME). Raises TxError(member)."""
    if type(value) is not str or not NAME.fullmatch(value):
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        raise TxError(
            member, f"got {shown}, want 1 to {MAX_NAME} of a-z 0-9 '-', starting with a-z"
        )
    return value


@dataclass(frozen=True)
class TxBody:
    """A transaction body (module docstring), checked on construction. `canonical` is its
    RFC 8785 bytes; `args` is a private copy decoded from them, so it is exactly what is
    signed (treat it as read-only)."""

    contract: str
    type: str
    signer: str
    time: int
    nonce: str
    args: Mapping[str, Any] = field(hash=False)
    canonical: bytes = field(init=False, repr=False, compare=False)
    signer_xonly: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Raises TxError naming the first member that is malformed or out of range."""
        check_name(self.contract, "tx.contract")
        check_name(self.type, "tx.type")
        try:
            xonly = didkey.to_xonly(self.signer)
        except didkey.DidKeyError as e:
            raise TxError("tx.signer", e.detail) from None
        int_field(self.time, "tx.time", 0, MAX_SAFE_INTEGER, TxError)
        if type(self.nonce) is not str or not _NONCE.fullmatch(self.nonce):
            raise TxError("tx.nonce", f"got {str(self.nonce)[:40]!r}, want 32 lowercase hex")
        if type(self.args) is not dict:
            raise TxError("tx.args", f"got {type(self.args).__name__}, want an object")
        try:
            canonical = canonicalize(self.to_json())
        except JcsError as e:  # e.path is "$.<member>...": "$.args.lines[2]"
            member = e.path[2:].split(".")[0].split("[")[0]
            raise TxError(f"tx.{member}", f"tx{e.path[1:]}: got {e.got}, want {e.want}") from None
        object.__setattr__(self, "canonical", canonical)
        object.__setattr__(self, "signer_xonly", xonly)
        object.__setattr__(self, "args", json.loads(canonical)["args"])

    def to_json(self) -> dict[str, Any]:
        """Return the body as a JSON object (what is canonicalized and signed)."""
        return {
            "v": VERSION,
            "contract": self.contract,
            "type": self.type,
            "signer": self.signer,
            "time": self.time,
            "nonce": self.nonce,
            "args": self.args,
        }

    def message(self) -> bytes:
        """Return the 32 bytes the signer signs: tagged_hash(TAG, canonical bytes)."""
        return schnorr.tagged_hash(TAG, self.canonical)


@dataclass(frozen=True)
class SignedTx:
    """A transaction body with a signature that verifies under its signer's key: a SignedTx
    cannot be constructed otherwise (TxError "signature", 401)."""

    body: TxBody
    sig: bytes

    def __post_init__(self) -> None:
        """Raises TxError "sig" for a signature that is not 64 bytes, "signature" (401) for
        one that does not verify under the body's signer."""
        if type(self.sig) is not bytes or len(self.sig) != SIGNATURE_SIZE:
            raise TxError("sig", f"got {self.sig!r:.40}, want {SIGNATURE_SIZE} bytes")
        if not schnorr.verify(self.body.signer_xonly, self.body.message(), self.sig):
            raise TxError("signature", "the signature does not verify under tx.signer", 401)

    @property
    def canonical(self) -> bytes:
        """The body's RFC 8785 bytes: what was signed, what the contract store keeps."""
        return self.body.canonical

    @property
    def signer_xonly(self) -> bytes:
        """The signer's 32-byte BIP-340 x-only key (the identity: see didkey)."""
        return self.body.signer_xonly

    @property
    def id(self) -> str:
        """SHA-256 of canonical bytes || signature, lowercase hex: names these bytes."""
        return hashlib.sha256(self.body.canonical + self.sig).hexdigest()

    def to_envelope(self) -> dict[str, Any]:
        """Return the wire form {"tx": body, "sig": hex}."""
        return {"tx": self.body.to_json(), "sig": self.sig.hex()}

    def to_wire(self) -> bytes:
        """Return the wire form as the bytes of an HTTP body (itself canonical JSON)."""
        return canonicalize(self.to_envelope())


def wire_size(signed: SignedTx) -> int:
    """The bytes of signed.to_wire() without building it: {"sig":"<128 hex>","tx":<body>}."""
    return len(signed.canonical) + _WIRE_FRAME


_WIRE_FRAME: Final = len('{"sig":"","tx":}') + 2 * SIGNATURE_SIZE


def new_nonce() -> str:
    """Return a fresh nonce: 16 random bytes (os.urandom) as 32 lowercase hex."""
    return os.urandom(NONCE_SIZE).hex()


def sign(body: TxBody, secret: bytes, aux: bytes | None = None) -> SignedTx:
    """Return `body` signed with `secret` (aux: BIP-340 auxiliary randomness, fresh if
    None). Raises TxError "tx.signer" if the secret is not the key of body.signer."""
    if schnorr.pubkey(secret) != body.signer_xonly:
        raise TxError("tx.signer", "the signing secret is not the key of tx.signer")
    return SignedTx(body, schnorr.sign(secret, body.message(), aux))


def make(
    contract: str,
    tx_type: str,
    args: dict[str, Any],
    secret: bytes,
    *,
    time_ms: int | None = None,
    nonce: str | None = None,
    aux: bytes | None = None,
) -> SignedTx:
    """Return a transaction signed by `secret`, its signer the secret's did:key, at
    `time_ms` (default now) with `nonce` (default fresh). Raises TxError as TxBody does."""
    body = TxBody(
        contract,
        tx_type,
        didkey.from_secret(secret),
        int(_time.time() * 1000) if time_ms is None else time_ms,
        new_nonce() if nonce is None else nonce,
        args,
    )
    return sign(body, secret, aux)


def read_body(obj: object) -> TxBody:
    """Return the TxBody a parsed JSON object describes: exactly MEMBERS, v = 1. Raises
    TxError "tx" for the shape, "tx.<member>" for a member."""
    if type(obj) is not dict:
        raise TxError("tx", f"got {type(obj).__name__}, want an object")
    if obj.keys() != MEMBERS:
        missing, extra = sorted(MEMBERS - obj.keys()), sorted(obj.keys() - MEMBERS)
        raise TxError("tx", f"got missing {missing} and extra {extra!r:.200}, want {MEMBERS}")
    if type(obj["v"]) is not int or obj["v"] != VERSION:
        raise TxError("tx.v", f"got {str(obj['v'])[:20]!r}, want {VERSION}")
    return TxBody(
        obj["contract"], obj["type"], obj["signer"], obj["time"], obj["nonce"], obj["args"]
    )


def from_envelope(obj: object) -> SignedTx:
    """Return the SignedTx of a parsed wire envelope, its signature verified. Raises
    TxError: "envelope" (not {"tx", "sig"}), "sig", "tx"/"tx.<member>", "signature" (401)."""
    if type(obj) is not dict or obj.keys() != {"tx", "sig"}:
        raise TxError("envelope", 'want an object {"tx": {...}, "sig": "<128 hex>"}')
    sig = obj["sig"]
    if type(sig) is not str or not _SIG.fullmatch(sig):
        raise TxError("sig", f"got {str(sig)[:140]!r}, want 64 bytes as 128 lowercase hex")
    return SignedTx(read_body(obj["tx"]), bytes.fromhex(sig))


def max_envelope(contract: object, tx_type: object) -> int:
    """Return the most bytes an envelope of this contract and type may have on the wire:
    MAX_BULK_ENVELOPE for BULK_TYPES, MAX_ENVELOPE for every other."""
    return MAX_BULK_ENVELOPE if (contract, tx_type) in BULK_TYPES else MAX_ENVELOPE


def load_envelope(data: bytes | bytearray) -> object:
    """Return the parsed JSON of an HTTP body that may be a transaction envelope: at most
    MAX_ENVELOPE bytes, or at most MAX_BULK_ENVELOPE for an envelope of a bulk type (found
    by a bounded parse). Raises JsonError (413 over the limit that applies; 400 not bounded
    JSON)."""
    if len(data) <= MAX_ENVELOPE:
        return jsonbound.loads(data, max_bytes=MAX_ENVELOPE, what="transaction")
    bulk = ", or " + f"{MAX_BULK_ENVELOPE} for {sorted(' '.join(t) for t in BULK_TYPES)}"
    too_big = jsonbound.JsonError(
        "transaction", f"{len(data)} bytes", f"at most {MAX_ENVELOPE}{bulk}", 413
    )
    if len(data) > MAX_BULK_ENVELOPE:
        raise too_big
    try:
        obj = jsonbound.loads(data, max_bytes=MAX_BULK_ENVELOPE, what="transaction")
    except jsonbound.JsonError:
        raise too_big from None
    body = obj.get("tx") if type(obj) is dict else None
    if type(body) is not dict or max_envelope(body.get("contract"), body.get("type")) < len(data):
        raise too_big
    return obj


def parse_envelope(data: bytes) -> SignedTx:
    """Return the SignedTx of an HTTP body (module docstring), its signature verified.
    Raises JsonError (413 over its limit: load_envelope; 400 not bounded JSON) or TxError."""
    return from_envelope(load_envelope(data))


def from_record(canonical: bytes, sig: bytes) -> SignedTx:
    """Return the SignedTx the contract store kept (canonical bytes and signature), after
    checking both again: what a replay does with bodies fetched from someone else. Raises
    JsonError, TxError ("tx" if the bytes are not canonical) or "signature" (401)."""
    body = read_body(jsonbound.loads(canonical, max_bytes=MAX_BULK_ENVELOPE, what="transaction"))
    if body.canonical != canonical:
        raise TxError("tx", "the bytes are not in canonical form (RFC 8785)")
    return SignedTx(body, sig)
