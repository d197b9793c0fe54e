"""The cloud collects witness cosignatures: a real witness app and a real cloud app on
local ports. Checkpoints get cosigned as the log grows, across a cloud restart (the
witness tells the cloud where it stands), and a rewritten log is refused by the witness and
served without its cosignature."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from cloud.keys import load_or_create_signer
from cloud.settings import DEFAULT_ORIGIN, CloudSettings
from cloud.witness.server import make_witness_app
from device import schnorr
from gateway import registry_change as registry
from gateway.checkpoint import CosignatureSigner, verify_cosignature
from gateway.note import parse_note
from tests.cloud.api.test_app import OWNER, Cloud, chain, start
from tests.cloud.services.test_ingest import BOX, GW, body


@pytest.fixture
async def witness(tmp_path: Path) -> AsyncIterator[tuple[str, CosignatureSigner]]:
    log_key = load_or_create_signer(tmp_path / "cloud" / "log.skey", DEFAULT_ORIGIN)
    signer = CosignatureSigner.generate("regulator.example/witness")
    app = make_witness_app(signer, {log_key.name: [log_key.verifier()]}, tmp_path / "witness")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), signer
    finally:
        await server.close()


async def cosigned(c: Cloud, signer: CosignatureSigner, size: int, timeout: float = 10) -> bool:
    """Wait until the served checkpoint of at least `size` carries a valid cosignature."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, note = await c.get("/v1/checkpoint")
        text, sigs = parse_note(note.decode())
        served = int(text.split("\n")[1])
        for sig in sigs:
            if sig.name == signer.name and served >= size:
                verify_cosignature(text, sig.line, signer.verifier())
                return True
        await asyncio.sleep(0.1)
    return False


async def test_checkpoints_get_cosigned_and_a_rewritten_log_does_not(
    tmp_path: Path, witness: tuple[str, CosignatureSigner], caplog: pytest.LogCaptureFixture
) -> None:
    url, signer = witness
    config = CloudSettings(
        data_dir=tmp_path / "cloud",
        owners=(schnorr.pubkey(OWNER),),
        witnesses=(f"{url}={signer.verifier().to_vkey()}",),
    )
    batches = chain(4, 3)

    async def session(first: int, last: int, register: bool, wait: float = 10) -> bool:
        server, http = await start(config)
        c = Cloud(server, http)
        try:
            now = int(time.time())
            if register:
                await c.change(registry.GatewayRegistration(schnorr.pubkey(GW), now, site="w"))
                await c.change(
                    registry.BoxRegistration(schnorr.pubkey(BOX), now, site="w", label="")
                )
            for header, w in batches[first:last]:
                assert (await c.upload(body(header, w)))[0] == 201
            _, health = await c.get("/healthz")
            return await cosigned(c, signer, health["log_size"], wait)
        finally:
            await http.close()
            await server.close()

    assert await session(0, 2, register=True)  # cosigned from size 0
    assert await session(2, 3, register=False)  # a restart: the witness's 409 tells the size
    assert await session(3, 4, register=False)
    # The operator loses the database and starts another history under the same key,
    # growing it past what the witness cosigned: a split view the witness must refuse.
    key = (tmp_path / "cloud" / "log.skey").read_bytes()
    shutil.rmtree(tmp_path / "cloud")
    (tmp_path / "cloud").mkdir()
    (tmp_path / "cloud" / "log.skey").write_bytes(key)
    batches = chain(8, 2)  # other readings: other batches, other roots
    caplog.set_level("WARNING", logger="pharmasync.cloud.witnessing")
    assert not await session(0, 8, register=True, wait=3)
    assert "did not cosign" in caplog.text
