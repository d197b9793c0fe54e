"""Gateway events (docs/protocol.md, "Gateway events"): a gateway uploads its signed events,
anyone reads a gateway's events back."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import int_query, json_body
from cloud.api.state import EVENTS
from cloud.services.refusals import LedgerError
from gateway import event
from gateway.refusal import hex_field

routes = web.RouteTableDef()
# A full page of events at their largest, as canonical JSON written as hex-signed items,
# with room for whitespace: anything larger is refused before it is parsed.
MAX_BODY = event.MAX_PAGE * (event.MAX_EVENT + 300) * 2
MAX_LIST = 1000  # events per GET answer


@routes.post("/events")
async def post_events(request: web.Request) -> web.Response:
    """Store a page of signed events: 201 if any was new, 200 if all were stored before;
    either way each event's log index."""
    if request.content_type != "application/json":
        raise LedgerError("content type", f"got {request.content_type}, want application/json", 415)
    page = await json_body(request, MAX_BODY, "events page")
    answer, created = await request.config_dict[EVENTS].append(page)
    return web.json_response(answer, status=201 if created else 200)


@routes.get("/gateways/{gateway}/events")
async def gateway_events(request: web.Request) -> web.Response:
    """A gateway's events with seq > after (default: from its first), oldest first."""
    gateway = hex_field(request.match_info["gateway"], "gateway", 32)
    after = int_query(request, "after") if "after" in request.query else -1
    limit = int_query(request, "limit", 100, minimum=1, maximum=MAX_LIST)
    found = await request.config_dict[EVENTS].of_gateway(gateway, after, limit)
    return web.json_response(found)
