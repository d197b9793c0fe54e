"""Offline verification of a reading's proof bundle: reading -> batch -> log -> checkpoint.

An auditor checks one reading without trusting the operator: every link of the chain is
recomputed here from the bundle's bytes and public keys alone. Checks, in order, each
failing with a `BundleError` that names its `Step` and says got/want:

    bundle shape          every field present; hex where hex is due; whole numbers >= 0
    reading               the reading decodes (docs/protocol.md "Reading v1")
    reading signature     its BIP-340 signature verifies under the box key it carries
    device key            that box key is the one the caller expects (only when given)
    batch header          the batch header decodes ("Batch header v1")
    batch signature       the gateway's BIP-340 signature on it verifies
    batch size            batch.size is the header's reading count
    batch inclusion       the reading's leaf is at batch.index under the header's Merkle root
    log entry             log.entry is exactly the batch entry (0x01 || header) of that header
    log key               the log key to trust parses; a pinned key is the one the bundle names
    checkpoint signature  the checkpoint note is signed by that log key
    checkpoint size       the checkpoint's tree size is log.size
    log inclusion         the entry's leaf is at log.index under the checkpoint's root
    witness cosignatures  the given witnesses' cosignatures verify, at least as many as asked

The checkpoint is opened (its signature verified) before its size and root are used: the
text of a signed note means nothing until a trusted signature verifies
(c2sp.org/signed-note), and a checkpoint for another size is then named as such instead of
showing up as a root mismatch.

Trust: with no `log_vkey` from the caller, the bundle's own key is used and the report says
the key is UNPINNED: such a bundle proves it is self-consistent, not that the operator's
log holds it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cloud.log import kinds, tlog
from device import reading, schnorr, topics
from device.cliutil import describe
from gateway import batch, jsonbound
from gateway.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    CosignatureVerifier,
    open_checkpoint,
    verify_cosignature,
)
from gateway.merkle_verify import (
    HashSizeError,
    ProofError,
    ProofSizeError,
    RootMismatchError,
    verify_inclusion,
    verify_leaf_hash_inclusion,
)
from gateway.note import (
    InvalidSignatureError,
    NoteError,
    UnverifiedNoteError,
    Verifier,
    parse_note,
)

_HEX = re.compile("(?:[0-9a-fA-F]{2})*")
BOX_KEY_SIZE = 32  # a BIP-340 x-only public key (docs/protocol.md, "Signatures")
# A bundle is a few KiB (two proofs of at most 64 hashes, a checkpoint note): a larger
# document is refused before it is parsed (gateway/jsonbound.py).
MAX_BUNDLE_BYTES = 1024 * 1024


class Step(enum.Enum):
    """The checks of a bundle, in the order they run; the value is the name users see."""

    SHAPE = "bundle shape"
    READING = "reading"
    READING_SIGNATURE = "reading signature"
    DEVICE_KEY = "device key"
    BATCH_HEADER = "batch header"
    BATCH_SIGNATURE = "batch signature"
    BATCH_SIZE = "batch size"
    BATCH_INCLUSION = "batch inclusion"
    LOG_ENTRY = "log entry"
    LOG_KEY = "log key"
    CHECKPOINT_SIGNATURE = "checkpoint signature"
    CHECKPOINT_SIZE = "checkpoint size"
    LOG_INCLUSION = "log inclusion"
    WITNESSES = "witness cosignatures"


class BundleError(ValueError):
    """A bundle check failed: `.step` names it, `.got` and `.want` say what was found and
    what was expected, `.subject` the field concerned (may be empty), `.passed` the
    (step, what held) pairs of the checks that passed before it."""

    def __init__(self, step: Step, got: str, want: str, subject: str = "") -> None:
        self.step = step
        self.got = got
        self.want = want
        self.subject = subject
        self.passed: tuple[tuple[Step, str], ...] = ()
        where = f"{subject}: " if subject else ""
        super().__init__(f"{step.value}: {where}got {got}, want {want}")


@dataclass(frozen=True)
class Bundle:
    """A proof bundle's fields, decoded from its JSON (GET /v1/readings/{key}/{seq}/proof)."""

    reading: bytes
    header: bytes
    batch_index: int
    batch_size: int
    batch_proof: tuple[bytes, ...]
    entry: bytes
    log_index: int
    log_size: int
    log_proof: tuple[bytes, ...]
    checkpoint: str
    log_vkey: str

    @classmethod
    def parse(cls, bundle: Mapping[str, Any] | str | bytes) -> Bundle:
        """Read a bundle from its JSON (text or UTF-8 bytes, at most MAX_BUNDLE_BYTES,
        read by gateway/jsonbound.py) or its decoded object.

        Raises BundleError (step SHAPE) naming the first missing or malformed field.
        """
        if isinstance(bundle, str | bytes):
            try:
                bundle = jsonbound.loads(bundle, max_bytes=MAX_BUNDLE_BYTES, what="bundle")
            except jsonbound.JsonError as e:
                raise BundleError(Step.SHAPE, e.got, e.want) from None
        root = _object(bundle, "bundle")
        batch_part = _object(_field(root, "batch", ""), "batch")
        log_part = _object(_field(root, "log", ""), "log")
        return cls(
            reading=_hex(_field(root, "reading", ""), "reading"),
            header=_hex(_field(batch_part, "header", "batch."), "batch.header"),
            batch_index=_count(_field(batch_part, "index", "batch."), "batch.index"),
            batch_size=_count(_field(batch_part, "size", "batch."), "batch.size"),
            batch_proof=_proof(_field(batch_part, "proof", "batch."), "batch.proof"),
            entry=_hex(_field(log_part, "entry", "log."), "log.entry"),
            log_index=_count(_field(log_part, "index", "log."), "log.index"),
            log_size=_count(_field(log_part, "size", "log."), "log.size"),
            log_proof=_proof(_field(log_part, "proof", "log."), "log.proof"),
            checkpoint=_text(_field(root, "checkpoint", ""), "checkpoint"),
            log_vkey=_text(_field(root, "log_vkey", ""), "log_vkey"),
        )


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BundleError(Step.SHAPE, type(value).__name__, "a JSON object", where)
    return value


def _field(obj: Mapping[str, Any], key: str, prefix: str) -> object:
    if key not in obj:
        raise BundleError(Step.SHAPE, "nothing", "a value", prefix + key)
    return obj[key]


def _hex(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        got = repr(value[:24]) if isinstance(value, str) else type(value).__name__
        raise BundleError(Step.SHAPE, got, "hex digits in pairs", where)
    return bytes.fromhex(value)


def _count(value: object, where: str) -> int:
    # bool is an int in Python; in JSON `true` is no index.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BundleError(Step.SHAPE, repr(value), "a whole number >= 0", where)
    return value


def _proof(value: object, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise BundleError(Step.SHAPE, type(value).__name__, "a list of hex hashes", where)
    return tuple(_hex(item, f"{where}[{i}]") for i, item in enumerate(value))


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise BundleError(Step.SHAPE, type(value).__name__, "a string", where)
    return value


@dataclass(frozen=True)
class ReadingInfo:
    """What a verified reading says, in units people read."""

    box_key: bytes
    seq: int
    time: int
    temperature_c: float
    humidity_pct: float
    flags: tuple[str, ...]

    @classmethod
    def of(cls, decoded: reading.Reading) -> ReadingInfo:
        """Return the readable form of a decoded reading."""
        return cls(
            box_key=decoded.key,
            seq=decoded.seq,
            time=decoded.time,
            temperature_c=decoded.temperature / 100,
            humidity_pct=decoded.humidity / 100,
            flags=tuple(cast(list[str], describe(decoded)["flags"])),
        )


@dataclass(frozen=True)
class Cosignature:
    """A witness cosignature that verified: the witness's key string, name and POSIX time."""

    witness: str
    name: str
    timestamp: int


@dataclass(frozen=True)
class BundleReport:
    """A bundle that passed every check: what it proves, and on whose keys that rests."""

    reading: ReadingInfo
    gateway_key: bytes
    batch_seq: int
    header_hash: bytes
    batch_index: int
    batch_size: int
    log_index: int
    log_size: int
    checkpoint_origin: str
    checkpoint_root: bytes
    log_vkey: str
    log_key_pinned: bool
    cosignatures: tuple[Cosignature, ...]
    steps: tuple[tuple[Step, str], ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """Return the report as JSON-able values (bytes as hex)."""
        r = self.reading
        return {
            "ok": True,
            "reading": {
                "box_key": r.box_key.hex(),
                "seq": r.seq,
                "time": r.time,
                "temperature_c": r.temperature_c,
                "humidity_pct": r.humidity_pct,
                "flags": list(r.flags),
            },
            "gateway_key": self.gateway_key.hex(),
            "batch": {
                "seq": self.batch_seq,
                "header_hash": self.header_hash.hex(),
                "index": self.batch_index,
                "size": self.batch_size,
            },
            "log": {"index": self.log_index, "size": self.log_size},
            "checkpoint": {"origin": self.checkpoint_origin, "root": self.checkpoint_root.hex()},
            "log_vkey": self.log_vkey,
            "log_key_pinned": self.log_key_pinned,
            "cosignatures": [
                {"witness": c.witness, "name": c.name, "timestamp": c.timestamp}
                for c in self.cosignatures
            ],
            "steps": [{"step": step.value, "detail": detail} for step, detail in self.steps],
            "notes": list(self.notes),
        }


def _inclusion(step: Step, index: int, size: int, check: Callable[[], None]) -> None:
    """Run an inclusion check; turn its ProofError into a BundleError of `step`."""
    try:
        check()
    except RootMismatchError as e:
        raise BundleError(step, f"root {e.computed.hex()}", f"{e.expected.hex()}") from e
    except ProofSizeError as e:
        raise BundleError(
            step, f"{e.got} proof hashes", f"{e.want} for index {index} of {size}"
        ) from e
    except HashSizeError as e:
        raise BundleError(step, f"{e.got} bytes", f"{e.want}", e.what) from e
    except ProofError as e:  # TreeRangeError: index or size out of range
        raise BundleError(step, f"index {index}, size {size}", "0 <= index < size") from e


def _key_label(verifier: Verifier) -> str:
    return f"{verifier.name}+{verifier.key_id:08x}"


def _open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Open the checkpoint note under the log key; raise BundleError(CHECKPOINT_SIGNATURE)."""
    want = f"a valid signature by the log key {_key_label(verifier)}"
    try:
        return open_checkpoint(note, verifier)
    except UnverifiedNoteError as e:
        others = ", ".join(f"{s.name}+{s.key_id:08x}" for s in e.note.unverified)
        raise BundleError(Step.CHECKPOINT_SIGNATURE, f"signatures by {others} only", want) from e
    except InvalidSignatureError as e:
        raise BundleError(Step.CHECKPOINT_SIGNATURE, "an invalid signature", want) from e
    except CheckpointFormatError as e:
        raise BundleError(Step.CHECKPOINT_SIGNATURE, str(e), "a tlog-checkpoint") from e
    except NoteError as e:
        raise BundleError(Step.CHECKPOINT_SIGNATURE, str(e), "a signed note") from e


def _trusted_log_key(bundle: Bundle, pinned: Verifier | None) -> Verifier:
    """Return the log key to check the checkpoint with; raise BundleError(LOG_KEY)."""
    if pinned is not None:
        if bundle.log_vkey.strip() != pinned.to_vkey():
            # The bundle comes from another log, or the log changed its key: either way the
            # caller must decide, not this code.
            raise BundleError(Step.LOG_KEY, repr(bundle.log_vkey), repr(pinned.to_vkey()))
        return pinned
    try:
        return Verifier.parse(bundle.log_vkey.strip())
    except NoteError as e:
        raise BundleError(Step.LOG_KEY, str(e), "a verifier key string", "log_vkey") from e


def _witnesses(
    note: str, checkpoint_text: str, witnesses: Sequence[CosignatureVerifier], minimum: int
) -> tuple[Cosignature, ...]:
    """Verify the given witnesses' cosignatures on the note; require at least `minimum`.

    A cosignature line from a given witness that does not verify fails outright (as a known
    key's bad signature does in signed-note): it is a forgery, not an absence.
    """
    _, lines = parse_note(note)
    found = []
    for w in witnesses:
        line = next((s for s in lines if (s.name, s.key_id) == (w.name, w.key_id)), None)
        if line is None:
            continue
        try:
            timestamp = verify_cosignature(checkpoint_text, line.line, w)
        except NoteError as e:
            raise BundleError(
                Step.WITNESSES, f"an invalid cosignature ({e})", "a valid one", _key_label(w)
            ) from e
        found.append(Cosignature(w.to_vkey(), w.name, timestamp))
    if len(found) < minimum:
        names = ", ".join(c.name for c in found) or "none"
        raise BundleError(
            Step.WITNESSES,
            f"{len(found)} cosignatures ({names})",
            f"at least {minimum} of the {len(witnesses)} witnesses given",
        )
    return tuple(found)


def _parse_witnesses(witnesses: Sequence[str]) -> list[CosignatureVerifier]:
    """Parse witness key strings, one verifier per distinct key (a key given twice counts
    once, so one witness can never make up a quorum alone)."""
    parsed: dict[tuple[str, int], CosignatureVerifier] = {}
    for vkey in witnesses:
        w = CosignatureVerifier.parse(vkey.strip())
        parsed.setdefault((w.name, w.key_id), w)
    return list(parsed.values())


def verify_bundle(
    bundle: Mapping[str, Any] | str | bytes,
    *,
    log_vkey: str | None = None,
    device_key: bytes | None = None,
    witnesses: Sequence[str] = (),
    min_cosignatures: int = 0,
) -> BundleReport:
    """Check a proof bundle link by link and return what it proves.

    `log_vkey` pins the log key (else the bundle's own, reported as unpinned); `device_key`
    requires that box (its whole key, or its 8-byte id); `witnesses` are cosignature/v1 (or
    Ed25519) key strings of which at least `min_cosignatures` must have cosigned. Raises
    BundleError naming the failed step; raises ValueError (KeyFormatError for key strings)
    for bad arguments, before any check.
    """
    pinned = Verifier.parse(log_vkey.strip()) if log_vkey is not None else None
    if device_key is not None and len(device_key) not in (topics.ID_BYTES, BOX_KEY_SIZE):
        raise ValueError(
            f"device_key: got {len(device_key)} bytes, want {BOX_KEY_SIZE} (a key) "
            f"or {topics.ID_BYTES} (a box id: the key's first bytes)"
        )
    witness_keys = _parse_witnesses(witnesses)
    if not 0 <= min_cosignatures <= len(witness_keys):
        raise ValueError(
            f"min_cosignatures: got {min_cosignatures}, want 0..{len(witness_keys)} "
            "(no more than the distinct witnesses given)"
        )
    passed: list[tuple[Step, str]] = []
    try:
        return _verify(bundle, pinned, device_key, witness_keys, min_cosignatures, passed)
    except BundleError as e:
        e.passed = tuple(passed)
        raise


def _verify(
    raw: Mapping[str, Any] | str | bytes,
    pinned: Verifier | None,
    device_key: bytes | None,
    witnesses: Sequence[CosignatureVerifier],
    min_cosignatures: int,
    passed: list[tuple[Step, str]],
) -> BundleReport:
    """The checks of verify_bundle, in order; each appends (step, what held) to `passed`."""
    bundle = Bundle.parse(raw)
    passed.append((Step.SHAPE, "every field present and well formed"))

    try:
        decoded = reading.decode(bundle.reading)
    except reading.ReadingError as e:
        raise BundleError(Step.READING, str(e), "a version-1 reading", e.field) from e
    passed.append((Step.READING, f"box {decoded.key.hex()} seq {decoded.seq}"))
    if not schnorr.verify(decoded.key, reading.message(bundle.reading), decoded.signature):
        raise BundleError(
            Step.READING_SIGNATURE, "a signature that does not verify", "BIP-340 by the box key"
        )
    passed.append((Step.READING_SIGNATURE, "BIP-340 by the box key it carries"))
    if device_key is not None:
        if decoded.key[: len(device_key)] != device_key:  # a whole key, or a box's id
            raise BundleError(Step.DEVICE_KEY, decoded.key.hex(), device_key.hex())
        passed.append((Step.DEVICE_KEY, "the box you named"))

    try:
        header = batch.decode(bundle.header)
    except batch.BatchError as e:
        raise BundleError(Step.BATCH_HEADER, str(e), "a version-1 batch header", e.field) from e
    passed.append((Step.BATCH_HEADER, f"gateway {header.gateway_key.hex()} batch {header.seq}"))
    if not header.verify_signature():
        raise BundleError(
            Step.BATCH_SIGNATURE, "a signature that does not verify", "BIP-340 by the gateway key"
        )
    passed.append((Step.BATCH_SIGNATURE, "BIP-340 by the gateway key it carries"))
    if bundle.batch_size != header.count:
        raise BundleError(Step.BATCH_SIZE, str(bundle.batch_size), f"{header.count} (the count)")
    passed.append((Step.BATCH_SIZE, f"{header.count} readings"))
    _inclusion(
        Step.BATCH_INCLUSION,
        bundle.batch_index,
        header.count,
        lambda: verify_inclusion(
            bundle.reading, bundle.batch_index, header.count, bundle.batch_proof, header.merkle_root
        ),
    )
    passed.append(
        (Step.BATCH_INCLUSION, f"leaf {bundle.batch_index} of {header.count} under the root")
    )

    want_entry = bytes([kinds.ENTRY_BATCH]) + bundle.header
    if bundle.entry != want_entry:
        try:
            kind = kinds.kind_of(bundle.entry)
        except kinds.EntryError as e:
            raise BundleError(Step.LOG_ENTRY, str(e), "a batch entry (0x01)") from e
        got = f"a {kind.name} entry of header hash {batch.header_hash(bundle.entry[1:]).hex()}"
        raise BundleError(Step.LOG_ENTRY, got, f"header hash {header.hash().hex()}")
    passed.append((Step.LOG_ENTRY, "0x01 || exactly that batch header"))

    log_key = _trusted_log_key(bundle, pinned)
    passed.append(
        (Step.LOG_KEY, f"{_key_label(log_key)} ({'pinned' if pinned else 'UNPINNED, the bundle'})")
    )
    checkpoint = _open_checkpoint(bundle.checkpoint, log_key)
    passed.append((Step.CHECKPOINT_SIGNATURE, f"signed by {_key_label(log_key)}"))
    if checkpoint.size != bundle.log_size:
        raise BundleError(
            Step.CHECKPOINT_SIZE, str(checkpoint.size), f"{bundle.log_size} (log.size)"
        )
    passed.append((Step.CHECKPOINT_SIZE, f"{checkpoint.size} entries"))
    _inclusion(
        Step.LOG_INCLUSION,
        bundle.log_index,
        bundle.log_size,
        lambda: verify_leaf_hash_inclusion(
            tlog.entry_leaf(bundle.entry),
            bundle.log_index,
            bundle.log_size,
            bundle.log_proof,
            checkpoint.root_hash,
        ),
    )
    passed.append(
        (Step.LOG_INCLUSION, f"entry {bundle.log_index} of {bundle.log_size} under the root")
    )

    cosignatures: tuple[Cosignature, ...] = ()
    if witnesses:
        cosignatures = _witnesses(
            bundle.checkpoint, checkpoint.to_text(), witnesses, min_cosignatures
        )
        passed.append(
            (Step.WITNESSES, f"{len(cosignatures)} of {len(witnesses)} (need {min_cosignatures})")
        )

    return BundleReport(
        reading=ReadingInfo.of(decoded),
        gateway_key=header.gateway_key,
        batch_seq=header.seq,
        header_hash=header.hash(),
        batch_index=bundle.batch_index,
        batch_size=header.count,
        log_index=bundle.log_index,
        log_size=bundle.log_size,
        checkpoint_origin=checkpoint.origin,
        checkpoint_root=checkpoint.root_hash,
        log_vkey=log_key.to_vkey(),
        log_key_pinned=pinned is not None,
        cosignatures=cosignatures,
        steps=tuple(passed),
        notes=_notes(decoded, pinned is not None, device_key is not None, witnesses, cosignatures),
    )


def _notes(
    decoded: reading.Reading,
    pinned: bool,
    device_given: bool,
    witnesses: Sequence[CosignatureVerifier],
    cosignatures: Sequence[Cosignature],
) -> tuple[str, ...]:
    """Say on which keys the verdict rests and what it does not prove."""
    notes = []
    if pinned:
        notes.append("log key pinned by you: the checkpoint is the operator's signed log head")
    else:
        notes.append(
            "log key UNPINNED: taken from the bundle itself (self-asserted). This proves the "
            "bundle is consistent, not that the operator's log holds it: pass --log-vkey"
        )
    if not device_given:
        notes.append(
            "box key taken from the reading itself: check it is the box you expect (--device)"
        )
    notes.append(
        "gateway key as the batch header states it: this check does not know which gateways "
        "are registered"
    )
    if not witnesses:
        notes.append(
            "no witnesses checked: a log showing different views to different auditors "
            "would not be detected offline (--witness)"
        )
    else:
        notes.append(f"cosigned by {len(cosignatures)} of {len(witnesses)} witnesses given")
    if decoded.flags & reading.FLAG_CLOCK_UNSYNCED:
        notes.append("the box's clock was unsynced: `time` is its own monotonic seconds, not UTC")
    return tuple(notes)
