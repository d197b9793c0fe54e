"""`verify --replay` (cloud/audit/replay.py) against a real cloud: with a replay grant it
replays every transaction and matches every logged state root; without a key (or a grant)
it checks the public entries only and says so; a body edited in the database is reported
at its 0x03 entry. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from cloud.api.state import CONTRACTS
from cloud.audit import replay as replay_module
from cloud.audit.replay import replay
from cloud.cli import main
from gateway import config_entry
from tests.cloud.api.test_app import Cloud
from tests.cloud.api.test_tx import D, admit, applied, commission, ship
from tests.cloud.contracts.world import REGULATOR, party
from tests.cloud.storage.test_store import execute

AUDITOR = party("auditor")


@pytest.fixture
def cloud(regulated: Cloud) -> Cloud:
    """The regulated cloud (tests/cloud/conftest.py), by the name these tests use."""
    return regulated


async def history(cloud: Cloud) -> list[int]:
    """Admit M and D, commission a lot, ship part of it, grant AUDITOR the replay; return
    the 0x03 indices."""
    done = [await applied(cloud, admit(name)) for name in ("M", "D")]
    done.append(await applied(cloud, commission("L1", 10)))
    done.append(await applied(cloud, ship(party("M"), "L1", "S1", D, 4)))
    change = config_entry.ConfigChange(
        config_entry.GRANT_ADD,
        int(time.time()),
        key=AUDITOR.xonly,
        contracts=("lots", "participants"),
    )
    request = config_entry.sign_request(REGULATOR.secret, change)
    status, answer = await cloud.post(
        "/v1/config", json.dumps(request).encode(), "application/json"
    )
    assert status == 201, answer
    return [a["index"] for a in done]


async def test_a_granted_replay_matches_every_root_and_finds_an_edited_body(
    cloud: Cloud,
) -> None:
    indices = await history(cloud)
    url = cloud.url("").rstrip("/")
    async with aiohttp.ClientSession() as session:
        report = await replay(url, AUDITOR.secret, session)
        assert (report.parted_at, report.replayed, report.roots) == (None, 4, 4), report
        public = await replay(url, None, session)
        assert public.replayed is None and public.roots == 4 and public.parted_at is None
        assert "public entries only" in public.render()
        stranger = await replay(url, party("stranger").secret, session)  # cannot sign in
        assert stranger.replayed is None and "not an admitted" in stranger.render()
        regulator = await replay(url, REGULATOR.secret, session)  # signs in, holds no grant
        assert regulator.replayed is None and "no replay grant" in regulator.render()

        store = cloud.server.app[CONTRACTS].shared.store
        salt_hex = "ab" * 32
        literal = (
            f"X'{salt_hex}'"
            if store.engine.__class__.__name__ == "SqliteEngine"
            else (f"'\\x{salt_hex}'::bytea")
        )
        await execute(
            store, f"UPDATE contract_txs SET salt = {literal} WHERE log_index = {indices[2]}"
        )
        tampered = await replay(url, AUDITOR.secret, session)
        assert tampered.parted_at == indices[2], tampered
        assert "commitment" in tampered.reason.lower() or "salt" in tampered.reason, tampered
        assert f"PARTED at entry {indices[2]}" in tampered.render()


async def test_the_command_replays_and_exits_by_the_outcome(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    indices = await history(cloud)
    url = cloud.url("").rstrip("/")
    key = tmp_path / "auditor.key"
    key.write_text(AUDITOR.secret.hex() + "\n")
    argv = ["verify", "--replay", "--cloud", url, "--key", str(key)]
    assert await asyncio.to_thread(main, argv) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    assert await asyncio.to_thread(main, argv[:4]) == 0  # no key: the public entries
    assert "public entries only (no --key given)" in capsys.readouterr().out
    store = cloud.server.app[CONTRACTS].shared.store
    await execute(store, f"DELETE FROM contract_txs WHERE log_index = {indices[1]}")
    assert await asyncio.to_thread(main, argv) == 3
    assert f"PARTED at entry {indices[1]}" in capsys.readouterr().out
    assert await asyncio.to_thread(main, [*argv, "--once"]) == 2  # not for --replay


async def test_bodies_parsed_on_the_pool_give_the_same_verdicts(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the pool forced on (POOL_FROM 0) and pages of two bodies (fetched while the
    loop applies): the same report, and an edited body, salt or signature, or a missing
    one reported at its entry with the reason the in-line parse gives."""
    indices = await history(cloud)
    url = cloud.url("").rstrip("/")
    store = cloud.server.app[CONTRACTS].shared.store
    sqlite = store.engine.__class__.__name__ == "SqliteEngine"

    def blob(hex_: str) -> str:
        return f"X'{hex_}'" if sqlite else f"'\\x{hex_}'::bytea"

    async def both() -> tuple[str, str]:
        """The report in line, then with the pool."""
        async with aiohttp.ClientSession() as session:
            monkeypatch.setattr(replay_module, "POOL_FROM", 10**9)
            inline = (await replay(url, AUDITOR.secret, session)).render()
            monkeypatch.setattr(replay_module, "POOL_FROM", 0)
            pooled = (await replay(url, AUDITOR.secret, session)).render()
        return inline, pooled

    monkeypatch.setattr(replay_module, "PAGE", 2)
    monkeypatch.setattr(replay_module, "PARSE_CHUNK", 1)
    inline, pooled = await both()
    assert inline == pooled and inline.startswith("ok: ") and "4 transactions" in inline
    rows = "SELECT canonical, sig FROM contract_txs WHERE log_index = " + str(indices[3])
    (canonical, sig), *_ = await store.engine.read(lambda tx: tx.fetchall(rows))
    edits = [  # (the statement, then the one that undoes it)
        (f"sig = {blob('00' * 64)}", f"sig = {blob(bytes(sig).hex())}"),
        (
            f"canonical = {blob(bytes(canonical).replace(b'S1', b'S2').hex())}",
            f"canonical = {blob(bytes(canonical).hex())}",
        ),
        (f"salt = {blob('ab' * 32)}", None),
    ]
    for edit, undo in edits:
        await execute(store, f"UPDATE contract_txs SET {edit} WHERE log_index = {indices[3]}")
        inline, pooled = await both()
        assert inline == pooled and f"PARTED at entry {indices[3]}" in inline, (inline, pooled)
        if undo is not None:
            await execute(store, f"UPDATE contract_txs SET {undo} WHERE log_index = {indices[3]}")
    await execute(store, f"DELETE FROM contract_txs WHERE log_index = {indices[1]}")
    inline, pooled = await both()
    assert inline == pooled and f"PARTED at entry {indices[1]}" in inline, (inline, pooled)
