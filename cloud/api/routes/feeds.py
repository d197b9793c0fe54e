"""Notification feeds (docs/contracts.md §5, "Feeds"): the signed-in reader's own feed, a
page at a time (GET /v1/feed?after=N&limit=M) or followed as Server-Sent Events (GET
/v1/feed/stream; cloud/api/sse.py), resumed after the event a client names in Last-Event-ID.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from cloud.api import sse
from cloud.api.routes import MAX_INT, int_query
from cloud.api.state import AUTH, FEEDS
from cloud.contracts import auth
from cloud.contracts.feeds import MAX_PAGE
from cloud.services.feeds import Ended, FeedService
from cloud.services.refusals import LedgerError
from gateway.refusal import decimal_field

routes = web.RouteTableDef()
log = logging.getLogger("pharmasync.cloud.feeds")

DEFAULT_PAGE = 100
RETRY_MS = 3000  # how long a client waits before it reconnects


@routes.get("/feed")
async def feed(request: web.Request) -> web.Response:
    """The reader's events after the `after`-th (default 0: from the start), at most
    `limit` (1 to 1000, default 100); `next` is the `after` of the next page."""
    after = int_query(request, "after", 0, maximum=MAX_INT)
    limit = int_query(request, "limit", DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    service = request.config_dict[FEEDS]
    owner = await service.owner(reader)
    service.check_cursor(owner, after, "after")
    events, last = service.page(owner, after, limit)
    answer = {
        "events": [e.to_json() for e in events],
        "next": events[-1].id if events else after,
        "last": last,
    }
    return web.json_response(answer)


@routes.get("/feed/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """The reader's events as Server-Sent Events (`id`: the event's id, `data`: its JSON as
    GET /v1/feed gives it), after the one Last-Event-ID names (else `after`, else from the
    start), then each as it is applied; a heartbeat comment when nothing happens. Ends when
    the token expires, the reader is suspended or rotated away, or the server shuts down:
    reconnect with Last-Event-ID."""
    header = request.headers.get(sse.LAST_EVENT_ID)
    field = "after" if header is None else sse.LAST_EVENT_ID
    if header is not None:
        after = decimal_field(header.strip(), field, 0, MAX_INT, LedgerError)
    else:
        after = int_query(request, field, 0, maximum=MAX_INT)
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    service = request.config_dict[FEEDS]
    owner = await service.owner(reader)
    service.check_cursor(owner, after, field)
    assert reader is not None  # owner() refuses the public
    response = web.StreamResponse(
        headers={"Content-Type": sse.CONTENT_TYPE, "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    why = await _events_until_ended(response, service, reader, owner, after)
    log.info("feed stream of %s ended: %s", reader.did[:24], why.value)
    return response


async def _events_until_ended(
    response: web.StreamResponse,
    service: FeedService,
    reader: auth.Token,
    owner: str,
    after: int,
) -> Ended:
    """Write the events after the `after`-th as they come, a heartbeat comment after each
    quiet heartbeat_s; return why the stream ended (its end written, unless the client went
    away)."""
    try:
        await response.write(sse.retry(RETRY_MS))
        while (why := service.ended(reader, owner)) is None:
            wait = min(service.heartbeat_s, max(0.0, reader.expires - time.time()))
            events = await service.follow(owner, after, wait)
            if not events and not service.closing:
                await response.write(sse.comment("heartbeat"))
            for e in events:
                await response.write(sse.event(e.id, json.dumps(e.to_json())))
                after = e.id
        await response.write_eof()
        return why
    except ConnectionError:
        return Ended.GONE
