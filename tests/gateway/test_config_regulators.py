"""The regulator's configuration ops (0x06 regulator, grant-add, grant-remove;
gateway/config_entry.py): their canonical bytes (golden vector), the unsigned bootstrap only
while the log names no regulator, later changes signed by a current regulator, grants as a
set of (key, contract) pairs, and the owners' rule left as it was."""

from __future__ import annotations

import pytest

from device import schnorr
from gateway import config_entry
from gateway.config_entry import Authority, ConfigChange, ConfigError, authority_of
from tests.cloud.log_stub import secret

OWNER = bytes(31) + b"\x71"
REGULATOR = bytes(31) + b"\x81"
NEXT = bytes(31) + b"\x82"
READER = schnorr.pubkey(bytes(31) + b"\x83")
T = 1767225600


def signed(secret: bytes, change: ConfigChange) -> bytes:
    return config_entry.open_request(config_entry.sign_request(secret, change), now=T)[1]


def grant(op: str, secret: bytes, contracts: tuple[str, ...] = ("lots",)) -> bytes:
    return signed(secret, ConfigChange(op, T, key=READER, contracts=contracts))


def test_golden_regulator_bootstrap_and_grant_bytes() -> None:
    boot = config_entry.bootstrap_entry([schnorr.pubkey(REGULATOR)], T, config_entry.REGULATOR)
    key = schnorr.pubkey(REGULATOR).hex()
    assert boot == bytes([0x06]) + bytes(96) + (
        b'{"op":"regulator","regulators":["' + key.encode() + b'"],"time":1767225600}'
    )
    change = ConfigChange(config_entry.GRANT_ADD, T, key=READER, contracts=("lots", "participants"))
    assert change.canonical() == (
        b'{"contracts":["lots","participants"],"key":"'
        + READER.hex().encode()
        + b'","op":"grant-add","time":1767225600}'
    )
    assert (
        ConfigChange.from_json(
            {
                "op": "grant-add",
                "time": T,
                "key": READER.hex(),
                "contracts": ["lots", "participants"],
            }
        )
        == change
    )


def test_regulators_and_grants_fold_with_the_regulators_authority() -> None:
    owners = config_entry.bootstrap_entry([schnorr.pubkey(OWNER)], T)
    boot = config_entry.bootstrap_entry([schnorr.pubkey(REGULATOR)], T, config_entry.REGULATOR)
    log = [owners, boot, grant(config_entry.GRANT_ADD, REGULATOR, ("lots", "participants"))]
    now = authority_of(log)
    assert now.owners == {schnorr.pubkey(OWNER)}  # the owners' rule is untouched
    assert now.regulators == {schnorr.pubkey(REGULATOR)}
    assert now.may_replay(READER, "lots") and now.may_replay(READER, "participants")
    handover = ConfigChange(config_entry.REGULATOR, T, owners=(schnorr.pubkey(NEXT),))
    log += [signed(REGULATOR, handover), grant(config_entry.GRANT_REMOVE, NEXT)]
    now = authority_of(log)
    assert now.regulators == {schnorr.pubkey(NEXT)}
    assert now.grants == {(READER, "participants")}


@pytest.mark.parametrize(
    ("signer", "op", "reason", "status"),
    [
        (OWNER, config_entry.GRANT_ADD, "unknown regulator", 403),  # an owner is no regulator
        (NEXT, config_entry.GRANT_REMOVE, "unknown regulator", 403),
        (NEXT, config_entry.REGULATOR, "unknown regulator", 403),
    ],
)
def test_only_a_current_regulator_changes_the_regulators_or_grants(
    signer: bytes, op: str, reason: str, status: int
) -> None:
    before = Authority(
        frozenset({schnorr.pubkey(OWNER)}), regulators=frozenset({schnorr.pubkey(REGULATOR)})
    )
    if op == config_entry.REGULATOR:
        entry = signed(signer, ConfigChange(op, T, owners=(schnorr.pubkey(signer),)))
    else:
        entry = grant(op, signer)
    with pytest.raises(ConfigError) as err:
        config_entry.next_authority(before, entry)
    assert (err.value.reason, err.value.status) == (reason, status)


def test_a_second_unsigned_bootstrap_and_a_forged_change_are_refused() -> None:
    boot = config_entry.bootstrap_entry([schnorr.pubkey(REGULATOR)], T, config_entry.REGULATOR)
    with pytest.raises(ConfigError) as err:
        authority_of([boot, config_entry.bootstrap_entry([READER], T, config_entry.REGULATOR)])
    assert (err.value.reason, err.value.status) == ("regulator bootstrap", 409)
    handover = signed(REGULATOR, ConfigChange(config_entry.REGULATOR, T, owners=(READER,)))
    forged = handover[:40] + bytes([handover[40] ^ 1]) + handover[41:]  # a signature bit
    with pytest.raises(ConfigError) as err:
        authority_of([boot, forged])
    assert err.value.reason == "signature"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"op": "grant-add", "time": T, "key": READER.hex(), "contracts": []}, "contracts"),
        ({"op": "grant-add", "time": T, "key": READER.hex(), "contracts": ["b", "a"]}, "contracts"),
        ({"op": "grant-add", "time": T, "key": READER.hex(), "contracts": ["Lots"]}, "contracts"),
        ({"op": "grant-add", "time": T, "key": READER.hex()}, "change"),
        ({"op": "regulator", "time": T, "regulators": []}, "regulators"),
        ({"op": "owner-add", "time": T, "key": READER.hex(), "contracts": ["lots"]}, "change"),
    ],
)
def test_malformed_regulator_changes_are_refused(fields: dict, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        ConfigChange.from_json(fields)
    assert err.value.reason == reason


def test_golden_vectors_of_docs_protocol() -> None:
    """The vectors docs/protocol.md gives under "Configuration entries"."""
    regulator, reader = secret("regulator"), schnorr.pubkey(secret("reader"))
    boot = config_entry.bootstrap_entry(
        [schnorr.pubkey(regulator)], 1793620800, config_entry.REGULATOR
    )
    assert boot[97:] == (
        b'{"op":"regulator","regulators":'
        b'["c0907385b5d9a4b112a6cbc70d3a8fe0b08b04981b84d00b3d1c555efc8a4fec"],"time":1793620800}'
    )
    change = ConfigChange(config_entry.GRANT_ADD, 1793620980, key=reader, contracts=("lots",))
    digest = schnorr.tagged_hash(config_entry.TAG, change.canonical())
    assert digest.hex() == "41c9c3a33aa971777a6335ddb442b98dc924153cf43abc845005d049b8806ec6"
    sig = schnorr.sign(regulator, digest, bytes(32))  # aux = 32 zero bytes
    entry = bytes([config_entry.ENTRY_CONFIG]) + schnorr.pubkey(regulator) + sig
    entry += change.canonical()
    assert len(entry) == 227 and config_entry.parse_entry(entry[1:])[1] == change
    assert entry[:97].hex() == (
        "06c0907385b5d9a4b112a6cbc70d3a8fe0b08b04981b84d00b3d1c555efc8a4fec"
        "26f00f0ef5ff1b5caca50f29cacd0dbf18e13663bb24ebe744a5376d67ba598e"
        "1e4dab2b76d5d455be8a57267dec3cbed01d23d46200ec04bff3194b1aeb8409"
    )
    assert authority_of([boot, entry]).grants == {(reader, "lots")}
