"""Configuration entries (log kind 0x06): who the owners are, on the log itself, and the
one rule of owner authority that the cloud, the auditor's follower and the gateway apply.

A configuration change travels as JSON, signed by a current owner:

    {"change": {"op": "owner-add", "key": "<hex>", "time": 1767225600},
     "owner": "<hex x-only key>", "signature": "<hex BIP-340>"}

    op "owners"        owners (sorted hex keys)  the bootstrap: the log's first owners
    op "owner-add"     key                       make `key` an owner
    op "owner-remove"  key                       `key` is no longer an owner
    op "ack-key-add"   key, site                 `key` may sign alarm acknowledgements
                                                 (gateway/alarm_ack.py) for site `site`
    op "ack-key-remove" key, site                it may no longer
    op "regulator"     regulators (sorted hex)   the contracts' regulators from now on
                                                 (docs/contracts.md §3)
    op "grant-add"     key, contracts (sorted)   `key` may replay those contracts'
                                                 transaction bodies (GET /v1/tx)
    op "grant-remove"  key, contracts (sorted)   it may no longer

The signer signs BIP-340 over tagged_hash("PharmaSync/config/v1", canonical change), the
canonical change being its JSON with sorted keys and no spaces (as registry changes,
gateway/registry_change.py). The log entry is

    0x06 || signer (32) || signature (64) || canonical change

The bootstrap cannot be signed by the owners it names (the server holds only their public
keys): its signer and signature are all zero bytes, and it is checked by pinning, as the
log's own key is: whoever checks the log (auditor, gateway) is configured with the first
owner keys and requires the bootstrap to name exactly those (`check_pinned`).

Authority (`next_owners`), in log order: the bootstrap must be the first configuration
entry; an owner-add or owner-remove must be signed by an owner current at that point, may
not add an owner twice, remove a non-owner, or remove the last owner; a registry change
(0x02) must be signed by an owner current at that point. Entries of other kinds leave the
owner set as it is.

Acknowledgement keys (`next_ack_keys`, folded beside the owners by `next_authority`): an
ack-key-add or ack-key-remove must be signed by an owner current at that point (today owners
are global, so the site's owner is any owner) and leaves the owner set as it is. The keys
form a set of (site, key) pairs: adding a pair already there or removing one that is not
changes nothing, so the rule never depends on more than the owner set, which every store
checks under its write lock.

The contracts' regulators and replay grants (`next_contract_authority`) are the regulator's,
not the owners': the first "regulator" entry (no regulator on the log yet) is the bootstrap
that `cloud serve --regulator` writes, unsigned like the owners' (zero signer and signature,
checked by pinning if the checker pins a regulator); every later "regulator" entry, and every
grant-add or grant-remove, must be signed by a regulator current at that point. A
"regulator" entry replaces the set; grants form a set of (key, contract) pairs, adding or
removing as the ack keys do. These ops leave the owner set as it is (`next_owners`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from device import schnorr
from gateway import registry_change, signed_change
from gateway.refusal import INT64_MAX, Refused, hex_field, int_field

ENTRY_CONFIG = 0x06  # the log entry kind (cloud/log/kinds.py's table)
TAG = b"PharmaSync/config/v1"
BOOTSTRAP = "owners"
ADD = "owner-add"
REMOVE = "owner-remove"
ACK_KEY_ADD = "ack-key-add"
ACK_KEY_REMOVE = "ack-key-remove"
ACK_OPS = (ACK_KEY_ADD, ACK_KEY_REMOVE)
REGULATOR = "regulator"
GRANT_ADD = "grant-add"
GRANT_REMOVE = "grant-remove"
GRANT_OPS = (GRANT_ADD, GRANT_REMOVE)
CONTRACT_OPS = (REGULATOR, *GRANT_OPS)  # the regulator's ops, not the owners'
OPS = (BOOTSTRAP, ADD, REMOVE, *ACK_OPS, *CONTRACT_OPS)
MAX_OWNERS = 64  # owners one bootstrap may name
MAX_REGULATORS = 16  # regulators one "regulator" entry may name
MAX_CONTRACTS = 16  # contracts one grant may name
CONTRACT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # as cloud/contracts/tx.py names them
MAX_REQUEST_BYTES = signed_change.MAX_REQUEST_BYTES  # a bootstrap of 64 owners: under 5 KiB
UNSIGNED_SIGNER = bytes(32)  # the bootstrap's signer field
UNSIGNED_SIGNATURE = bytes(64)  # and its signature field
HEAD = 1 + 32 + 64  # kind, signer, signature: the canonical change follows


class ConfigError(Refused, ValueError):
    """A refused configuration change or an entry without authority: `reason` names the
    check, `status` the HTTP status (400 malformed, 403 no authority, 409 against the
    owner set)."""


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One configuration change (module docstring): `owners` for the bootstrap, `key` for
    owner-add and owner-remove, `key` and `site` for ack-key-add and ack-key-remove,
    `owners` (the regulators' keys) for regulator, `key` and `contracts` for the grants."""

    op: str
    time: int
    key: bytes | None = None
    owners: tuple[bytes, ...] = ()
    site: str | None = None
    contracts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ConfigError("op", f"got {self.op!r}, want one of {list(OPS)}")
        int_field(self.time, "time", 0, INT64_MAX, ConfigError)
        if (self.op in GRANT_OPS) != bool(self.contracts):
            raise ConfigError("contracts", f"op {self.op} takes contracts only if a grant op")
        if self.op in GRANT_OPS:
            if len(self.contracts) > MAX_CONTRACTS or list(self.contracts) != sorted(
                set(self.contracts)
            ):
                raise ConfigError(
                    "contracts", f"want 1 to {MAX_CONTRACTS} distinct names, ascending"
                )
            for name in self.contracts:
                if not isinstance(name, str) or not CONTRACT_NAME.fullmatch(name):
                    raise ConfigError("contracts", f"got {name!r:.40}, want a contract's name")
        if self.op in (BOOTSTRAP, REGULATOR):
            field, most = (
                ("owners", MAX_OWNERS) if self.op == BOOTSTRAP else ("regulators", MAX_REGULATORS)
            )
            if self.key is not None or not 1 <= len(self.owners) <= most:
                raise ConfigError(field, f"got {len(self.owners)} keys, want 1 to {most}, no key")
            if list(self.owners) != sorted(set(self.owners)):
                raise ConfigError(field, "want distinct keys in ascending order")
            if any(len(k) != 32 for k in self.owners):
                raise ConfigError(field, "want 32-byte x-only keys")
        elif self.owners or self.key is None or len(self.key) != 32:
            raise ConfigError("key", f"op {self.op} needs one 32-byte key and no owners")
        if (self.site is not None) != (self.op in ACK_OPS):
            raise ConfigError("site", f"op {self.op} takes a site only if it is an ack-key op")
        if self.site is not None:
            try:  # a site as the registry names one: 1 to 200 printable characters
                registry_change.text_field(self.site, "site")
            except registry_change.RegistryError as e:
                raise ConfigError("site", e.detail) from None

    def canonical(self) -> bytes:
        """The bytes the signer signs: the change's JSON, sorted keys, no spaces."""
        fields: dict[str, Any] = {"op": self.op, "time": self.time}
        if self.op in (BOOTSTRAP, REGULATOR):
            fields["owners" if self.op == BOOTSTRAP else "regulators"] = [
                k.hex() for k in self.owners
            ]
        else:
            assert self.key is not None
            fields["key"] = self.key.hex()
        if self.site is not None:
            fields["site"] = self.site
        if self.contracts:
            fields["contracts"] = list(self.contracts)
        return signed_change.canonical_json(fields)

    @classmethod
    def from_json(cls, fields: object) -> ConfigChange:
        """Read a change from its decoded JSON. Raises ConfigError naming the bad field."""
        if not isinstance(fields, dict):
            raise ConfigError("change", "want a JSON object")
        op = fields.get("op")
        if op not in OPS:
            raise ConfigError("op", f"got {op!r}, want one of {list(OPS)}")
        listing = {BOOTSTRAP: "owners", REGULATOR: "regulators"}.get(op)
        want = {"op", "time", listing or "key"}
        want |= {"site"} if op in ACK_OPS else set()
        want |= {"contracts"} if op in GRANT_OPS else set()
        if set(fields) != want:
            raise ConfigError("change", f"got fields {sorted(fields)}, want {sorted(want)}")
        if listing is not None:
            listed = fields[listing]
            if not isinstance(listed, list) or len(listed) > MAX_OWNERS:
                raise ConfigError(listing, f"want a list of at most {MAX_OWNERS} hex keys")
            owners = tuple(hex_field(k, listing, 32, ConfigError) for k in listed)
            return cls(op, fields["time"], owners=owners)
        key = hex_field(fields["key"], "key", 32, ConfigError)
        site = fields["site"] if op in ACK_OPS else None
        if site is not None and not isinstance(site, str):
            raise ConfigError("site", f"got {type(site).__name__}, want a string")
        contracts = fields["contracts"] if op in GRANT_OPS else []
        if not isinstance(contracts, list) or len(contracts) > MAX_CONTRACTS:
            raise ConfigError("contracts", f"want a list of at most {MAX_CONTRACTS} names")
        return cls(op, fields["time"], key=key, site=site, contracts=tuple(contracts))


def bootstrap_entry(owners: Iterable[bytes], now: int, op: str = BOOTSTRAP) -> bytes:
    """Return the unsigned bootstrap entry naming `owners` (the pinned first keys); with
    op REGULATOR, the regulators' bootstrap (`serve --regulator`)."""
    change = ConfigChange(op, now, owners=tuple(sorted(set(owners))))
    return bytes([ENTRY_CONFIG]) + UNSIGNED_SIGNER + UNSIGNED_SIGNATURE + change.canonical()


def sign_request(owner_secret: bytes, change: ConfigChange) -> dict[str, Any]:
    """Return the JSON request carrying `change` signed by an owner's secret key."""
    return signed_change.sign_request(TAG, owner_secret, change)


def open_request(request: object, now: float | None = None) -> tuple[ConfigChange, bytes]:
    """Check a signed owner-add or owner-remove request; return the change and its log
    entry. Whether the signer is an owner is `next_owners`' question, asked where the
    entry is appended. Raises ConfigError: 400 malformed (a bootstrap is written by
    `cloud serve`, never requested) or stale, 403 for a bad signature."""
    change, signer, signature = signed_change.open_request(
        request, TAG, ConfigChange.from_json, ConfigError, now
    )
    if change.op == BOOTSTRAP:
        raise ConfigError("op", "the bootstrap is written by `cloud serve --owner`, not requested")
    return change, bytes([ENTRY_CONFIG]) + signer + signature + change.canonical()


def parse_entry(payload: bytes) -> tuple[bytes, ConfigChange]:
    """Return (signer, change) of a configuration entry's payload (kind byte removed),
    checking its form and, unless it is the bootstrap, its signature. Raises ConfigError."""
    signer, signature, change = signed_change.read_entry(
        payload, TAG, ConfigChange.from_json, ConfigError, lambda c: c.op not in _MAYBE_UNSIGNED
    )
    unsigned = signer == UNSIGNED_SIGNER and signature == UNSIGNED_SIGNATURE
    if change.op == BOOTSTRAP and not unsigned:
        raise ConfigError("entry", "a bootstrap has zero signer and signature fields")
    if change.op == REGULATOR and not unsigned:  # a change by a regulator, not the bootstrap
        digest = schnorr.tagged_hash(TAG, change.canonical())
        if not schnorr.verify(signer, digest, signature):
            raise ConfigError("signature", "the regulator's signature does not verify", 403)
    return signer, change


_MAYBE_UNSIGNED = (BOOTSTRAP, REGULATOR)  # ops whose entry may be a bootstrap


def next_owners(owners: frozenset[bytes], entry: bytes) -> frozenset[bytes]:
    """Return the owner set after log entry `entry`, given the set before it (empty: no
    configuration entry yet), checking the entry's authority (module docstring).
    Raises ConfigError (RegistryError for a malformed registry change)."""
    if entry[:1] == bytes([registry_change.ENTRY_REGISTRY]):
        owner, _, _ = registry_change.parse_entry(entry[1:])
        if owner not in owners:
            raise ConfigError("unknown owner", f"key {owner.hex()} is not an owner", 403)
        return owners
    if entry[:1] != bytes([ENTRY_CONFIG]):
        return owners
    signer, change = parse_entry(entry[1:])
    if change.op in CONTRACT_OPS:  # the regulator's authority: next_contract_authority
        return owners
    if change.op == BOOTSTRAP:
        if owners:
            raise ConfigError("bootstrap", "the log names its owners already", 409)
        return frozenset(change.owners)
    if signer not in owners:
        raise ConfigError("unknown owner", f"key {signer.hex()} is not an owner", 403)
    assert change.key is not None
    if change.op in ACK_OPS:
        return owners
    if change.op == ADD:
        if change.key in owners:
            raise ConfigError("owner exists", f"key {change.key.hex()} is an owner already", 409)
        return owners | {change.key}
    if change.key not in owners:
        raise ConfigError("not an owner", f"key {change.key.hex()} is not an owner", 409)
    if owners == {change.key}:
        raise ConfigError("last owner", "removing the last owner would lock the registry", 409)
    return owners - {change.key}


AckKeys = frozenset[tuple[str, bytes]]  # (site, x-only key) pairs
Grants = frozenset[tuple[bytes, str]]  # (x-only key, contract) pairs


@dataclass(frozen=True, slots=True)
class Authority:
    """Who may do what at one point of the log: the owners, the acknowledgement keys, the
    contracts' regulators and the replay grants."""

    owners: frozenset[bytes] = frozenset()
    ack_keys: AckKeys = frozenset()
    regulators: frozenset[bytes] = frozenset()
    grants: Grants = frozenset()

    def may_replay(self, key: bytes, contract: str) -> bool:
        """Whether `key` holds a replay grant for `contract`."""
        return (key, contract) in self.grants

    def ack_keys_for(self, site: str) -> frozenset[bytes]:
        """The keys that may acknowledge alarms of gateways at `site`."""
        return frozenset(key for s, key in self.ack_keys if s == site)


def next_ack_keys(ack_keys: AckKeys, entry: bytes) -> AckKeys:
    """Return the acknowledgement keys after log entry `entry`, given those before it.
    Only the entry's form is checked here: its authority is `next_owners`' (call
    `next_authority` for both). Raises ConfigError for a malformed configuration entry."""
    if entry[:1] != bytes([ENTRY_CONFIG]):
        return ack_keys
    _, change = parse_entry(entry[1:])
    if change.op not in ACK_OPS:
        return ack_keys
    assert change.site is not None and change.key is not None
    pair = (change.site, change.key)
    return ack_keys | {pair} if change.op == ACK_KEY_ADD else ack_keys - {pair}


def next_contract_authority(
    regulators: frozenset[bytes], grants: Grants, entry: bytes
) -> tuple[frozenset[bytes], Grants]:
    """Return the regulators and replay grants after log entry `entry`, given those before
    it, checking a regulator or grant entry's authority (module docstring): 403 "unknown
    regulator" for a signer that is not a regulator, 409 "regulator bootstrap" for an
    unsigned entry once the log names regulators. Raises ConfigError."""
    if entry[:1] != bytes([ENTRY_CONFIG]):
        return regulators, grants
    signer, change = parse_entry(entry[1:])
    if change.op not in CONTRACT_OPS:
        return regulators, grants
    if change.op == REGULATOR and signer == UNSIGNED_SIGNER:
        if regulators:
            detail = "the log names its regulators already: a change is signed by one"
            raise ConfigError("regulator bootstrap", detail, 409)
        return frozenset(change.owners), grants
    if signer not in regulators:
        raise ConfigError("unknown regulator", f"key {signer.hex()} is not a regulator", 403)
    if change.op == REGULATOR:
        return frozenset(change.owners), grants
    assert change.key is not None
    pairs = {(change.key, c) for c in change.contracts}
    return regulators, grants | pairs if change.op == GRANT_ADD else grants - pairs


def regulators_named(entry: bytes) -> frozenset[bytes] | None:
    """The regulators a "regulator" configuration entry names from its log position on, or
    None for any other entry. Its authority is the log's to check (next_contract_authority,
    when it was appended). Raises ConfigError for an entry that does not parse."""
    if entry[:1] != bytes([ENTRY_CONFIG]):
        return None
    change = parse_entry(entry[1:])[1]
    return frozenset(change.owners) if change.op == REGULATOR else None


def is_contract_op(entry: bytes) -> bool:
    """Whether `entry` is a configuration entry of the regulator's (regulator, grants)."""
    if entry[:1] != bytes([ENTRY_CONFIG]):
        return False
    return parse_entry(entry[1:])[1].op in CONTRACT_OPS


def next_authority(before: Authority, entry: bytes) -> Authority:
    """Return the authority after log entry `entry`, checking its authority (module
    docstring). Raises ConfigError (RegistryError, as `next_owners`)."""
    owners = next_owners(before.owners, entry)
    regulators, grants = next_contract_authority(before.regulators, before.grants, entry)
    return Authority(owners, next_ack_keys(before.ack_keys, entry), regulators, grants)


def authority_of(entries: Iterable[bytes]) -> Authority:
    """Return the authority (owners, acknowledgement keys, regulators, grants) after the
    configuration entries among `entries` (log order; other kinds are skipped), checking
    each. Raises ConfigError."""
    authority = Authority()
    for entry in entries:
        if entry[:1] == bytes([ENTRY_CONFIG]):
            authority = next_authority(authority, entry)
    return authority


def owners_of(entries: Iterable[bytes]) -> frozenset[bytes]:
    """Return the owner set after the configuration entries among `entries` (log order;
    other kinds are skipped), checking each. Raises ConfigError."""
    owners: frozenset[bytes] = frozenset()
    for entry in entries:
        if entry[:1] == bytes([ENTRY_CONFIG]):
            owners = next_owners(owners, entry)
    return owners


def check_pinned(entry: bytes, pinned: Collection[bytes]) -> None:
    """Require the log's first configuration entry `entry` to be a bootstrap naming exactly
    the `pinned` owner keys. Raises ConfigError("bootstrap") otherwise."""
    if entry[:1] != bytes([ENTRY_CONFIG]):
        raise ConfigError("bootstrap", "the first authority entry is not a configuration entry")
    _, change = parse_entry(entry[1:])
    named = frozenset(change.owners)
    if change.op != BOOTSTRAP or named != frozenset(pinned):
        got = sorted(k.hex() for k in named) if change.op == BOOTSTRAP else change.op
        want = sorted(k.hex() for k in pinned)
        raise ConfigError("bootstrap", f"got owners {got}, want the pinned {want}")
