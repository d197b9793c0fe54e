"""Participants as the read matrix shows them (docs/contracts.md §5; cloud/contracts/
policy.py): the directory, and one participant by any DID it had."""

from __future__ import annotations

from aiohttp import web

from cloud.api.state import AUTH, READS

routes = web.RouteTableDef()


@routes.get("/participants")
async def directory(request: web.Request) -> web.Response:
    """The participants whose identity the reader reads, and counts per role and region
    where its entities' identity cell is global only."""
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    return web.json_response(await request.config_dict[READS].participants(reader))


@routes.get("/participants/{did}")
async def participant(request: web.Request) -> web.Response:
    """One participant's identity and compliance columns, as far as the reader may see
    them: 400 not a did:key, 404 no participant's, 403 naming the cells if none."""
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    did = request.match_info["did"]
    return web.json_response(await request.config_dict[READS].participant(did, reader))
