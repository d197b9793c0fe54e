"""Signed alarm acknowledgements relayed to gateways (docs/protocol.md, "Alarm
acknowledgements through the cloud"): anyone holding a key an owner authorised for a site
posts one; the site's gateways fetch them, check them again and apply them. They are kept
off the log: the gateway's own signed "alarm-acknowledged" event is what the log records."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from cloud.api.routes import MAX_INDEX, int_query, json_body
from cloud.api.state import ALARM_ACKS
from gateway import alarm_ack
from gateway.refusal import hex_field

routes = web.RouteTableDef()
MAX_LIST: Final = 500  # acks per GET answer


@routes.post("/alarm-acks")
async def post_ack(request: web.Request) -> web.Response:
    """Check and store a signed ack: 201 with its id if new, 200 with the same answer for
    a replay."""
    body = await json_body(request, alarm_ack.MAX_BYTES, "alarm acknowledgement")
    answer, new = await request.config_dict[ALARM_ACKS].relay(body)
    return web.json_response(answer, status=201 if new else 200)


@routes.get("/gateways/{gateway}/alarm-acks")
async def gateway_acks(request: web.Request) -> web.Response:
    """A gateway's relayed acks with id > after (absent: from the first), oldest first."""
    gateway = hex_field(request.match_info["gateway"], "gateway", 32)
    after = int_query(request, "after", 0, maximum=MAX_INDEX)
    limit = int_query(request, "limit", 100, minimum=1, maximum=MAX_LIST)
    acks = await request.config_dict[ALARM_ACKS].of_gateway(gateway, after, limit)
    return web.json_response(acks)
