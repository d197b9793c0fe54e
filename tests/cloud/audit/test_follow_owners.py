"""The auditor's follower checks authority from the log alone (cloud/audit/follow.py): owner
changes signed by a current owner, registry changes by an owner current at that point, and,
with pinned first owners (`verify --cloud ... --owner KEY`), the bootstrap. A lying server
(tests/cloud/log_stub.py) serves what an honest cloud never logs."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cloud.audit.follow import EXIT_MISBEHAVIOUR, EXIT_OK, Alarm, Follower, Misbehaviour, follow
from cloud.audit.follow_state import load_state
from cloud.audit.log_client import LogClient
from cloud.cli import build_parser
from device import schnorr
from gateway import config_entry
from gateway import registry_change as registry
from tests.cloud.log_stub import OWNER, T0, Ledger, LogApi, make_app, secret

SECOND = secret("owner 2")
STRANGER = secret("stranger")


def box(n: int, time: int = T0) -> registry.Change:
    return registry.BoxRegistration(bytes(31) + bytes([n]), time, site="w1", label="")


async def poll(
    ledger: Ledger, tmp_path: Path, owners: list[bytes] | None = None, state: str = "v.json"
) -> Follower:
    """Serve `ledger` and poll it once with a follower (its state in tmp_path/state)."""
    async with TestServer(make_app(LogApi(ledger)), host="127.0.0.1") as server:
        api_url = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            client = LogClient(session, api_url, retries=1, backoff_s=0.01)
            follower = Follower(client, tmp_path / state, owners=owners)
            await follower.poll()
    return follower


async def alarm(ledger: Ledger, tmp_path: Path, owners: list[bytes] | None = None) -> Misbehaviour:
    with pytest.raises(Misbehaviour) as err:
        await poll(ledger, tmp_path, owners)
    return err.value


def honest() -> Ledger:
    """Bootstrap (OWNER), OWNER adds SECOND, SECOND registers, SECOND removes OWNER."""
    ledger = Ledger()
    ledger.bootstrap()
    ledger.change_owner(config_entry.ADD, schnorr.pubkey(SECOND))
    ledger.register(box(1), SECOND)
    ledger.change_owner(config_entry.REMOVE, schnorr.pubkey(OWNER), SECOND)
    ledger.add_batch()
    return ledger


@pytest.fixture
def pinned() -> list[bytes]:
    return [schnorr.pubkey(OWNER)]


async def test_an_honest_log_of_owner_changes_verifies_and_the_owners_are_kept(
    tmp_path: Path, pinned: list[bytes]
) -> None:
    ledger = honest()
    await poll(ledger, tmp_path, pinned)
    state = load_state(tmp_path / "v.json")
    assert state is not None and state.owners == {schnorr.pubkey(SECOND)}
    # The next poll starts from the saved owners: the removed OWNER may not register now.
    ledger.register(box(2), OWNER)
    with pytest.raises(Misbehaviour) as err:
        await poll(ledger, tmp_path, pinned)
    assert err.value.alarm is Alarm.AUTHORITY
    assert "unknown owner" in err.value.summary
    assert ("entry", "5") in err.value.facts
    assert ("signer", schnorr.pubkey(OWNER).hex()) in err.value.facts
    assert ("owners", schnorr.pubkey(SECOND).hex()) in err.value.facts


async def test_a_registry_change_by_a_non_owner_is_an_alarm(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.bootstrap()
    ledger.register(box(1), STRANGER)
    found = await alarm(ledger, tmp_path)
    assert found.alarm is Alarm.AUTHORITY and "unknown owner" in found.summary
    assert found.facts[:2] == (("entry", "1"), ("signer", schnorr.pubkey(STRANGER).hex()))
    assert "CHANGE WITHOUT AUTHORITY" in found.render()


async def test_a_registry_change_before_any_bootstrap_is_an_alarm(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.register(box(1), OWNER)
    found = await alarm(ledger, tmp_path)
    assert found.alarm is Alarm.AUTHORITY and ("owners", "none yet") in found.facts


async def test_a_forged_config_entry_is_an_alarm(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.bootstrap()
    index = ledger.change_owner(config_entry.ADD, schnorr.pubkey(STRANGER))
    entry = ledger.entries[index]
    ledger.entries[index] = entry[:40] + bytes([entry[40] ^ 1]) + entry[41:]  # the signature
    found = await alarm(ledger, tmp_path)
    assert found.alarm is Alarm.BAD_ENTRY and "signature" in found.summary
    assert ("entry", str(index)) in found.facts


async def test_an_owner_change_signed_by_a_stranger_is_an_alarm(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.bootstrap()
    ledger.change_owner(config_entry.ADD, schnorr.pubkey(STRANGER), STRANGER)  # self-appointed
    found = await alarm(ledger, tmp_path)
    assert found.alarm is Alarm.AUTHORITY and "unknown owner" in found.summary


async def test_a_bootstrap_naming_other_owners_than_the_pinned_ones_is_an_alarm(
    tmp_path: Path, pinned: list[bytes]
) -> None:
    ledger = Ledger()
    ledger.bootstrap((STRANGER,))
    ledger.register(box(1), STRANGER)
    found = await alarm(ledger, tmp_path, pinned)
    assert found.alarm is Alarm.AUTHORITY and "bootstrap" in found.summary
    assert schnorr.pubkey(OWNER).hex() in found.summary  # what was pinned
    # Unpinned, the same log verifies: the bootstrap is checked by pinning alone.
    await poll(ledger, tmp_path, None, state="unpinned.json")


async def test_a_second_bootstrap_is_an_alarm(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.bootstrap()
    ledger.bootstrap((STRANGER,))
    found = await alarm(ledger, tmp_path)
    assert found.alarm is Alarm.AUTHORITY and "names its owners already" in found.summary


async def test_verify_cloud_owner_pins_the_first_owners(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.bootstrap((STRANGER,))
    out, err = io.StringIO(), io.StringIO()
    async with TestServer(make_app(LogApi(ledger)), host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        pinned = [schnorr.pubkey(OWNER)]
        status = await follow(url, tmp_path / "s.json", owners=pinned, once=True, out=out, err=err)
        assert status == EXIT_MISBEHAVIOUR
        assert "!!! CHANGE WITHOUT AUTHORITY: config change: bootstrap" in err.getvalue()
        status = await follow(url, tmp_path / "t.json", once=True, out=out, err=err)
        assert status == EXIT_OK  # unpinned, the bootstrap is taken as it is
    key = tmp_path / "owner.pub"
    key.write_text(schnorr.pubkey(OWNER).hex() + "\n")
    args = build_parser().parse_args(["verify", "--cloud", url, "--owner", f"@{key}"])
    assert args.owner == pinned
