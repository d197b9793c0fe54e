"""The contracts' regulators and replay grants on the log (0x06, gateway/config_entry.py):
`serve --regulator` writes the bootstrap once, the ContractService takes its regulators from
the log (a differing setting is logged, the log wins), and grants and regulator changes go
through POST /v1/config signed by a current regulator, checked under the store's lock. On
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import aiohttp
import pytest

from cloud.api.state import CONFIG, CONTRACTS
from cloud.audit.replay import replay
from cloud.contracts import didkey, tx
from device import schnorr
from gateway import config_entry
from tests.cloud.api.test_app import OWNER, Cloud, settings, start

REGULATOR = bytes(31) + b"\x81"
NEXT = bytes(31) + b"\x82"
READER = schnorr.pubkey(bytes(31) + b"\x83")


async def change(
    cloud: Cloud, signer: bytes, change: config_entry.ConfigChange
) -> tuple[int, dict]:
    request = config_entry.sign_request(signer, change)
    return await cloud.post("/v1/config", json.dumps(request).encode(), "application/json")


def grant(op: str) -> config_entry.ConfigChange:
    return config_entry.ConfigChange(op, int(time.time()), key=READER, contracts=("lots",))


async def test_regulators_are_bootstrapped_then_the_log_wins(
    tmp_path: Path, database: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    config = settings(tmp_path / "cloud", database, regulators=(schnorr.pubkey(REGULATOR),))
    server, session = await start(config)
    cloud = Cloud(server, session)
    try:
        _, listed = await cloud.get("/v1/registry/entries")
        owners, boot = (bytes.fromhex(e["entry"]) for e in listed["entries"])
        config_entry.check_pinned(owners, [schnorr.pubkey(OWNER)])
        assert (
            boot
            == bytes([0x06])
            + bytes(96)
            + config_entry.ConfigChange(
                config_entry.REGULATOR,
                json.loads(boot[97:])["time"],
                owners=(schnorr.pubkey(REGULATOR),),
            ).canonical()
        )
        assert server.app[CONTRACTS].state.regulators == {schnorr.pubkey(REGULATOR)}

        # An owner is no regulator: neither an owner nor a stranger grants; nothing logged.
        size = await server.app[CONTRACTS].shared.store.log_size()
        for signer in (OWNER, NEXT):
            status, problem = await change(cloud, signer, grant(config_entry.GRANT_ADD))
            assert (status, problem["reason"]) == (403, "unknown regulator"), problem
        assert await server.app[CONTRACTS].shared.store.log_size() == size

        status, added = await change(cloud, REGULATOR, grant(config_entry.GRANT_ADD))
        assert status == 201 and added["log_index"] == size, added
        handover = config_entry.ConfigChange(
            config_entry.REGULATOR, int(time.time()), owners=(schnorr.pubkey(NEXT),)
        )
        assert (await change(cloud, REGULATOR, handover))[0] == 201
        status, problem = await change(cloud, REGULATOR, grant(config_entry.GRANT_REMOVE))
        assert (status, problem["reason"]) == (403, "unknown regulator"), problem
        end = await server.app[CONTRACTS].shared.store.log_size()
        now = await server.app[CONFIG].authority(end)
        assert now.regulators == {schnorr.pubkey(NEXT)} and now.may_replay(READER, "lots")
    finally:
        await session.close()
        await server.close()

    # Restarted with the old --regulator: no second bootstrap, the log's regulator rules.
    with caplog.at_level(logging.WARNING, "pharmasync.cloud.ledger.config"):
        server, session = await start(config)
    try:
        assert server.app[CONTRACTS].state.regulators == {schnorr.pubkey(NEXT)}
        assert await server.app[CONTRACTS].shared.store.log_size() == end
        assert any("the log wins" in r.getMessage() for r in caplog.records)
    finally:
        await session.close()
        await server.close()


async def test_a_handover_takes_effect_at_its_log_position(
    tmp_path: Path, database: str | None
) -> None:
    # Each transaction is judged under the regulators of its own log position: after a
    # handover the old regulator is refused and the new one admits, live, after a restart
    # (the same root) and in an auditor's replay (every root matches).
    config = settings(tmp_path / "cloud", database, regulators=(schnorr.pubkey(REGULATOR),))
    successor = bytes(31) + b"\x84"

    def admit(signer: bytes, who: bytes, name: str) -> bytes:
        args = {
            "did": didkey.from_secret(who),
            "role": "manufacturer",
            "name": name,
            "region": "DE",
            "licence": {"number": "MIA-1", "issuer": "BfArM"},
        }
        return tx.make("participants", "admit", args, signer).to_wire()

    server, session = await start(config)
    cloud = Cloud(server, session)
    try:
        status, _ = await cloud.post("/v1/tx", admit(REGULATOR, NEXT, "A"), "application/json")
        assert status == 201
        handover = config_entry.ConfigChange(
            config_entry.REGULATOR, int(time.time()), owners=(schnorr.pubkey(successor),)
        )
        assert (await change(cloud, REGULATOR, handover))[0] == 201
        status, problem = await cloud.post(
            "/v1/tx", admit(REGULATOR, bytes(31) + b"\x85", "B"), "application/json"
        )
        assert (status, problem["reason"]) == (403, "participant"), problem
        status, _ = await cloud.post(
            "/v1/tx", admit(successor, bytes(31) + b"\x86", "C"), "application/json"
        )
        assert status == 201
        assert server.app[CONTRACTS].state.regulators == {schnorr.pubkey(successor)}
        both = config_entry.ConfigChange(
            config_entry.GRANT_ADD, int(time.time()), key=READER, contracts=("lots", "participants")
        )
        assert (await change(cloud, successor, both))[0] == 201
        root = (await cloud.get("/v1/state"))[1]["root"]
        url = cloud.url("").rstrip("/")
        async with aiohttp.ClientSession() as http:
            report = await replay(url, bytes(31) + b"\x83", http)  # READER holds the grant
        assert (report.parted_at, report.replayed) == (None, 2), report.render()
    finally:
        await session.close()
        await server.close()
    server, session = await start(config)  # a restart replays both sides of the handover
    try:
        assert server.app[CONTRACTS].state.regulators == {schnorr.pubkey(successor)}
        assert (await Cloud(server, session).get("/v1/state"))[1]["root"] == root
    finally:
        await session.close()
        await server.close()
