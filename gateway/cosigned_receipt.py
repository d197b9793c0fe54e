"""Cosigned receipts: a batch's receipt made witness-backed (docs/protocol.md, "Cosigned receipt").

A receipt carries the log's checkpoint of size log_index + 1, the first that includes the
batch; witnesses cosign whatever checkpoint is latest when they are asked, so that one is
rarely cosigned. A cosigned receipt is the original receipt, unchanged, plus a later
checkpoint carrying witness cosignatures, the batch entry's inclusion proof at that size and
the consistency proof from the receipt's size to it (the original is provably a prefix):

    {"receipt": {"gateway", "seq", "header_hash", "log_index", "checkpoint"},
     "cosigned": {"entry": "<hex: 0x01 ‖ 181-byte header>", "size": S,
                  "checkpoint": "<signed note of size S with cosignature lines>",
                  "inclusion": ["<hex>", ...], "consistency": ["<hex>", ...]}}

The one definition of the format and of its check, used by the cloud (which builds it), the
gateway (which fetches and keeps it) and `pharmasync verify --receipt` (which checks it).
Each check is a named step; the first that fails raises ReceiptError(step, detail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway import batch, merkle_verify
from gateway.checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    open_checkpoint,
    verify_cosignature,
)
from gateway.note import NoteError, Verifier, parse_note

ENTRY_BATCH: Final = 0x01  # a batch header's log entry kind, as cloud/log/tlog.py (a test checks)
MAX_INT: Final = 2**63 - 1  # sizes and seqs the cloud's databases hold
MAX_PROOF: Final = 64  # hashes in an inclusion or consistency proof of a uint64-sized log
STEPS: Final = (
    "shape",  # fields, types and ranges
    "entry",  # the entry is the batch's header: kind, gateway, seq, header hash
    "receipt checkpoint",  # the original checkpoint: size log_index + 1, the log's signature
    "cosigned checkpoint",  # the later one: same origin, size S, the log's signature
    "inclusion",  # the entry at log_index under the cosigned checkpoint's root
    "consistency",  # the receipt's checkpoint is a prefix of the cosigned one
    "cosignatures",  # at least the wanted number of distinct witnesses cosigned it
)


class ReceiptError(ValueError):
    """A cosigned receipt that does not check: `.step` (one of STEPS) and `.detail`."""

    def __init__(self, step: str, detail: str) -> None:
        self.step, self.detail = step, detail
        super().__init__(f"{step}: {detail}")


@dataclass(frozen=True, slots=True)
class CosignedReceipt:
    """A parsed cosigned receipt (module docstring); `receipt` is the original JSON object."""

    receipt: dict[str, Any]
    gateway: bytes
    seq: int
    header_hash: bytes
    log_index: int
    checkpoint: str
    entry: bytes
    size: int
    cosigned_checkpoint: str
    inclusion: tuple[bytes, ...]
    consistency: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the cosigned receipt as its JSON object."""
        return {
            "receipt": self.receipt,
            "cosigned": {
                "entry": self.entry.hex(),
                "size": self.size,
                "checkpoint": self.cosigned_checkpoint,
                "inclusion": [h.hex() for h in self.inclusion],
                "consistency": [h.hex() for h in self.consistency],
            },
        }


@dataclass(frozen=True, slots=True)
class Checked:
    """What a cosigned receipt proved: its batch, the cosigned size and who cosigned it.
    `witnesses` names the verified cosigners; without witness keys to check against, it
    is empty and `cosignatures` counts the unverified lines of keys other than the log's."""

    gateway: bytes
    seq: int
    log_index: int
    size: int
    cosignatures: int
    witnesses: tuple[str, ...]


def _int(doc: dict[str, Any], name: str, low: int, high: int) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ReceiptError("shape", f"{name}: got {value!r:.40}, want an integer {low} to {high}")
    return value


def _hex(value: object, name: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or (size is not None and len(raw) != size):
        want = f"{size} bytes of hex" if size else "hex"
        raise ReceiptError("shape", f"{name}: got {value!r:.40}, want {want}")
    return raw


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise ReceiptError("shape", f"{name}: got {value!r:.40}, want a signed note")
    return value


def _proof(doc: dict[str, Any], name: str) -> tuple[bytes, ...]:
    value = doc.get(name)
    if not isinstance(value, list) or len(value) > MAX_PROOF:
        raise ReceiptError("shape", f"{name}: want a list of at most {MAX_PROOF} hex hashes")
    return tuple(_hex(h, f"{name}[{i}]", 32) for i, h in enumerate(value))


def parse(doc: object) -> CosignedReceipt:
    """Read a cosigned receipt's JSON object (already parsed, size-bounded). Raises
    ReceiptError("shape", ...) naming the first field that is missing or out of range."""
    if not isinstance(doc, dict):
        raise ReceiptError("shape", f"got {type(doc).__name__}, want an object")
    receipt, cosigned = doc.get("receipt"), doc.get("cosigned")
    if not isinstance(receipt, dict) or not isinstance(cosigned, dict):
        raise ReceiptError("shape", "want objects 'receipt' and 'cosigned'")
    log_index = _int(receipt, "log_index", 0, MAX_INT - 1)
    return CosignedReceipt(
        receipt=receipt,
        gateway=_hex(receipt.get("gateway"), "gateway", 32),
        seq=_int(receipt, "seq", 0, MAX_INT),
        header_hash=_hex(receipt.get("header_hash"), "header_hash", 32),
        log_index=log_index,
        checkpoint=_text(receipt, "checkpoint"),
        entry=_hex(cosigned.get("entry"), "entry", 1 + batch.SIZE),
        size=_int(cosigned, "size", log_index + 1, MAX_INT),
        cosigned_checkpoint=_text(cosigned, "checkpoint"),
        inclusion=_proof(cosigned, "inclusion"),
        consistency=_proof(cosigned, "consistency"),
    )


def _checkpoint(note: str, log_key: Verifier | None, step: str) -> Checkpoint:
    """The checkpoint in `note`, its log signature verified if `log_key` is given."""
    try:
        if log_key is not None:
            return open_checkpoint(note, log_key)
        return Checkpoint.parse(parse_note(note)[0])
    except NoteError as e:
        raise ReceiptError(step, str(e)) from None


def _count_cosignatures(
    cp: str, log_key: Verifier | None, receipt_cp: str, witnesses: Sequence[CosignatureVerifier]
) -> tuple[int, tuple[str, ...]]:
    """Count distinct witnesses whose cosignature on note `cp` verifies; with no witness keys,
    the lines of keys that did not sign the receipt's own checkpoint (the log's)."""
    text, signatures = parse_note(cp)
    if not witnesses:
        logs = {(s.name, s.key_id) for s in parse_note(receipt_cp)[1]}
        if log_key is not None:
            logs.add((log_key.name, log_key.key_id))
        others = {(s.name, s.key_id) for s in signatures} - logs
        return len(others), ()
    named: list[str] = []
    for witness in witnesses:
        for signature in signatures:
            if (signature.name, signature.key_id) != (witness.name, witness.key_id):
                continue
            try:
                verify_cosignature(text, signature.line, witness)
            except NoteError as e:
                raise ReceiptError("cosignatures", f"witness {witness.name}: {e}") from None
            named.append(witness.name)
            break
    return len(named), tuple(named)


def check(
    r: CosignedReceipt,
    *,
    log_key: Verifier | None,
    witnesses: Sequence[CosignatureVerifier] = (),
    min_cosignatures: int = 1,
) -> Checked:
    """Check cosigned receipt `r` step by step (STEPS). `log_key` is the log's pinned key
    (None: the checkpoints' signatures are not checked, only their text); cosignatures count
    only from `witnesses` (any key's but the log's when none are given), at least
    `min_cosignatures`. Raises ReceiptError(step, detail) at the first step that fails."""
    if r.entry[0] != ENTRY_BATCH:
        raise ReceiptError("entry", f"kind: got 0x{r.entry[0]:02x}, want 0x{ENTRY_BATCH:02x}")
    header = r.entry[1:]
    try:
        decoded = batch.decode(header)
    except batch.BatchError as e:
        raise ReceiptError("entry", f"header: {e}") from None
    if batch.header_hash(header) != r.header_hash:
        raise ReceiptError(
            "entry",
            f"header hash: got {batch.header_hash(header).hex()}, want {r.header_hash.hex()}",
        )
    if (decoded.gateway_key, decoded.seq) != (r.gateway, r.seq):
        raise ReceiptError(
            "entry",
            f"got gateway {decoded.gateway_key.hex()} seq {decoded.seq}, "
            f"want {r.gateway.hex()} seq {r.seq}",
        )
    first = _checkpoint(r.checkpoint, log_key, "receipt checkpoint")
    if first.size != r.log_index + 1:
        raise ReceiptError("receipt checkpoint", f"size: got {first.size}, want {r.log_index + 1}")
    later = _checkpoint(r.cosigned_checkpoint, log_key, "cosigned checkpoint")
    if later.origin != first.origin:
        raise ReceiptError(
            "cosigned checkpoint", f"origin: got {later.origin!r}, want {first.origin!r}"
        )
    if later.size != r.size:
        raise ReceiptError("cosigned checkpoint", f"size: got {later.size}, want {r.size}")
    try:
        merkle_verify.verify_inclusion(r.entry, r.log_index, r.size, r.inclusion, later.root_hash)
    except merkle_verify.ProofError as e:
        raise ReceiptError("inclusion", str(e)) from None
    try:
        merkle_verify.verify_consistency(
            first.size, later.size, first.root_hash, later.root_hash, r.consistency
        )
    except merkle_verify.ProofError as e:
        raise ReceiptError("consistency", str(e)) from None
    count, named = _count_cosignatures(r.cosigned_checkpoint, log_key, r.checkpoint, witnesses)
    if count < min_cosignatures:
        whose = "of the given witnesses" if witnesses else "(unverified: no witness keys)"
        raise ReceiptError("cosignatures", f"got {count} {whose}, want {min_cosignatures}")
    return Checked(r.gateway, r.seq, r.log_index, r.size, count, named)
