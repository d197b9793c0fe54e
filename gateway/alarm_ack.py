"""Signed alarm acknowledgements: "I, holder of this key, acknowledge alarm A of gateway G".

A person acknowledges an alarm away from the site (a phone app, the cloud console) by signing
a small JSON message with a key the site's owner authorised. It travels as JSON:

    {"ack": {"alarm": "3f2a9c1e", "at": 1793620800, "by": "A. Jones",
             "gateway": "<64 hex: the gateway's x-only key>", "v": 1},
     "key": "<64 hex: the signer's x-only key>", "signature": "<128 hex: BIP-340>"}

The signature is BIP-340 over tagged_hash("PharmaSync/alarm-ack/v1", canonical(ack)), the
canonical bytes being the ack's JSON with sorted keys, no spaces and non-ASCII characters as
\\uXXXX escapes (json.dumps(sort_keys=True, separators=(",", ":"))). docs/protocol.md
("Signed alarm acknowledgement") is the byte-level contract; tests hold a golden vector.

This module only encodes, decodes and checks the signature. Whether the key is authorised,
the alarm exists and the message is new is the escalation's business (gateway/escalation.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from device import schnorr

TAG = b"PharmaSync/alarm-ack/v1"
VERSION = 1
MAX_BYTES = 2048  # a signed ack is ~400 bytes; anything longer is refused before parsing
MAX_BY = 100  # characters in "by"
ALARM_ID_HEX = 8  # alarm ids are 8 lowercase hex characters (gateway/escalation.py)


class AckError(ValueError):
    """A signed ack is refused; `reason` is its short counted name, str() the detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class AlarmAck:
    """The signed part: which gateway's alarm, who acknowledged it and when (Unix seconds)."""

    gateway: bytes
    alarm: str
    by: str
    at: int

    def __post_init__(self) -> None:
        """Raises AckError("malformed", ...) naming the first bad field."""
        if not isinstance(self.gateway, bytes) or len(self.gateway) != 32:
            raise AckError("malformed", f"gateway: got {self.gateway!r}, want a 32-byte key")
        alarm_id(self.alarm)
        check_by(self.by)
        if not (
            isinstance(self.at, int) and not isinstance(self.at, bool) and 0 <= self.at < 2**40
        ):
            raise AckError("malformed", f"at: got {self.at!r}, want Unix seconds (an integer)")

    def canonical(self) -> bytes:
        """The bytes that are signed: sorted keys, no spaces, ASCII with \\u escapes."""
        fields = {"alarm": self.alarm, "at": self.at, "by": self.by}
        fields |= {"gateway": self.gateway.hex(), "v": VERSION}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def message(self) -> bytes:
        """The 32-byte BIP-340 message: the tagged hash of canonical()."""
        return schnorr.tagged_hash(TAG, self.canonical())


@dataclass(frozen=True)
class SignedAck:
    """An AlarmAck with the signer's key and signature, checked by decode()."""

    ack: AlarmAck
    key: bytes
    signature: bytes

    def digest(self) -> bytes:
        """SHA-256 of the signed message and signature: what replay detection remembers."""
        return hashlib.sha256(self.ack.canonical() + self.key + self.signature).digest()

    def wire(self) -> bytes:
        """The compact JSON this ack travels as (the module docstring's shape)."""
        body = {
            "ack": json.loads(self.ack.canonical()),
            "key": self.key.hex(),
            "signature": self.signature.hex(),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def alarm_id(text: object) -> str:
    """Return `text` if it is an alarm id (ALARM_ID_HEX lowercase hex characters); else
    raise AckError (a ValueError: also an argparse `type`)."""
    if not (isinstance(text, str) and len(text) == ALARM_ID_HEX and _hex(text)):
        raise AckError("malformed", f"alarm: got {text!r}, want {ALARM_ID_HEX} hex characters")
    return text


def check_by(by: object) -> str:
    """Return `by` (who acknowledges) if it is a name of 1..MAX_BY characters that UTF-8 can
    carry (no lone surrogates: the spool could not store them); else raise AckError. One
    rule for every way an ack arrives: signed, the status page's form, the CLI."""
    if not (isinstance(by, str) and by.strip() and len(by) <= MAX_BY):
        raise AckError("malformed", f"by: got {str(by)[:140]!r}, want a name of 1..{MAX_BY} chars")
    try:
        by.encode()
    except UnicodeEncodeError:
        raise AckError("malformed", f"by: got {by!r}, want text without lone surrogates") from None
    return by


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _hex_field(value: object, name: str, size: int) -> bytes:
    if not (isinstance(value, str) and len(value) == 2 * size and _hex(value)):
        want = f"{2 * size} lowercase hex characters"
        raise AckError("malformed", f"{name}: got {str(value)[:140]!r}, want {want}")
    return bytes.fromhex(value)


def sign(secret: bytes, ack: AlarmAck, aux: bytes | None = None) -> bytes:
    """Return the wire bytes (compact JSON) of `ack` signed with `secret`."""
    signature = schnorr.sign(secret, ack.message(), aux)
    return SignedAck(ack, schnorr.pubkey(secret), signature).wire()


def decode(wire: bytes) -> SignedAck:
    """Parse a signed ack and check its signature against the key it names.

    Raises AckError: "malformed" (size, JSON, shape or a field) or "bad signature". The key's
    authority is not checked here.
    """
    if not isinstance(wire, bytes | bytearray) or len(wire) > MAX_BYTES:
        size = len(wire) if isinstance(wire, bytes | bytearray) else type(wire).__name__
        raise AckError("malformed", f"got {size} bytes, want at most {MAX_BYTES}")
    try:
        body: Any = json.loads(wire)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise AckError("malformed", f"not JSON ({type(e).__name__})") from None
    if not isinstance(body, dict) or set(body) != {"ack", "key", "signature"}:
        raise AckError("malformed", 'want {"ack", "key", "signature"}')
    fields = body["ack"]
    if not isinstance(fields, dict) or set(fields) != {"alarm", "at", "by", "gateway", "v"}:
        raise AckError("malformed", 'ack: want {"alarm", "at", "by", "gateway", "v"}')
    if fields["v"] != VERSION or isinstance(fields["v"], bool):
        raise AckError("malformed", f"v: got {fields['v']!r}, want {VERSION}")
    gateway = _hex_field(fields["gateway"], "gateway", 32)
    ack = AlarmAck(gateway, fields["alarm"], fields["by"], fields["at"])
    key = _hex_field(body["key"], "key", 32)
    signature = _hex_field(body["signature"], "signature", 64)
    if not schnorr.verify(key, ack.message(), signature):
        raise AckError("bad signature", f"does not verify under key {key.hex()}")
    return SignedAck(ack, key, signature)
