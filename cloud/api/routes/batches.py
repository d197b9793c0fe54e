"""POST /v1/batches: a gateway uploads a sealed batch (docs/protocol.md, "Gateway -> cloud")."""

from __future__ import annotations

from aiohttp import web

from cloud.api.state import BATCHES
from cloud.services.refusals import LedgerError

routes = web.RouteTableDef()


@routes.post("/batches")
async def post_batch(request: web.Request) -> web.Response:
    """Verify and store a batch: 201 with a receipt, 200 with the original one for a resend."""
    if request.content_type != "application/octet-stream":
        raise LedgerError(
            "content type", f"got {request.content_type}, want application/octet-stream", 415
        )
    receipt, created = await request.config_dict[BATCHES].ingest(await request.read())
    return web.json_response(receipt.to_json(), status=201 if created else 200)
