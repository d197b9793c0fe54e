"""Configuration on the log (kind 0x06): owner changes, the current owners, and the
authority entries (registry and configuration) a gateway follows, with their log indices."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import MAX_INDEX, int_query, json_body
from cloud.api.state import CONFIG
from gateway import config_entry

routes = web.RouteTableDef()


@routes.post("/config")
async def post_change(request: web.Request) -> web.Response:
    """Apply an owner-signed owner change (gateway/config_entry.py); 201 with its index."""
    body = await json_body(request, config_entry.MAX_REQUEST_BYTES, "configuration request")
    index = await request.config_dict[CONFIG].apply(body)
    return web.json_response({"log_index": index}, status=201)


@routes.get("/config/owners")
async def owners(request: web.Request) -> web.Response:
    """The owner keys after the log's last configuration entry."""
    keys = await request.config_dict[CONFIG].owners()
    return web.json_response({"owners": sorted(k.hex() for k in keys)})


@routes.get("/registry/entries")
async def authority_entries(request: web.Request) -> web.Response:
    """Registry (0x02) and configuration (0x06) entries after log index `after` (absent:
    from the start), oldest first, a page at a time: ask again after the last index."""
    after = int_query(request, "after", -1, minimum=0, maximum=MAX_INDEX)
    page = await request.config_dict[CONFIG].authority_page(after)
    return web.json_response({"entries": [{"index": i, "entry": e.hex()} for i, e in page]})
