"""The registry: signed changes by owners; who is registered; where boxes are attached."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import json_body
from cloud.api.state import REGISTRY
from gateway import registry_change as registry
from gateway.refusal import hex_field

routes = web.RouteTableDef()


@routes.post("/registry")
async def post_change(request: web.Request) -> web.Response:
    """Apply an owner-signed registry change (gateway/registry_change.py); 201, its index."""
    body = await json_body(request, registry.MAX_REQUEST_BYTES, "registry request")
    index = await request.config_dict[REGISTRY].apply(body)
    return web.json_response({"log_index": index}, status=201)


@routes.get("/devices")
async def devices(request: web.Request) -> web.Response:
    """Registered boxes: key, site, label and the highest sequence number stored."""
    return web.json_response(await request.config_dict[REGISTRY].devices())


@routes.get("/gateways")
async def gateways(request: web.Request) -> web.Response:
    """Registered gateways: key, site and their last stored batch."""
    return web.json_response(await request.config_dict[REGISTRY].gateways())


@routes.get("/devices/{device}/attachments")
async def attachments(request: web.Request) -> web.Response:
    """The lots, shipments or zones a box was attached to, and when."""
    device = hex_field(request.match_info["device"], "device", 32)
    return web.json_response(await request.config_dict[REGISTRY].attachments(device))
