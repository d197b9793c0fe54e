"""Gateway events (docs/protocol.md, "Gateway events"): a gateway uploads its signed events,
anyone reads a gateway's events back."""

from __future__ import annotations

import json

from aiohttp import web

from cloud.errors import hex_field
from cloud.ledger import LedgerError
from cloud.routes import int_query
from cloud.state import LEDGER
from gateway import event

routes = web.RouteTableDef()
# A full page of events at their largest, as canonical JSON written as hex-signed items,
# with room for whitespace: anything larger is refused before it is parsed.
MAX_BODY = event.MAX_PAGE * (event.MAX_EVENT + 300) * 2
MAX_LIST = 1000  # events per GET answer


@routes.post("/v1/events")
async def post_events(request: web.Request) -> web.Response:
    """Store a page of signed events: 201 if any was new, 200 if all were stored before;
    either way each event's log index."""
    if request.content_type != "application/json":
        raise LedgerError("content type", f"got {request.content_type}, want application/json", 415)
    data = await _read_at_most(request, MAX_BODY)
    try:
        page = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise LedgerError("json", f"the body is not JSON: {str(e)[:200]}") from None
    answer, created = await request.app[LEDGER].append_events(page)
    return web.json_response(answer, status=201 if created else 200)


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    """Return the body, reading no more than `limit` + 1 bytes of it. Raises LedgerError
    413 if it is longer."""
    if (request.content_length or 0) > limit:
        raise LedgerError("too large", f"got {request.content_length} bytes, want <= {limit}", 413)
    data = bytearray()
    while chunk := await request.content.read(limit + 1 - len(data)):
        data += chunk
        if len(data) > limit:
            raise LedgerError("too large", f"got more than {limit} bytes, want <= {limit}", 413)
    return bytes(data)


@routes.get("/v1/gateways/{gateway}/events")
async def gateway_events(request: web.Request) -> web.Response:
    """A gateway's events with seq > after (default: from its first), oldest first."""
    gateway = hex_field(request.match_info["gateway"], "gateway", 32)
    after = int_query(request, "after") if "after" in request.query else -1
    limit = int_query(request, "limit", 100, minimum=1, maximum=MAX_LIST)
    return web.json_response(await request.app[LEDGER].gateway_events(gateway, after, limit))
