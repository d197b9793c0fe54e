"""The auditor's follower checks the regulator's configuration entries (0x06 regulator,
grant-add, grant-remove) as the cloud does: a grant or a regulator change signed by anyone
but a current regulator is CHANGE WITHOUT AUTHORITY; what held is kept in the state file."""

from __future__ import annotations

from pathlib import Path

from cloud.audit.follow import Alarm
from cloud.audit.follow_state import load_state
from device import schnorr
from gateway import config_entry
from tests.cloud.audit.test_follow_owners import alarm, poll
from tests.cloud.log_stub import OWNER, T0, Ledger, secret

REGULATOR = secret("regulator")
READER = schnorr.pubkey(secret("reader"))


def append(ledger: Ledger, entry: bytes) -> int:
    ledger.entries.append(entry)
    ledger.readings.append([])
    return len(ledger.entries) - 1


def grant(ledger: Ledger, op: str, signer: bytes, time: int = T0) -> int:
    """Append a grant signed by the secret `signer`, unchecked (a lying log may log it)."""
    change = config_entry.ConfigChange(op, time, key=READER, contracts=("lots",))
    request = config_entry.sign_request(signer, change)
    return append(ledger, config_entry.open_request(request, now=time)[1])


def regulated() -> Ledger:
    ledger = Ledger()
    ledger.bootstrap()
    boot = config_entry.bootstrap_entry([schnorr.pubkey(REGULATOR)], T0, config_entry.REGULATOR)
    append(ledger, boot)
    return ledger


async def test_grants_by_the_regulator_verify_and_are_kept(tmp_path: Path) -> None:
    ledger = regulated()
    grant(ledger, config_entry.GRANT_ADD, REGULATOR)
    await poll(ledger, tmp_path, [schnorr.pubkey(OWNER)])  # pinned owners: no alarm
    state = load_state(tmp_path / "v.json")
    assert state is not None and state.regulators == {schnorr.pubkey(REGULATOR)}
    assert state.grants == {(READER, "lots")}
    grant(ledger, config_entry.GRANT_REMOVE, REGULATOR, T0 + 1)
    await poll(ledger, tmp_path, [schnorr.pubkey(OWNER)])  # from the saved state on
    state = load_state(tmp_path / "v.json")
    assert state is not None and state.grants == frozenset()


async def test_a_grant_by_an_owner_is_an_alarm(tmp_path: Path) -> None:
    ledger = regulated()
    index = grant(ledger, config_entry.GRANT_ADD, OWNER)
    found = await alarm(ledger, tmp_path)
    assert found.alarm is Alarm.AUTHORITY and "unknown regulator" in found.summary
    assert ("entry", str(index)) in found.facts


async def test_a_second_regulator_bootstrap_is_an_alarm(tmp_path: Path) -> None:
    ledger = regulated()
    index = append(ledger, config_entry.bootstrap_entry([READER], T0, config_entry.REGULATOR))
    found = await alarm(ledger, tmp_path)
    assert found.alarm is Alarm.AUTHORITY and "regulator bootstrap" in found.summary
    assert ("entry", str(index)) in found.facts
