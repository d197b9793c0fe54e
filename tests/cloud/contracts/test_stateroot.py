"""The 0x04 state-root log entry (cloud/contracts/stateroot.py)."""

from __future__ import annotations

import pytest

from cloud.contracts.stateroot import MAX_U63, SIZE, StateRoot, StateRootError, parse
from cloud.contracts.statetree_hash import EMPTY

ROOT = bytes.fromhex("552118142af1dc70e511028ba08c9087edbd4e67c667117311d7cc40d7a2b4d9")


def test_entry_bytes() -> None:
    entry = StateRoot(records=2, covers=41, root=ROOT).encode()
    assert entry[:2] == b"\x04\x01"
    assert entry[2:10] == (2).to_bytes(8, "big")
    assert entry[10:18] == (41).to_bytes(8, "big")
    assert entry[18:] == ROOT
    assert len(entry) == SIZE == 50
    assert parse(entry) == StateRoot(2, 41, ROOT)


def test_empty_state() -> None:
    assert parse(StateRoot(0, 0, EMPTY).encode()) == StateRoot(0, 0, EMPTY)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (b"", "entry is 0 bytes, want 50"),
        (StateRoot(2, 41, ROOT).encode() + b"\x00", "entry is 51 bytes, want 50"),
        (b"\x03" + StateRoot(2, 41, ROOT).encode()[1:], "entry kind 0x03, want 0x04"),
        (b"\x04\x02" + StateRoot(2, 41, ROOT).encode()[2:], "version 2, want 1"),
        (b"\x04\x01" + b"\xff" * 8 + bytes(8) + ROOT, "records 18446744073709551615, want"),
        (b"\x04\x01" + bytes(8) + b"\x80" + bytes(7) + ROOT, "covers 9223372036854775808"),
        (b"\x04\x01" + bytes(16) + ROOT, "0 records with root 5521"),
        (b"\x04\x01" + (1).to_bytes(8, "big") + bytes(8) + EMPTY, "1 records with root 0000"),
    ],
)
def test_parse_refuses(entry: bytes, message: str) -> None:
    with pytest.raises(StateRootError, match=message):
        parse(entry)


def test_values_range_checked() -> None:
    assert StateRoot(MAX_U63, MAX_U63, ROOT).encode()[2:10] == b"\x7f" + b"\xff" * 7
    with pytest.raises(StateRootError, match="covers -1"):
        StateRoot(1, -1, ROOT)
    with pytest.raises(StateRootError, match="records True"):
        StateRoot(True, 0, ROOT)
    with pytest.raises(StateRootError, match="root is 31 bytes, want 32"):
        StateRoot(1, 0, ROOT[1:])
