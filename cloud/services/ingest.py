"""Zero-trust checks on an uploaded batch (docs/protocol.md, "Gateway -> cloud").

The cloud trusts no gateway: it re-checks everything a gateway claims, and refuses the
whole batch, storing nothing, at the first failure. In order:

    length / version / ...    the header does not decode (the field named)
    seq                       the header's seq does not fit the ledger's databases
                              (signed 64-bit), checked before the store is asked anything
    unregistered gateway      the header's key is not a registered gateway
    header signature          the gateway's BIP-340 signature does not verify
    conflict                  another header is stored for this (gateway, seq)   (409)
    chain                     not the successor of the gateway's last batch      (409)
    readings                  the body is not a whole number of 110-byte readings
    count / time span / merkle root   the readings are not what the header commits to
    <field>                   a reading does not decode (the field named)
    unregistered box          a reading's box is not registered
    reading signature         a reading's own BIP-340 signature does not verify

An exact resend of a stored batch is not an error: it gets the original receipt (200),
even when it races its original (the store reports which of them created the batch).

Not refused either, because a refused batch is resent forever and breaks its gateway's
chain (docs/protocol.md, "Exactly once"): readings the ledger already holds. A reading
(box, seq) is stored once; a later leaf carrying the same bytes (the box was heard by
another gateway, or twice in one batch) is recorded as a duplicate sighting, and one
carrying other validly signed bytes as an equivocation (the box's key may be cloned):
kept as evidence, alarmed, never served as the reading (cloud/storage/batches.py).

Pure and synchronous: the service runs check_batch on a worker thread, off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloud.log.verified import Verified
from device import reading, schnorr
from gateway import batch
from gateway.refusal import Refused

# The largest integer the ledger's databases store (SQLite INTEGER, PostgreSQL bigint).
DB_INT_MAX = 2**63 - 1


class IngestError(Refused, ValueError):
    """A refused batch: `reason` names the check, `status` the HTTP status."""


def decode_header(body: bytes) -> batch.BatchHeader:
    """Decode an uploaded batch's header and range-check every integer in it against what
    the ledger stores, before anything is looked up. Raises IngestError naming the field.

    The wire format bounds count and times to u32 and a reading's fields to u32/i16/u16,
    all storable; only the header's u64 seq can exceed a signed 64-bit column. No honest
    gateway reaches 2**63 batches, so such a header is refused, not stored.
    """
    try:
        header = batch.decode(bytes(body[: batch.SIZE]))
    except batch.BatchError as e:
        raise IngestError(e.field, str(e)) from None
    for field, value in (
        ("seq", header.seq),
        ("count", header.count),
        ("first time", header.first_time),
        ("last time", header.last_time),
    ):
        if not 0 <= value <= DB_INT_MAX:
            raise IngestError(field, f"{field}: got {value}, want 0..{DB_INT_MAX}")
    return header


@dataclass(frozen=True)
class Known:
    """What verification needs to know of the ledger's state."""

    gateway_registered: Callable[[bytes], bool]
    device_registered: Callable[[bytes], bool]
    stored_header: Callable[[bytes, int], bytes | None]  # (gateway, seq) -> header bytes
    last_header: Callable[[bytes], bytes | None]  # gateway -> its newest stored header


def check_batch(body: bytes, known: Known) -> Verified | bytes:
    """Verify an uploaded batch. Return Verified, or the stored header bytes when this is an
    exact resend (the caller answers with the original receipt). Raises IngestError."""
    head = bytes(body[: batch.SIZE])
    header = decode_header(head)
    if not known.gateway_registered(header.gateway_key):
        raise IngestError("unregistered gateway", f"gateway {header.gateway_key.hex()}")
    if not header.verify_signature():
        raise IngestError("header signature", f"batch {header.seq} is not signed by its gateway")
    stored = known.stored_header(header.gateway_key, header.seq)
    if stored is not None:
        if stored == head:
            return stored
        raise IngestError("conflict", f"another batch {header.seq} is stored for this gateway", 409)
    broken = batch.chain_break(header, known.last_header(header.gateway_key))
    if broken:
        raise IngestError("chain", broken, 409)
    rest = body[batch.SIZE :]
    if len(rest) % reading.SIZE:
        raise IngestError("readings", f"got {len(rest)} bytes, want a multiple of {reading.SIZE}")
    wires = [bytes(rest[i : i + reading.SIZE]) for i in range(0, len(rest), reading.SIZE)]
    try:
        batch.check_contents(header, wires)
        decoded = [reading.decode(w) for w in wires]
    except batch.BatchError as e:
        raise IngestError(e.field, str(e)) from None
    except reading.ReadingError as e:
        raise IngestError(e.field, str(e)) from None
    for i, (w, r) in enumerate(zip(wires, decoded, strict=True)):
        if not known.device_registered(r.key):
            raise IngestError("unregistered box", f"reading {i}: box {r.key.hex()}")
        if not schnorr.verify(r.key, reading.message(w), r.signature):
            raise IngestError("reading signature", f"reading {i} (seq {r.seq}) does not verify")
    return Verified(header, head, decoded, wires)
