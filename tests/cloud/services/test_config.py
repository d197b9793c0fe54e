"""Owners on the log (configuration entries 0x06, cloud/api/routes/config.py and the stores'
authority check): `serve --owner` writes the bootstrap once, owners change only through
signed requests, a removed owner's registry change is refused, replays are refused
atomically, and a gateway can page through the registry and configuration entries. On
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from pathlib import Path

import pytest

from cloud.cli import main
from cloud.log import tlog
from cloud.storage.store import Store
from device import schnorr
from gateway import config_entry
from gateway import registry_change as registry
from tests.cloud.api.test_app import OWNER, Cloud, settings, start
from tests.cloud.storage.test_store import execute

SECOND = bytes(31) + b"\x72"  # a second owner's secret
STRANGER = bytes(31) + b"\x73"
COPIES = 16


def box(n: int) -> registry.Change:
    return registry.BoxRegistration(bytes(31) + bytes([n]), int(time.time()), site="w1", label="")


async def owner_change(cloud: Cloud, op: str, key: bytes, signer: bytes) -> tuple[int, dict]:
    request = config_entry.sign_request(
        signer, config_entry.ConfigChange(op, int(time.time()), key=key)
    )
    return await cloud.post("/v1/config", json.dumps(request).encode(), "application/json")


async def test_owners_are_bootstrapped_changed_by_owners_and_checked_on_registry_changes(
    tmp_path: Path, database: str | None
) -> None:
    server, session = await start(settings(tmp_path / "cloud", database))
    cloud = Cloud(server, session)
    try:
        _, listed = await cloud.get("/v1/registry/entries")
        (boot,) = listed["entries"]
        assert boot["index"] == 0
        entry = bytes.fromhex(boot["entry"])
        config_entry.check_pinned(entry, [schnorr.pubkey(OWNER)])  # the serve --owner keys
        assert (await cloud.get("/v1/config/owners"))[1] == {
            "owners": [schnorr.pubkey(OWNER).hex()]
        }

        # A stranger can neither add itself nor register; nothing is logged for either.
        status, problem = await owner_change(cloud, "owner-add", schnorr.pubkey(STRANGER), STRANGER)
        assert (status, problem["reason"]) == (403, "unknown owner"), problem
        status, problem = await cloud.change(box(1), STRANGER)
        assert (status, problem["reason"]) == (403, "unknown owner"), problem

        # The owner adds a second owner, who registers a box, then removes the first one.
        status, added = await owner_change(cloud, "owner-add", schnorr.pubkey(SECOND), OWNER)
        assert status == 201 and added["log_index"] == 1, added
        assert (await cloud.change(box(2), SECOND))[0] == 201
        status, removed = await owner_change(cloud, "owner-remove", schnorr.pubkey(OWNER), SECOND)
        assert status == 201, removed
        # The removed owner's registry change is refused with the reason; so is removing the
        # last owner, and adding one twice.
        status, problem = await cloud.change(box(3), OWNER)
        assert (status, problem["reason"]) == (403, "unknown owner"), problem
        assert schnorr.pubkey(OWNER).hex() in problem["detail"]
        status, problem = await owner_change(cloud, "owner-remove", schnorr.pubkey(SECOND), SECOND)
        assert (status, problem["reason"]) == (409, "last owner"), problem
        status, problem = await owner_change(cloud, "owner-add", schnorr.pubkey(SECOND), SECOND)
        assert (status, problem["reason"]) == (409, "owner exists"), problem
        assert (await cloud.get("/v1/config/owners"))[1] == {
            "owners": [schnorr.pubkey(SECOND).hex()]
        }

        # The log holds exactly: bootstrap, add, box, remove; paged after an index.
        _, page = await cloud.get("/v1/registry/entries", after=1)
        kinds = [
            (e["index"], tlog.parse_entry(bytes.fromhex(e["entry"]))[0]) for e in page["entries"]
        ]
        assert kinds == [(2, "registry"), (3, "config")]
        _, everything = await cloud.get("/v1/log/entries", start=0)
        assert len(everything["entries"]) == 4
        owners: frozenset[bytes] = frozenset()
        for hex_entry in everything["entries"]:  # the log alone says who the owners are
            owners = config_entry.next_owners(owners, bytes.fromhex(hex_entry))
        assert owners == {schnorr.pubkey(SECOND)}
        status, problem = await cloud.get("/v1/registry/entries", after=-1)
        assert (status, problem["reason"]) == (400, "after")
    finally:
        await session.close()
        await server.close()


async def test_copies_of_one_owner_change_are_applied_once(
    tmp_path: Path, database: str | None
) -> None:
    server, session = await start(settings(tmp_path / "cloud", database))
    cloud = Cloud(server, session)
    try:
        request = config_entry.sign_request(
            OWNER,
            config_entry.ConfigChange("owner-add", int(time.time()), key=schnorr.pubkey(SECOND)),
        )
        data = json.dumps(request).encode()
        answers = await asyncio.gather(
            *(cloud.post("/v1/config", data, "application/json") for _ in range(COPIES))
        )
        assert sorted(status for status, _ in answers) == [201] + [409] * (COPIES - 1)
        assert {a["reason"] for status, a in answers if status == 409} == {"replayed"}
        _, listed = await cloud.get("/v1/registry/entries")
        assert [e["index"] for e in listed["entries"]] == [0, 1]
    finally:
        await session.close()
        await server.close()


async def test_a_restart_with_other_owner_flags_keeps_the_logs_owners(
    tmp_path: Path, database: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    server, session = await start(settings(tmp_path / "cloud", database))
    await session.close()
    await server.close()
    # The operator now passes another key: the log wins, and the start says so.
    config = settings(tmp_path / "cloud", database)
    config = dataclasses.replace(config, owners=(schnorr.pubkey(STRANGER),))
    with caplog.at_level(logging.WARNING, "pharmasync.cloud.ledger"):
        server, session = await start(config)
    cloud = Cloud(server, session)
    try:
        assert any("the log wins" in r.getMessage() for r in caplog.records)
        assert (await cloud.get("/v1/config/owners"))[1] == {
            "owners": [schnorr.pubkey(OWNER).hex()]
        }
        status, problem = await cloud.change(box(4), STRANGER)
        assert (status, problem["reason"]) == (403, "unknown owner")
        assert (await cloud.change(box(4), OWNER))[0] == 201
        _, listed = await cloud.get("/v1/registry/entries")
        assert [e["index"] for e in listed["entries"]] == [0, 1]  # one bootstrap only
    finally:
        await session.close()
        await server.close()


async def test_the_owners_command_signs_and_sends_a_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, session = await start(settings(tmp_path / "cloud"))
    key = tmp_path / "owner.key"
    key.write_text(OWNER.hex() + "\n")
    base = ["cloud", "owners", "--cloud", str(server.make_url("")), "--owner-key", str(key)]
    try:
        second = schnorr.pubkey(SECOND).hex()
        assert await asyncio.to_thread(main, [*base, "add", second]) == 0
        assert f"owner {second} added" in capsys.readouterr().out
        assert await asyncio.to_thread(main, [*base, "add", second]) == 1
        assert "error: HTTP 409: owner exists" in capsys.readouterr().err
        assert await asyncio.to_thread(main, [*base, "remove", second]) == 0
    finally:
        await session.close()
        await server.close()


async def test_the_owner_set_is_a_cache_of_the_log_rebuilt_at_start(store: Store) -> None:
    now = int(time.time())
    await store.append_config(config_entry.bootstrap_entry([schnorr.pubkey(OWNER)], now))
    add = config_entry.sign_request(
        OWNER, config_entry.ConfigChange("owner-add", now, key=schnorr.pubkey(SECOND))
    )
    await store.append_config(config_entry.open_request(add, now)[1])
    both = {schnorr.pubkey(OWNER), schnorr.pubkey(SECOND)}
    assert await store.owners() == both
    await execute(store, "DELETE FROM owners")  # behind the ledger's back
    assert await store.owners() == frozenset()
    assert await store.rebuild_owners() == both  # what `cloud serve` does at start
    assert await store.owners() == both
