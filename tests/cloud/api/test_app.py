"""The ledger's HTTP API, served for real on a local port: signed registry changes, batch
ingest with every refusal over HTTP, the log's endpoints, proof bundles that verify, the
problem+json error shape, limits, metrics, and a restart that continues the same log."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cloud.api.app import make_app
from cloud.log import tlog
from cloud.services import batches as batch_service
from cloud.settings import CloudSettings
from device import reading, schnorr
from gateway import batch, merkle
from gateway import registry_change as registry
from gateway.checkpoint import open_checkpoint
from gateway.note import Verifier
from tests.cloud.services.test_ingest import BOX, GW, REASONS, body, readings, refusals

OWNER = bytes(31) + b"\x71"
INTRUDER = bytes(31) + b"\x72"


class Cloud:
    """A running cloud app and an HTTP client for it."""

    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.session.get(self.url(path), params=params) as r:
            if r.content_type.endswith("json"):
                return r.status, await r.json(content_type=None)
            return r.status, await r.read()

    async def post(self, path: str, data: bytes, ctype: str) -> tuple[int, Any]:
        async with self.session.post(
            self.url(path), data=data, headers={"Content-Type": ctype}
        ) as r:
            return r.status, await r.json(content_type=None)

    async def upload(self, data: bytes) -> tuple[int, Any]:
        return await self.post("/v1/batches", data, "application/octet-stream")

    async def change(self, change: registry.Change, secret: bytes = OWNER) -> tuple[int, Any]:
        request = registry.sign_request(secret, change)
        return await self.post("/v1/registry", json.dumps(request).encode(), "application/json")


def settings(data_dir: Path, database: str | None = None, **extra: Any) -> CloudSettings:
    return CloudSettings(
        data_dir=data_dir, database=database, owners=(schnorr.pubkey(OWNER),), **extra
    )


async def start(config: CloudSettings) -> tuple[TestServer, aiohttp.ClientSession]:
    server = TestServer(make_app(config), host="127.0.0.1")
    await server.start_server()
    return server, aiohttp.ClientSession()


@pytest.fixture
async def cloud(tmp_path: Path, database: str | None) -> AsyncIterator[Cloud]:
    server, session = await start(settings(tmp_path / "cloud", database))
    c = Cloud(server, session)
    now = int(time.time())
    assert (await c.change(registry.GatewayRegistration(schnorr.pubkey(GW), now, site="w1")))[
        0
    ] == 201
    box = registry.BoxRegistration(schnorr.pubkey(BOX), now, site="w1", label="fridge")
    assert (await c.change(box))[0] == 201
    try:
        yield c
    finally:
        await session.close()
        await server.close()


def chain(n_batches: int, per: int) -> list[tuple[batch.BatchHeader, list[bytes]]]:
    out: list[tuple[batch.BatchHeader, list[bytes]]] = []
    prev = batch.GENESIS_PREV
    for i in range(n_batches):
        w = readings(BOX, range(i * per, (i + 1) * per))
        header = batch.seal(GW, i, prev, w)
        out.append((header, w))
        prev = header.hash()
    return out


async def test_batches_get_receipts_and_a_resend_gets_the_original(cloud: Cloud) -> None:
    _, vkey = await cloud.get("/v1/log/vkey")
    verifier = Verifier.parse(vkey.decode().strip())
    receipts = []
    batches = chain(3, 10)
    for header, w in batches:
        status, receipt = await cloud.upload(body(header, w))
        assert status == 201, receipt
        assert receipt["seq"] == header.seq and receipt["header_hash"] == header.hash().hex()
        cp = open_checkpoint(receipt["checkpoint"], verifier)
        assert cp.size > receipt["log_index"]  # the checkpoint includes the batch
        receipts.append(receipt)
    # after the owners' bootstrap and the 2 registry entries
    assert [r["log_index"] for r in receipts] == [3, 4, 5]
    header, w = batches[0]
    status, again = await cloud.upload(body(header, w))
    assert status == 200 and again == receipts[0]  # the original receipt, byte for byte
    assert open_checkpoint(again["checkpoint"], verifier).size == again["log_index"] + 1
    status, devices = await cloud.get("/v1/devices")
    assert devices == [
        {"key": schnorr.pubkey(BOX).hex(), "site": "w1", "label": "fridge", "last_seq": 29}
    ]


@pytest.mark.parametrize("reason", REASONS)
async def test_each_refusal_is_a_problem_with_its_reason_and_stores_nothing(
    cloud: Cloud, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_service, "CHAIN_WAIT_S", 0.3)  # "chain": no predecessor comes
    data, want_status = refusals(None)[reason]
    status, problem = await cloud.upload(data)
    assert (status, problem["reason"]) == (want_status, reason)
    assert set(problem) >= {"type", "title", "status", "detail", "reason"}
    _, entries = await cloud.get("/v1/log/entries", start=0)
    assert len(entries["entries"]) == 3  # the owners' bootstrap and registry changes only
    _, metrics = await cloud.get("/metrics")
    assert f'pharmasync_refused_total{{reason="{reason}"}} 1.0' in metrics.decode()


async def test_a_proof_bundle_verifies_by_hand(cloud: Cloud) -> None:
    batches = chain(2, 7)
    for header, w in batches:
        assert (await cloud.upload(body(header, w)))[0] == 201
    status, b = await cloud.get(f"/v1/readings/{schnorr.pubkey(BOX).hex()}/9/proof")
    assert status == 200
    wire = bytes.fromhex(b["reading"])
    assert wire == batches[1][1][2] and reading.decode(wire).seq == 9
    header = batch.decode(bytes.fromhex(b["batch"]["header"]))
    assert header.verify_signature() and b["batch"]["size"] == header.count == 7
    merkle.verify_inclusion(
        wire,
        b["batch"]["index"],
        b["batch"]["size"],
        [bytes.fromhex(h) for h in b["batch"]["proof"]],
        header.merkle_root,
    )
    entry = bytes.fromhex(b["log"]["entry"])
    assert tlog.parse_entry(entry) == ("batch", header.encode())
    cp = open_checkpoint(b["checkpoint"], Verifier.parse(b["log_vkey"]))
    assert cp.size == b["log"]["size"] == 5
    merkle.verify_inclusion(
        entry,
        b["log"]["index"],
        cp.size,
        [bytes.fromhex(h) for h in b["log"]["proof"]],
        cp.root_hash,
    )
    status, problem = await cloud.get(f"/v1/readings/{schnorr.pubkey(BOX).hex()}/99/proof")
    assert (status, problem["reason"]) == (404, "not found")
    status, problem = await cloud.get("/v1/readings/abcd/1/proof")
    assert (status, problem["reason"]) == (400, "device")


async def test_log_endpoints_serve_entries_and_proofs(cloud: Cloud) -> None:
    batches = chain(5, 3)
    for header, w in batches:
        assert (await cloud.upload(body(header, w)))[0] == 201
    _, page = await cloud.get("/v1/log/entries", start=0, end=100)
    entries = [bytes.fromhex(e) for e in page["entries"]]
    assert len(entries) == 8 and [e[0] for e in entries] == [6, 2, 2, 1, 1, 1, 1, 1]
    tree = merkle.MerkleTree(entries)
    _, text = await cloud.get("/v1/checkpoint")
    assert f"\n8\n{base64.b64encode(tree.root()).decode()}\n" in text.decode()
    _, inc = await cloud.get("/v1/log/proof/inclusion", index=4, size=7)
    assert inc["proof"] == [h.hex() for h in tree.inclusion_proof(4, 7)]
    assert inc["leaf_hash"] == tlog.entry_leaf(entries[4]).hex()
    _, by_hash = await cloud.get("/v1/log/proof/inclusion", hash=inc["leaf_hash"])
    assert by_hash["index"] == 4 and by_hash["size"] == 8
    _, cons = await cloud.get("/v1/log/proof/consistency", old=3, new=8)
    assert cons["proof"] == [h.hex() for h in tree.consistency_proof(3, 8)]
    status, raw = await cloud.get("/v1/log/entries/4/readings")
    assert status == 200 and raw == b"".join(batches[1][1])
    for path, params, reason in [
        ("/v1/log/proof/inclusion", {"index": 8}, "index"),
        ("/v1/log/proof/inclusion", {"index": 0, "size": 9}, "size"),
        ("/v1/log/proof/inclusion", {"index": "x"}, "index"),
        ("/v1/log/proof/consistency", {"old": 9}, "old"),
        ("/v1/log/entries", {"start": 8}, "range"),
        ("/v1/log/entries/0/readings", {}, "not a batch"),
    ]:
        status, problem = await cloud.get(path, **params)
        assert problem["reason"] == reason, (path, params, problem)
        assert status in (400, 404)


async def test_registry_refuses_strangers_forgeries_replays_and_stale_requests(
    cloud: Cloud,
) -> None:
    now = int(time.time())
    change = registry.BoxRegistration(bytes(31) + b"\x09", now, site="w2", label="new")
    status, problem = await cloud.change(change, secret=INTRUDER)
    assert (status, problem["reason"]) == (403, "unknown owner")
    forged = registry.sign_request(OWNER, change)
    forged["change"]["site"] = "elsewhere"
    status, problem = await cloud.post(
        "/v1/registry", json.dumps(forged).encode(), "application/json"
    )
    assert (status, problem["reason"]) == (403, "signature")
    signed = json.dumps(registry.sign_request(OWNER, change)).encode()
    assert (await cloud.post("/v1/registry", signed, "application/json"))[0] == 201
    status, problem = await cloud.post("/v1/registry", signed, "application/json")  # captured
    assert (status, problem["reason"]) == (409, "replayed")
    stale = registry.BoxRegistration(bytes(31) + b"\x0a", now - 3600, site="w2", label="")
    assert (await cloud.change(stale))[1]["reason"] == "time"
    attach = registry.Attachment(
        schnorr.pubkey(BOX), now, subject="LOT-42", start=now - 60, end=None
    )
    assert (await cloud.change(attach))[0] == 201
    _, attached = await cloud.get(f"/v1/devices/{schnorr.pubkey(BOX).hex()}/attachments")
    assert attached == [{"subject": "LOT-42", "start": now - 60, "end": None}]
    unknown = registry.Attachment(bytes(32), now, subject="LOT-1", start=now, end=None)
    assert (await cloud.change(unknown))[:1] == (404,)
    status, problem = await cloud.post("/v1/registry", b"{not json", "application/json")
    assert (status, problem["reason"]) == (400, "json")


async def test_limits_and_errors_have_one_shape(tmp_path: Path) -> None:
    server, session = await start(settings(tmp_path / "c", max_body=batch.SIZE + 10 * 110))
    c = Cloud(server, session)
    try:
        status, problem = await c.upload(bytes(batch.SIZE + 11 * 110))
        assert status == 413 and problem["status"] == 413
        status, problem = await c.post("/v1/batches", b"x", "text/plain")
        assert (status, problem["reason"]) == (415, "content type")
        status, problem = await c.get("/v1/nothing")
        assert status == 404 and "reason" in problem
        status, _ = await c.get("/v1/openapi.json")
        assert status == 200
    finally:
        await session.close()
        await server.close()


async def test_a_restart_continues_the_log_consistently(
    tmp_path: Path, database: str | None
) -> None:
    config = settings(tmp_path / "cloud", database)
    server, session = await start(config)
    c = Cloud(server, session)
    now = int(time.time())
    await c.change(registry.GatewayRegistration(schnorr.pubkey(GW), now, site="w1"))
    await c.change(registry.BoxRegistration(schnorr.pubkey(BOX), now, site="w1", label=""))
    batches = chain(4, 5)
    for header, w in batches[:2]:
        assert (await c.upload(body(header, w)))[0] == 201
    _, before = await c.get("/v1/checkpoint")
    _, vkey = await c.get("/v1/log/vkey")
    await session.close()
    await server.close()

    server, session = await start(config)
    c = Cloud(server, session)
    try:
        _, vkey2 = await c.get("/v1/log/vkey")
        assert vkey2 == vkey  # the same log key: read, not re-created
        for header, w in batches[2:]:
            assert (await c.upload(body(header, w)))[0] == 201
        verifier = Verifier.parse(vkey.decode().strip())
        old = open_checkpoint(before.decode(), verifier)
        _, after = await c.get("/v1/checkpoint")
        new = open_checkpoint(after.decode(), verifier)
        _, cons = await c.get("/v1/log/proof/consistency", old=old.size, new=new.size)
        merkle.verify_consistency(
            old.size,
            new.size,
            old.root_hash,
            new.root_hash,
            [bytes.fromhex(h) for h in cons["proof"]],
        )
        assert (old.size, new.size) == (5, 7)
    finally:
        await session.close()
        await server.close()


async def test_verifying_a_large_batch_does_not_block_other_requests(cloud: Cloud) -> None:
    (header, w), *_ = chain(1, 8192)  # ~0.2-0.5 s of signature checks on this machine
    upload = asyncio.create_task(cloud.upload(body(header, w)))
    await asyncio.sleep(0.05)  # the upload is being verified now
    status, health = await cloud.get("/healthz")
    assert status == 200 and not upload.done(), "the event loop answered while verifying"
    assert (await upload)[0] == 201
    assert health["log_size"] == 3  # the batch was not in yet


async def test_batches_uploaded_at_once_are_stored_in_chain_order(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway uploads several batches at once ([uplink] in_flight): one that arrives
    before its predecessor waits for it and is stored after it; one whose predecessor never
    comes is refused ("chain") once CHAIN_WAIT_S has passed, storing nothing."""
    batches = chain(6, 4)
    uploads = [
        asyncio.create_task(cloud.upload(body(header, w))) for header, w in reversed(batches)
    ]
    answers = await asyncio.gather(*uploads)
    assert [status for status, _ in answers] == [201] * 6, answers
    receipts = sorted((r for _, r in answers), key=lambda r: r["seq"])
    assert [r["seq"] for r in receipts] == list(range(6))
    assert [r["log_index"] for r in receipts] == list(range(3, 9))  # in chain order
    monkeypatch.setattr(batch_service, "CHAIN_WAIT_S", 0.5)
    w = readings(BOX, range(100, 104))
    orphan = batch.seal(GW, 8, batches[-1][0].hash(), w)  # batch 7 never comes
    started = time.monotonic()
    status, problem = await cloud.upload(body(orphan, w))
    assert (status, problem["reason"]) == (409, "chain")
    assert 0.4 < time.monotonic() - started < 10
    _, entries = await cloud.get("/v1/log/entries", start=0)
    assert len(entries["entries"]) == 9
