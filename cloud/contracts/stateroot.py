"""The state-root log entry, kind 0x04 (DESIGN.md's entry table; docs/protocol.md, "State tree").

After each block of applied transactions (and each reading batch that changed state) the
ledger appends the state tree's root, so record -> state root -> log entry -> signed
checkpoint is one offline check. 50 bytes, integers big-endian:

    offset size field
         0    1 kind = 0x04
         1    1 version = 0x01
         2    8 records: how many records the tree holds (a replayer compares its own count
                before it compares roots, and a reader sees the state's size without a proof)
        10    8 covers: log index of the last entry this root includes; the root is the state
                after applying entries 0..covers, so replay knows where to compare even when
                the entry is appended after other entries (a sequencer orders blocks, not roots)
        18   32 root: the state tree's root hash (statetree_hash; EMPTY iff records = 0)

Both integers are at most 2**63 - 1, what a signed 64-bit database column holds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cloud.contracts.statetree_hash import EMPTY, check_hash

KIND = 0x04
VERSION = 0x01
SIZE = 50
MAX_U63 = (1 << 63) - 1
_LAYOUT = struct.Struct(">BBQQ32s")


class StateRootError(ValueError):
    """Bytes or values that are not a state-root entry; the message says got X, want Y."""


@dataclass(frozen=True)
class StateRoot:
    """A committed state root: record count, last log index it covers, root hash.

    Raises StateRootError for an integer outside 0..2**63-1, a root not of 32 bytes, or a
    count that disagrees with the root (EMPTY exactly when there are no records).
    """

    records: int
    covers: int
    root: bytes

    def __post_init__(self) -> None:
        for name in ("records", "covers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_U63:
                raise StateRootError(f"{name} {value!r}, want an integer 0..{MAX_U63}")
        check_hash("root", self.root, StateRootError)
        if (self.records == 0) != (self.root == EMPTY):
            raise StateRootError(
                f"{self.records} records with root {self.root.hex()}: want the empty root"
                " exactly when there are no records"
            )

    def encode(self) -> bytes:
        """Return the 50-byte log entry, kind byte included."""
        return _LAYOUT.pack(KIND, VERSION, self.records, self.covers, self.root)


def parse(entry: bytes) -> StateRoot:
    """Parse a 50-byte state-root log entry (kind byte included).

    Raises StateRootError for another length, kind or version, or values StateRoot refuses.
    """
    if len(entry) != SIZE:
        raise StateRootError(f"state-root entry is {len(entry)} bytes, want {SIZE}")
    kind, version, records, covers, root = _LAYOUT.unpack(entry)
    if kind != KIND:
        raise StateRootError(f"entry kind 0x{kind:02x}, want 0x{KIND:02x}")
    if version != VERSION:
        raise StateRootError(f"state-root version {version}, want {VERSION}")
    return StateRoot(records, covers, root)
