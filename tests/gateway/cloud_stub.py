"""The cloud's side of the batch-upload contract (docs/protocol.md, "Gateway -> cloud"),
strictly and nothing more, for the gateway's uplink tests. The real cloud is issue 5.
It re-verifies everything, as the cloud must: header signature, chain, contents, every
reading's own signature; and answers resends with the original receipt."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from device import reading
from gateway import batch


@dataclass
class CloudStub:
    accepted: list[tuple[bytes, int]] = field(default_factory=list)  # (gateway, seq) in order
    receipts: dict[tuple[bytes, int], dict] = field(default_factory=dict)
    heads: dict[bytes, bytes] = field(default_factory=dict)  # gateway -> last header hash
    resends: int = 0
    refused: list[str] = field(default_factory=list)

    def problem(self, status: int, reason: str, detail: str) -> web.Response:
        self.refused.append(reason)
        return web.json_response(
            {"type": "about:blank", "title": reason, "detail": detail, "reason": reason},
            status=status,
            content_type="application/problem+json",
        )

    async def post_batch(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            header = batch.decode(body[: batch.SIZE])
        except batch.BatchError as e:
            return self.problem(400, e.field, str(e))
        if not header.verify_signature():
            return self.problem(400, "header signature", "gateway signature does not verify")
        ident = (header.gateway_key, header.seq)
        if ident in self.receipts:
            if self.receipts[ident]["header_hash"] != header.hash().hex():
                return self.problem(409, "conflict", f"another batch {header.seq} is stored")
            self.resends += 1
            return web.json_response(self.receipts[ident], status=200)
        expected = self.heads.get(header.gateway_key, batch.GENESIS_PREV)
        if header.prev_hash != expected:
            return self.problem(409, "chain", f"batch {header.seq} does not follow the last one")
        rest = body[batch.SIZE :]
        if len(rest) % reading.SIZE:
            return self.problem(400, "length", f"{len(rest)} bytes of readings")
        wires = [rest[i : i + reading.SIZE] for i in range(0, len(rest), reading.SIZE)]
        try:
            batch.check_contents(header, wires)
        except (batch.BatchError, reading.ReadingError) as e:
            return self.problem(400, getattr(e, "field", "contents"), str(e))
        if not all(reading.verify(w) for w in wires):
            return self.problem(400, "reading signature", "a reading does not verify")
        receipt = {
            "gateway": header.gateway_key.hex(),
            "seq": header.seq,
            "header_hash": header.hash().hex(),
            "log_index": len(self.accepted),
            "checkpoint": f"stub\n{len(self.accepted) + 1}\n",
        }
        self.receipts[ident] = receipt
        self.heads[header.gateway_key] = header.hash()
        self.accepted.append(ident)
        return web.json_response(receipt, status=201)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/batches", self.post_batch)
        return app


async def start(stub: CloudStub, port: int) -> web.AppRunner:
    runner = web.AppRunner(stub.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner
