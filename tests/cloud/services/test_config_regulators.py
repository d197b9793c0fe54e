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

import pytest

from cloud.api.state import CONFIG, CONTRACTS
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


async def test_no_regulator_handover_once_transactions_exist(
    tmp_path: Path, database: str | None
) -> None:
    # The engine replays every stored transaction under the log's current regulators, so a
    # handover after a regulator-signed transaction would break the next start: refused, 409,
    # under the store's lock, and nothing is logged. Grants stay possible.
    config = settings(tmp_path / "cloud", database, regulators=(schnorr.pubkey(REGULATOR),))
    server, session = await start(config)
    cloud = Cloud(server, session)
    try:
        admit = tx.make(
            "participants",
            "admit",
            {
                "did": didkey.from_secret(NEXT),
                "role": "manufacturer",
                "name": "Acme Pharma",
                "region": "DE",
                "licence": {"number": "MIA-1", "issuer": "BfArM"},
            },
            REGULATOR,
        )
        status, applied = await cloud.post("/v1/tx", admit.to_wire(), "application/json")
        assert status == 201, applied
        size = await server.app[CONTRACTS].shared.store.log_size()
        handover = config_entry.ConfigChange(
            config_entry.REGULATOR, int(time.time()), owners=(READER,)
        )
        status, problem = await change(cloud, REGULATOR, handover)
        assert (status, problem["reason"]) == (409, "regulator handover"), problem
        assert await server.app[CONTRACTS].shared.store.log_size() == size
        assert (await change(cloud, REGULATOR, grant(config_entry.GRANT_ADD)))[0] == 201
    finally:
        await session.close()
        await server.close()
    server, session = await start(config)  # and the ledger still starts, same regulator
    try:
        assert server.app[CONTRACTS].state.regulators == {schnorr.pubkey(REGULATOR)}
    finally:
        await session.close()
        await server.close()
