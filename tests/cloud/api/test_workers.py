"""Several cloud workers on one PostgreSQL database, as deployed behind a load balancer:
two `pharmasync cloud serve --database` processes, two gateways uploading concurrently and
alternating between the workers. They keep one log: every batch once, in each gateway's
order, both workers serving the same checkpoint, every receipt consistent with it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from cloud import serve_child
from device import schnorr
from gateway import batch, merkle
from gateway import registry_change as registry
from gateway.checkpoint import open_checkpoint
from gateway.note import Verifier
from tests.cloud.api.test_app import OWNER
from tests.cloud.services.test_ingest import BOX, readings
from tests.conftest import free_port

EXE = serve_child.EXE
GATEWAYS = [bytes(31) + bytes([0x41 + i]) for i in range(2)]


async def start_cloud(
    data: Path, *options: str, log: str = "worker"
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `pharmasync cloud serve` with `options` as a process of its own (its output in
    `<log>-<port>.log` beside `data`); return it and its URL once /healthz answers."""
    port = free_port()
    out = (data.parent / f"{log}-{port}.log").open("wb")
    return await asyncio.to_thread(serve_child.start, data, port, *options, log=out)


async def start_worker(data: Path, dsn: str) -> tuple[subprocess.Popen[bytes], str]:
    return await start_cloud(data, "--database", dsn, "--owner", schnorr.pubkey(OWNER).hex())


async def test_two_workers_share_one_log(tmp_path: Path, postgres_dsn: str) -> None:
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    data = tmp_path / "cloud"  # both workers read the one log key from here
    workers = [await start_worker(data, postgres_dsn) for _ in range(2)]
    urls = [url for _, url in workers]
    try:
        async with aiohttp.ClientSession() as http:
            now = int(time.time())
            changes = [
                registry.GatewayRegistration(schnorr.pubkey(g), now, site="w") for g in GATEWAYS
            ]
            changes.append(registry.BoxRegistration(schnorr.pubkey(BOX), now, site="w", label=""))
            for change in changes:
                req = registry.sign_request(OWNER, change)
                async with http.post(f"{urls[0]}/v1/registry", json=req) as r:
                    assert r.status == 201, await r.text()

            async def gateway(g: int) -> list[dict[str, object]]:
                receipts, prev = [], batch.GENESIS_PREV
                for seq in range(8):
                    w = readings(BOX, range(1000 * g + 10 * seq, 1000 * g + 10 * seq + 10))
                    header = batch.seal(GATEWAYS[g], seq, prev, w)
                    async with http.post(
                        f"{urls[(seq + g) % 2]}/v1/batches",  # alternate workers
                        data=header.encode() + b"".join(w),
                        headers={"Content-Type": "application/octet-stream"},
                    ) as r:
                        assert r.status == 201, await r.text()
                        receipts.append(await r.json())
                    prev = header.hash()
                return receipts

            all_receipts = [r for rs in await asyncio.gather(gateway(0), gateway(1)) for r in rs]
            notes = []
            for url in urls:
                async with http.get(f"{url}/v1/checkpoint") as r:
                    notes.append(await r.text())
                async with http.get(f"{url}/v1/log/vkey") as r:
                    verifier = Verifier.parse((await r.text()).strip())
            async with http.get(f"{urls[1]}/v1/log/entries", params={"start": 0}) as r:
                entries = [bytes.fromhex(e) for e in (await r.json())["entries"]]
    finally:
        for proc, _ in workers:
            proc.terminate()
            proc.wait(timeout=30)
    assert notes[0] == notes[1], "both workers serve the same checkpoint"
    final = open_checkpoint(notes[0], verifier)
    assert final.size == len(entries) == 4 + 16
    tree = merkle.MerkleTree(entries)
    assert tree.root() == final.root_hash
    headers = [batch.decode(e[1:]) for e in entries if e[0] == 0x01]
    for g in GATEWAYS:
        assert [h.seq for h in headers if h.gateway_key == schnorr.pubkey(g)] == list(range(8))
    for receipt in all_receipts:  # each receipt's checkpoint is a prefix of the final log
        cp = open_checkpoint(str(receipt["checkpoint"]), verifier)
        assert cp.root_hash == tree.root(cp.size)
