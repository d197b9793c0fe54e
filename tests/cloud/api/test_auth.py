"""Sign-in for reads (cloud/contracts/auth.py, cloud/services/auth.py, POST /v1/auth/*): a
challenge signed by a regulator or an admitted participant buys a bearer token naming its
did and role; a bad signature, a used or unknown challenge, an unknown did, a forged or
expired token are refused with their reason. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from cloud.api.state import AUTH
from cloud.contracts import auth, tx
from cloud.services.refusals import LedgerError
from device import schnorr
from gateway import config_entry
from tests.cloud.api.test_app import Cloud
from tests.cloud.api.test_tx import M, admit, applied, commission
from tests.cloud.contracts.world import REGULATOR, Party, party


@pytest.fixture
def cloud(regulated: Cloud) -> Cloud:
    """The regulated cloud (tests/cloud/conftest.py), by the name these tests use."""
    return regulated


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


async def grant_change(cloud: Cloud, op: str, who: Party, contracts: tuple[str, ...]) -> None:
    change = config_entry.ConfigChange(op, int(time.time()), key=who.xonly, contracts=contracts)
    request = config_entry.sign_request(REGULATOR.secret, change)
    status, answer = await cloud.post(
        "/v1/config", json.dumps(request).encode(), "application/json"
    )
    assert status == 201, answer


async def test_bodies_go_only_to_a_replay_grant(cloud: Cloud) -> None:
    admitted = await applied(cloud, admit("M"))
    await applied(cloud, commission("L1", 10))
    async with cloud.session.get(cloud.url("/v1/tx")) as r:  # no token
        assert r.status == 401 and (await r.json(content_type=None))["reason"] == "token"
    headers = {"Authorization": f"Bearer {(await sign_in(cloud, REGULATOR))['token']}"}
    async with cloud.session.get(cloud.url("/v1/tx"), headers=headers) as r:  # no grant
        assert r.status == 403 and (await r.json(content_type=None))["reason"] == "grant"

    await grant_change(cloud, config_entry.GRANT_ADD, REGULATOR, ("participants",))
    async with cloud.session.get(cloud.url("/v1/tx"), headers=headers) as r:  # lots: no
        problem = await r.json(content_type=None)
        assert (r.status, problem["reason"]) == (403, "grant") and "'lots'" in problem["detail"]
    async with cloud.session.get(cloud.url("/v1/tx"), params={"limit": "1"}, headers=headers) as r:
        page = await r.json(content_type=None)
        assert r.status == 200, page
    (first,) = page["transactions"]
    assert first["index"] == admitted["index"] == page["next"]
    signed = tx.from_record(first["canonical"].encode(), bytes.fromhex(first["sig"]))
    assert signed.id == admitted["id"]

    await grant_change(cloud, config_entry.GRANT_ADD, REGULATOR, ("lots",))
    params = {"after": str(page["next"])}
    async with cloud.session.get(cloud.url("/v1/tx"), params=params, headers=headers) as r:
        page = await r.json(content_type=None)
        assert r.status == 200 and len(page["transactions"]) == 1, page
    for params in ({"after": "-2"}, {"limit": "0"}, {"limit": "1001"}, {"after": "x"}):
        async with cloud.session.get(cloud.url("/v1/tx"), params=params, headers=headers) as r:
            assert r.status == 400, params
