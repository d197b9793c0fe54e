"""Cosigned receipts at the gateway (gateway/uplink.py): the real cloud app with a real
witness app (SQLite and PostgreSQL), and a gateway configured with [uplink] cosignatures = 1,
the log's pinned key and the witness's key. Its batches go up while the cloud is down and
once it is back; each gets a cosigned receipt that the gateway checks and keeps, counted on
its status page and metrics. A gateway that trusts another witness refuses the same answer."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cloud.keys import load_or_create_signer
from cloud.settings import DEFAULT_ORIGIN
from gateway import cosigned_receipt
from gateway import registry_change as registry
from gateway import settings as gw_settings
from gateway.checkpoint import CosignatureSigner
from gateway.registry import Box, Registry
from gateway.service import Gateway
from gateway.spool import Spool
from gateway.status import Runtime, metrics_text, render, snapshot
from gateway.uplink import MAX_COSIGNED_BYTES, Uplink, UplinkError
from tests.cloud import conftest as cloud_fixtures
from tests.cloud.services.test_witnessing import witness
from tests.conftest import free_port
from tests.gateway.test_uplink import (
    BOX_KEY,
    GW_SECRET,
    CloudServer,
    feed,
    shut_down,
    until,
)

__all__ = ["database", "postgres_database", "witness"]
database = cloud_fixtures.database
postgres_database = cloud_fixtures.postgres_database


def make_gateway(data: Path, port: int, log_vkey: str, witnesses: list[str]) -> Gateway:
    s = gw_settings.from_dict(
        {
            "gateway": {"site": "t", "data_dir": str(data)},
            "status": {"port": 0},
            "spool": {"commit_interval_s": 0.0},
            "batch": {"max_readings": 3},
            "uplink": {
                "url": f"http://127.0.0.1:{port}",
                "max_backoff_s": 1,
                "timeout_s": 5,
                "cosignatures": 1,
                "cosigned_poll_s": 0.2,
                "log_vkey": log_vkey,
                "witnesses": witnesses,
            },
        }
    )
    data.mkdir(parents=True, exist_ok=True)
    reg = Registry(data / "registry.json")
    reg.put(Box(BOX_KEY, "Cold room C", "t", zone="C"))
    return Gateway(s, reg, Spool(data / "spool.sqlite"), GW_SECRET)


async def test_the_gateway_fetches_checks_and_keeps_cosigned_receipts(
    tmp_path: Path, database: str | None, witness: tuple[str, CosignatureSigner]
) -> None:
    url, signer = witness
    port = free_port()
    cloud = CloudServer(tmp_path / "cloud", database, port)
    cloud.config = dataclasses.replace(
        cloud.config, witnesses=(f"{url}={signer.verifier().to_vkey()}",)
    )
    log_key = load_or_create_signer(tmp_path / "cloud" / "log.skey", DEFAULT_ORIGIN).verifier()
    witnesses = [signer.verifier().to_vkey()]
    gw = make_gateway(tmp_path / "gateway", port, log_key.to_vkey(), witnesses)
    uplink = Uplink(gw)
    task = asyncio.create_task(uplink.run())
    t0 = int(time.time()) - 3600

    async def all_cosigned(n: int) -> bool:
        return await gw.spool_call(gw.spool.cosigned_counts) == (n, 0)

    try:
        await feed(gw, 0, [5.0, 5.1, 5.2, 5.3, 5.4, 5.5], t0)  # two batches, the cloud down
        assert await gw.seal_due() == 2
        await asyncio.sleep(0.5)
        assert await gw.spool_call(gw.spool.cosigned_counts) == (0, 0)  # nothing accepted yet
        await cloud.start()
        await cloud.register_gateway()
        await cloud.register(
            registry.BoxRegistration(BOX_KEY, int(time.time()), site="t", label="C")
        )
        await until(lambda: all_cosigned(2), timeout=30)
        await feed(gw, 6, [5.6, 5.7, 5.8], t0 + 600)  # a third, the cloud up
        assert await gw.seal_due() == 1
        await until(lambda: all_cosigned(3), timeout=30)
        snap = await snapshot(Runtime(gw, uplink=uplink))
        assert snap["uplink"]["cosigned"] == 3 and snap["uplink"]["uncosigned"] == 0
        assert "cosigned receipts: 3 kept, 0 waiting" in render(snap)
        assert b"pharmasync_gateway_cosigned_receipts 3.0" in metrics_text(snap)
        kept = [await gw.spool_call(gw.spool.cosigned, seq) for seq in range(3)]
        sealed = [await gw.spool_call(gw.spool.batch, seq) for seq in range(3)]

        # A gateway that trusts another witness refuses the very same answer, loudly.
        stranger = CosignatureSigner.generate("stranger.example/witness").verifier().to_vkey()
        doubting = dataclasses.replace(gw.settings.uplink, witnesses=(stranger,))
        gw.settings = dataclasses.replace(gw.settings, uplink=doubting)
        other = Uplink(gw)
        first = sealed[0]
        assert first is not None and first.receipt is not None
        async with aiohttp.ClientSession() as session:
            with pytest.raises(UplinkError, match="cosignatures: got 0 of the given witnesses"):
                await other.fetch_cosigned(session, 0, first.header.encode(), first.receipt)
        assert other.cosigned_refused == 1
    finally:
        await shut_down(task, gw)
        if cloud.server is not None:
            await cloud.stop()
    for doc, batch_ in zip(kept, sealed, strict=True):
        assert doc is not None and batch_ is not None
        assert doc["receipt"] == batch_.receipt  # the receipt the upload got, unchanged
        checked = cosigned_receipt.check(
            cosigned_receipt.parse(doc), log_key=log_key, witnesses=[signer.verifier()]
        )
        assert checked.seq == batch_.header.seq and checked.witnesses == (signer.name,)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"[" * 200_000, "shape: not JSON"),  # nesting deep enough to break a recursive parser
        (b"x" * (MAX_COSIGNED_BYTES + 10), "shape: over"),
        (b'{"receipt": {}, "cosigned": {}}', "shape: log_index"),
    ],
)
async def test_a_misbehaving_clouds_answer_is_refused_and_counted(
    tmp_path: Path, answer: bytes, words: str
) -> None:
    # A cloud that answers garbage: a real HTTP server, as no honest cloud would do this.
    async def garbage(_: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/batches/{gateway}/{seq}/receipt", garbage)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    gw = make_gateway(tmp_path / "gateway", server.port or 0, "", [])
    uplink = Uplink(gw)
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(UplinkError, match=words):
                await uplink.fetch_cosigned(session, 0, bytes(181), {"seq": 0})
        assert uplink.cosigned_refused == 1
    finally:
        await gw.stop()
        gw.spool.close()
        gw.registry.close()
        await server.close()
