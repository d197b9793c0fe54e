"""The log follower against the cloud's public log API, served over a real ledger: it
catches up, follows incrementally, and raises the right alarm for every misbehaviour
(rollback, split view, fork, lying entries, broken chains, bad readings, a new key)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cloud.audit.follow import (
    EXIT_MISBEHAVIOUR,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_USAGE,
    Alarm,
    Follower,
    Misbehaviour,
    PollResult,
    Progress,
    follow,
)
from cloud.audit.follow_state import (
    SOURCE_FIRST_USE,
    SOURCE_GIVEN,
    load_state,
)
from cloud.audit.log_client import LogClient
from cloud.audit.verify import verify_bundle
from cloud.contracts import entries as tx_entries
from cloud.log import kinds, tlog
from device import reading, schnorr
from gateway import batch
from gateway import registry_change as registry
from gateway.checkpoint import Checkpoint, sign_checkpoint
from gateway.note import Signer
from tests.cloud.log_stub import (
    API,
    BOX,
    GATEWAY,
    OTHER_GATEWAY,
    OWNER,
    T0,
    Ledger,
    LogApi,
    build,
    make_app,
    secret,
)

REPO = Path(__file__).resolve().parents[3]
SECRETS = {schnorr.pubkey(s): s for s in (GATEWAY, OTHER_GATEWAY)}


def rewritten(ledger: Ledger, index: int) -> tuple[bytes, list[bytes]]:
    """Return another validly signed entry for entry `index`: the same gateway, seq and
    prev hash, over other readings (a hidden excursion at 9.00 C)."""
    header = batch.decode(tlog.parse_entry(ledger.entries[index])[1])
    wires = [reading.sign(BOX, 50_000 + i, T0, 900, 5000, aux=bytes(32)) for i in range(2)]
    forged = batch.seal(SECRETS[header.gateway_key], header.seq, header.prev_hash, wires)
    return tlog.batch_entry(forged.encode()), wires


@pytest.fixture
async def api() -> AsyncIterator[LogApi]:
    """A served ledger of 7 batches; `api.url` is where."""
    api = LogApi(build(), page_limit=3)
    async with TestServer(make_app(api), host="127.0.0.1") as server:
        api.url = str(server.make_url("")).rstrip("/")
        yield api


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "verify.json"


def follower(
    api: LogApi,
    session: aiohttp.ClientSession,
    state_path: Path,
    *,
    log_vkey: str | None = None,
    readings: bool = False,
) -> Follower:
    client = LogClient(session, api.url, retries=1, backoff_s=0.01)
    return Follower(client, state_path, log_vkey=log_vkey, readings=readings)


async def alarm_of(f: Follower) -> Misbehaviour:
    with pytest.raises(Misbehaviour) as err:
        await f.poll()
    return err.value


async def test_catches_up_from_empty_and_pins_the_key_on_first_use(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    result = await follower(api, session, state_path).poll()
    ledger = api.ledger
    assert result == PollResult(
        old_size=0,
        size=7,
        root=ledger.tree().root(),
        origin=ledger.origin,
        entries=7,
        readings=0,
        pinned=ledger.vkey,
        pinned_source=SOURCE_FIRST_USE,
    )
    state = load_state(state_path)
    assert state is not None
    assert (state.size, state.root, state.log_vkey) == (7, ledger.tree().root(), ledger.vkey)
    assert state.origin == ledger.origin and state.checkpoint == ledger.checkpoint()
    assert {k: (h.seq, h.hash) for k, h in state.gateways.items()} == ledger.heads
    # Pages of at most 3, as the server chose, and no proof needed from the empty tree.
    assert [r for r in api.requests if r.startswith("/v1/log/entries")] == [
        "/v1/log/entries?start=0&end=7",
        "/v1/log/entries?start=3&end=7",
        "/v1/log/entries?start=6&end=7",
    ]
    assert not [r for r in api.requests if "consistency" in r]


async def test_incremental_polls_download_only_new_entries_and_check_consistency(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    f = follower(api, session, state_path)
    await f.poll()
    for _ in range(3):
        api.ledger.add_batch(GATEWAY, BOX, 2)
    api.requests.clear()
    result = await f.poll()
    assert (result.old_size, result.size, result.entries, result.pinned) == (7, 10, 3, None)
    assert "/v1/log/proof/consistency?old=7&new=10" in api.requests
    assert [r for r in api.requests if r.startswith("/v1/log/entries")] == [
        "/v1/log/entries?start=7&end=10"
    ]
    state = load_state(state_path)
    assert state is not None and state.root == api.ledger.tree().root()

    api.requests.clear()
    result = await f.poll()
    assert (result.old_size, result.size, result.entries) == (10, 10, 0)
    assert api.requests == ["/v1/log/vkey", "/v1/checkpoint"]


async def test_readings_are_downloaded_and_checked(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    result = await follower(api, session, state_path, readings=True).poll()
    assert result.readings == sum(len(r) for r in api.ledger.readings)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda wires: b"".join(wires)[:-1], "got 439 bytes of readings, want a multiple of 110"),
        (lambda wires: b"".join(wires[:-1]), "count: got 3 readings, header says 4"),
        (lambda wires: b"".join(reversed(wires)), "merkle root: got "),
        (lambda wires: b"\x02" + b"".join(wires)[1:], "version: got 2, want 1"),
    ],
    ids=["truncated", "one-missing", "reordered", "malformed"],
)
async def test_readings_that_do_not_match_their_batch_raise_bad_readings(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path, damage, reason: str
) -> None:
    api.readings[3] = damage(api.ledger.readings[3])
    alarm = await alarm_of(follower(api, session, state_path, readings=True))
    assert alarm.alarm is Alarm.BAD_READINGS and alarm.summary.startswith(reason)
    assert ("entry", "3") in alarm.facts
    assert load_state(state_path) is None


async def test_a_batch_sealed_over_a_forged_reading_raises_bad_readings(
    session: aiohttp.ClientSession, state_path: Path
) -> None:
    ledger = Ledger()
    wires = ledger.sign_readings(BOX, 3)
    forged = bytearray(wires[2])
    forged[42] ^= 1  # the temperature, changed after the box signed
    wires[2] = bytes(forged)
    ledger.append(ledger.seal(GATEWAY, wires), wires)
    api = LogApi(ledger)
    async with TestServer(make_app(api), host="127.0.0.1") as server:
        api.url = str(server.make_url("")).rstrip("/")
        assert (await follower(api, session, state_path).poll()).size == 1  # entries fine
        state_path.unlink()
        alarm = await alarm_of(follower(api, session, state_path, readings=True))
    assert alarm.alarm is Alarm.BAD_READINGS
    assert "reading 2 does not verify" in alarm.summary


async def test_a_rewritten_entry_at_the_same_size_is_a_split_view(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    f = follower(api, session, state_path)
    await f.poll()
    before = state_path.read_bytes()
    old_note = api.ledger.checkpoint()
    api.ledger.entries[4], api.ledger.readings[4] = rewritten(api.ledger, 4)
    alarm = await alarm_of(f)
    assert alarm.alarm is Alarm.SPLIT_VIEW
    assert ("root before", Ledger.tree(build()).root().hex()) in alarm.facts
    assert ("root now", api.ledger.tree().root().hex()) in alarm.facts
    text = alarm.render()
    assert text.startswith("!!! SPLIT VIEW: two different trees of size 7")
    assert all(line.startswith("!!!") for line in text.splitlines())
    assert old_note.split("\n")[2] in text and api.ledger.checkpoint().split("\n")[2] in text
    assert state_path.read_bytes() == before
    assert (await alarm_of(f)).alarm is Alarm.SPLIT_VIEW  # and again: nothing was trusted


async def test_a_smaller_size_is_a_rollback(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    f = follower(api, session, state_path)
    await f.poll()
    api.size = 5
    alarm = await alarm_of(f)
    assert alarm.alarm is Alarm.ROLLBACK
    assert alarm.summary == "the log shrank from 7 to 5 entries"
    assert [label for label, _ in alarm.evidence] == [
        "checkpoint verified before",
        "checkpoint now",
    ]


async def test_a_forked_history_fails_the_consistency_proof(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    api.size = 5
    f = follower(api, session, state_path)
    await f.poll()
    fork = api.ledger.copy()
    fork.entries[2], fork.readings[2] = rewritten(fork, 2)
    fork.add_batch(GATEWAY, BOX, 1)
    api.ledger, api.size = fork, None
    alarm = await alarm_of(f)
    assert alarm.alarm is Alarm.INCONSISTENT
    assert "does not extend the verified one" in alarm.summary
    assert ("verified", f"size 5 root {build().tree(5).root().hex()}") in alarm.facts


async def test_entries_that_do_not_give_the_signed_root_are_caught(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    # The last batch swapped for another one that chains and is signed: only the root
    # recomputed from the entries shows that the server's entries are not the signed log.
    api.entries[6], _ = rewritten(api.ledger, 6)
    alarm = await alarm_of(follower(api, session, state_path))
    assert alarm.alarm is Alarm.ROOT_MISMATCH
    assert ("signed root", api.ledger.tree().root().hex()) in alarm.facts
    assert load_state(state_path) is None


def _skip_a_seq(ledger: Ledger) -> None:
    wires = ledger.sign_readings(BOX, 1)
    seq, prev = ledger.heads[schnorr.pubkey(GATEWAY)]
    ledger.append(batch.seal(GATEWAY, seq + 2, prev, wires), wires)


def _wrong_prev(ledger: Ledger) -> None:
    wires = ledger.sign_readings(BOX, 1)
    seq, _ = ledger.heads[schnorr.pubkey(GATEWAY)]
    ledger.append(batch.seal(GATEWAY, seq + 1, bytes(31) + b"\x01", wires), wires)


def _new_gateway_not_at_zero(ledger: Ledger) -> None:
    wires = ledger.sign_readings(BOX, 1)
    ledger.append(batch.seal(secret("gateway 3"), 1, bytes(31) + b"\x01", wires), wires)


def _replayed(ledger: Ledger) -> None:
    ledger.entries.append(ledger.entries[4])
    ledger.readings.append(ledger.readings[4])


@pytest.mark.parametrize(
    ("breach", "want"),
    [
        (_skip_a_seq, "want batch 4"),
        (_wrong_prev, "want batch 4 after prev"),
        (_new_gateway_not_at_zero, "want batch 0"),
        (_replayed, "got batch 2"),
    ],
    ids=["skipped-seq", "wrong-prev", "new-gateway-at-1", "replayed-entry"],
)
async def test_an_entry_that_does_not_chain_is_a_broken_chain(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path, breach, want: str
) -> None:
    f = follower(api, session, state_path)
    await f.poll()
    breach(api.ledger)
    alarm = await alarm_of(f)
    assert alarm.alarm is Alarm.CHAIN and want in alarm.summary
    assert ("entry", "7") in alarm.facts


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (lambda e: e[:-1] + bytes([e[-1] ^ 1]), "gateway signature does not verify"),
        (lambda e: b"\x07" + e[1:], "entry kind: got 07"),
        (lambda e: e[:100], "batch header length"),
    ],
    ids=["signature", "kind", "short"],
)
async def test_a_bad_entry_raises_bad_entry(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path, entry, reason: str
) -> None:
    api.entries[3] = entry(api.ledger.entries[3])
    alarm = await alarm_of(follower(api, session, state_path))
    assert alarm.alarm is Alarm.BAD_ENTRY and reason in alarm.summary
    assert alarm.facts[0] == ("entry", "3")


def registered() -> Ledger:
    """A ledger that opens, as the cloud's does, with the owners' bootstrap and the owner's
    registry changes."""
    ledger = Ledger()
    ledger.bootstrap()
    for key in (GATEWAY, OTHER_GATEWAY):
        ledger.register(registry.GatewayRegistration(schnorr.pubkey(key), T0, site="w1"))
    ledger.register(registry.BoxRegistration(schnorr.pubkey(BOX), T0, site="w1", label="fridge"))
    ledger.add_batch(GATEWAY, BOX, 2)
    attach = registry.Attachment(schnorr.pubkey(BOX), T0 + 60, subject="lot 7", start=T0)
    ledger.register(attach)
    ledger.add_batch(GATEWAY, BOX, 3)
    return ledger


async def serve(ledger: Ledger) -> TestServer:
    api = LogApi(ledger)
    server = TestServer(make_app(api), host="127.0.0.1")
    await server.start_server()
    api.url = str(server.make_url("")).rstrip("/")
    return server


async def test_registry_changes_are_checked_and_have_no_readings(
    session: aiohttp.ClientSession, state_path: Path
) -> None:
    server = await serve(registered())
    try:
        api = server.app[API]
        result = await follower(api, session, state_path, readings=True).poll()
        assert (result.entries, result.readings) == (7, 5)
        fetched = [r for r in api.requests if r.endswith("/readings")]
        assert fetched == ["/v1/log/entries/4/readings", "/v1/log/entries/6/readings"]
    finally:
        await server.close()


def _forged_owner_signature(entry: bytes) -> bytes:
    return entry[:40] + bytes([entry[40] ^ 1]) + entry[41:]


def _not_canonical(entry: bytes) -> bytes:
    # The same change with a space in its JSON, signed by the owner all the same.
    message = entry[97:].replace(b'"op":', b'"op": ')
    signature = schnorr.sign(OWNER, schnorr.tagged_hash(registry.TAG, message))
    return entry[:33] + signature + message


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_forged_owner_signature, "registry change signature"),
        (_not_canonical, "not in canonical form"),
    ],
    ids=["signature", "not-canonical"],
)
async def test_a_bad_registry_change_raises_bad_entry(
    session: aiohttp.ClientSession, state_path: Path, forge, reason: str
) -> None:
    server = await serve(registered())
    try:
        api = server.app[API]
        api.entries[5] = forge(api.ledger.entries[5])
        alarm = await alarm_of(follower(api, session, state_path))
    finally:
        await server.close()
    assert alarm.alarm is Alarm.BAD_ENTRY and reason in alarm.summary
    owner = schnorr.pubkey(OWNER).hex()
    assert alarm.facts == (("entry", "5"), ("signer", owner), ("owners", owner))


async def test_a_changed_log_key_is_an_alarm(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    f = follower(api, session, state_path)
    await f.poll()
    other = Signer(api.ledger.origin, secret("new log key"))
    api.vkey = other.verifier().to_vkey()
    alarm = await alarm_of(f)
    assert alarm.alarm is Alarm.KEY_CHANGED
    assert ("pinned", api.ledger.vkey) in alarm.facts and ("served", api.vkey) in alarm.facts


async def test_a_checkpoint_signed_by_another_key_is_an_alarm(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    f = follower(api, session, state_path)
    await f.poll()
    api.ledger.add_batch()
    api.note = api.ledger.checkpoint(signer=Signer(api.ledger.origin, secret("new log key")))
    alarm = await alarm_of(f)
    assert alarm.alarm is Alarm.BAD_CHECKPOINT and "not signed by the pinned" in alarm.summary


async def test_another_origin_is_an_alarm(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    f = follower(api, session, state_path)
    await f.poll()
    other = Checkpoint("another.test/log", 7, api.ledger.tree().root())
    api.note = sign_checkpoint(other, api.ledger.signer)
    alarm = await alarm_of(f)
    assert alarm.alarm is Alarm.BAD_CHECKPOINT and "origin" in alarm.summary


async def test_a_given_key_is_pinned_and_must_be_the_served_one(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    result = await follower(api, session, state_path, log_vkey=api.ledger.vkey).poll()
    assert (result.pinned, result.pinned_source) == (api.ledger.vkey, SOURCE_GIVEN)

    other = Signer(api.ledger.origin, secret("someone")).verifier().to_vkey()
    elsewhere = state_path.with_name("other.json")
    alarm = await alarm_of(follower(api, session, elsewhere, log_vkey=other))
    assert alarm.alarm is Alarm.KEY_CHANGED
    assert not elsewhere.exists()


async def poll_once(
    url: str, state_path: Path, *, log_vkey: str | None = None, readings: bool = False
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await follow(
        url,
        state_path,
        log_vkey=log_vkey,
        readings=readings,
        once=True,
        out=out,
        err=err,
        retries=2,
        backoff_s=0.01,
    )
    return code, out.getvalue(), err.getvalue()


async def test_follow_exit_statuses_and_output(api: LogApi, state_path: Path) -> None:
    url = api.url
    code, out, err = await poll_once(url, state_path)
    assert (code, err) == (EXIT_OK, "")
    assert f"pinned log key {api.ledger.vkey} (first use)" in out
    assert f"✓ {api.ledger.origin}: size 7" in out and "7 new entries verified" in out

    api.ledger.add_batch()
    code, out, _ = await poll_once(url, state_path, readings=True)
    assert code == EXIT_OK
    assert "1 new entry verified, 3 readings, consistent with size 7" in out

    other = Signer(api.ledger.origin, secret("x")).verifier().to_vkey()
    code, _, err = await poll_once(url, state_path, log_vkey=other)
    assert code == EXIT_USAGE and "pins" in err

    api.size = 3
    code, out, err = await poll_once(url, state_path)
    assert code == EXIT_MISBEHAVIOUR and out == ""
    assert err.startswith("!!! ROLLBACK/REWRITE: the log shrank from 8 to 3 entries")


async def test_server_errors_are_retried(api: LogApi, state_path: Path) -> None:
    api.failures = 2
    code, _, err = await poll_once(api.url, state_path)
    assert (code, err) == (EXIT_OK, "")
    assert api.requests[:3] == ["/v1/log/vkey"] * 3


async def test_an_unreachable_log_exits_1(state_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = await poll_once(f"http://127.0.0.1:{port}", state_path)
    assert code == EXIT_NETWORK and "cannot read the log" in err
    assert not state_path.exists()


async def test_a_persistent_http_error_exits_1_with_the_reason(
    api: LogApi, state_path: Path
) -> None:
    api.failures = 100
    code, _, err = await poll_once(api.url, state_path)
    assert code == EXIT_NETWORK and "HTTP 503: unavailable: try again" in err


async def test_a_damaged_state_file_is_refused(api: LogApi, state_path: Path) -> None:
    url = api.url
    assert (await poll_once(url, state_path))[0] == EXIT_OK
    doc = json.loads(state_path.read_text())
    doc["root"] = "00" * 32
    state_path.write_text(json.dumps(doc))
    code, _, err = await poll_once(url, state_path)
    assert code == EXIT_USAGE and "folds to" in err
    state_path.write_text("{")
    assert (await poll_once(url, state_path))[0] == EXIT_USAGE


async def test_polling_goes_on_until_the_log_misbehaves(api: LogApi, state_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    task = asyncio.create_task(follow(api.url, state_path, interval_s=0.02, out=out, err=err))

    async def until(done: Callable[[], bool]) -> None:
        # Fails (instead of hanging) if the follower stops or never gets there.
        for _ in range(1000):
            assert not task.done(), err.getvalue()
            if done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"follower never got there: {out.getvalue()}")

    await until(lambda: out.getvalue().count("✓") >= 2)
    api.ledger.add_batch()
    await until(lambda: "size 8" in out.getvalue())
    api.size = 7
    assert await asyncio.wait_for(task, 10) == EXIT_MISBEHAVIOUR
    assert "(no new entries)" in out.getvalue()
    assert err.getvalue().startswith("!!! ROLLBACK/REWRITE")


def test_progress_prints_count_and_rate_at_most_every_second() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(5000, stream, clock=lambda: now[0])
    progress.advance(1000)  # 0 s: too soon
    now[0] = 2.0
    progress.advance(1000)
    now[0] = 2.5
    progress.advance(1000)  # 0.5 s after the last line
    now[0] = 4.0
    progress.finish()
    assert stream.getvalue().splitlines() == [
        "  verified 2,000 / 5,000 entries (1,000/s, 2.0 s)",
        "  verified 3,000 / 5,000 entries (750/s, 4.0 s)",
    ]
    quiet = io.StringIO()
    short = Progress(10, quiet, clock=lambda: 0.0)
    short.advance(10)
    short.finish()
    assert quiet.getvalue() == ""
    once = io.StringIO()
    now[0] = 0.0
    ended = Progress(10, once, clock=lambda: now[0])
    now[0] = 1.5
    ended.advance(10)  # the last page printed the final count already
    ended.finish()
    assert once.getvalue().splitlines() == ["  verified 10 / 10 entries (7/s, 1.5 s)"]


async def test_a_bundle_served_by_the_api_verifies_under_the_followed_key(
    api: LogApi, session: aiohttp.ClientSession, state_path: Path
) -> None:
    """The two halves of the auditor's verifier agree: a reading's bundle proves it is in
    the very tree the follower verified entry by entry."""
    await follower(api, session, state_path).poll()
    state = load_state(state_path)
    assert state is not None
    wire = api.ledger.readings[3][1]
    proof_url = f"{api.url}/v1/readings/{wire[1:33].hex()}/{reading.seq_of(wire)}/proof"
    async with session.get(proof_url) as resp:
        bundle = await resp.json()
    report = verify_bundle(bundle, log_vkey=state.log_vkey)
    assert (report.log_index, report.batch_index, report.log_size) == (3, 1, 7)
    assert report.checkpoint_root == state.root


async def test_cli_follows_a_log_and_raises_the_alarm(api: LogApi, tmp_path: Path) -> None:
    """`pharmasync verify --cloud URL --once` in a process of its own."""
    state = tmp_path / "state.json"

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cloud.audit.verify",
            "--cloud",
            api.url,
            "--state",
            str(state),
            *args,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await run("--once", "--readings", "--log-vkey", api.ledger.vkey)
    assert code == 0, err
    assert "(given with --log-vkey)" in out and "7 new entries verified" in out
    api.ledger.entries[2], api.ledger.readings[2] = rewritten(api.ledger, 2)
    code, out, err = await run("--once")
    assert code == 3
    assert err.startswith("!!! SPLIT VIEW")


async def test_contract_entries_are_checked_by_their_rows_not_refused(
    session: aiohttp.ClientSession, state_path: Path
) -> None:
    # The first contract transaction (0x03) and state root (0x04) a ledger logs: an auditor
    # without a replay grant checks their form (cloud/log/kinds.py) and goes on.
    ledger = registered()
    tx = tx_entries.TxEntry("lots", bytes(32)).encode()
    root = bytes([kinds.ENTRY_STATE_ROOT, 1]) + (1).to_bytes(8, "big")
    for entry in (tx, root + len(ledger.entries).to_bytes(8, "big") + b"\xab" * 32):
        ledger.entries.append(entry)
        ledger.readings.append([])
    ledger.add_batch(GATEWAY, BOX, 2)
    server = await serve(ledger)
    try:
        result = await follower(server.app[API], session, state_path, readings=True).poll()
        assert (result.entries, result.readings) == (10, 7)
        server.app[API].entries[7] = tx[:-1]  # a truncated commitment is a bad entry
        ledger.add_batch(GATEWAY, BOX, 1)
        state_path.unlink()
        alarm = await alarm_of(follower(server.app[API], session, state_path))
    finally:
        await server.close()
    assert alarm.alarm is Alarm.BAD_ENTRY and alarm.facts[0] == ("entry", "7")
    assert alarm.summary.startswith("contract transaction length: got 38 bytes, want 39")
