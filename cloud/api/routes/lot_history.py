"""A lot's history (docs/contracts.md §4 and §5): its legs and cold chain, from the
aggregates, as the read policy shows them to the reader."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import lot_path
from cloud.api.state import AUTH, CONTRACTS

routes = web.RouteTableDef()


@routes.get("/lots/{gtin}/{lot}/history")
async def history(request: web.Request) -> web.Response:
    """A lot's quality status, legs and cold chain (per leg and overall figures, MKT,
    excursions, gaps, calibration flags) as cloud/services/lot_history.py renders them for
    what the quality-status cell shows the bearer (the public: the status alone)."""
    gtin, lot = lot_path(request)
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    head, answer = await request.config_dict[CONTRACTS].history(gtin, lot, reader)
    return web.json_response({**answer, "state": head.to_json()})
