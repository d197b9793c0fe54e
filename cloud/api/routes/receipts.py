"""Cosigned receipts (docs/protocol.md, "Cosigned receipt"): a batch's original receipt plus a
later witness-cosigned checkpoint and the proofs that tie them (gateway/cosigned_receipt.py)."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import MAX_INT, int_query, path_int
from cloud.api.state import BATCHES
from gateway.note import MAX_SIGNATURES
from gateway.refusal import hex_field

routes = web.RouteTableDef()
MAX_COSIGNATURES = MAX_SIGNATURES - 1  # a note's lines but the log's own


@routes.get("/batches/{gateway}/{seq}/receipt")
async def cosigned_receipt(request: web.Request) -> web.Response:
    """The batch's cosigned receipt once a checkpoint including it carries `cosignatures`
    (default 1) witness cosignatures: 200; 404 "no batch"; 409 "not cosigned" until then."""
    gateway = hex_field(request.match_info["gateway"], "gateway", 32)
    seq = path_int(request, "seq", 0, MAX_INT)
    wanted = int_query(request, "cosignatures", 1, minimum=1, maximum=MAX_COSIGNATURES)
    found = await request.config_dict[BATCHES].cosigned_receipt(gateway, seq, wanted)
    return web.json_response(found.to_json())
