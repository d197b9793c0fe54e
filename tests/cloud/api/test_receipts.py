"""GET /v1/batches/{gateway}/{seq}/receipt: a real cloud and a real witness on local ports,
on SQLite and PostgreSQL. A batch's receipt becomes a cosigned receipt once the witness has
cosigned a checkpoint that includes it; the cloud keeps cosigned checkpoints, so a restarted
cloud (without its witness) still serves it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from cloud.log.tlog import ENTRY_BATCH
from device import schnorr
from gateway import cosigned_receipt
from gateway import registry_change as registry
from gateway.checkpoint import CosignatureSigner
from gateway.note import Verifier
from tests.cloud.api.test_app import Cloud, chain, settings, start
from tests.cloud.services.test_ingest import BOX, GW, body
from tests.cloud.services.test_witnessing import witness

__all__ = ["witness"]  # the fixture, shared with test_witnessing


async def receipt_when_cosigned(c: Cloud, seq: int, timeout: float = 15) -> dict[str, Any]:
    """Poll the route until the batch's cosigned receipt is served; return it."""
    deadline = time.monotonic() + timeout
    path = f"/v1/batches/{schnorr.pubkey(GW).hex()}/{seq}/receipt"
    while time.monotonic() < deadline:
        status, answer = await c.get(path)
        if status == 200:
            return dict(answer)
        assert status == 409 and answer["reason"] == "not cosigned", answer
        await asyncio.sleep(0.2)
    raise AssertionError(f"batch {seq} got no cosigned receipt in {timeout} s")


async def register(c: Cloud) -> None:
    """Register the test gateway and box (tests/cloud/services/test_ingest.py's keys)."""
    now = int(time.time())
    gateway = registry.GatewayRegistration(schnorr.pubkey(GW), now, site="w")
    assert (await c.change(gateway))[0] == 201
    box = registry.BoxRegistration(schnorr.pubkey(BOX), now, site="w", label="")
    assert (await c.change(box))[0] == 201


def test_entry_kind_is_the_logs() -> None:
    assert cosigned_receipt.ENTRY_BATCH == ENTRY_BATCH


async def test_a_batch_gets_a_cosigned_receipt_kept_across_restarts(
    tmp_path: Path, database: str | None, witness: tuple[str, CosignatureSigner]
) -> None:
    url, signer = witness
    vkey = f"{url}={signer.verifier().to_vkey()}"
    server, http = await start(settings(tmp_path / "cloud", database, witnesses=(vkey,)))
    c = Cloud(server, http)
    gw = schnorr.pubkey(GW).hex()
    try:
        await register(c)
        receipts = []
        for header, wires in chain(3, 4):
            status, receipt = await c.upload(body(header, wires))
            assert status == 201, receipt
            receipts.append(receipt)
        _, raw = await c.get("/v1/log/vkey")
        log_key = Verifier.parse(raw.decode().strip())

        # Refusals, each with its reason: a batch never stored, more witnesses than exist,
        # integers out of range where they enter.
        status, answer = await c.get(f"/v1/batches/{gw}/99/receipt")
        assert (status, answer["reason"]) == (404, "no batch")
        status, answer = await c.get(f"/v1/batches/{gw}/0/receipt", cosignatures="2")
        assert (status, answer["reason"]) == (409, "not cosigned")
        status, answer = await c.get(f"/v1/batches/{gw}/0/receipt", cosignatures="0")
        assert (status, answer["reason"]) == (400, "cosignatures")
        status, answer = await c.get(f"/v1/batches/{gw}/{2**63}/receipt")
        assert (status, answer["reason"]) == (400, "seq")
        status, answer = await c.get("/v1/batches/zz/0/receipt")
        assert (status, answer["reason"]) == (400, "gateway")

        found = [await receipt_when_cosigned(c, seq) for seq in range(3)]
    finally:
        await http.close()
        await server.close()

    for seq, (doc, original) in enumerate(zip(found, receipts, strict=True)):
        assert doc["receipt"] == original  # the original receipt, unchanged
        parsed = cosigned_receipt.parse(doc)
        checked = cosigned_receipt.check(
            parsed, log_key=log_key, witnesses=[signer.verifier()], min_cosignatures=1
        )
        assert (checked.seq, checked.witnesses) == (seq, (signer.name,))
        assert checked.size > original["log_index"]

    # A restart without the witness: the kept cosigned checkpoint still answers, the same.
    server, http = await start(settings(tmp_path / "cloud", database))
    c = Cloud(server, http)
    try:
        assert await receipt_when_cosigned(c, 0, timeout=1) == found[0]
    finally:
        await http.close()
        await server.close()
