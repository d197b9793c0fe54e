"""The follower checks gateway event entries (kind 0x05): canonical, signed by their gateway,
and each gateway's events in seq order from 0 with no gap, across polls (the state file
keeps each gateway's last event seq). Against the real ledger on both engines, and against
a dishonest log (tests/cloud/log_stub.py) that serves forged or reordered events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cloud.audit.follow import Alarm, Follower, Misbehaviour, check_entry
from cloud.audit.follow_state import load_state
from cloud.audit.log_client import LogClient
from cloud.log import tlog
from device import schnorr
from gateway import event
from tests.cloud.api import test_app
from tests.cloud.api.test_app import Cloud
from tests.cloud.log_stub import GATEWAY, OTHER_GATEWAY, T0, LogApi, build, make_app
from tests.cloud.services.test_events import events, post
from tests.cloud.services.test_ingest import GW

cloud = test_app.cloud  # the fixture: a served ledger with a gateway and a box registered


def entries(secret: bytes, seqs: range) -> list[bytes]:
    """Log entries of the gateway's signed events with these seqs."""
    out = []
    for s in seqs:
        body = {"alarm": "high", "zone": "C", "value_cc": 912}
        ev = event.Event(schnorr.pubkey(secret), s, T0 + s, event.ALARM_RAISED, body)
        out.append(tlog.event_entry(ev.sign(secret, aux=bytes(32)).encode()))
    return out


def test_events_of_each_gateway_must_follow_on_from_zero() -> None:
    heads: dict[bytes, int] = {}
    mine, theirs = entries(GATEWAY, range(3)), entries(OTHER_GATEWAY, range(2))
    for index, entry in enumerate([mine[0], theirs[0], mine[1], theirs[1], mine[2]]):
        assert check_entry(index, entry, {}, heads) is None
    assert heads == {schnorr.pubkey(GATEWAY): 2, schnorr.pubkey(OTHER_GATEWAY): 1}

    with pytest.raises(Misbehaviour) as err:
        check_entry(9, entries(GATEWAY, range(4, 5))[0], {}, heads)  # event 3 is missing
    assert err.value.alarm is Alarm.EVENTS and err.value.summary == "got event 4, want event 3"
    assert ("gateway", schnorr.pubkey(GATEWAY).hex()) in err.value.facts
    with pytest.raises(Misbehaviour) as err:
        check_entry(9, mine[1], {}, heads)  # a replayed entry
    assert err.value.alarm is Alarm.EVENTS and "got event 1, want event 3" in str(err.value)
    with pytest.raises(Misbehaviour) as err:
        check_entry(0, entries(GATEWAY, range(1, 2))[0], {}, {})  # a log must start at 0
    assert err.value.alarm is Alarm.EVENTS and "want event 0" in str(err.value)
    assert heads == {schnorr.pubkey(GATEWAY): 2, schnorr.pubkey(OTHER_GATEWAY): 1}


def _flip_signature(entry: bytes) -> bytes:
    return entry[:1] + bytes([entry[1] ^ 1]) + entry[2:]


def _changed_body(entry: bytes) -> bytes:
    return entry.replace(b'"value_cc":912', b'"value_cc":412')  # a cooler room, unsigned


def _not_canonical(entry: bytes) -> bytes:
    # The same event with a space in its JSON, signed by the gateway all the same.
    data = entry[65:].replace(b'"seq":', b'"seq": ')
    signature = schnorr.sign(GATEWAY, schnorr.tagged_hash(event.TAG, data))
    return entry[:1] + signature + data


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_flip_signature, "event signature does not verify"),
        (_changed_body, "event signature does not verify"),
        (_not_canonical, "not in canonical form"),
        (lambda e: e[:40], "signature"),
    ],
    ids=["signature", "body", "not-canonical", "truncated"],
)
def test_a_forged_event_entry_is_a_bad_entry(forge, reason: str) -> None:
    with pytest.raises(Misbehaviour) as err:
        check_entry(5, forge(entries(GATEWAY, range(1))[0]), {}, {})
    assert err.value.alarm is Alarm.BAD_ENTRY and reason in err.value.summary
    assert err.value.facts[0] == ("entry", "5")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_the_follower_checks_a_real_ledgers_events_across_polls(
    cloud: Cloud, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    state_path = tmp_path / "verify.json"
    url = cloud.url("/").rstrip("/")
    follower = Follower(LogClient(session, url, retries=1, backoff_s=0.01), state_path)
    assert (await post(cloud, event.page(events(range(3)))))[0] == 201
    result = await follower.poll()
    assert result.entries == 3 + 3  # the owners, two registry changes, 3 events
    state = load_state(state_path)
    assert state is not None and state.events == {schnorr.pubkey(GW): 2}
    assert (await post(cloud, event.page(events(range(3, 5)))))[0] == 201
    assert (await follower.poll()).entries == 2  # continues from the saved seq 2
    state = load_state(state_path)
    assert state is not None and state.events == {schnorr.pubkey(GW): 4}

    # A state file from before gateway events (no "events" member) still loads.
    doc = json.loads(state_path.read_text())
    del doc["events"]
    state_path.write_text(json.dumps(doc))
    old = load_state(state_path)
    assert old is not None and old.events == {}


async def test_a_log_serving_reordered_events_raises_the_alarm(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    ledger = build(2)
    for entry in entries(GATEWAY, range(2))[::-1]:  # seq 1 logged before seq 0
        ledger.entries.append(entry)
        ledger.readings.append([])
    api = LogApi(ledger)
    async with TestServer(make_app(api), host="127.0.0.1") as server:
        api.url = str(server.make_url("")).rstrip("/")
        client = LogClient(session, api.url, retries=1, backoff_s=0.01)
        with pytest.raises(Misbehaviour) as err:
            await Follower(client, tmp_path / "verify.json").poll()
    assert err.value.alarm is Alarm.EVENTS and err.value.facts[0] == ("entry", "2")
    assert "BROKEN GATEWAY EVENT SEQUENCE" in err.value.render()
    assert not (tmp_path / "verify.json").exists()  # nothing from the poll was trusted
