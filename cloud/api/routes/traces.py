"""The recall trace (docs/contracts.md §5): GET /v1/lots/{gtin}/{lot}/trace, as the read
policy lets the reader see it (cloud/services/traces.py)."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import lot_path
from cloud.api.state import AUTH, TRACES

routes = web.RouteTableDef()


@routes.get("/lots/{gtin}/{lot}/trace")
async def trace(request: web.Request) -> web.Response:
    """The lot and every lot split from it, with holders, quantities and shipments in
    transit of the legs the reader reads (view "flows"), or the regulator's global figures
    (view "global"); 403 naming the read cell for anyone else, the public included."""
    gtin, number = lot_path(request)
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    found = await request.config_dict[TRACES].trace(gtin, number, reader)
    return web.Response(body=found.encode(), content_type="application/json")
