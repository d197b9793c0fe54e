"""The public check's proof bundle: a pack's or lot's public facts with their proofs, bytes
and JSON (docs/protocol.md, "Public check proof").

    record --(state tree proof)--> state root --(in the 0x04 entry)--> log entry
           --(RFC 6962 inclusion)--> checkpoint of size index + 1 --(log's signature)--> key

The bundle names what it is about (GTIN, lot, serial), the 0x04 entry and its log index,
the inclusion proof of that entry as the last leaf of the log of index + 1 entries, the
checkpoint note of exactly that size (signed by the log, with the log's own timestamped
cosignature: the "as of" time), and the proven records: each a (contract, record type)
whose key the verifier recomputes from the scanned identifiers (RECORD_KEYS, the one table
to extend: packs add their serial records there), its canonical value (absent: None) and
its state tree proof (cloud/contracts/statetree_proof.py). Pure: no clock, no storage.

Errors: PublicProofFormatError (a ProofError, as every proof PharmaSync reads), saying got/want.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from cloud.contracts import gs1, lots, pack_facts, public_note, stateroot
from cloud.contracts import public_multiproof as multiproof
from cloud.contracts.engine import RecordType
from cloud.contracts.statetree_hash import grouped_key, record_key, value_hash
from cloud.contracts.statetree_proof import Proof, proof_from_bytes, proof_from_json
from gateway.merkle_verify import ProofError

MEDIA_TYPE: Final = "application/vnd.pharmasync.public-proof"  # the bundle's bytes over HTTP
VERSION: Final = 3  # of the bytes written (1 and 2 are still read: bundles saved before)
VERSIONS: Final = (1, 2, 3)
UNGROUPED: Final = (1, 2)  # byte versions whose lot records have ungrouped keys (below)
JSON_VERSION: Final = 2  # 1 is still read: keys ungrouped, as byte versions 1 and 2
CONTRACT: Final = "lots"  # every record a bundle carries is the lots contract's (version 2+)
FLAG_SERIAL: Final = 0x01
FLAG_PACK: Final = 0x02  # a pack part follows the serial: the serial is registered
MAX_BUNDLE: Final = 64 * 1024  # a bundle is a few KB; anything larger is refused unread
MAX_NOTE: Final = 8 * 1024  # checkpoint note: four lines and a few signature lines
MAX_INCLUSION: Final = 64  # hashes in an RFC 6962 inclusion proof of a log of < 2**64 entries
MAX_RECORDS: Final = 16
MAX_VALUE: Final = 4096  # one public record's canonical JSON
KEY_LOT: Final = "lot"  # records keyed by (gtin, lot)
KEY_SERIAL: Final = "serial"  # records keyed by (gtin, serial): the packs contract's
KEY_REGISTRATION: Final = "registration"  # keyed by (gtin, registered lot, str(n))
MAX_SERIAL_PATH: Final = 17  # hashes: a registration holds at most 100,000 < 2**17 serials

# Which proven records a bundle may carry and by which identifiers each is keyed: the
# extension point for serials (the packs contract adds its (name, type) -> KEY_SERIAL rows).
RECORD_KEYS: Final[dict[tuple[str, int], str]] = {
    (t.contract, t.code): KEY_LOT for t in (lots.LOT, lots.QUALITY, lots.RECALL, lots.COLDCHAIN)
} | {
    (pack_facts.REGISTRATION.contract, pack_facts.REGISTRATION.code): KEY_REGISTRATION,
    (pack_facts.PACK.contract, pack_facts.PACK.code): KEY_SERIAL,
}
# What every lot's bundle proves, present or absent, in this order.
LOT_RECORDS: Final[tuple[RecordType, ...]] = (lots.LOT, lots.QUALITY, lots.RECALL, lots.COLDCHAIN)
# What a registered pack's bundle proves after them: its registration (present) and its pack
# record (present: moved or decommissioned; absent: active in its registered lot).
PACK_RECORDS: Final[tuple[RecordType, ...]] = (pack_facts.REGISTRATION, pack_facts.PACK)
# The records whose keys are grouped by (GTIN, lot) (statetree_hash.grouped_key) since the
# state tree grouped them: bundle version 3 (JSON 2). Versions 1 and 2 were written before,
# when every key was a plain record key, and are checked with those.
GROUPED: Final[frozenset[tuple[str, int]]] = frozenset(
    (t.contract, t.code) for t in LOT_RECORDS + PACK_RECORDS if t.grouped
)


@dataclass(frozen=True)
class Keys:
    """The identifiers every record key is computed from: the GTIN, the lot the lot
    records are about (a pack's: the lot it is in now), the serial, and a registered pack's
    registration (its lot and number n)."""

    gtin: str
    lot: str
    serial: str | None = None
    registration: tuple[str, int] | None = None
    grouped: bool = True  # the lot records' keys are grouped (bundle version 3, JSON 2)


@dataclass(frozen=True)
class PackPart:
    """What a registered pack's bundle adds: its registration (the lot that registered the
    serial and the number n of that registration) and the serial's RFC 6962 inclusion proof
    (leaf: its UTF-8) at `index` of the `size` serials whose root the registration holds."""

    registered_lot: str
    registration: int
    index: int
    size: int
    path: tuple[bytes, ...]

    def __post_init__(self) -> None:
        try:
            gs1.lot(self.registered_lot)
        except gs1.Gs1Error as e:
            raise PublicProofFormatError(str(e)) from None
        if not 1 <= self.registration <= 0xFFFFFFFF:
            raise PublicProofFormatError(f"registration {self.registration}, want 1..2**32-1")
        if not 0 <= self.index < self.size <= 0xFFFFFFFF:
            raise PublicProofFormatError(f"serial {self.index} of {self.size}: want index < size")
        if len(self.path) > MAX_SERIAL_PATH or any(len(h) != 32 for h in self.path):
            raise PublicProofFormatError(f"serial path: want at most {MAX_SERIAL_PATH} hashes")

    def to_json(self) -> dict[str, Any]:
        return {
            "registered_lot": self.registered_lot,
            "registration": self.registration,
            "index": self.index,
            "size": self.size,
            "path": [h.hex() for h in self.path],
        }


def current_lot(
    lot: str, pack: PackPart | None, records: Sequence[tuple[str, int, bytes | None]]
) -> str:
    """The lot a bundle's lot records are about: for a registered pack, the lot its pack
    record names (a split moved it), else its registered lot; for anything else `lot`."""
    if pack is None:
        return lot
    code = (pack_facts.PACK.contract, pack_facts.PACK.code)
    for contract, rtype, value in records:
        if (contract, rtype) == code and value is not None:
            try:
                moved = json.loads(value)["lot"]
            except (ValueError, KeyError, TypeError):
                raise PublicProofFormatError("pack record without its lot") from None
            if not isinstance(moved, str):
                raise PublicProofFormatError("pack record's lot is not a string")
            try:  # it picks the lot records' keys before any proof is checked
                gs1.lot(moved)
            except gs1.Gs1Error as e:
                raise PublicProofFormatError(f"pack record's lot: {e}") from None
            return moved
    return pack.registered_lot


class PublicProofFormatError(ProofError):
    """Bundle bytes or JSON that are malformed; the message says got/want."""


class PublicProofKeyError(PublicProofFormatError):
    """Bundle bytes whose proofs, rebuilt from the keys of the identifiers the bundle names
    (what one proof leaves out another gives, by key), are not proofs: keys that are not
    those the bundle was made for."""


@dataclass(frozen=True)
class ProvenRecord:
    """One record the bundle proves: its contract and type byte, its canonical JSON value
    (None: proven absent) and its state tree proof."""

    contract: str
    code: int
    value: bytes | None
    proof: Proof

    def __post_init__(self) -> None:
        if (self.contract, self.code) not in RECORD_KEYS:
            known = ", ".join(f"{c}/{t}" for c, t in RECORD_KEYS)
            raise PublicProofFormatError(f"record {self.contract}/{self.code}, want one of {known}")
        if self.value is not None and not 1 <= len(self.value) <= MAX_VALUE:
            raise PublicProofFormatError(f"value of {len(self.value)} bytes, want 1..{MAX_VALUE}")

    def key(self, keys: Keys) -> bytes:
        """The record's tree key, from identifiers the caller computed from what was scanned
        (never the bundle's own). Raises PublicProofFormatError for a serial record without
        a serial, a registration without its number."""
        kind = RECORD_KEYS[(self.contract, self.code)]
        grouped = keys.grouped and (self.contract, self.code) in GROUPED
        derive = grouped_key if grouped else record_key
        if kind == KEY_LOT:
            return derive(self.contract, self.code, keys.gtin, keys.lot)
        if kind == KEY_REGISTRATION:
            if keys.registration is None:
                raise PublicProofFormatError(f"record {self.contract}/{self.code}: no pack part")
            lot, n = keys.registration
            return derive(self.contract, self.code, keys.gtin, lot, str(n))
        if keys.serial is None:
            raise PublicProofFormatError(f"record {self.contract}/{self.code} needs a serial")
        return record_key(self.contract, self.code, keys.gtin, keys.serial)


@dataclass(frozen=True)
class PublicProof:
    """A public check's bundle (module docstring). Raises PublicProofFormatError for fields
    out of their ranges."""

    gtin: str
    lot: str
    serial: str | None
    index: int  # the 0x04 entry's log index; the checkpoint is of size index + 1
    entry: bytes  # the 0x04 entry, 50 bytes
    inclusion: tuple[bytes, ...]
    checkpoint: str  # the signed note of size index + 1, with the log's timestamp line
    records: tuple[ProvenRecord, ...]
    pack: PackPart | None = None  # a registered pack's registration and serial proof
    grouped: bool = True  # lot records under grouped keys (False: bytes 1-2, JSON 1)

    def __post_init__(self) -> None:
        try:
            gtin = gs1.gtin14(self.gtin)
            gs1.lot(self.lot)
            if self.serial is not None:
                gs1.serial(self.serial)
        except gs1.Gs1Error as e:
            raise PublicProofFormatError(str(e)) from None
        if gtin != self.gtin:
            raise PublicProofFormatError(f"gtin {self.gtin!r}, want its 14 digits {gtin}")
        if not 0 <= self.index <= stateroot.MAX_U63 - 1:
            raise PublicProofFormatError(f"index {self.index}, want 0..{stateroot.MAX_U63 - 1}")
        if len(self.entry) != stateroot.SIZE:
            raise PublicProofFormatError(f"entry of {len(self.entry)} bytes, want {stateroot.SIZE}")
        if len(self.inclusion) > MAX_INCLUSION or any(len(h) != 32 for h in self.inclusion):
            raise PublicProofFormatError(f"inclusion: want at most {MAX_INCLUSION} 32-byte hashes")
        if not 0 < len(self.checkpoint.encode()) <= MAX_NOTE:
            raise PublicProofFormatError(f"checkpoint note: want 1..{MAX_NOTE} bytes")
        if not 1 <= len(self.records) <= MAX_RECORDS:
            raise PublicProofFormatError(f"{len(self.records)} records, want 1..{MAX_RECORDS}")
        if self.pack is not None and self.serial is None:
            raise PublicProofFormatError("a pack part without a serial")

    def keys(self) -> Keys:
        """The record keys' identifiers as this bundle states them (for its own encoding;
        a verifier computes its own from what was scanned)."""
        raw = [(r.contract, r.code, r.value) for r in self.records]
        lot = current_lot(self.lot, self.pack, raw)
        registration = None
        if self.pack is not None:
            registration = (self.pack.registered_lot, self.pack.registration)
        return Keys(self.gtin, lot, self.serial, registration, self.grouped)

    # -- bytes ---------------------------------------------------------------------------

    def to_bytes(self, version: int | None = None) -> bytes:
        """Return the bundle's compact bytes (docs/protocol.md, "Public check proof"):
        version 3 for grouped keys, 2 for ungrouped ones (the proofs share their top
        siblings, public_multiproof.py), 1 if asked for (an ungrouped lot's bundle as the
        first resolver wrote it)."""
        if version is None:
            version = VERSION if self.grouped else 2
        if (
            version not in VERSIONS
            or (version in UNGROUPED) == self.grouped
            or (version == 1 and self.pack is not None)
        ):
            want = "3" if self.grouped else "2 (or 1 without a pack)"
            raise PublicProofFormatError(f"version {version}, want {want} for these keys")
        flags = (FLAG_SERIAL if self.serial is not None else 0) | (FLAG_PACK if self.pack else 0)
        out = bytearray((version, flags))
        out += self.gtin.encode()
        out += _short(self.lot.encode())
        if self.serial is not None:
            out += _short(self.serial.encode())
        if self.pack is not None:  # registered lot: length 0 when it is the bundle's lot
            registered = self.pack.registered_lot
            out += b"\x00" if registered == self.lot else _short(registered.encode())
            out += struct.pack(">III", self.pack.registration, self.pack.index, self.pack.size)
            out += bytes((len(self.pack.path),)) + b"".join(self.pack.path)
        keys = self.keys()
        out += struct.pack(">Q", self.index) + self.entry
        out += bytes((len(self.inclusion),)) + b"".join(self.inclusion)
        note = self.checkpoint.encode()
        small = (
            None
            if version == 1
            else public_note.compact(self.checkpoint, self.entry, self.index, self.inclusion)
        )
        if small is None:
            out += struct.pack(">H", len(note)) + note
        else:
            origin, lines = small
            out += b"\x00\x00" + _short(origin.encode()) + bytes((len(lines),))
            out += b"".join(bytes((len(raw),)) + raw for raw in lines)
        out += bytes((len(self.records),))
        if version == 1:
            for r in self.records:
                out += _short(r.contract.encode()) + bytes((r.code,))
                value = r.value or b""
                out += struct.pack(">H", len(value)) + value
                proof = _compact(r, r.key(keys))
                out += struct.pack(">H", len(proof)) + proof
            return bytes(out)
        key_list = [r.key(keys) for r in self.records]
        values = [r.value for r in self.records]
        proofs = multiproof.write(key_list, values, [r.proof for r in self.records])
        for r, proof in zip(self.records, proofs, strict=True):
            value = r.value or b""
            out += bytes((r.code,)) + struct.pack(">H", len(value)) + value + proof
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicProof:
        """Parse a bundle's bytes. Raises PublicProofFormatError saying what is wrong."""
        if len(data) > MAX_BUNDLE:
            raise PublicProofFormatError(f"bundle of {len(data)} bytes, want at most {MAX_BUNDLE}")
        r = _Reader(data)
        version, flags = r.take(1)[0], r.take(1)[0]
        if version not in VERSIONS:
            raise PublicProofFormatError(f"bundle version {version}, want 1, 2 or 3")
        if flags not in ((0, FLAG_SERIAL) if version == 1 else (0, FLAG_SERIAL, 3)):
            raise PublicProofFormatError(f"flags 0x{flags:02x}, want 0x00, 0x01 or 0x03")
        gtin = r.text(14, "gtin")
        lot = r.text(r.take(1)[0], "lot")
        serial = r.text(r.take(1)[0], "serial") if flags & FLAG_SERIAL else None
        pack = None
        if flags & FLAG_PACK:
            registered = r.text(r.take(1)[0], "registered lot") or lot
            n, at, size = struct.unpack(">III", r.take(12))
            path = tuple(r.take(32) for _ in range(r.take(1)[0]))
            pack = PackPart(registered, n, at, size, path)
        (index,) = struct.unpack(">Q", r.take(8))
        entry = r.take(stateroot.SIZE)
        inclusion = tuple(r.take(32) for _ in range(r.take(1)[0]))
        note = r.text(struct.unpack(">H", r.take(2))[0], "checkpoint")
        if not note and version != 1:  # the compact note (public_note.py)
            origin = r.text(r.take(1)[0], "origin")
            lines = [r.take(r.take(1)[0]) for _ in range(r.take(1)[0])]
            note = public_note.rebuild(origin, lines, entry, index, inclusion)
        parsed: list[tuple[ProvenRecord, Any]] = []
        for _ in range(r.take(1)[0]):
            contract = CONTRACT if version != 1 else r.text(r.take(1)[0], "contract")
            code = r.take(1)[0]
            value = r.take(struct.unpack(">H", r.take(2))[0]) or None
            if version == 1:
                raw: Any = r.take(struct.unpack(">H", r.take(2))[0])
            else:
                raw = multiproof.read(r.take, _fail)
            parsed.append((ProvenRecord(contract, code, value, _NO_PROOF), raw))
        if r.offset != len(data):
            raise PublicProofFormatError(f"{len(data) - r.offset} bytes after the last record")
        current = current_lot(lot, pack, [(p.contract, p.code, p.value) for p, _ in parsed])
        registration = None if pack is None else (pack.registered_lot, pack.registration)
        grouped = version not in UNGROUPED
        keys = Keys(gtin, current, serial, registration, grouped)
        key_list = [p.key(keys) for p, _ in parsed]
        try:  # what was left out is rebuilt from the keys: wrong keys, proofs that do not fit
            if version == 1:
                proofs = [
                    _expand(raw, k, p.value) for (p, raw), k in zip(parsed, key_list, strict=True)
                ]
            else:
                values = [p.value for p, _ in parsed]
                proofs = multiproof.expand([raw for _, raw in parsed], key_list, values, _fail)
        except ProofError as e:
            raise PublicProofKeyError(f"the proofs do not fit the keys of {gtin}: {e}") from None
        records = tuple(
            ProvenRecord(p.contract, p.code, p.value, proof)
            for (p, _), proof in zip(parsed, proofs, strict=True)
        )
        return cls(gtin, lot, serial, index, entry, inclusion, note, records, pack, grouped)

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Return the bundle as JSON: the same fields, bytes in lowercase hex, each record's
        value as its canonical JSON text (the exact bytes the tree hashes)."""
        return {
            "version": JSON_VERSION if self.grouped else 1,
            "gtin": self.gtin,
            "lot": self.lot,
            "serial": self.serial,
            "index": self.index,
            "entry": self.entry.hex(),
            "inclusion": [h.hex() for h in self.inclusion],
            "checkpoint": self.checkpoint,
            "records": [
                {
                    "contract": r.contract,
                    "type": r.code,
                    "value": None if r.value is None else r.value.decode(),
                    "proof": r.proof.to_json(),
                }
                for r in self.records
            ],
            "pack": None if self.pack is None else self.pack.to_json(),
        }

    @classmethod
    def from_json(cls, value: Any) -> PublicProof:
        """Parse a bundle from decoded JSON (read it with gateway.jsonbound.loads first).
        Raises PublicProofFormatError naming the field."""
        fields = {"version", "gtin", "lot", "serial", "index", "entry", "inclusion"}
        fields |= {"checkpoint", "records", "pack"}
        if isinstance(value, dict) and "pack" not in value:
            value = {**value, "pack": None}  # a lot's bundle written before packs
        if not isinstance(value, dict) or set(value) != fields:
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise PublicProofFormatError(f"bundle fields {got}, want {sorted(fields)}")
        if value["version"] not in (1, JSON_VERSION) or type(value["version"]) is not int:
            raise PublicProofFormatError(f"version {value['version']!r}, want 1 or {JSON_VERSION}")
        records = value["records"]
        if not isinstance(records, list) or len(records) > MAX_RECORDS:
            raise PublicProofFormatError(f"records: want a list of at most {MAX_RECORDS}")
        inclusion = value["inclusion"]
        if not isinstance(inclusion, list) or len(inclusion) > MAX_INCLUSION:
            raise PublicProofFormatError(f"inclusion: want a list of at most {MAX_INCLUSION}")
        return cls(
            gtin=_str(value, "gtin"),
            lot=_str(value, "lot"),
            serial=None if value["serial"] is None else _str(value, "serial"),
            index=_int(value, "index"),
            entry=_hex("entry", value["entry"]),
            inclusion=tuple(_hex(f"inclusion[{i}]", h) for i, h in enumerate(inclusion)),
            checkpoint=_str(value, "checkpoint"),
            records=tuple(_record(i, r) for i, r in enumerate(records)),
            pack=None if value["pack"] is None else _pack(value["pack"]),
            grouped=value["version"] == JSON_VERSION,
        )


def proven(rtype: RecordType, value: bytes | None, proof: Proof) -> ProvenRecord:
    """A ProvenRecord of record type `rtype`. Requires a public record type (a private
    leaf is a salted hash: its value would prove nothing readable)."""
    if rtype.private:
        raise ValueError(f"record {rtype.name} is private, want a public record")
    return ProvenRecord(rtype.contract, rtype.code, value, proof)


_NO_PROOF: Final = Proof(None, ())
OWN_LEAF: Final = 2  # a compact proof's end byte: the record's own leaf, left out (below)


def _compact(record: ProvenRecord, key: bytes) -> bytes:
    """The record's state proof bytes, without the 64 bytes of its own leaf when it ends
    there (the verifier has both halves: the key it recomputes, the value's hash): end byte
    OWN_LEAF instead of 1 (statetree_proof's leaf), then depth, bitmap and siblings as is."""
    data = record.proof.to_bytes()
    leaf = record.proof.leaf
    if record.value is None or leaf is None:
        return data
    if (leaf.key, leaf.value_digest) != (key, value_hash(record.value)):
        return data  # another leaf: kept whole, and the check will say so
    return bytes((data[0], OWN_LEAF)) + data[2 + 64 :]


def _expand(data: bytes, key: bytes, value: bytes | None) -> Proof:
    """Parse compact proof bytes (_compact) for the record of `key` holding `value`."""
    if len(data) >= 2 and data[1] == OWN_LEAF:
        if value is None:
            raise PublicProofFormatError("a proof of its own leaf for an absent record")
        data = bytes((data[0], 1)) + key + value_hash(value) + data[2:]
    return proof_from_bytes(data)


def _fail(message: str) -> NoReturn:
    raise PublicProofFormatError(message)


def _short(data: bytes) -> bytes:
    if not 1 <= len(data) <= 255:
        raise PublicProofFormatError(f"field of {len(data)} bytes, want 1..255")
    return bytes((len(data),)) + data


class _Reader:
    """Bytes read front to back; a short read is a PublicProofFormatError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def take(self, n: int) -> bytes:
        end = self.offset + n
        if end > len(self.data):
            raise PublicProofFormatError(
                f"bundle ends at byte {len(self.data)}, want {n} more bytes at {self.offset}"
            )
        chunk, self.offset = self.data[self.offset : end], end
        return chunk

    def text(self, n: int, what: str) -> str:
        raw = self.take(n)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise PublicProofFormatError(f"{what} is not UTF-8") from None


def _str(value: dict[str, Any], name: str) -> str:
    text = value[name]
    if not isinstance(text, str):
        raise PublicProofFormatError(f"{name} is {type(text).__name__}, want a string")
    return text


def _int(value: dict[str, Any], name: str) -> int:
    number = value[name]
    if type(number) is not int:
        raise PublicProofFormatError(f"{name} is {type(number).__name__}, want an integer")
    return number


def _hex(name: str, text: Any) -> bytes:
    if not isinstance(text, str) or len(text) > 2 * MAX_BUNDLE:
        raise PublicProofFormatError(f"{name}: want a hex string")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise PublicProofFormatError(f"{name} is not hex") from None
    if data.hex() != text:
        raise PublicProofFormatError(f"{name} is not lowercase hex without spaces")
    return data


def _pack(value: Any) -> PackPart:
    want = {"registered_lot", "registration", "index", "size", "path"}
    if not isinstance(value, dict) or set(value) != want:
        raise PublicProofFormatError(f"pack: want null or an object with {sorted(want)}")
    path = value["path"]
    if not isinstance(path, list) or len(path) > MAX_SERIAL_PATH:
        raise PublicProofFormatError(f"pack.path: want a list of at most {MAX_SERIAL_PATH}")
    return PackPart(
        _str(value, "registered_lot"),
        _int(value, "registration"),
        _int(value, "index"),
        _int(value, "size"),
        tuple(_hex(f"pack.path[{i}]", h) for i, h in enumerate(path)),
    )


def _record(i: int, value: Any) -> ProvenRecord:
    want = {"contract", "type", "value", "proof"}
    if not isinstance(value, dict) or set(value) != want:
        raise PublicProofFormatError(f"records[{i}]: want an object with {sorted(want)}")
    text = value["value"]
    if text is not None and not isinstance(text, str):
        raise PublicProofFormatError(f"records[{i}].value: want null or canonical JSON text")
    if type(value["type"]) is not int or not 0 <= value["type"] <= 255:
        raise PublicProofFormatError(f"records[{i}].type: want an integer 0..255")
    return ProvenRecord(
        _str(value, "contract"),
        value["type"],
        None if text is None else text.encode(),
        proof_from_json(value["proof"]),
    )


__all__: Sequence[str] = (
    "LOT_RECORDS",
    "PACK_RECORDS",
    "RECORD_KEYS",
    "Keys",
    "PackPart",
    "ProvenRecord",
    "PublicProof",
    "PublicProofFormatError",
    "PublicProofKeyError",
    "proven",
)
