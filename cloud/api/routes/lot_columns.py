"""One column of a lot, asked for by name (docs/contracts.md §5): what a reader's cell
shows, or 403 naming the cell that withholds it."""

from __future__ import annotations

from aiohttp import web

from cloud.api.state import AUTH, READS

routes = web.RouteTableDef()


@routes.get("/lots/{gtin}/{lot}/columns/{column}")
async def lot_column(request: web.Request) -> web.Response:
    """{"gtin", "lot", "column", "value"}: the column as GET /v1/lots/{gtin}/{lot} shows it
    in `columns`; 403 "access" naming the cell where it is withheld, 404 for a lot never
    commissioned, 400 for a malformed GTIN or lot or an unknown column."""
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    match = request.match_info
    answer = await request.config_dict[READS].lot_column(
        match["gtin"], match["lot"], match["column"], reader
    )
    return web.json_response(answer)
