"""The table of log entry kinds (cloud/log/kinds.py): every kind the log writes has a row,
an unknown kind byte is refused naming its value, and each row checks what DESIGN.md
says an auditor checks of it: alone (form, signature) and against the log before it."""

from __future__ import annotations

import struct

import pytest

from cloud.contracts import entries as tx_entries
from cloud.contracts import stateroot
from cloud.log import kinds, tlog
from device import schnorr
from gateway import batch, config_entry
from gateway import registry_change as registry
from tests.cloud.log_stub import GATEWAY, OWNER, T0, Ledger

TX = tx_entries.TxEntry("lots", bytes(range(32))).encode()
# 0x04 ‖ version 0x01 ‖ u64 records 3 ‖ u64 last covered index 4 ‖ root 32 bytes 0xab
STATE_ROOT = bytes.fromhex("04" + "01" + "0000000000000003" + "0000000000000004" + "ab" * 32)


def test_the_table_has_one_row_per_kind_the_log_writes() -> None:
    names = {kind.byte: kind.name for kind in kinds.TABLE}
    assert names == {
        0x01: "batch",
        0x02: "registry",
        0x03: "tx",
        0x04: "state root",
        0x05: "event",
        0x06: "config",
    }
    assert {registry.ENTRY_REGISTRY, config_entry.ENTRY_CONFIG} == kinds.AUTHORITY_KINDS
    assert (kinds.ENTRY_TX, kinds.ENTRY_STATE_ROOT) == (tx_entries.KIND, 0x04)
    assert tlog.parse_entry(TX) == ("tx", TX[1:])  # the log names kinds from the table
    assert tlog.parse_entry(STATE_ROOT) == ("state root", STATE_ROOT[1:])


@pytest.mark.parametrize("entry", [b"\x07" + bytes(40), b"\x00", b"\xff\x01", b""])
def test_an_unknown_kind_is_refused_naming_its_value(entry: bytes) -> None:
    with pytest.raises(kinds.EntryError) as err:
        kinds.check(kinds.LogState(), 4, entry)
    got = entry[:1].hex() or "nothing"
    assert str(err.value) == f"entry kind: got {got}, want one of 01, 02, 03, 04, 05, 06"
    assert err.value.rule is kinds.Rule.FORM and err.value.facts == (("entry", "4"),)


def _log() -> Ledger:
    ledger = Ledger()
    ledger.bootstrap()
    ledger.register(registry.GatewayRegistration(schnorr.pubkey(GATEWAY), T0, site="w1"))
    ledger.add_batch()
    ledger.entries.append(TX)
    ledger.add_batch()
    ledger.entries.append(STATE_ROOT)
    return ledger


def test_a_log_with_contract_entries_folds_entry_by_entry() -> None:
    state = kinds.LogState()
    found = [kinds.check(state, i, e) for i, e in enumerate(_log().entries)]
    assert [kind.name for kind, _ in found] == [
        "config",
        "registry",
        "batch",
        "tx",
        "batch",
        "state root",
    ]
    assert found[3][1] == tx_entries.TxEntry("lots", bytes(range(32)))
    assert found[5][1] == stateroot.StateRoot(records=3, covers=4, root=b"\xab" * 32)
    second = found[4][1]
    assert state.gateways == {second.gateway_key: batch.ChainHead(1, second.hash())}
    assert state.owners.keys == {schnorr.pubkey(OWNER)}


@pytest.mark.parametrize(
    ("entry", "summary"),
    [
        (TX[:-1], "contract transaction length: got 38 bytes, want 39"),
        (TX[:1] + b"\x02" + TX[2:], "contract transaction version: got 0x02"),
        (TX[:3] + b"Lots" + TX[7:], "contract transaction contract: got 'Lots'"),
        (STATE_ROOT[:-1], "state root: state-root entry is 49 bytes, want 50"),
        (STATE_ROOT[:1] + b"\x02" + STATE_ROOT[2:], "state root: state-root version 2, want 1"),
    ],
    ids=["tx-short", "tx-version", "tx-name", "root-short", "root-version"],
)
def test_a_contract_entry_of_the_wrong_form_is_refused(entry: bytes, summary: str) -> None:
    with pytest.raises(kinds.EntryError) as err:
        kinds.check(kinds.LogState(), 9, entry)
    assert err.value.rule is kinds.Rule.FORM and str(err.value).startswith(summary)
    assert err.value.facts[0] == ("entry", "9")


@pytest.mark.parametrize("index", [0, 4])
def test_a_state_root_covers_only_entries_before_it(index: int) -> None:
    with pytest.raises(
        kinds.EntryError, match=f"covers entries up to 4, want below its own index {index}"
    ):
        kinds.check(kinds.LogState(), index, STATE_ROOT)
    assert kinds.check(kinds.LogState(), 5, STATE_ROOT)[1].covers == 4


def test_a_refused_entry_leaves_the_state_as_it_was() -> None:
    ledger = _log()
    state = kinds.LogState()
    for i, entry in enumerate(ledger.entries[:3]):
        kinds.check(state, i, entry)
    before = (dict(state.gateways), dict(state.events), state.owners.keys)
    with pytest.raises(kinds.EntryError) as err:
        kinds.check(state, 3, ledger.entries[2])  # the same batch again
    assert err.value.rule is kinds.Rule.CHAIN and "want batch 1 after prev" in str(err.value)
    assert (dict(state.gateways), dict(state.events), state.owners.keys) == before


def test_the_state_root_layout_is_fixed() -> None:
    # 1 kind + 1 version + 8 + 8 + 32 (DESIGN.md, "How a contract runs"; docs/protocol.md)
    assert len(STATE_ROOT) == 50
    assert struct.unpack(">BBQQ", STATE_ROOT[:18]) == (4, 1, 3, 4)
