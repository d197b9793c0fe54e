"""Evidence an operator acts on: a box's equivocations (two validly signed readings with
one seq: its key may be cloned) and its duplicate sightings (a reading carried again by
another batch), both kept by the ledger instead of refusing the batch (docs/protocol.md,
"Exactly once")."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import int_query
from cloud.api.state import LOG, READINGS
from gateway.refusal import hex_field

routes = web.RouteTableDef()

MAX_LIST = 1000  # sightings per answer


@routes.get("/devices/{device}/equivocations")
async def equivocations(request: web.Request) -> web.Response:
    """The box's equivocations in log order: where each was carried, and both byte strings
    (the stored reading, served everywhere, and the conflicting one, never served)."""
    return await _list(request, equivocations=True)


@routes.get("/devices/{device}/sightings")
async def sightings(request: web.Request) -> web.Response:
    """The box's duplicate sightings in log order: the batches that carried a stored
    reading again, and where it is stored."""
    return await _list(request, equivocations=False)


async def _list(request: web.Request, *, equivocations: bool) -> web.Response:
    device = hex_field(request.match_info["device"], "device", 32)
    limit = int_query(request, "limit", MAX_LIST, minimum=1, maximum=MAX_LIST)
    await request.config_dict[LOG].refresh()
    found = await request.config_dict[READINGS].sightings(device, equivocations, limit)
    return web.json_response(found)
