"""Readings: offline-verifiable proof bundles and a box's history."""

from __future__ import annotations

import time

from aiohttp import web

from cloud.api.routes import int_query, path_int
from cloud.api.state import LOG, READINGS
from device import reading
from gateway.refusal import hex_field

routes = web.RouteTableDef()


@routes.get("/readings/{device}/{seq}/proof")
async def proof_bundle(request: web.Request) -> web.Response:
    """Everything needed to verify one reading offline (docs/protocol.md, "Proof bundle")."""
    device = hex_field(request.match_info["device"], "device", 32)
    await request.config_dict[LOG].refresh()
    seq = path_int(request, "seq", 0, reading.SEQ_MAX)
    return web.json_response(await request.config_dict[READINGS].bundle(device, seq))


@routes.get("/devices/{device}/readings")
async def history(request: web.Request) -> web.Response:
    """A box's readings with start <= time < end (Unix seconds; default: the last day)."""
    device = hex_field(request.match_info["device"], "device", 32)
    now = int(time.time())
    start = int_query(request, "start", now - 86_400)
    end = int_query(request, "end", now + 1)
    limit = int_query(request, "limit", 1000, minimum=1, maximum=10_000)
    found = await request.config_dict[READINGS].history(device, start, end, limit)
    return web.json_response(
        [
            {
                "seq": r.seq,
                "time": r.time,
                "temperature_c": r.temperature / 100,
                "humidity_pct": r.humidity / 100,
                "flags": r.flags,
            }
            for r in found
        ]
    )
