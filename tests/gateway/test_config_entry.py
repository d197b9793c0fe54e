"""Configuration entries (gateway/config_entry.py): the 0x06 bytes against golden vectors,
and the one rule of owner authority the cloud, the auditor and the gateway share."""

from __future__ import annotations

import hashlib

import pytest

from device import schnorr
from gateway import config_entry as c
from gateway import registry_change


def secret(label: str) -> bytes:
    """SHA-256('pharmasync test <label>'), as tests/cloud/log_stub.py makes its keys."""
    return hashlib.sha256(b"pharmasync test " + label.encode()).digest()


A, B, C = secret("owner"), secret("owner 2"), secret("owner 3")
KA, KB, KC = (schnorr.pubkey(s) for s in (A, B, C))
T0 = 1_793_620_800
ZERO96 = "00" * 96

# Golden vectors (docs/protocol.md, "Configuration entries"). The bootstrap naming owner A
# at T0: 0x06, 96 zero bytes, the canonical JSON.
BOOTSTRAP_HEX = (
    "06"
    + ZERO96
    + b'{"op":"owners","owners":["ff63377eed55307513621e00b74d692f490472bbc63c22e4'
    b'366c09e6a99dbf60"],"time":1793620800}'.hex()
)
# Owner A adds owner B at T0 + 60, signed with BIP-340 aux = 32 zero bytes over
# tagged_hash("PharmaSync/config/v1", change) = 1aa1298f...61f0 (made with device/schnorr.py,
# checked against coincurve's libsecp256k1 by its own tests).
ADD_DIGEST = "1aa1298fbbfff1a70e59b2ea2f55f9d22ec693f09a823d8439fb3053ee7161f0"
ADD_HEX = (
    "06ff63377eed55307513621e00b74d692f490472bbc63c22e4366c09e6a99dbf60"
    "590d3656b35ad85e9963829f397b28197a80f9ec5ea10bbbc90030419bf10176"
    "a16975df8dff9c1d43df5cdabb3862cf7e6bb1d0a4aeecd82613e3a88beb0f73"
    + b'{"key":"830631e45ac0e9796dbd3eac9850b3532083e956ea6579aa154cb934a1d229d8",'
    b'"op":"owner-add","time":1793620860}'.hex()
)


def change(op: str, key: bytes, signer: bytes = A, time: int = T0) -> bytes:
    request = c.sign_request(signer, c.ConfigChange(op, time, key=key))
    return c.open_request(request, now=time)[1]


def registry_entry(signer: bytes, time: int = T0) -> bytes:
    ch = registry_change.BoxRegistration(bytes(31) + b"\x01", time, site="w1", label="")
    return registry_change.open_request(registry_change.sign_request(signer, ch), None, time)[1]


def test_the_golden_vectors() -> None:
    assert c.bootstrap_entry([KA], T0).hex() == BOOTSTRAP_HEX
    add = c.ConfigChange(c.ADD, T0 + 60, key=KB)
    assert schnorr.tagged_hash(c.TAG, add.canonical()).hex() == ADD_DIGEST
    sig = schnorr.sign(A, bytes.fromhex(ADD_DIGEST), bytes(32))
    assert (bytes([c.ENTRY_CONFIG]) + KA + sig + add.canonical()).hex() == ADD_HEX
    signer, parsed = c.parse_entry(bytes.fromhex(ADD_HEX)[1:])
    assert (signer, parsed) == (KA, add)
    _, boot = c.parse_entry(bytes.fromhex(BOOTSTRAP_HEX)[1:])
    assert boot == c.ConfigChange(c.BOOTSTRAP, T0, owners=(KA,))


def test_owners_change_only_by_a_current_owner_and_never_to_none() -> None:
    owners = c.next_owners(frozenset(), c.bootstrap_entry([KA], T0))
    assert owners == {KA}
    owners = c.next_owners(owners, bytes.fromhex(ADD_HEX))
    assert owners == {KA, KB}
    assert c.next_owners(owners, registry_entry(B)) == owners  # B may sign registry changes
    owners = c.next_owners(owners, change(c.REMOVE, KA, signer=B))
    assert owners == {KB}
    refusals = [
        (owners, registry_entry(A), "unknown owner", 403),  # A was removed
        (owners, change(c.ADD, KC, signer=A), "unknown owner", 403),
        (owners, change(c.ADD, KB, signer=B), "owner exists", 409),
        (owners, change(c.REMOVE, KC, signer=B), "not an owner", 409),
        (owners, change(c.REMOVE, KB, signer=B), "last owner", 409),
        (owners, c.bootstrap_entry([KC], T0), "bootstrap", 409),  # a second bootstrap
        (frozenset(), registry_entry(A), "unknown owner", 403),  # before any bootstrap
    ]
    for before, entry, reason, status in refusals:
        with pytest.raises(c.ConfigError) as e:
            c.next_owners(before, entry)
        assert (e.value.reason, e.value.status) == (reason, status), e.value


def test_a_forged_or_malformed_entry_is_refused_naming_why() -> None:
    add = bytes.fromhex(ADD_HEX)
    forged = add[:40] + bytes([add[40] ^ 1]) + add[41:]
    spaced = add[:97] + add[97:].replace(b'"op":', b'"op": ')
    signed_bootstrap = bytes([6]) + KA + bytes(64) + c.bootstrap_entry([KA], T0)[97:]
    for entry, reason in [
        (forged, "signature"),
        (spaced, "entry"),  # not canonical
        (signed_bootstrap, "entry"),  # a bootstrap has zero signer and signature
        (add[:97] + b"[" * 10_000, "entry"),  # bounded JSON: no RecursionError
        (add[:97] + b'{"op":"owner-add","time":1}', "entry"),  # no key
    ]:
        with pytest.raises(c.ConfigError) as e:
            c.next_owners(frozenset({KA}), entry)
        assert e.value.reason == reason, e.value


def test_requests_are_checked_before_anything_is_logged() -> None:
    ok = c.sign_request(A, c.ConfigChange(c.ADD, T0, key=KB))
    for request, reason, status in [
        ({**ok, "signature": "00" * 64}, "signature", 403),
        ({**ok, "extra": 1}, "request", 400),
        (c.sign_request(A, c.ConfigChange(c.BOOTSTRAP, T0, owners=(KA,))), "op", 400),
        ({**ok, "change": {**ok["change"], "key": "zz"}}, "key", 400),
        ({**ok, "change": {**ok["change"], "time": 2**63}}, "time", 400),
    ]:
        with pytest.raises(c.ConfigError) as e:
            c.open_request(request, now=T0)
        assert (e.value.reason, e.value.status) == (reason, status)
    with pytest.raises(c.ConfigError, match="time"):  # stale
        c.open_request(ok, now=T0 + registry_change.MAX_SKEW + 1)


def test_the_bootstrap_must_name_exactly_the_pinned_owners() -> None:
    c.check_pinned(c.bootstrap_entry([KB, KA], T0), [KA, KB])  # order does not matter
    for entry in (c.bootstrap_entry([KA], T0), bytes.fromhex(ADD_HEX), registry_entry(A)):
        with pytest.raises(c.ConfigError, match="bootstrap"):
            c.check_pinned(entry, [KA, KB])
