"""Stock and shortage (docs/contracts.md §5, "Stock and shortage (as built)"): GET /v1/stock
(every GTIN the reader may see, a page at a time) and GET /v1/stock/{gtin}, as the read
policy lets the reader see them (cloud/services/stock.py)."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import int_query
from cloud.api.state import AUTH, STOCK
from cloud.contracts import lots_fields
from cloud.services.refusals import LedgerError

routes = web.RouteTableDef()

DEFAULT_PAGE = 100
MAX_PAGE = 1000  # GTINs per page of GET /v1/stock


def _gtin(text: str, field: str) -> str:
    """Return `text` as a GTIN-14 (GTIN-8/12/13 padded, check digit verified). Raises
    LedgerError 400 naming `field`."""
    try:
        return lots_fields.gtin14(text)
    except ValueError as e:
        raise LedgerError(field, str(e)) from None


@routes.get("/stock")
async def stock_list(request: web.Request) -> web.Response:
    """Every GTIN the reader may see after the GTIN `after` (default: from the first), at
    most `limit` (1 to 1000, default 100), each as GET /v1/stock/{gtin} shows it; `next` is
    the `after` of the next page (null: no more). 403 for the public, naming the cell."""
    raw = request.query.get("after")
    after = None if raw is None else _gtin(raw, "after")
    limit = int_query(request, "limit", DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    return web.json_response(await request.config_dict[STOCK].all(reader, after, limit))


@routes.get("/stock/{gtin}")
async def stock_one(request: web.Request) -> web.Response:
    """A GTIN's stock: the figures per holder role (no participant named), the reader's
    own holdings, the regulator's minimum, as the reader's cells allow (`withheld` names
    the others); 403 for the public, 404 for a GTIN with no lot and no minimum."""
    gtin = _gtin(request.match_info["gtin"], "gtin")
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    return web.json_response(await request.config_dict[STOCK].stock(gtin, reader))
