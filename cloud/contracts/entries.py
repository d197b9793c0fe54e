"""The log entry of a contract transaction (kind 0x03): what the public log shows of a
transaction is its contract's name and a salted hash of the signed body, nothing else
(DESIGN.md, the hybrid chain). Documented in docs/protocol.md, "Contract transaction v1".

    offset  size  field
    0       1     kind 0x03
    1       1     version 0x01
    2       1     L, the contract name's length, 1 to 32
    3       L     the contract name, ASCII (cloud/contracts/tx.py NAME: a-z 0-9 "-")
    3 + L   32    commitment = tagged_hash(COMMIT_TAG, salt || canonical || sig)

salt is 32 random bytes the contract store keeps beside the body and its signature. It
makes the commitment hiding: without it, a guess at a small body (a quantity, a holder)
could be confirmed by hashing the guess. Whoever holds (salt, canonical, sig) can show
which entry commits to them (verify); deleting the salt and body leaves the log valid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from cloud.contracts.tx import MAX_NAME, NAME, SIGNATURE_SIZE, SignedTx
from device import schnorr
from gateway.refusal import Refused

KIND: Final = 0x03
VERSION: Final = 0x01
COMMIT_TAG: Final = b"PharmaSync/tx-commit/v1"
SALT_SIZE: Final = 32
COMMITMENT_SIZE: Final = 32
_HEADER: Final = 3  # kind, version, name length
REASON: Final = "tx entry"


class EntryError(Refused, ValueError):
    """Bytes that are not a valid 0x03 entry, or arguments that cannot make one. `field`
    names the part ("kind", "version", "length", "contract", "commitment", "salt", "sig");
    `detail` is "<field>: got <got>, want <want>"."""

    def __init__(self, field: str, got: str, want: str) -> None:
        super().__init__(REASON, f"{field}: got {got}, want {want}")
        self.field, self.got, self.want = field, got, want


class CommitmentMismatch(EntryError):
    """A body, signature and salt whose commitment is not the entry's: `computed` is
    theirs, `expected` the entry's (32 bytes each)."""

    def __init__(self, computed: bytes, expected: bytes) -> None:
        super().__init__("commitment", computed.hex(), f"{expected.hex()} (the entry's)")
        self.computed, self.expected = computed, expected


@dataclass(frozen=True)
class TxEntry:
    """A parsed 0x03 entry: the contract's name and the commitment to one transaction."""

    contract: str
    commitment: bytes

    def __post_init__(self) -> None:
        """Raises EntryError "contract" or "commitment" for a malformed part."""
        if type(self.contract) is not str or not NAME.fullmatch(self.contract):
            raise EntryError(
                "contract", f"{self.contract!r:.60}", f"1 to {MAX_NAME} of a-z 0-9 '-'"
            )
        if type(self.commitment) is not bytes or len(self.commitment) != COMMITMENT_SIZE:
            raise EntryError("commitment", f"{self.commitment!r:.80}", f"{COMMITMENT_SIZE} bytes")

    def encode(self) -> bytes:
        """Return the entry's bytes (module docstring)."""
        name = self.contract.encode("ascii")
        return bytes([KIND, VERSION, len(name)]) + name + self.commitment


def new_salt() -> bytes:
    """Return a fresh salt: 32 bytes from os.urandom."""
    return os.urandom(SALT_SIZE)


def commitment(salt: bytes, canonical: bytes, sig: bytes) -> bytes:
    """Return tagged_hash(COMMIT_TAG, salt || canonical || sig). Requires a 32-byte salt
    and a 64-byte signature (so the three parts cannot be cut another way); raises
    EntryError "salt" or "sig" otherwise."""
    if len(salt) != SALT_SIZE:
        raise EntryError("salt", f"{len(salt)} bytes", f"{SALT_SIZE}")
    if len(sig) != SIGNATURE_SIZE:
        raise EntryError("sig", f"{len(sig)} bytes", f"{SIGNATURE_SIZE}")
    return schnorr.tagged_hash(COMMIT_TAG, bytes(salt) + bytes(canonical) + bytes(sig))


def entry_for(tx: SignedTx, salt: bytes) -> TxEntry:
    """Return the entry that commits to `tx` with `salt`. Raises EntryError "salt"."""
    return TxEntry(tx.body.contract, commitment(salt, tx.canonical, tx.sig))


def parse(data: bytes) -> TxEntry:
    """Return the TxEntry of an entry's bytes, kind byte included. Raises EntryError:
    "kind" (not 0x03), "version" (not 0x01), "length" (the size is not 3 + L + 32 or L is
    not 1 to 32), "contract" (a name outside the NAME rule)."""
    data = bytes(data)
    if data[:1] != bytes([KIND]):
        raise EntryError("kind", f"0x{data[:1].hex() or 'nothing'}", f"0x{KIND:02x}")
    if len(data) < _HEADER + 1 + COMMITMENT_SIZE:
        raise EntryError("length", f"{len(data)} bytes", f"at least {_HEADER + 1 + 32}")
    if data[1] != VERSION:
        raise EntryError("version", f"0x{data[1]:02x}", f"0x{VERSION:02x}")
    size = data[2]
    if not 1 <= size <= MAX_NAME:
        raise EntryError("length", f"a name length of {size}", f"1 to {MAX_NAME}")
    if len(data) != _HEADER + size + COMMITMENT_SIZE:
        raise EntryError(
            "length",
            f"{len(data)} bytes",
            f"{_HEADER + size + COMMITMENT_SIZE} (3 + a {size}-byte name + 32)",
        )
    name = data[_HEADER : _HEADER + size]
    if not name.isascii():
        raise EntryError("contract", f"the bytes {name.hex()}", "ASCII")
    return TxEntry(name.decode("ascii"), data[_HEADER + size :])


def verify(entry: TxEntry, salt: bytes, tx: SignedTx) -> None:
    """Require `entry` to commit to `tx` with `salt`: same contract, same commitment.
    Raises EntryError "contract" or CommitmentMismatch (computed vs the entry's)."""
    if tx.body.contract != entry.contract:
        raise EntryError("contract", repr(tx.body.contract), f"{entry.contract!r} (the entry's)")
    computed = commitment(salt, tx.canonical, tx.sig)
    if computed != entry.commitment:
        raise CommitmentMismatch(computed, entry.commitment)
