"""The serial index beside the contracts' State (docs/contracts.md §6): which registration of
which lot holds each serial of each GTIN. Pure: no storage, no clock.

Why an index: a lot's packs are registered by `serialize` (cloud/contracts/packs.py) as one
public record per registration holding a count and a Merkle root over the sorted serials, so
the State holds no record per serial. What the records cannot answer the index does: is this
serial of this GTIN registered already (the uniqueness rule), in which registration and at
which position (a pack's lookup and its Merkle inclusion proof). It is fed by the rules
themselves (a Context's overlay, committed with the transaction), so whoever applies the log
in order — the ledger's workers at start, `verify --replay`, a replaying witness — rebuilds
the same index.

Compact, because 10,000,000 serials must fit beside the State:

- each registration keeps its serials once, sorted, as one `bytes` joined by "\\n" (character
  set 82 has no control characters) with an `array('I')` of start offsets: about len + 5
  bytes a serial, read by position, found by bisection;
- a fingerprint table finds a serial's registration without bisecting every registration of
  its GTIN: BLAKE2b-64 of (GTIN, serial), in 65,536 buckets by its first two bytes, each a
  `bytearray` of 8-byte fingerprints searched with `bytes.find` (C speed) beside an
  `array('Q')` of references (registration number << 17 | position). A fingerprint match is
  confirmed against the registration's serial itself, so a collision costs a comparison and
  never a wrong answer.

About 8 + 8 + (len + 1) + 4 bytes a serial: ~33 bytes for a 12-character serial, where a dict
of str would take ~150. An `Overlay` holds additions apart from its base (a rule's, a group
commit's fork) and writes them in with `commit()`: serials are only ever added.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

POSITION_BITS: Final = 17  # 2**17 = 131,072 > the 100,000 serials a registration may hold
MAX_PER_REGISTRATION: Final = 100_000
_POSITION_MASK: Final = (1 << POSITION_BITS) - 1
_FP: Final = 8  # fingerprint bytes
_SEP: Final = b"\n"


def fingerprint(gtin: str, serial: str) -> bytes:
    """Return the 8-byte BLAKE2b fingerprint of a (GTIN, serial) pair."""
    return hashlib.blake2b(f"{gtin}\x1d{serial}".encode(), digest_size=_FP).digest()


def fingerprints(gtin: str, serials: Sequence[bytes]) -> bytes:
    """Return the fingerprints of (gtin, each serial's UTF-8), 8 bytes each, concatenated."""
    blake = hashlib.blake2b
    prefix = f"{gtin}\x1d".encode()
    return b"".join([blake(prefix + s, digest_size=_FP).digest() for s in serials])


@dataclass
class Registration:
    """One `serialize` transaction's serials: its GTIN, lot, number within the lot (from 1),
    and the serials sorted by their bytes (what the registration's Merkle root is over);
    `fps` their fingerprints until the index has taken them (then None)."""

    gtin: str
    lot: str
    number: int
    blob: bytes  # the sorted serials joined by "\n"
    offsets: array  # start of each serial in blob, and len(blob) + 1 after the last
    fps: bytes | None = None

    @classmethod
    def of(cls, gtin: str, lot: str, number: int, sorted_serials: Sequence[str]) -> Registration:
        """Return the registration of `sorted_serials` (sorted, distinct: the caller's)."""
        encoded = [s.encode() for s in sorted_serials]
        offsets = array("I", [0])
        at = 0
        for serial in encoded:
            at += len(serial) + 1
            offsets.append(at)
        return cls(gtin, lot, number, _SEP.join(encoded), offsets, fingerprints(gtin, encoded))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def serial(self, position: int) -> str:
        """Return the serial at `position` (0-based, in sorted order)."""
        offsets = self.offsets
        return self.blob[offsets[position] : offsets[position + 1] - 1].decode()

    def serials(self) -> list[str]:
        """Return every serial, sorted."""
        return self.blob.decode().split("\n") if len(self) else []

    def position(self, serial: str) -> int | None:
        """Return the serial's position, or None if this registration does not hold it."""
        i = bisect.bisect_left(range(len(self)), serial, key=self.serial)
        return i if i < len(self) and self.serial(i) == serial else None


@dataclass(frozen=True)
class Found:
    """Where a serial is registered: its registration and its position there."""

    registration: Registration
    position: int


class Reader(Protocol):
    """What a rule or a read looks a serial up in: the index or an overlay of it."""

    def find(self, gtin: str, serial: str) -> Found | None: ...

    def first_known(
        self, gtin: str, serials: Sequence[str], fps: bytes | None = None
    ) -> tuple[int, Found] | None: ...

    def maker(self, gtin: str) -> str | None: ...


class SerialIndex:
    """Every registration, and the fingerprint table over their serials (module docstring)."""

    def __init__(self) -> None:
        self.registrations: list[Registration] = []
        self._buckets: dict[int, tuple[bytearray, array]] = {}
        self._makers: dict[str, str] = {}  # GTIN -> the manufacturer id that first serialized
        self.serials = 0

    def find(self, gtin: str, serial: str) -> Found | None:
        """Return where the serial of this GTIN is registered, or None."""
        fp = fingerprint(gtin, serial)
        bucket = self._buckets.get(fp[0] << 8 | fp[1])
        if bucket is None:
            return None
        fps, refs = bucket
        at = fps.find(fp)
        while at != -1:
            if at % _FP == 0:
                ref = refs[at // _FP]
                registration = self.registrations[ref >> POSITION_BITS]
                position = ref & _POSITION_MASK
                if registration.gtin == gtin and registration.serial(position) == serial:
                    return Found(registration, position)
            at = fps.find(fp, at + 1)
        return None

    def first_known(
        self, gtin: str, serials: Sequence[str], fps: bytes | None = None
    ) -> tuple[int, Found] | None:
        """Return the first of `serials` (its index there, where it is) registered already
        for this GTIN, or None: the uniqueness rule's one pass, a fingerprint test each
        (`fps`: their fingerprints, if the caller has them)."""
        buckets = self._buckets
        if fps is None:
            fps = fingerprints(gtin, [s.encode() for s in serials])
        for i, serial in enumerate(serials):
            fp = fps[i * _FP : i * _FP + _FP]
            bucket = buckets.get(fp[0] << 8 | fp[1])
            if bucket is not None and fp in bucket[0]:  # a candidate: confirm it
                found = self.find(gtin, serial)
                if found is not None:
                    return i, found
        return None

    def maker(self, gtin: str) -> str | None:
        """Return the id of the manufacturer that first serialized a lot of this GTIN."""
        return self._makers.get(gtin)

    def add(self, registration: Registration, maker: str) -> None:
        """Index a registration (its serials new to its GTIN: the rule checked them)."""
        number = len(self.registrations)
        self.registrations.append(registration)
        self._makers.setdefault(registration.gtin, maker)
        buckets = self._buckets
        fps = registration.fps
        if fps is None:
            fps = fingerprints(registration.gtin, registration.blob.split(_SEP))
        registration.fps = None  # the buckets hold them now
        base = number << POSITION_BITS
        for position in range(len(registration)):
            fp = fps[position * _FP : position * _FP + _FP]
            key = fp[0] << 8 | fp[1]
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = (bytearray(), array("Q"))
            bucket[0].extend(fp)
            bucket[1].append(base | position)
        self.serials += len(registration)

    def overlay(self) -> Overlay:
        """Return an overlay whose additions reach this index only at its commit()."""
        return Overlay(self)


class Overlay:
    """Additions kept apart from a base index (a SerialIndex or another Overlay): reads see
    the base with them on top; commit() writes them into the base, in order."""

    def __init__(self, base: SerialIndex | Overlay) -> None:
        self.base = base
        self.added: list[tuple[Registration, str]] = []
        # each staged registration with its serials' positions
        self._positions: list[tuple[Registration, dict[str, int]]] = []
        self._makers: dict[str, str] = {}

    def _own(self, gtin: str, serial: str) -> Found | None:
        for registration, positions in self._positions:
            if registration.gtin == gtin and serial in positions:
                return Found(registration, positions[serial])
        return None

    def find(self, gtin: str, serial: str) -> Found | None:
        """Return where the serial is registered, here or in the base, or None."""
        found = self._own(gtin, serial)
        return found if found is not None else self.base.find(gtin, serial)

    def first_known(
        self, gtin: str, serials: Sequence[str], fps: bytes | None = None
    ) -> tuple[int, Found] | None:
        """As SerialIndex.first_known, the staged registrations included."""
        first = self.base.first_known(gtin, serials, fps)
        end = len(serials) if first is None else first[0]
        for registration, positions in self._positions:
            if registration.gtin != gtin or end == 0:
                continue
            for i in range(end):
                if serials[i] in positions:
                    end = i
                    first = i, Found(registration, positions[serials[i]])
                    break
        return first

    def maker(self, gtin: str) -> str | None:
        """As SerialIndex.maker, additions included."""
        found = self.base.maker(gtin)
        return found if found is not None else self._makers.get(gtin)

    def add(self, registration: Registration, maker: str) -> None:
        """Stage a registration (as SerialIndex.add)."""
        self.added.append((registration, maker))
        self._makers.setdefault(registration.gtin, maker)
        serials = registration.serials()
        positions = dict(zip(serials, range(len(serials)), strict=True))
        self._positions.append((registration, positions))

    def commit(self) -> None:
        """Write the staged registrations into the base, in order; the overlay empties."""
        for registration, maker in self.added:
            self.base.add(registration, maker)
        self.added, self._positions, self._makers = [], [], {}

    def overlay(self) -> Overlay:
        """Return an overlay over this one."""
        return Overlay(self)
