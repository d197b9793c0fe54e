"""The contract transaction's log entry, kind 0x03 (cloud/contracts/entries.py): the golden
vectors byte for byte, what the entry hides, and each refusal with the part it names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from cloud.contracts import entries, tx

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "tx-v1.json").read_text())


def signed_of(vector: dict[str, Any]) -> tx.SignedTx:
    return tx.parse_envelope(vector["wire"].encode())


@pytest.mark.parametrize("vector", VECTORS["transactions"], ids=lambda v: v["case"])
def test_the_golden_vectors(vector: dict[str, Any]) -> None:
    signed, salt = signed_of(vector), bytes.fromhex(vector["salt"])
    entry = entries.entry_for(signed, salt)
    assert entry.commitment.hex() == vector["commitment"]
    assert entry.encode().hex() == vector["entry"]
    assert entries.parse(bytes.fromhex(vector["entry"])) == entry
    entries.verify(entry, salt, signed)
    # The commitment written out: tagged_hash over salt || canonical || sig.
    tag = hashlib.sha256(b"PharmaSync/tx-commit/v1").digest()
    digest = hashlib.sha256(tag + tag + salt + signed.canonical + signed.sig).digest()
    assert digest == entry.commitment
    name = signed.body.contract.encode()
    assert entry.encode() == b"\x03\x01" + bytes([len(name)]) + name + digest


def test_the_entry_shows_only_the_contract_name() -> None:
    # Nothing of the body is in the entry but the contract's name and a salted hash.
    for vector in VECTORS["transactions"]:
        signed = signed_of(vector)
        data = entries.entry_for(signed, entries.new_salt()).encode()
        name = signed.body.contract.encode()
        assert data[:-32] == b"\x03\x01" + bytes([len(name)]) + name  # then 32 hash bytes
        # A fresh salt gives a fresh commitment to the same body: no guessing by hashing.
        again = entries.entry_for(signed, entries.new_salt()).encode()
        assert again[:-32] == data[:-32] and again[-32:] != data[-32:]


def test_a_wrong_salt_body_or_contract_does_not_verify() -> None:
    first, second = (signed_of(v) for v in VECTORS["transactions"][1:3])  # both "lots"
    salt = bytes.fromhex(VECTORS["transactions"][1]["salt"])
    entry = entries.entry_for(first, salt)
    with pytest.raises(entries.CommitmentMismatch) as info:
        entries.verify(entry, bytes(32), first)
    assert info.value.expected == entry.commitment
    assert info.value.computed == entries.commitment(bytes(32), first.canonical, first.sig)
    assert info.value.detail.startswith(f"commitment: got {info.value.computed.hex()}, want ")
    with pytest.raises(entries.CommitmentMismatch):
        entries.verify(entry, salt, second)
    admit = signed_of(VECTORS["transactions"][0])  # contract "participants"
    with pytest.raises(entries.EntryError, match="contract: got 'participants', want 'lots'"):
        entries.verify(entry, salt, admit)


GOOD = bytes.fromhex(VECTORS["transactions"][1]["entry"])  # 03 01 04 "lots" commitment


@pytest.mark.parametrize(
    ("data", "field", "detail"),
    [
        (b"", "kind", "got 0xnothing, want 0x03"),
        (b"\x05" + GOOD[1:], "kind", "got 0x05, want 0x03"),
        (GOOD[:1] + b"\x02" + GOOD[2:], "version", "got 0x02, want 0x01"),
        (GOOD[:-1], "length", "got 38 bytes, want 39 (3 + a 4-byte name + 32)"),
        (GOOD + b"\x00", "length", "got 40 bytes, want 39"),
        (GOOD[:3], "length", "got 3 bytes, want at least 36"),
        (GOOD[:2] + b"\x00" + GOOD[3:], "length", "got a name length of 0, want 1 to 32"),
        (GOOD[:2] + b"\x21" + b"a" * 33 + bytes(32), "length", "got a name length of 33"),
        (GOOD[:2] + b"\x05lots!" + bytes(32), "contract", "got 'lots!'"),
        (GOOD[:3] + b"Lots" + GOOD[7:], "contract", "got 'Lots'"),
        (GOOD[:3] + b"l\xf6ts" + GOOD[7:], "contract", "got the bytes 6cf67473, want ASCII"),
    ],
)
def test_malformed_entries_are_refused(data: bytes, field: str, detail: str) -> None:
    with pytest.raises(entries.EntryError) as info:
        entries.parse(data)
    assert info.value.field == field and info.value.reason == "tx entry"
    assert detail in info.value.detail, info.value.detail


def test_making_entries_checks_its_parts() -> None:
    signed = signed_of(VECTORS["transactions"][1])
    with pytest.raises(entries.EntryError, match="salt: got 31 bytes, want 32"):
        entries.entry_for(signed, bytes(31))
    with pytest.raises(entries.EntryError, match="sig: got 63 bytes, want 64"):
        entries.commitment(bytes(32), signed.canonical, signed.sig[:63])
    with pytest.raises(entries.EntryError, match="commitment: got"):
        entries.TxEntry("lots", bytes(31))
    with pytest.raises(entries.EntryError, match="contract: got 'a b'"):
        entries.TxEntry("a b", bytes(32))
    assert len(entries.new_salt()) == entries.SALT_SIZE
