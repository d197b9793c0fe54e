"""Offline check of a public check's proof bundle (cloud/contracts/public_proof.py): a pack's
or lot's public facts -> state root -> 0x04 log entry -> checkpoint -> the log's key.

Trusting nothing but the log's key and what the user scanned, each check fails with a
`PublicCheckError` naming its `Step` and saying got/want:

    bundle shape          bytes (versions 1-3) or JSON, every field in range; a resolver's JSON
                          answer is read for its "proof"
    scanned identifiers   the bundle is about the GTIN, lot (and serial) scanned
    checkpoint signature  the checkpoint note is signed by the log's key
    checkpoint time       it carries the log's own timestamp (cosignature/v1 line) and it verifies
    checkpoint size       its size is the 0x04 entry's index + 1: the first that includes it
    state-root entry      the entry is a 0x04 state root
    log inclusion         the entry is at its index in the log of that checkpoint
    records               the bundle proves exactly the records a lot's check needs (a
                          registered pack's: and its registration and pack record)
    record proof          each record's key, recomputed from the scanned identifiers (grouped
                          by lot from bundle version 3 on), holds the bundle's value (or is
                          absent) under the entry's state root; a bundle whose proofs cannot
                          be rebuilt from the keys of the identifiers it names fails here, and
                          so does a plain-key bundle (versions 1-2) proving its lot absent
    record value          each value is canonical JSON (what is shown is what was hashed)
    serial inclusion      a pack's serial is in its registration's RFC 6962 root, at the
                          stated index of the registration's count

The facts are then read from the verified records on the checkpoint's UTC date: "as of" that
time, "as committed by the ledger" (no replaying witness has re-derived the root yet).
Imports formats and the pure layer only (tests/test_layout.py).
"""

from __future__ import annotations

import datetime
import enum
import json
from dataclasses import dataclass
from typing import Any

from cloud.contracts import gs1, lots, public_facts, public_pack, stateroot
from cloud.contracts.public_proof import (
    LOT_RECORDS,
    MAX_BUNDLE,
    PACK_RECORDS,
    Keys,
    PublicProof,
    PublicProofFormatError,
    PublicProofKeyError,
    current_lot,
)
from cloud.contracts.statetree_proof import verify_proof
from gateway import jsonbound
from gateway.checkpoint import (
    CosignatureVerifier,
    cosignature_timestamp,
    open_checkpoint,
    verify_cosignature,
)
from gateway.jcs import canonicalize
from gateway.merkle_verify import ProofError, verify_inclusion
from gateway.note import NoteError, Verifier, parse_note


class Step(enum.Enum):
    """The checks of a public bundle, in the order they run; the value is what users see."""

    SHAPE = "bundle shape"
    SCAN = "scanned identifiers"
    CHECKPOINT_SIGNATURE = "checkpoint signature"
    CHECKPOINT_TIME = "checkpoint time"
    CHECKPOINT_SIZE = "checkpoint size"
    ENTRY = "state-root entry"
    LOG_INCLUSION = "log inclusion"
    RECORDS = "records"
    RECORD_PROOF = "record proof"
    RECORD_VALUE = "record value"
    SERIAL_INCLUSION = "serial inclusion"


class PublicCheckError(Exception):
    """A failed check: its step and what went wrong (got/want)."""

    def __init__(self, step: Step, detail: str) -> None:
        super().__init__(f"{step.value}: {detail}")
        self.step = step
        self.detail = detail


@dataclass(frozen=True)
class Scanned:
    """What the user scanned: the identifiers the record keys are recomputed from, and the
    pack's expiry (AI 17) if given. The lot may be None for a pack's link without one
    (/01/{gtin}/21/{serial})."""

    gtin: str
    lot: str | None
    serial: str | None = None
    expiry: gs1.Gs1Date | None = None


@dataclass(frozen=True)
class PublicReport:
    """A verified bundle: the log, checkpoint size and time, the 0x04 entry and the facts."""

    origin: str
    size: int
    as_of: int  # the checkpoint's time, POSIX seconds (the log's own timestamp)
    index: int
    state_root: bytes
    facts: dict[str, Any]
    scanned: Scanned

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": True,
            "gtin": self.scanned.gtin,
            "lot": self.scanned.lot,
            "serial": self.scanned.serial,
            "log": self.origin,
            "checkpoint_size": self.size,
            "as_of": self.as_of,
            "as_of_utc": public_facts.utc(self.as_of),
            "committed_by": "the ledger (no replaying witness yet)",
            "state_root_index": self.index,
            "state_root": self.state_root.hex(),
            "facts": self.facts,
        }


def read_bundle(data: bytes) -> PublicProof:
    """Parse bundle bytes, bundle JSON, or a resolver's JSON answer (its "proof"). Raises
    PublicCheckError: RECORD_PROOF for proofs that do not fit the keys of the identifiers
    the bundle names, else SHAPE."""
    try:
        if data[:1] in (b"{", b" ", b"\n", b"\t", b"\r"):
            value = jsonbound.loads(data, max_bytes=4 * MAX_BUNDLE, what="bundle")
            if isinstance(value, dict) and "proof" in value and "facts" in value:
                value = value["proof"]  # a resolver's answer, saved whole
            if value is None:
                raise PublicProofFormatError("no proof: the ledger had no state root yet")
            return PublicProof.from_json(value)
        return PublicProof.from_bytes(data)
    except PublicProofKeyError as e:
        raise PublicCheckError(Step.RECORD_PROOF, str(e)) from None
    except (PublicProofFormatError, ProofError, jsonbound.JsonError) as e:
        raise PublicCheckError(Step.SHAPE, str(e)) from None


def verify_public(data: bytes, *, log_vkey: str, scanned: Scanned) -> PublicReport:
    """Check a public bundle offline against the log's key `log_vkey` (a note verifier key
    string) and what was `scanned`. Raises PublicCheckError naming the failed step, and
    KeyFormatError (a ValueError) for a malformed `log_vkey`."""
    verifier = Verifier.parse(log_vkey)
    bundle = read_bundle(data)
    _check_scan(bundle, scanned)
    try:
        checkpoint = open_checkpoint(bundle.checkpoint, verifier)
    except NoteError as e:
        raise PublicCheckError(Step.CHECKPOINT_SIGNATURE, str(e)) from None
    as_of = _stamp(bundle.checkpoint, verifier)
    if checkpoint.size != bundle.index + 1:
        raise PublicCheckError(
            Step.CHECKPOINT_SIZE,
            f"checkpoint of size {checkpoint.size}, want {bundle.index + 1}: the size that"
            f" first includes the state root at index {bundle.index}",
        )
    try:
        root = stateroot.parse(bundle.entry)
    except stateroot.StateRootError as e:
        raise PublicCheckError(Step.ENTRY, str(e)) from None
    try:
        verify_inclusion(
            bundle.entry, bundle.index, checkpoint.size, bundle.inclusion, checkpoint.root_hash
        )
    except ProofError as e:
        raise PublicCheckError(Step.LOG_INCLUSION, str(e)) from None
    values = _check_records(bundle, scanned, root.root)
    on = datetime.datetime.fromtimestamp(as_of, datetime.UTC).date()
    records = public_facts.PublicRecords.from_values(values)
    if scanned.serial is None:
        facts = public_facts.facts(records, on, scanned.expiry)
    else:
        registration = None
        if bundle.pack is not None:
            _check_serial(bundle, scanned.serial, values["registration"])
            stated = bundle.pack.registered_lot, bundle.pack.registration
            registration = (*stated, values["registration"])
        facts = public_pack.facts(
            scanned.gtin,
            scanned.lot,
            scanned.serial,
            on,
            scanned.expiry,
            registration,
            values.get("pack"),
            records,
        )
    return PublicReport(
        checkpoint.origin, checkpoint.size, as_of, bundle.index, root.root, facts, scanned
    )


def _check_scan(bundle: PublicProof, scanned: Scanned) -> None:
    got = (bundle.gtin, bundle.lot, bundle.serial)
    lot = scanned.lot
    if lot is None:  # a pack scanned without its lot: the bundle names its registered lot
        if scanned.serial is None or bundle.pack is None:
            raise PublicCheckError(Step.SCAN, "no lot scanned: want a lot, or a registered serial")
        lot = bundle.pack.registered_lot
    want = (scanned.gtin, lot, scanned.serial)
    if got != want:
        raise PublicCheckError(Step.SCAN, f"bundle is about {_name(*got)}, scanned {_name(*want)}")
    if bundle.pack is not None and scanned.serial is None:
        raise PublicCheckError(Step.SCAN, "bundle proves a pack, scanned a lot")


def _name(gtin: str, lot: str, serial: str | None) -> str:
    return f"GTIN {gtin} lot {lot!r}" + ("" if serial is None else f" serial {serial!r}")


def _check_serial(bundle: PublicProof, serial: str, registration: bytes | None) -> None:
    """The scanned serial is in the registration's root, at the stated index of its count."""
    pack = bundle.pack
    assert pack is not None
    if registration is None:
        raise PublicCheckError(Step.RECORDS, "registration proven absent, want present")
    record = json.loads(registration)
    if record.get("count") != pack.size:
        raise PublicCheckError(
            Step.SERIAL_INCLUSION,
            f"serial proof of {pack.size} serials, want {record.get('count')}",
        )
    try:
        root = bytes.fromhex(record["root"])
        verify_inclusion(serial.encode(), pack.index, pack.size, pack.path, root)
    except (ProofError, ValueError, KeyError, TypeError) as e:
        raise PublicCheckError(Step.SERIAL_INCLUSION, f"serial {serial!r}: {e}") from None


def _stamp(note: str, verifier: Verifier) -> int:
    """The time of the log's own cosignature line, once it verifies."""
    stamper = CosignatureVerifier(verifier.name, verifier.public_key)
    text, signatures = parse_note(note)
    for signature in signatures:
        if (signature.name, signature.key_id) == (stamper.name, stamper.key_id):
            try:
                verify_cosignature(text, signature.line, stamper)
            except NoteError as e:
                raise PublicCheckError(Step.CHECKPOINT_TIME, str(e)) from None
            return cosignature_timestamp(signature)
    raise PublicCheckError(
        Step.CHECKPOINT_TIME,
        f"no timestamp line of the log's key ({stamper.name}+{stamper.key_id:08x}), want one",
    )


def _check_records(bundle: PublicProof, scanned: Scanned, root: bytes) -> dict[str, bytes | None]:
    """Verify each record against `root` under keys from `scanned`; return the values by
    record name."""
    got = [(r.contract, r.code) for r in bundle.records]
    kinds = LOT_RECORDS + (PACK_RECORDS if bundle.pack is not None else ())
    want = [(t.contract, t.code) for t in kinds]
    if got != want:
        listed = ", ".join(t.name for t in kinds)
        raise PublicCheckError(Step.RECORDS, f"records {got}, want {want} ({listed})")
    names = {(t.contract, t.code): t.name for t in kinds}
    values: dict[str, bytes | None] = {}
    # Every key from what was scanned; a pack's registration (lot, n) is stated by the
    # bundle (the serial's inclusion in its root proves it), the lot it is in now is its
    # pack record's (proven under the scanned serial's key), else its registered lot.
    registration = None
    lot = scanned.lot
    if bundle.pack is not None:
        registration = (bundle.pack.registered_lot, bundle.pack.registration)
        try:
            raw = [(r.contract, r.code, r.value) for r in bundle.records]
            lot = current_lot(bundle.pack.registered_lot, bundle.pack, raw)
        except PublicProofFormatError as e:
            raise PublicCheckError(Step.RECORD_VALUE, str(e)) from None
    assert lot is not None, "_check_scan: a lot, or a pack part naming it"
    keys = Keys(scanned.gtin, lot, scanned.serial, registration, bundle.grouped)
    for r in bundle.records:
        name = names[(r.contract, r.code)]
        key = r.key(keys)
        try:
            verify_proof(root, key, r.value, r.proof)
        except ProofError as e:
            raise PublicCheckError(Step.RECORD_PROOF, f"{name}: {e}") from None
        if r.value is not None:
            try:
                decoded = json.loads(r.value)
                canonical = canonicalize(decoded) == r.value and isinstance(decoded, dict)
            except ValueError:
                canonical = False
            if not canonical:
                raise PublicCheckError(Step.RECORD_VALUE, f"{name}: want a canonical JSON object")
        values[name] = r.value
    if not bundle.grouped and values[lots.LOT.name] is None:
        # Since grouped keys no record sits at a plain key: a bundle rewritten with plain
        # keys (version 1-2, JSON 1) proves any lot absent under today's root. Saved before
        # grouped keys, such a bundle is still read for a lot it proves present.
        raise PublicCheckError(
            Step.RECORD_PROOF,
            "lot proven absent under plain keys (bundle version 1-2): every lot is absent"
            " there since grouped keys; want a version 3 bundle",
        )
    return values
