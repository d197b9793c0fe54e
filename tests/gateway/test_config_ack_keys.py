"""Acknowledgement keys on the log (gateway/config_entry.py, ops ack-key-add and
ack-key-remove): the bytes against golden vectors, and the rule that only a current owner
may authorise or withdraw a key, folded beside the owner set by `next_authority`."""

from __future__ import annotations

import hashlib

import pytest

from device import schnorr
from gateway import config_entry as c


def secret(label: str) -> bytes:
    """SHA-256('pharmasync test <label>'), as tests/cloud/log_stub.py makes its keys."""
    return hashlib.sha256(b"pharmasync test " + label.encode()).digest()


A, B, ACK = secret("owner"), secret("owner 2"), secret("ack key")
KA, KB, KACK = (schnorr.pubkey(s) for s in (A, B, ACK))
T0 = 1_793_620_800

# Golden vector (docs/protocol.md, "Configuration entries"): owner A authorises the ack key
# SHA-256('pharmasync test ack key') for site w1 at T0 + 120, signed with BIP-340 aux = 32
# zero bytes over tagged_hash("PharmaSync/config/v1", change).
ACK_ADD_CHANGE = (
    b'{"key":"7a404f4eb6116f4fb054e0de7d697c6191d92254279e6cd88e228d57fa7c18eb",'
    b'"op":"ack-key-add","site":"w1","time":1793620920}'
)
ACK_ADD_DIGEST = "c166e4df44d4cee18fda57157950fc6ba705fcb45d15b6f0e6bafd35f3b58952"
ACK_ADD_HEX = (
    "06ff63377eed55307513621e00b74d692f490472bbc63c22e4366c09e6a99dbf60"
    "ae7e0ddc30a28f7e5a82817c13ab80004fc3be7b5c8128f3e8088200f5a49c43"
    "24651389edc384465902371f13534c716d6df1c2827f05c375169609bdd266b3" + ACK_ADD_CHANGE.hex()
)


def ack_change(op: str, site: str = "w1", signer: bytes = A, time: int = T0) -> bytes:
    request = c.sign_request(signer, c.ConfigChange(op, time, key=KACK, site=site))
    return c.open_request(request, now=time)[1]


def test_the_golden_vector() -> None:
    add = c.ConfigChange(c.ACK_KEY_ADD, T0 + 120, key=KACK, site="w1")
    assert add.canonical() == ACK_ADD_CHANGE
    assert schnorr.tagged_hash(c.TAG, add.canonical()).hex() == ACK_ADD_DIGEST
    sig = schnorr.sign(A, bytes.fromhex(ACK_ADD_DIGEST), bytes(32))
    assert (bytes([c.ENTRY_CONFIG]) + KA + sig + add.canonical()).hex() == ACK_ADD_HEX
    assert c.parse_entry(bytes.fromhex(ACK_ADD_HEX)[1:]) == (KA, add)
    remove = c.ConfigChange(c.ACK_KEY_REMOVE, T0, key=KACK, site="w1")
    assert remove.canonical() == ACK_ADD_CHANGE.replace(b"add", b"remove").replace(
        b"1793620920", b"1793620800"
    )


def test_only_a_current_owner_authorises_and_withdraws_ack_keys() -> None:
    auth = c.authority_of([c.bootstrap_entry([KA], T0)])
    assert auth == c.Authority(frozenset({KA}))
    auth = c.next_authority(auth, bytes.fromhex(ACK_ADD_HEX))
    assert auth.owners == {KA}  # the owner rules are unchanged by an ack-key op
    assert auth.ack_keys_for("w1") == {KACK} and auth.ack_keys_for("w2") == frozenset()
    auth = c.next_authority(auth, ack_change(c.ACK_KEY_ADD, site="w2"))
    assert auth.ack_keys_for("w2") == {KACK}
    same = c.next_authority(auth, ack_change(c.ACK_KEY_ADD, time=T0 + 1))
    assert same == auth  # a set: adding a pair already there changes nothing
    auth = c.next_authority(auth, ack_change(c.ACK_KEY_REMOVE))
    assert auth.ack_keys_for("w1") == frozenset() and auth.ack_keys_for("w2") == {KACK}
    with pytest.raises(c.ConfigError) as refused:  # B is not an owner
        c.next_authority(auth, ack_change(c.ACK_KEY_REMOVE, site="w2", signer=B))
    assert (refused.value.reason, refused.value.status) == ("unknown owner", 403)
    with pytest.raises(c.ConfigError) as refused:  # nor before any bootstrap
        c.next_owners(frozenset(), ack_change(c.ACK_KEY_ADD))
    assert refused.value.reason == "unknown owner"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"op": "ack-key-add", "key": KACK.hex(), "time": T0}, "change"),  # no site
        ({"op": "ack-key-add", "key": KACK.hex(), "site": "", "time": T0}, "site"),
        ({"op": "ack-key-add", "key": KACK.hex(), "site": "w\x00", "time": T0}, "site"),
        ({"op": "ack-key-add", "key": KACK.hex(), "site": "x" * 201, "time": T0}, "site"),
        ({"op": "ack-key-add", "key": KACK.hex(), "site": 7, "time": T0}, "site"),
        ({"op": "ack-key-remove", "key": "00", "site": "w1", "time": T0}, "key"),
        ({"op": "ack-key-add", "key": KACK.hex(), "site": "w1", "time": -1}, "time"),
        ({"op": "owner-add", "key": KACK.hex(), "site": "w1", "time": T0}, "change"),
    ],
)
def test_malformed_ack_key_changes_are_refused_by_name(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(c.ConfigError) as refused:
        c.ConfigChange.from_json(fields)
    assert refused.value.reason == reason
    assert refused.value.status == 400
