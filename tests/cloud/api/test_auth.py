"""Sign-in for reads (cloud/contracts/auth.py, cloud/services/auth.py, POST /v1/auth/*): a
challenge signed by a regulator or an admitted participant buys a bearer token naming its
did and role; a bad signature, a used or unknown challenge, an unknown did, a forged or
expired token are refused with their reason. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud.api.state import AUTH
from cloud.contracts import auth
from cloud.services.refusals import LedgerError
from device import schnorr
from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.api.test_tx import M, admit, applied
from tests.cloud.contracts.world import REGULATOR, Party, party


@pytest.fixture
async def cloud(tmp_path: Path, database: str | None) -> AsyncIterator[Cloud]:
    server, session = await start(
        settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    )
    try:
        yield Cloud(server, session)
    finally:
        await session.close()
        await server.close()


async def challenge(cloud: Cloud) -> bytes:
    status, answer = await cloud.post("/v1/auth/challenge", b"", "application/json")
    assert status == 201, answer
    return bytes.fromhex(answer["challenge"])


def signed_in(who: Party, found: bytes, did: str | None = None) -> dict[str, Any]:
    did = who.did if did is None else did
    sig = schnorr.sign(who.secret, auth.digest(found, did))
    return {"did": did, "challenge": found.hex(), "sig": sig.hex()}


async def token(cloud: Cloud, body: object) -> tuple[int, Any]:
    return await cloud.post("/v1/auth/token", json.dumps(body).encode(), "application/json")


async def sign_in(cloud: Cloud, who: Party) -> dict[str, Any]:
    status, answer = await token(cloud, signed_in(who, await challenge(cloud)))
    assert status == 201, answer
    return dict(answer)


async def test_a_participant_and_the_regulator_sign_in(cloud: Cloud) -> None:
    await applied(cloud, admit("M"))
    issued = await sign_in(cloud, M)
    assert (issued["did"], issued["role"], issued["type"]) == (M.did, "manufacturer", "Bearer")
    service = cloud.server.app[AUTH]
    named = await service.bearer(f"Bearer {issued['token']}")
    assert named == auth.Token(M.did, "manufacturer", issued["expires"])
    assert (await sign_in(cloud, REGULATOR))["role"] == "regulator"
    assert await service.bearer(None) is None  # no token: the public


async def test_sign_in_refusals(cloud: Cloud) -> None:
    await applied(cloud, admit("M"))
    found = await challenge(cloud)
    wrong = signed_in(party("stranger"), found, M.did)  # signed by another key
    status, problem = await token(cloud, wrong)
    assert (status, problem["reason"]) == (401, "sig"), problem
    assert (await token(cloud, signed_in(M, found)))[0] == 201
    status, problem = await token(cloud, signed_in(M, found))  # used once already
    assert (status, problem["reason"]) == (401, "challenge"), problem
    status, problem = await token(cloud, signed_in(M, bytes(32)))  # never issued
    assert (status, problem["reason"]) == (401, "challenge"), problem
    status, problem = await token(cloud, signed_in(party("stranger"), await challenge(cloud)))
    assert (status, problem["reason"]) == (403, "participant"), problem
    for body, reason in [
        ([], "request"),
        ({"did": M.did, "challenge": "zz", "sig": "00" * 64}, "challenge"),
        ({"did": "did:key:zNope", "challenge": "00" * 32, "sig": "00" * 64}, "did"),
        ({"did": M.did, "challenge": "00" * 32, "sig": "00"}, "sig"),
    ]:
        status, problem = await token(cloud, body)
        assert (status, problem["reason"]) == (400, reason), (body, problem)


async def test_tokens_expire_and_cannot_be_forged(cloud: Cloud) -> None:
    await applied(cloud, admit("M"))
    issued = await sign_in(cloud, M)
    service = cloud.server.app[AUTH]
    text = issued["token"]
    late = issued["expires"] + 1
    for header, now in [
        (f"Bearer {text}", late),  # expired
        (f"Bearer {text[:-2]}AA", None),  # the MAC changed
        (f"Bearer {auth.issue(bytes(32), auth.Token(M.did, 'regulator', late))}", None),
        (f"Basic {text}", None),
        ("Bearer x", None),
    ]:
        with pytest.raises(LedgerError) as err:
            await service.bearer(header, now)
        assert (err.value.status, err.value.reason) == (401, "token"), header
