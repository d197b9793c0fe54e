"""The auditor's follower (cloud/audit/follow.py) checks acknowledgement-key changes (0x06 ops
ack-key-add and ack-key-remove, gateway/config_entry.py) as it checks owner changes: signed
by an owner current at that point of the log, else CHANGE WITHOUT AUTHORITY."""

from __future__ import annotations

from pathlib import Path

from cloud.audit.follow import Alarm
from cloud.audit.follow_state import load_state
from device import schnorr
from gateway import config_entry
from tests.cloud.audit.test_follow_owners import alarm, poll
from tests.cloud.log_stub import OWNER, T0, Ledger, secret

ACK = schnorr.pubkey(secret("ack key"))
STRANGER = secret("stranger")


def ack_key(ledger: Ledger, op: str, signer: bytes, time: int = T0) -> int:
    """Append an ack-key change signed by the secret `signer`, unchecked (a lying log may
    log anything); return its index."""
    change = config_entry.ConfigChange(op, time, key=ACK, site="w1")
    request = config_entry.sign_request(signer, change)
    ledger.entries.append(config_entry.open_request(request, now=time)[1])
    ledger.readings.append([])
    return len(ledger.entries) - 1


async def test_ack_keys_changed_by_an_owner_verify(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.bootstrap()
    ack_key(ledger, config_entry.ACK_KEY_ADD, OWNER)
    await poll(ledger, tmp_path, [schnorr.pubkey(OWNER)])  # no alarm raised
    state = load_state(tmp_path / "v.json")
    assert state is not None and state.owners == {schnorr.pubkey(OWNER)}
    assert state.ack_keys == {("w1", ACK)}  # kept in the state file
    ack_key(ledger, config_entry.ACK_KEY_REMOVE, OWNER, T0 + 1)
    await poll(ledger, tmp_path, [schnorr.pubkey(OWNER)])  # from the saved state on
    state = load_state(tmp_path / "v.json")
    assert state is not None and state.ack_keys == frozenset()


async def test_an_ack_key_authorised_by_a_stranger_is_an_alarm(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.bootstrap()
    index = ack_key(ledger, config_entry.ACK_KEY_ADD, STRANGER)
    found = await alarm(ledger, tmp_path)
    assert found.alarm is Alarm.AUTHORITY and "unknown owner" in found.summary
    assert ("entry", str(index)) in found.facts
    assert ("signer", schnorr.pubkey(STRANGER).hex()) in found.facts
    assert "CHANGE WITHOUT AUTHORITY" in found.render()
