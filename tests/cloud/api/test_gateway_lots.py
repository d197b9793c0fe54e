"""GET /v1/gateways/{key}/lots (cloud/services/gateway_lots.py) over real HTTP on SQLite and
PostgreSQL: a registered gateway, signing over a sign-in challenge (gateway/gateway_auth.py),
learns which lots its site's boxes are on with their storage profiles; a forged, stale,
replayed or unsigned read, an unregistered gateway and a signature for another gateway's
path are refused with their reason and counted; another site's boxes are never shown.

The participants, lots and attachments are made through POST /v1/tx: the registry's boxes
reach the contract State (box key -> the owner key that registered it), and M controls that
owner key (its admission's owner_keys)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud.api.state import CONTRACTS, REFUSALS
from cloud.contracts import tx
from device import schnorr
from gateway import gateway_auth
from gateway import registry_change as registry
from tests.cloud.api.test_app import OWNER, Cloud, settings, start
from tests.cloud.api.test_auth import challenge
from tests.cloud.api.test_tx import M, applied, commission, signed
from tests.cloud.contracts.world import GTIN, PROFILE, REGULATOR, admission

GW_A = bytes(31) + b"\xa1"  # site w1
GW_B = bytes(31) + b"\xa2"  # site w2
STRANGER = bytes(31) + b"\xa3"  # never registered
BOX1 = bytes(31) + b"\xb1"  # w1, on lots L1 and L2
BOX2 = bytes(31) + b"\xb2"  # w1, on no lot
BOX3 = bytes(31) + b"\xb3"  # w2, on L1
STRICT = PROFILE | {"low_cc": 300, "high_cc": 500, "hysteresis_cc": 20, "max_gap_s": 900}


def key(secret: bytes) -> bytes:
    return schnorr.pubkey(secret)


async def attach(cloud: Cloud, box: bytes, lot: str) -> int:
    """Attach `box` to lot `lot`'s storage at M, from the transaction's own time; return it."""
    now = int(time.time() * 1000)
    args = {"box": key(box).hex(), "gtin": GTIN, "lot": lot, "start": now, "end": None}
    await applied(cloud, tx.make("lots", "attach", args, M.secret, time_ms=now))
    return now


@pytest.fixture
async def cloud(tmp_path: Path, database: str | None) -> AsyncIterator[Cloud]:
    server, session = await start(
        settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    )
    c = Cloud(server, session)
    now = int(time.time())
    try:
        for gw, site in ((GW_A, "w1"), (GW_B, "w2")):
            status, _ = await c.change(registry.GatewayRegistration(key(gw), now, site=site))
            assert status == 201
        for box, site in ((BOX1, "w1"), (BOX2, "w1"), (BOX3, "w2")):
            change = registry.BoxRegistration(key(box), now, site=site, label=box.hex()[-2:])
            assert (await c.change(change))[0] == 201
        # The registry's owner key registered the boxes: M controls it.
        owns = {**admission(M, "manufacturer", "M"), "owner_keys": [key(OWNER).hex()]}
        await applied(c, tx.make("participants", "admit", owns, REGULATOR.secret))
        await applied(c, commission("L1", 100))
        args = {"gtin": GTIN, "lot": "L2", "expiry": "271200", "quantity": 5, "unit": "pack"}
        await applied(c, signed(M, "lots", "commission", {**args, "profile": STRICT}))
        yield c
    finally:
        await session.close()
        await server.close()


def path(gateway: bytes) -> str:
    return f"/v1/gateways/{key(gateway).hex()}/lots"


async def read(cloud: Cloud, url_path: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with cloud.session.get(cloud.url(url_path), headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def signed_read(cloud: Cloud, gateway: bytes) -> tuple[int, Any]:
    found = await challenge(cloud)
    return await read(
        cloud, path(gateway), gateway_auth.headers(gateway, found, "GET", path(gateway))
    )


async def test_a_gateway_learns_the_lots_of_its_own_sites_boxes(cloud: Cloud) -> None:
    status, answer = await signed_read(cloud, GW_A)
    assert status == 200, answer
    assert answer["boxes"] == []  # no box on a lot yet
    started1 = await attach(cloud, BOX1, "L1")
    started2 = await attach(cloud, BOX1, "L2")
    await attach(cloud, BOX3, "L1")
    status, answer = await signed_read(cloud, GW_A)
    assert status == 200, answer
    assert answer["gateway"] == key(GW_A).hex() and answer["site"] == "w1"
    assert abs(answer["time"] - time.time() * 1000) < 60_000
    assert answer["boxes"] == [
        {
            "box": key(BOX1).hex(),
            "lots": [
                {"gtin": GTIN, "lot": "L1", "start": started1, "end": None, "profile": PROFILE},
                {"gtin": GTIN, "lot": "L2", "start": started2, "end": None, "profile": STRICT},
            ],
        }
    ]  # BOX2 is on no lot; BOX3 is w2's
    status, answer = await signed_read(cloud, GW_B)
    assert status == 200, answer
    assert [b["box"] for b in answer["boxes"]] == [key(BOX3).hex()]
    assert [lot["lot"] for lot in answer["boxes"][0]["lots"]] == ["L1"]
    # Nothing of holders, quantities, shipments or legs in the answer.
    text = str(answer)
    assert M.did not in text and "storage:" not in text and "quantity" not in text


async def test_forged_stale_replayed_and_unsigned_reads_are_refused_and_counted(
    cloud: Cloud,
) -> None:
    counts = cloud.server.app[REFUSALS].counts
    before = dict(counts)
    # Forged: signed by another key over this gateway's path.
    found = await challenge(cloud)
    forged = gateway_auth.headers(STRANGER, found, "GET", path(GW_A))
    status, answer = await read(cloud, path(GW_A), forged)
    assert (status, answer["reason"]) == (401, "signature"), answer
    # A signature of gateway B's read does not open gateway A's, nor another route's.
    found = await challenge(cloud)
    status, answer = await read(
        cloud, path(GW_A), gateway_auth.headers(GW_B, found, "GET", path(GW_B))
    )
    assert (status, answer["reason"]) == (401, "signature"), answer
    other = f"/v1/gateways/{key(GW_A).hex()}/alarm-acks"
    status, answer = await read(cloud, path(GW_A), gateway_auth.headers(GW_A, found, "GET", other))
    assert (status, answer["reason"]) == (401, "signature"), answer
    # Replayed: a challenge works once.
    found = await challenge(cloud)
    good = gateway_auth.headers(GW_A, found, "GET", path(GW_A))
    assert (await read(cloud, path(GW_A), good))[0] == 200
    status, answer = await read(cloud, path(GW_A), good)
    assert (status, answer["reason"]) == (401, "challenge"), answer
    # Stale: a challenge past its 60 s, and one the cloud never handed out.
    store = cloud.server.app[CONTRACTS].shared.store
    now = int(time.time())
    stale = bytes(range(32))
    await store.add_challenge(stale, now - 1, now - 61)
    status, answer = await read(
        cloud, path(GW_A), gateway_auth.headers(GW_A, stale, "GET", path(GW_A))
    )
    assert (status, answer["reason"]) == (401, "challenge"), answer
    unknown = bytes(32)
    status, answer = await read(
        cloud, path(GW_A), gateway_auth.headers(GW_A, unknown, "GET", path(GW_A))
    )
    assert (status, answer["reason"]) == (401, "challenge"), answer
    # Unregistered: a good signature by a key that is no gateway.
    status, answer = await signed_read(cloud, STRANGER)
    assert (status, answer["reason"]) == (403, "gateway"), answer
    # Unsigned and malformed.
    status, answer = await read(cloud, path(GW_A), {})
    assert (status, answer["reason"]) == (401, "auth"), answer
    bad = {gateway_auth.CHALLENGE_HEADER: "zz", gateway_auth.SIGNATURE_HEADER: "00" * 64}
    status, answer = await read(cloud, path(GW_A), bad)
    assert (status, answer["reason"]) == (400, "challenge"), answer
    bad = {gateway_auth.CHALLENGE_HEADER: "00" * 32, gateway_auth.SIGNATURE_HEADER: "00" * 63}
    status, answer = await read(cloud, path(GW_A), bad)
    assert (status, answer["reason"]) == (400, "signature"), answer
    status, answer = await read(cloud, "/v1/gateways/abc/lots", good)
    assert (status, answer["reason"]) == (400, "gateway"), answer
    counted = {k: counts.get(k, 0) - before.get(k, 0) for k in counts}
    assert counted == counted | {"signature": 4, "challenge": 4, "gateway": 2, "auth": 1}
