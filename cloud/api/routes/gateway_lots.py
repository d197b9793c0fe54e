"""The lots a gateway's boxes are on, for that gateway alone (cloud/services/gateway_lots.py;
docs/protocol.md, "Lots of a gateway's boxes"): a read signed with the gateway's key."""

from __future__ import annotations

from aiohttp import web

from cloud.api.state import GATEWAY_LOTS
from gateway import gateway_auth

routes = web.RouteTableDef()


@routes.get("/gateways/{gateway}/lots")
async def gateway_lots(request: web.Request) -> web.Response:
    """Each box at the gateway's site that is on a lot, with the lots and their storage
    profiles; 401/403 for a read not signed by that registered gateway."""
    answer = await request.config_dict[GATEWAY_LOTS].lots(
        request.match_info["gateway"],
        request.headers.get(gateway_auth.CHALLENGE_HEADER),
        request.headers.get(gateway_auth.SIGNATURE_HEADER),
    )
    return web.json_response(answer)
