"""Owner-signed changes: what registry changes (log kind 0x02, gateway/registry_change.py)
and configuration changes (0x06, gateway/config_entry.py) share.

    request    {"change": {...}, "owner": "<hex x-only key>", "signature": "<hex>"}
    signature  BIP-340 over tagged_hash(<the format's tag>, canonical change)
    entry      kind (1) || signer (32) || signature (64) || canonical change JSON

The canonical change is its JSON with sorted keys and no spaces; each format's change type
reads it (`read`) and writes it (`canonical()`), and raises its own Refused subclass.
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from device import schnorr
from gateway import jsonbound
from gateway.refusal import Refused, hex_field

MAX_SKEW = 300  # seconds between a request's time and the cloud's clock
MAX_REQUEST_BYTES = 16 * 1024  # a request's JSON: the largest is under 5 KiB


class Signable(Protocol):
    """A change that can be signed: its time, and its canonical bytes."""

    @property
    def time(self) -> int: ...

    def canonical(self) -> bytes: ...


C = TypeVar("C", bound=Signable)


def canonical_json(fields: dict[str, Any]) -> bytes:
    """The canonical bytes of a change: its JSON with sorted keys and no spaces."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign_request(tag: bytes, secret: bytes, change: Signable) -> dict[str, Any]:
    """Return the JSON request carrying `change` signed by `secret` under `tag`."""
    sig = schnorr.sign(secret, schnorr.tagged_hash(tag, change.canonical()))
    return {
        "change": json.loads(change.canonical()),
        "owner": schnorr.pubkey(secret).hex(),
        "signature": sig.hex(),
    }


def open_request(
    request: object,
    tag: bytes,
    read: Callable[[object], C],
    error: type[Refused],
    now: float | None = None,
) -> tuple[C, bytes, bytes]:
    """Check a signed request's shape, change, signature and time; return (change,
    signer, signature). Raises `error`: 400 malformed, 403 "signature", 400 "time" for a
    request more than MAX_SKEW seconds off the clock."""
    if not isinstance(request, dict) or set(request) != {"change", "owner", "signature"}:
        raise error("request", 'want {"change", "owner", "signature"}')
    change = read(request["change"])
    signer = hex_field(request["owner"], "owner", 32, error)
    signature = hex_field(request["signature"], "signature", 64, error)
    if not schnorr.verify(signer, schnorr.tagged_hash(tag, change.canonical()), signature):
        raise error("signature", "the owner's signature does not verify", 403)
    now = _time.time() if now is None else now
    if abs(change.time - now) > MAX_SKEW:
        raise error("time", f"request time {change.time} is more than {MAX_SKEW} s off")
    return change, signer, signature


def read_entry(
    payload: bytes,
    tag: bytes,
    read: Callable[[object], C],
    error: type[Refused],
    signed: Callable[[C], bool] = lambda change: True,
) -> tuple[bytes, bytes, C]:
    """Return (signer, signature, change) of an entry's payload (kind byte removed),
    requiring canonical bytes and, if `signed(change)`, a valid signature. Raises `error`
    ("entry" for malformed bytes, 403 "signature")."""
    signer, signature, message = payload[:32], payload[32:96], payload[96:]
    try:
        change = read(jsonbound.loads(message, max_bytes=MAX_REQUEST_BYTES, what="change"))
    except ValueError as e:
        raise error("entry", str(e)) from None
    if change.canonical() != message:
        raise error("entry", "the change is not in canonical form")
    if signed(change) and not schnorr.verify(signer, schnorr.tagged_hash(tag, message), signature):
        raise error("signature", "the owner's signature does not verify", 403)
    return signer, signature, change
